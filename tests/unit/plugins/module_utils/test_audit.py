# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_audit_info's pure parts: the server log parser (stderr and jsonlog formats, addresses, time window,
time zones), the access snapshot diff, and the rules of the splinter lints (exposed schemas, always-true policies,
listable buckets, sensitive column names, user_metadata in policies, the renamed check)."""

from __future__ import annotations

import datetime
import json
import os
import re

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import access as AC
from ansible_collections.appcare.maintenance.plugins.module_utils import apilints as API
from ansible_collections.appcare.maintenance.plugins.module_utils import audit as A
from ansible_collections.appcare.maintenance.plugins.module_utils import authlog as AL
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

SINCE = datetime.datetime(2026, 11, 20, tzinfo=datetime.timezone.utc)


def parse(tmp_path, text, zone='UTC', since=SINCE):
    path = tmp_path / 'postgresql.log'
    path.write_text(text)
    parser = AL.FailedLogins(since, zone)
    parser.feed_file(str(path))
    return parser


def test_default_prefix_with_log_connections(tmp_path):
    parser = parse(tmp_path, (
        '2026-11-23 10:00:00.100 UTC [101] LOG:  connection received: host=203.0.113.9 port=51000\n'
        '2026-11-23 10:00:00.120 UTC [101] FATAL:  password authentication failed for user "postgres"\n'
        '2026-11-23 10:00:00.121 UTC [101] DETAIL:  Connection matched file "pg_hba.conf" line 3\n'
        '2026-11-23 10:00:01.100 UTC [102] LOG:  connection received: host=10.0.0.5 port=51001\n'
        '2026-11-23 10:00:01.120 UTC [102] FATAL:  password authentication failed for user "app ""quoted"""\n'
        '2026-11-23 10:00:02.000 UTC [103] FATAL:  no pg_hba.conf entry for host "198.51.100.1", user "root", '
        'database "postgres", no encryption\n'
        '2026-11-19 09:00:00.000 UTC [99] FATAL:  password authentication failed for user "old"\n'
        '2026-11-23 10:00:03.000 UTC [104] FATAL:  database "nope" does not exist\n'))
    by_address = dict((row['address'], row) for row in parser.by_address())
    assert set(by_address) == {'203.0.113.9', '10.0.0.5', '198.51.100.1'}
    assert by_address['10.0.0.5']['users'] == ['app "quoted"']
    assert by_address['198.51.100.1']['users'] == ['root']
    assert by_address['203.0.113.9']['first'] == '2026-11-23T10:00:00.120000+00:00'
    assert 'old' not in parser.by_user()  # before the window


def test_host_in_prefix_and_local_time_zone(tmp_path):
    parser = parse(tmp_path, (
        '2026-11-23 11:00:00 CET [7] app@ims 192.0.2.44(50312) FATAL:  password authentication failed for user "app"\n'
        '2026-11-23 11:00:00 CET [8] app@ims [local] FATAL:  password authentication failed for user "app"\n'),
        zone='Europe/Berlin')
    rows = parser.by_address()
    assert [(r['address'], r['failures']) for r in rows] == [('192.0.2.44', 1), ('unknown', 1)]
    assert rows[0]['first'] == '2026-11-23T11:00:00+01:00'


def test_jsonlog(tmp_path):
    lines = [
        {'timestamp': '2026-11-23 10:00:00.000 UTC', 'pid': 5, 'remote_host': '203.0.113.7', 'error_severity': 'FATAL',
         'message': 'password authentication failed for user "admin"'},
        {'timestamp': '2026-11-23 10:00:01.000 UTC', 'pid': 6, 'error_severity': 'LOG',
         'message': 'connection received: host=203.0.113.8 port=1'},
        {'timestamp': '2026-11-23 10:00:01.100 UTC', 'pid': 6, 'error_severity': 'FATAL',
         'message': 'password authentication failed for user "admin"'},
    ]
    parser = parse(tmp_path, '\n'.join(json.dumps(line) for line in lines) + '\nnot json at all\n')
    assert sorted(r['address'] for r in parser.by_address()) == ['203.0.113.7', '203.0.113.8']
    assert parser.by_user() == {'admin': 2}


