# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Supabase schema list, its documentation, and the one way exclude_schemas patterns match."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from ansible_collections.appcare.maintenance.plugins.doc_fragments.schemas import ModuleDocFragment
from ansible_collections.appcare.maintenance.plugins.module_utils import schemas as S

MODULES = os.path.join(os.path.dirname(S.__file__), '..', 'modules')
# The modules whose exclude_schemas defaults to the Supabase list; pg_backup has preset: supabase instead.
WITH_EXCLUDE = ['pg_audit_info', 'pg_health_info', 'pg_inspect_info', 'pg_reindex', 'pg_vacuum']


def module_source(name):
    with open(os.path.join(MODULES, name + '.py'), encoding='utf-8') as handle:
        return handle.read()


def documentation(name):
    source = module_source(name)
    start = source.index("DOCUMENTATION = r'''") + len("DOCUMENTATION = r'''")
    return yaml.safe_load(source[start:source.index("'''", start)])


def test_the_supabase_list_is_the_cli_s_internal_schemas():
    # InternalSchemas of supabase/cli (pkg/migration/dump.go), the schemas `supabase db dump` leaves out
    assert S.SUPABASE_SCHEMAS == [
        'information_schema', 'pg_*', '_analytics', '_realtime', '_supavisor', 'auth', 'etl', 'extensions',
        'pgbouncer', 'realtime', 'storage', 'supabase_functions', 'supabase_migrations', 'cron', 'dbdev', 'graphql',
        'graphql_public', 'net', 'pgmq', 'pgsodium', 'pgsodium_masks', 'pgtle', 'repack', 'tiger', 'tiger_data',
        'timescaledb_*', '_timescaledb_*', 'topology', 'vault']


def test_the_fragment_documents_the_list_as_the_default():
    fragment = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    assert fragment['options']['exclude_schemas']['default'] == S.SUPABASE_SCHEMAS
    assert 'github.com/supabase/cli' in ' '.join(fragment['notes'])
    preset = yaml.safe_load(ModuleDocFragment.SUPABASE_PRESET)['options']['preset']
    text = ' '.join(preset['description'])
    assert all('C(%s)' % schema in text for schema in S.SUPABASE_SCHEMAS)


@pytest.mark.parametrize('name', WITH_EXCLUDE)
def test_every_module_uses_the_one_list_and_the_fragment(name):
    doc = documentation(name)
    assert 'appcare.maintenance.schemas' in doc['extends_documentation_fragment']
    assert 'exclude_schemas' not in doc['options'], 'documented by the fragment, not again in %s' % name
    source = module_source(name)
    assert 'exclude_schemas_spec()' in source or 'M.module_main(' in source  # pg_reindex, pg_vacuum: in module_main
    assert 'SUPABASE_SCHEMAS' not in source  # never a list of its own
    assert S.exclude_schemas_spec()['exclude_schemas']['default'] == S.SUPABASE_SCHEMAS


def test_pg_backup_documents_its_preset_with_the_fragment():
    doc = documentation('pg_backup')
    assert 'appcare.maintenance.schemas.supabase_preset' in doc['extends_documentation_fragment']
    assert 'preset' not in doc['options']


@pytest.mark.parametrize('schema', ['pgmq', '_supavisor', 'etl', 'auth', 'pg_catalog', 'pg_toast', 'pg_temp_3',
                                    'information_schema', 'timescaledb_information', '_timescaledb_catalog'])
def test_supabase_schemas_match(schema):
    assert S.matches(schema, S.SUPABASE_SCHEMAS)


@pytest.mark.parametrize('schema', ['public', 'app', 'authx', 'my_auth', 'timescaledb', 'xpg_catalog', 'PGMQ'])
def test_application_schemas_do_not_match(schema):
    assert not S.matches(schema, S.SUPABASE_SCHEMAS)


@pytest.mark.parametrize('pattern, schema, expected', [
    ('tenant_*', 'tenant_a', True), ('tenant_*', 'tenant_', True), ('tenant_*', 'tenant', False),
    ('t?', 'ta', True), ('t?', 'tab', False), ('a.b', 'a.b', True), ('a.b', 'axb', False),
    ('a+b', 'a+b', True), ('a+b', 'aab', False), ('(x)', '(x)', True), ('x|y', 'x', False),
    ('[ab]', 'a', False), ('[ab]', '[ab]', True), ('sp ace', 'sp ace', True), ('a\\b', 'a\\b', True),
])
def test_patterns_have_two_wildcards_and_nothing_else(pattern, schema, expected):
    assert S.matches(schema, [pattern]) is expected
    regex = S.pattern_regex(pattern)
    assert regex.startswith('^') and regex.endswith('$')
    assert bool(re.fullmatch(regex, schema)) is expected


def test_a_filter_always_leaves_the_system_schemas_out():
    empty = S.SchemaFilter([])
    assert empty.excludes('pg_catalog') and empty.excludes('information_schema') and empty.excludes('pg_toast_temp_1')
    assert not empty.excludes('public') and not empty.excludes('auth')
    supabase = S.SchemaFilter(S.SUPABASE_SCHEMAS)
    assert supabase.excludes('pgmq') and supabase.excludes('_timescaledb_internal') and not supabase.excludes('public')
    assert supabase.patterns.count('pg_*') == 1
    assert S.is_system('pg_catalog') and not S.is_system('auth')
