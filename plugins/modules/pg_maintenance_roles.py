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
  - The monitoring role (O(monitor_role)) gets C(pg_monitor) - enough for M(appcare.maintenance.pg_health_info),
    M(appcare.maintenance.pg_inspect_info) and most of M(appcare.maintenance.pg_audit_info).
  - The maintenance role (O(maintenance_role)) gets C(pg_read_all_data) (PostgreSQL 14+; what
    M(appcare.maintenance.pg_backup) needs to dump every table), C(pg_monitor), and on PostgreSQL 17+
    C(pg_maintain) (VACUUM, ANALYZE and REINDEX of every table, for M(appcare.maintenance.pg_vacuum) and
    M(appcare.maintenance.pg_reindex)). Before PostgreSQL 17 only a table's owner may vacuum or reindex it; the
    module says so in RV(notes), and those runs should log in as the owner.
  - Both roles get C(CONNECT) on O(databases) and nothing else; they are C(NOSUPERUSER NOCREATEDB NOCREATEROLE),
    and an existing role that has more (superuser, CREATEROLE ...) is reported, not changed.
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
'''

RETURN = r'''
changes:
  description: What was created or granted (never passwords).
  returned: always
  type: list
  elements: str
  sample: ["CREATE ROLE ims_monitor LOGIN", "GRANT pg_monitor TO ims_monitor", "GRANT CONNECT ON DATABASE ims TO ims_monitor"]
notes:
  description: What the roles cannot do on this server, and existing roles with more rights than they need.
  returned: always
  type: list
  elements: str
  sample: ["PostgreSQL 15: pg_maintain does not exist before 17; pg_vacuum and pg_reindex must log in as the table owner"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    Session,
    connect_kwargs,
    connection_argument_spec,
    failure_message,
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


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        monitor_role=dict(type='str'),
        monitor_password=dict(type='str', no_log=True),
        maintenance_role=dict(type='str'),
        maintenance_password=dict(type='str', no_log=True),
        databases=dict(type='list', elements='str'),
        update_password=dict(type='str', default='on_create', choices=['on_create', 'always']),
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
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('role setup', exc), changes=changes)
    module.exit_json(changed=bool(changes), changes=changes, notes=notes)


if __name__ == '__main__':
    main()