def test_log_directory_reads_recent_files(tmp_path):
    (tmp_path / 'a.log').write_text('x\n')
    (tmp_path / 'b.log').write_text('y\n')
    files = AL.log_files(str(tmp_path), datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
    assert sorted(f.rsplit('/', 1)[-1] for f in files) == ['a.log', 'b.log']
    assert AL.log_files(str(tmp_path), datetime.datetime(2999, 1, 1, tzinfo=datetime.timezone.utc)) == []


def snapshot(roles, grants):
    return {'format': AC.SNAPSHOT_FORMAT, 'taken_at': '2026-11-16T02:00:00+00:00', 'roles': roles, 'grants': grants}


def role(**attributes):
    base = dict(superuser=False, login=True, inherit=True, createrole=False, createdb=False, replication=False,
                bypassrls=False, connection_limit=-1, valid_until=None, member_of=[])
    base.update(attributes)
    return base


def test_diff_and_findings():
    old = snapshot({'app': role(), 'gone': role()}, ['SELECT ON table public.a TO app', 'USAGE ON schema public TO PUBLIC'])
    new = snapshot({'app': role(createdb=True, member_of=['pg_monitor']), 'boss': role(superuser=True)},
                   ['USAGE ON schema public TO PUBLIC', 'ALL ON table public.a TO boss'])
    changes = AC.diff(old, new)
    assert changes['roles_added'] == ['boss'] and changes['roles_removed'] == ['gone']
    assert changes['new_superusers'] == ['boss']
    assert changes['role_attributes_changed'] == ['app: createdb False -> True']
    assert changes['memberships_changed'] == ['app: granted pg_monitor']
    assert changes['grants_added'] == ['ALL ON table public.a TO boss']
    assert changes['grants_removed'] == ['SELECT ON table public.a TO app']
    result = dict((f['name'], f) for f in AC.findings(changes, old, AC.ALL_BASELINE_CHECKS, 'ims'))
    assert result['new_superusers']['status'] == 'critical'
    assert result['grants_changed']['value'] == 2 and '+ ALL ON table public.a TO boss' in result['grants_changed']['message']
    assert 'since 2026-11-16T02:00:00+00:00' in result['roles_added']['message']
    unchanged = AC.findings(AC.diff(old, old), old, AC.ALL_BASELINE_CHECKS, 'ims')
    assert set(f['status'] for f in unchanged) == {'ok'} and len(unchanged) == 6


def test_long_change_lists_are_cut_in_messages():
    old = snapshot({}, [])
    new = snapshot({}, ['SELECT ON table public.t%d TO x' % i for i in range(30)])
    result = AC.findings(AC.diff(old, new), old, ['grants_changed'], 'ims')[0]
    assert result['value'] == 30 and '... and 10 more' in result['message']


@pytest.mark.parametrize('value', [{'format': 'other'}, [], 'not/a/file.json', {'format': AC.SNAPSHOT_FORMAT}])
def test_bad_baselines_are_refused(value):
    with pytest.raises(ConfigurationError):
        AC.load_baseline(value)


# --- splinter lints ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('value, schemas', [
    ('public', ['public']),
    (' public , api,graphql_public ', ['public', 'api', 'graphql_public']),
    ('public,,public, ', ['public']),
    ('', None),
    (' , ', None),
    (None, None),
])
def test_parse_db_schemas(value, schemas):
    assert API.parse_db_schemas(value) == schemas


def test_exposed_schemas_setting_then_authenticator_then_option():
    assert API.choose_exposed_schemas('public, api', 'other', ['public']) == (['public', 'api'], 'setting')
    assert API.choose_exposed_schemas(None, 'api', ['public']) == (['api'], 'authenticator')
    assert API.choose_exposed_schemas(' ', ' ,', ['public', 'x']) == (['public', 'x'], 'option')


