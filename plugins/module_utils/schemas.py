# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whose schemas are whose - PostgreSQL's own, the ones Supabase manages - and the one rule every module
applies to ``exclude_schemas`` (documented by the ``appcare.maintenance.schemas`` doc fragment).

Schema patterns follow ``pg_dump --exclude-schema``: ``*`` stands for any characters, ``?`` for one, every
other character for itself, matched case-sensitively against the real schema names. A pattern becomes one
anchored regular expression that Python (:func:`matches`) and PostgreSQL (``nspname !~ ALL(%s)`` with
:attr:`SchemaFilter.regexes`) read the same way, so a module filters alike in its SQL and in its code.
"""

from __future__ import annotations

import re

# PostgreSQL's own schemas: information_schema and every pg_* one (catalogs, TOAST, temporary schemas).
# No other schema may start with pg_.
SYSTEM_SCHEMAS = ['information_schema', 'pg_*']

# The Supabase CLI's list of internal schemas, in its order: ``InternalSchemas`` in pkg/migration/dump.go of
# https://github.com/supabase/cli (apps/cli-go/pkg/migration/dump.go since the monorepo move; "etl" added by
# supabase/cli#5090) - what ``supabase db dump`` leaves out because the platform or an extension owns it.
SUPABASE_SCHEMAS = [
    'information_schema', 'pg_*',
    # created by the supabase/postgres image and owned by the postgres role
    '_analytics', '_realtime', '_supavisor', 'auth', 'etl', 'extensions', 'pgbouncer', 'realtime', 'storage',
    'supabase_functions', 'supabase_migrations',
    # owned by extensions
    'cron', 'dbdev', 'graphql', 'graphql_public', 'net', 'pgmq', 'pgsodium', 'pgsodium_masks', 'pgtle', 'repack',
    'tiger', 'tiger_data', 'timescaledb_*', '_timescaledb_*', 'topology', 'vault',
]


# The schemas splinter's performance lints leave out (its lints 0001, 0003-0006, 0009 list the same ones; 0003
# auth_rls_initplan reads realtime's policies, 0020 table_bloat leaves out only information_schema). The lints with
# splinter's names leave out these and the user's exclude_schemas both, and tables an extension owns (pg_depend
# 'e'), as splinter does: neither list hides an application's schema.
SPLINTER_EXCLUDED_SCHEMAS = [
    '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_config', '_timescaledb_internal', 'auth', 'cron',
    'extensions', 'graphql', 'graphql_public', 'information_schema', 'net', 'pgmq', 'pgroonga', 'pgsodium',
    'pgsodium_masks', 'pgtle', 'pgbouncer', 'pg_catalog', 'realtime', 'repack', 'storage', 'supabase_functions',
    'supabase_migrations', 'tiger', 'topology', 'vault',
]


def pattern_regex(pattern):
    """The anchored regular expression of a schema pattern, the same for Python's ``re`` and PostgreSQL's ``~``."""
    parts = []
    for char in pattern:
        if char == '*':
            parts.append('.*')
        elif char == '?':
            parts.append('.')
        elif char.isalnum() or char == '_':
            parts.append(char)
        else:
            parts.append('\\' + char)  # a backslash before a non-alphanumeric character makes it literal in both
    return '^%s$' % ''.join(parts)


def matches(schema, patterns):
    """Whether ``schema`` matches one of ``patterns``."""
    return any(re.fullmatch(pattern_regex(pattern), schema) for pattern in patterns or [])


def is_system(schema):
    return matches(schema, SYSTEM_SCHEMAS)


class SchemaFilter(object):
    """A module's ``exclude_schemas`` plus the system schemas, which are always left out.

    ``regexes`` goes into SQL as ``nspname !~ ALL(%s)``; ``excludes(schema)`` answers the same in Python.
    """

    def __init__(self, patterns):
        self.patterns = list(SYSTEM_SCHEMAS) + [p for p in patterns or [] if p not in SYSTEM_SCHEMAS]
        self.regexes = [pattern_regex(pattern) for pattern in self.patterns]

    def excludes(self, schema):
        return any(re.fullmatch(regex, schema) for regex in self.regexes)


def _quote(part):
    if part and part == part.lower() and part.replace('_', 'a').isalnum() and part.isascii() and not part[0].isdigit():
        return part
    return '"%s"' % part.replace('"', '""')


def qualified(schema, name):
    """``schema.name`` quoted like PostgreSQL does (only where needed), for messages, results and the SQL they
    suggest."""
    return '%s.%s' % (_quote(schema), _quote(name))


def exclude_schemas_spec():
    """The argument spec of ``exclude_schemas`` for the modules that judge or maintain an application's objects
    (documented by the ``appcare.maintenance.schemas`` doc fragment): Supabase's schemas by default."""
    return dict(exclude_schemas=dict(type='list', elements='str', default=list(SUPABASE_SCHEMAS)))
