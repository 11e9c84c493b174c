#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pg_maintenance_roles
short_description: Create the least-privilege database roles the maintenance runs log in as
version_added: 0.1.0
description:
  - Creates, idempotently, the login roles the collection's runs need instead of a superuser.
  - The monitoring role (O(monitor_role)) gets exactly what the checks of the daily and weekly tiers
    (M(appcare.maintenance.pg_health_info), M(appcare.maintenance.pg_inspect_info),
    M(appcare.maintenance.pg_audit_info)) read, and no application rows. C(pg_monitor) (statistics, every
    session in C(pg_stat_activity), query texts in C(pg_stat_statements), server settings, database sizes);
    then, in each of O(databases) - C(pg_class) is per database, so are these grants -
  - "C(SELECT) on every sequence outside PostgreSQL's schemas, for C(sequence_exhaustion): it shows the sequence's
    counter (C(last_value), C(is_called)), how many numbers were drawn, nothing else; it cannot draw one
    (C(nextval) needs C(USAGE)) nor set one (C(setval) needs C(UPDATE)). Reading C(pg_sequences) needs no C(USAGE) on
    the sequence's schema, so none is granted."
  - "Sequences created later: C(ALTER DEFAULT PRIVILEGES FOR ROLE <owner> GRANT SELECT ON SEQUENCES) for the login
    role and for every role that owns a sequence outside Supabase's schemas now (the roles that create the
    application's tables), in every schema of the database. A sequence another role creates later is readable
    once the module runs again (the C(setup_roles) playbook is idempotent); until then C(sequence_exhaustion)
    names it as not readable."
  - "C(USAGE) on the schema that holds C(pg_stat_statements) (C(extensions) on Supabase), for C(slow_queries): it
    lets the role name the objects there (the views are readable by PUBLIC already) and call functions PUBLIC may
    execute; it gives no C(CREATE) and no table of that schema."
  - "On Supabase (when the tables exist): C(USAGE) on schema C(auth), C(SELECT) on C(auth.audit_log_entries) and
    C(SELECT (last_sign_in_at)) on C(auth.users), for the C(auth_*) checks of pg_audit_info - the audit log shows
    who signed in (user id and e-mail), from which address, when, and what they did; of C(auth.users) only the
    time of the last sign-in (no e-mail, password hash, token or metadata). C(USAGE) on schema C(storage) and
    C(SELECT (id, name, public)) on C(storage.buckets), for C(public_bucket_allows_listing) - the names of the
    buckets and whether they are public, no object of them."
  - "Not granted, on purpose - those checks stay C(unknown) for the monitoring role. C(pg_authid) (the password
    hashes; only a superuser can read it): C(password_hashes) and C(passwordless_logins). C(pg_hba_file_rules)
    unless O(monitor_hba_rules): its C(options) column shows C(ldapbindpasswd) and C(radiussecrets); without it
    C(hba_rules) is C(unknown). C(SELECT) on application tables: C(pg_stats) shows a column's statistics (its most
    common values are the table's data) only to roles that may read the column, so C(table_bloat) of
    pg_inspect_info is C(unknown) for the tables it would estimate (run the weekly review as the maintenance
    role, which has C(pg_read_all_data), to see it)."
  - What the login role cannot grant (a sequence or table it neither owns nor holds with C(GRANT OPTION), as the
    C(postgres) role of a Supabase project for Supabase's own objects) is reported in RV(notes), not failed; the
    check that needs it stays C(unknown) with the reason.
  - The maintenance role (O(maintenance_role)) gets C(pg_read_all_data) (PostgreSQL 14+; what
    M(appcare.maintenance.pg_backup) needs to dump every table), C(pg_monitor), and on PostgreSQL 17+
    C(pg_maintain) (VACUUM, ANALYZE and REINDEX of every table, for M(appcare.maintenance.pg_vacuum) and
    M(appcare.maintenance.pg_reindex)). Before PostgreSQL 17 only a table's owner may vacuum or reindex it; the
    module says so in RV(notes), and those runs should log in as the owner.
  - Both roles get C(CONNECT) on O(databases) and nothing beyond what is listed here; they are C(NOSUPERUSER
    NOCREATEDB NOCREATEROLE), and an existing role that has more (superuser, CREATEROLE ...) is reported, not
    changed. Grants are only added, never revoked.
  - Passwords are set when a role is created, or every run with O(update_password=always).
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.connection
attributes:
  check_mode:
    support: full
    description: Reports what would be created or granted, and changes nothing.
  diff_mode:
    support: none
    description: RV(changes) lists what was done.
options:
  monitor_role:
    description: Name of the monitoring role; omit to leave it out.
    type: str
  monitor_password:
    description: Its password.
    type: str
  maintenance_role:
    description: Name of the maintenance role (backup, vacuum, reindex); omit to leave it out.
    type: str
  maintenance_password:
    description: Its password.
    type: str
  databases:
    description: Databases the roles may connect to (default O(login_db)).
    type: list
    elements: str
  update_password:
    description: V(on_create) sets passwords only when a role is created; V(always) sets them every run (reported as
      a change).
    type: str
    choices: [on_create, always]
    default: on_create
  monitor_hba_rules:
    description:
      - Also let the monitoring role read C(pg_hba_file_rules) (C(SELECT) on the view, C(EXECUTE) on the function
        C(pg_hba_file_rules()), in each of O(databases)), for the C(hba_rules) check of
        M(appcare.maintenance.pg_audit_info). Only a superuser can grant it.
      - The view shows every rule of C(pg_hba.conf) including its options, and C(ldap) and C(radius) rules carry
        their bind password (C(ldapbindpasswd)) and shared secrets (C(radiussecrets)) there. Turn it on only where
        C(pg_hba.conf) holds no secrets. Turning it off again does not revoke it.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: The roles the maintenance runs log in as
  appcare.maintenance.pg_maintenance_roles:
    login_host: db.ims.example.org
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
    monitor_role: ims_monitor
    monitor_password: "{{ vault_ims_monitor_password }}"
    maintenance_role: ims_maintenance
    maintenance_password: "{{ vault_ims_maintenance_password }}"
    databases: [ims]

- name: The monitoring role may also read pg_hba.conf (it holds no LDAP or RADIUS secrets here)
  appcare.maintenance.pg_maintenance_roles:
    login_host: db.ims.example.org
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
    monitor_role: ims_monitor
    monitor_hba_rules: true
    databases: [ims]
'''

RETURN = r'''
changes:
  description: What was created or granted (never passwords).
  returned: always
  type: list
  elements: str
  sample: ["CREATE ROLE ims_monitor LOGIN", "GRANT pg_monitor TO ims_monitor", "GRANT CONNECT ON DATABASE ims TO ims_monitor",
           "GRANT SELECT ON SEQUENCE public.applicants_id_seq, public.applications_id_seq TO ims_monitor (database ims)",
           "ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT SELECT ON SEQUENCES TO ims_monitor (database ims)",
           "GRANT USAGE ON SCHEMA extensions TO ims_monitor (database ims)"]
notes:
  description: What the roles cannot do on this server, what the login role could not grant the monitoring role
    (and which checks stay unknown for it), and existing roles with more rights than they need.
  returned: always
  type: list
  elements: str
  sample: ["PostgreSQL 15: pg_maintain does not exist before 17; pg_vacuum and pg_reindex must log in as the table owner",
           "database ims: postgres cannot grant SELECT on auth.audit_log_entries: the auth_* checks of pg_audit_info
            stay unknown for ims_monitor"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    Session,
    connect_kwargs,
    connection_argument_spec,
    failure_message,
)
from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import (
    SUPABASE_SCHEMAS,
    SYSTEM_SCHEMAS,
    pattern_regex,
)

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by Session
    sql = None


def wanted_memberships(kind, version):
    if kind == 'monitor':
        return ['pg_monitor']
    grants = ['pg_monitor']
    if version >= 140000:
        grants.append('pg_read_all_data')
    if version >= 170000:
        grants.append('pg_maintain')
    return grants


def ensure_role(session, module, name, password, kind, databases, changes, notes):
    version = session.conn.server_version
    row = session.one('SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolbypassrls FROM pg_roles '
                      'WHERE rolname = %s', (name,))
    created = row is None
    statements = []
    if created:
        statements.append((sql.SQL('CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE').format(
            sql.Identifier(name)), 'CREATE ROLE %s LOGIN' % name))
    else:
        extra = [label for key, label in (('rolsuper', 'SUPERUSER'), ('rolcreaterole', 'CREATEROLE'),
                                          ('rolcreatedb', 'CREATEDB'), ('rolbypassrls', 'BYPASSRLS')) if row[key]]
        if extra:
            notes.append('role %s already exists with %s, more than it needs; not changed' % (name, ', '.join(extra)))
        if not row['rolcanlogin']:
            statements.append((sql.SQL('ALTER ROLE {} LOGIN').format(sql.Identifier(name)),
                               'ALTER ROLE %s LOGIN' % name))
    if password and (created or module.params['update_password'] == 'always'):
        statements.append((sql.SQL('ALTER ROLE {} PASSWORD {}').format(sql.Identifier(name), sql.Literal(password)),
                           'ALTER ROLE %s PASSWORD (set)' % name))
    for group in wanted_memberships(kind, version):
        member = None if created else session.one(
            'SELECT 1 AS yes FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u '
            'ON u.oid = m.member WHERE r.rolname = %s AND u.rolname = %s', (group, name))
        if member is None:
            statements.append((sql.SQL('GRANT {} TO {}').format(sql.Identifier(group), sql.Identifier(name)),
                               'GRANT %s TO %s' % (group, name)))
    for database in databases:
        # A new role has what PUBLIC has; CONNECT is granted only where PUBLIC does not have it.
        allowed = session.one("SELECT has_database_privilege(%s, %s, 'CONNECT') AS yes",
                              ('public' if created else name, database))
        if allowed is None or not allowed['yes']:
            statements.append((sql.SQL('GRANT CONNECT ON DATABASE {} TO {}').format(
                sql.Identifier(database), sql.Identifier(name)), 'GRANT CONNECT ON DATABASE %s TO %s' % (database, name)))
    if kind == 'maintenance' and version < 170000:
        notes.append('PostgreSQL %d: pg_maintain exists from 17 on; pg_vacuum and pg_reindex must log in as the owner '
                     'of the tables' % (version // 10000))
    if kind == 'maintenance' and version < 140000:
        notes.append('PostgreSQL %d: pg_read_all_data exists from 14 on; grant SELECT on the tables to back them up'
                     % (version // 10000))
    for statement, label in statements:
        if not module.check_mode:
            session.query(statement)
        changes.append(label)


# What the monitoring role needs in each database beyond pg_monitor, one query per kind of object: rows of
# (target, grantable by the login role, already granted to the monitoring role). {granted} is the privilege test
# for the monitoring role, or false while it does not exist yet (check mode).
MONITOR_SEQUENCES_SQL = """
SELECT n.nspname AS schema, c.relname AS name, pg_get_userbyid(c.relowner) AS owner,
       n.nspname !~ ALL(%(platform)s) AS application,
       has_sequence_privilege(c.oid, 'SELECT WITH GRANT OPTION') AS grantable,
       {granted} AS granted
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'S' AND n.nspname !~ ALL(%(system)s)
 ORDER BY 1, 2
"""
SEQUENCE_GRANTED = "has_sequence_privilege(%(role)s, c.oid, 'SELECT')"

# Default privileges for the sequences the login role and the owners of the application's sequences create later
# (not in any one schema: FOR ROLE ... GRANT ... ON SEQUENCES applies to every schema of the database).
MONITOR_DEFAULTS_SQL = """
SELECT r.rolname AS owner, pg_has_role(current_user, r.oid, 'MEMBER') AS grantable,
       EXISTS (SELECT 1 FROM pg_default_acl d, aclexplode(d.defaclacl) a
                WHERE d.defaclrole = r.oid AND d.defaclnamespace = 0 AND d.defaclobjtype = 'S'
                  AND a.privilege_type = 'SELECT'
                  AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(role)s)) AS granted
  FROM pg_roles r
 WHERE r.rolname = current_user
    OR r.oid IN (SELECT c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind = 'S' AND n.nspname !~ ALL(%(platform)s))
 ORDER BY 1
"""

MONITOR_STATEMENTS_SQL = """
SELECT n.nspname AS schema, has_schema_privilege(n.oid, 'USAGE WITH GRANT OPTION') AS grantable,
       {granted} AS granted
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pg_stat_statements'
"""
SCHEMA_GRANTED = "has_schema_privilege(%(role)s, n.oid, 'USAGE')"

# Supabase's own tables the audit reads: (schema, table, columns or None for the whole table, the checks).
PLATFORM_READS = (
    ('auth', 'audit_log_entries', None, 'the auth_* checks of pg_audit_info'),
    ('auth', 'users', ('last_sign_in_at',), 'the auth_* checks of pg_audit_info'),
    ('storage', 'buckets', ('id', 'name', 'public'), 'public_bucket_allows_listing'),
)
PLATFORM_TABLE_SQL = """
SELECT has_schema_privilege(n.oid, 'USAGE WITH GRANT OPTION') AS schema_grantable, {schema_granted} AS schema_granted,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                AND (%(columns)s::text[] IS NULL OR a.attname = ANY(%(columns)s::text[]))
                AND NOT has_column_privilege(c.oid, a.attnum, 'SELECT WITH GRANT OPTION')) AS refused,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY(%(columns)s::text[])
                AND NOT {column_granted} ORDER BY a.attnum) AS missing_columns,
       {table_granted} AS table_granted
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relname = %(table)s
"""
PLATFORM_GRANTED = {'schema_granted': "has_schema_privilege(%(role)s, n.oid, 'USAGE')",
                    'column_granted': "has_column_privilege(%(role)s, c.oid, a.attnum, 'SELECT')",
                    'table_granted': "has_table_privilege(%(role)s, c.oid, 'SELECT')"}

MONITOR_HBA_SQL = """
SELECT has_table_privilege('pg_catalog.pg_hba_file_rules', 'SELECT WITH GRANT OPTION')
       AND has_function_privilege('pg_catalog.pg_hba_file_rules()', 'EXECUTE WITH GRANT OPTION') AS grantable,
       {granted} AS granted
"""
HBA_GRANTED = ("has_table_privilege(%(role)s, 'pg_catalog.pg_hba_file_rules', 'SELECT') "
               "AND has_function_privilege(%(role)s, 'pg_catalog.pg_hba_file_rules()', 'EXECUTE')")

NAMES_IN_LABEL = 5


def _granted(exists, test):
    return test if exists else 'false'


def _names(names):
    shown = ', '.join(names[:NAMES_IN_LABEL])
    return shown + (' and %d more' % (len(names) - NAMES_IN_LABEL) if len(names) > NAMES_IN_LABEL else '')


def monitor_grants(session, name, exists, database, hba):
    """The statements (statement, label) that give the monitoring role ``name`` what the daily and weekly checks
    read in the database of ``session`` beyond pg_monitor, and notes on what the login role cannot grant there.
    ``exists``: whether the role exists yet (in check mode a new one does not)."""
    statements, notes = [], []
    role = sql.Identifier(name)
    args = {'role': name, 'system': [pattern_regex(p) for p in SYSTEM_SCHEMAS],
            'platform': [pattern_regex(p) for p in SUPABASE_SCHEMAS]}

    # sequence_exhaustion: SELECT on a sequence shows its counter (last_value), nothing else.
    rows = session.query(MONITOR_SEQUENCES_SQL.format(granted=_granted(exists, SEQUENCE_GRANTED)), args)
    missing = [r for r in rows if not r['granted'] and r['grantable']]
    if missing:
        statements.append((sql.SQL('GRANT SELECT ON SEQUENCE {} TO {}').format(
            sql.SQL(', ').join(sql.Identifier(r['schema'], r['name']) for r in missing), role),
            'GRANT SELECT ON SEQUENCE %s TO %s (database %s)' % (
                _names(['%s.%s' % (r['schema'], r['name']) for r in missing]), name, database)))
    refused = [r for r in rows if not r['granted'] and not r['grantable'] and r['application']]
    if refused:
        names = _names(['%s.%s' % (r['schema'], r['name']) for r in refused])
        notes.append('database %s: %s cannot grant SELECT on sequence(s) %s (owned by %s): sequence_exhaustion cannot '
                     'read them; run this as their owner or a superuser'
                     % (database, session.params['login_user'], names, ', '.join(sorted(set(r['owner'] for r in refused)))))
    for row in session.query(MONITOR_DEFAULTS_SQL, args):
        if row['granted']:
            continue
        if not row['grantable']:
            notes.append('database %s: sequences that %s creates later are not readable by %s until this runs again '
                         '(%s cannot set default privileges for it)' % (database, row['owner'], name,
                                                                        session.params['login_user']))
            continue
        statements.append((sql.SQL('ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT SELECT ON SEQUENCES TO {}').format(
            sql.Identifier(row['owner']), role),
            'ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT ON SEQUENCES TO %s (database %s)'
            % (row['owner'], name, database)))

    # slow_queries: USAGE on the schema pg_stat_statements lives in (extensions on Supabase) to reach the view.
    ext = session.one(MONITOR_STATEMENTS_SQL.format(granted=_granted(exists, SCHEMA_GRANTED)), args)
    if ext and not ext['granted']:
        if ext['grantable']:
            statements.append((sql.SQL('GRANT USAGE ON SCHEMA {} TO {}').format(sql.Identifier(ext['schema']), role),
                               'GRANT USAGE ON SCHEMA %s TO %s (database %s)' % (ext['schema'], name, database)))
        else:
            notes.append('database %s: %s cannot grant USAGE on schema %s, where pg_stat_statements is: slow_queries '
                         'stays unknown for %s' % (database, session.params['login_user'], ext['schema'], name))

    # Supabase's tables the audit reads: Auth's audit log and sign-in times, Storage's bucket names.
    granted = dict((key, _granted(exists, test)) for key, test in PLATFORM_GRANTED.items())
    schemas_done = set()
    for schema, table, columns, checks in PLATFORM_READS:
        row = session.one(PLATFORM_TABLE_SQL.format(**granted),
                          dict(args, schema=schema, table=table, columns=list(columns) if columns else None))
        if row is None:
            continue  # not a Supabase database, or that part of Supabase is not installed
        target = '%s.%s%s' % (schema, table, ' (%s)' % ', '.join(columns) if columns else '')
        if schema not in schemas_done and not row['schema_granted']:
            if row['schema_grantable']:
                statements.append((sql.SQL('GRANT USAGE ON SCHEMA {} TO {}').format(sql.Identifier(schema), role),
                                   'GRANT USAGE ON SCHEMA %s TO %s (database %s)' % (schema, name, database)))
            else:
                notes.append('database %s: %s cannot grant USAGE on schema %s: %s stay unknown for %s'
                             % (database, session.params['login_user'], schema, checks, name))
        schemas_done.add(schema)
        wanted = row['missing_columns'] if columns else ([] if row['table_granted'] else None)
        if wanted == []:
            continue
        if row['refused']:
            notes.append('database %s: %s cannot grant SELECT on %s: %s stay unknown for %s'
                         % (database, session.params['login_user'], target, checks, name))
            continue
        if columns:
            statement = sql.SQL('GRANT SELECT ({}) ON {} TO {}').format(
                sql.SQL(', ').join(sql.Identifier(c) for c in wanted), sql.Identifier(schema, table), role)
            label = 'GRANT SELECT (%s) ON %s.%s TO %s' % (', '.join(wanted), schema, table, name)
        else:
            statement = sql.SQL('GRANT SELECT ON {} TO {}').format(sql.Identifier(schema, table), role)
            label = 'GRANT SELECT ON %s.%s TO %s' % (schema, table, name)
        statements.append((statement, '%s (database %s)' % (label, database)))

    # hba_rules, only when asked: pg_hba_file_rules shows ldapbindpasswd and radiussecrets in its options.
    if hba:
        row = session.one(MONITOR_HBA_SQL.format(granted=_granted(exists, HBA_GRANTED)), args)
        if not row['granted'] and row['grantable']:
            statements.append((sql.SQL('GRANT SELECT ON pg_catalog.pg_hba_file_rules TO {}').format(role),
                               'GRANT SELECT ON pg_catalog.pg_hba_file_rules TO %s (database %s)' % (name, database)))
            statements.append((sql.SQL('GRANT EXECUTE ON FUNCTION pg_catalog.pg_hba_file_rules() TO {}').format(role),
                               'GRANT EXECUTE ON FUNCTION pg_catalog.pg_hba_file_rules() TO %s (database %s)'
                               % (name, database)))
        elif not row['granted']:
            notes.append('database %s: only a superuser can grant pg_hba_file_rules; hba_rules stays unknown for %s'
                         % (database, name))
    return statements, notes


def grant_monitor(session, module, database, exists, changes, notes):
    statements, more_notes = monitor_grants(session, module.params['monitor_role'], exists, database,
                                            module.params['monitor_hba_rules'])
    notes.extend(more_notes)
    for statement, label in statements:
        if not module.check_mode:
            session.query(statement)
        changes.append(label)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        monitor_role=dict(type='str'),
        monitor_password=dict(type='str', no_log=True),
        maintenance_role=dict(type='str'),
        maintenance_password=dict(type='str', no_log=True),
        databases=dict(type='list', elements='str'),
        update_password=dict(type='str', default='on_create', choices=['on_create', 'always']),
        monitor_hba_rules=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_one_of=[('monitor_role', 'maintenance_role')])
    params = module.params
    connect_kwargs(params, 'validation only')
    databases = params['databases'] or [params['login_db']]
    changes, notes = [], []
    try:
        with Session(params, 'appcare.maintenance.pg_maintenance_roles', read_only=False) as session:
            for kind in ('monitor', 'maintenance'):
                name = params['%s_role' % kind]
                if name:
                    ensure_role(session, module, name, params['%s_password' % kind], kind, databases, changes, notes)
            if params['monitor_role']:
                exists = session.one('SELECT 1 AS yes FROM pg_roles WHERE rolname = %s', (params['monitor_role'],))
                for database in databases:
                    if database == params['login_db']:
                        grant_monitor(session, module, database, exists is not None, changes, notes)
                    else:
                        with Session(dict(params, login_db=database), 'appcare.maintenance.pg_maintenance_roles',
                                     read_only=False) as other:
                            grant_monitor(other, module, database, exists is not None, changes, notes)
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('role setup', exc), changes=changes)
    module.exit_json(changed=bool(changes), changes=changes, notes=notes)


if __name__ == '__main__':
    main()