@pytest.mark.parametrize('command, using, check, expected', [
    ('SELECT', 'true', None, (False, False)),               # public reads are usually meant
    ('DELETE', 'true', None, (True, False)),
    ('DELETE', '(1 = 1)', None, (True, False)),
    ('UPDATE', '(owner = auth.uid())', None, (False, False)),
    ('UPDATE', 'true', None, (True, True)),                 # no WITH CHECK: USING applies to the new rows
    ('UPDATE', 'true', '(owner = auth.uid())', (True, False)),
    ('ALL', None, None, (True, False)),
    ('INSERT', None, None, (False, True)),
    ('INSERT', None, ' ( TRUE ) ', (False, True)),
    ('INSERT', None, '(owner = auth.uid())', (False, False)),
    ('ALL', '(x > 1)', 'true', (False, True)),
])
def test_always_true_policy(command, using, check, expected):
    assert API.always_true_policy(command, using, check) == expected


@pytest.mark.parametrize('using, bucket, listed', [
    (None, 'avatars', True),
    ('true', 'avatars', True),
    ("(bucket_id = 'avatars'::text)", 'avatars', True),
    ("bucket_id='avatars'", 'avatars', True),
    ("(bucket_id = 'avatars'::text)", 'docs', False),
    ("(bucket_id = 'it''s'::text)", "it's", True),
    ("((bucket_id = 'avatars'::text) AND (owner = auth.uid()))", 'avatars', False),
    ("(bucket_id = ANY (ARRAY['avatars'::text]))", 'avatars', False),
])
def test_lists_bucket(using, bucket, listed):
    assert API.lists_bucket(using, bucket) is listed


def test_sensitive_columns_compare_whole_names():
    assert API.sensitive_columns(['id', 'Password', 'API-Key', 'token_count', 'email', 'ssn']) == ['Password', 'API-Key',
                                                                                                   'ssn']


@pytest.mark.parametrize('expression, hit', [
    ("((auth.jwt() -> 'user_metadata'::text) ->> 'role'::text) = 'admin'::text", True),
    ("((jwt() -> 'user_metadata'::text) ->> 'role'::text)", True),            # auth on the search_path
    ("((current_setting('request.jwt.claims'::text, true))::jsonb #>> '{user_metadata,team}'::text[])", True),
    ("(u.raw_user_meta_data ->> 'role'::text) = 'editor'::text", True),
    ("((auth.jwt() -> 'app_metadata'::text) ->> 'role'::text)", False),
    ("(owner = auth.uid())", False),
    (None, False),
])
def test_references_user_metadata(expression, hit):
    assert API.references_user_metadata(expression) is hit


def test_old_check_name_is_mapped_once_with_a_notice():
    selected, notices = A.renamed_checks(['ssl', 'security_definer_search_path', 'function_search_path_mutable'])
    assert selected == ['ssl', 'function_search_path_mutable']
    assert len(notices) == 1 and 'security_definer_search_path is now function_search_path_mutable' in notices[0]
    assert A.renamed_checks(['ssl']) == (['ssl'], [])
    assert 'security_definer_search_path' not in A.ALL_CHECKS
    assert len(set(A.ALL_CHECKS)) == len(A.ALL_CHECKS)


def test_readme_lint_catalogue_lists_every_splinter_lint_and_our_checks():
    readme = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'README.md')
    with open(readme) as handle:
        text = handle.read()
    section = text.split('### Lint catalogue', 1)[1].split('\n#', 1)[0]
    rows = [line.split('|')[1:-1] for line in section.splitlines() if re.match(r'^\| 00\d\d ', line)]
    assert [row[0].strip() for row in rows] == ['%04d' % number for number in range(1, 30)]
    ours = dict((row[3].strip().split()[0].strip('`'), row[5].strip()) for row in rows if row[4].strip() == '`pg_audit_info`')
    assert set(ours) == set(API.EXPOSURE_CHECKS) | {'function_search_path_mutable', 'extension_in_public',
                                                    'extension_versions_outdated', 'unsupported_reg_types'}
    assert set(ours) <= set(A.ALL_CHECKS)
    levels = {'ERROR': 'critical', 'WARN': 'warning', 'INFO': 'info'}
    for row in rows:
        if row[4].strip() == '`pg_audit_info`':
            assert levels[row[2].strip()] == row[5].strip(), row
