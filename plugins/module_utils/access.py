# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Access snapshot (roles, attributes, memberships, grants) and its diff against a baseline.

A snapshot is plain JSON (``format: appcare.access/1``) so the caller can store it where it likes and hand
it back as the next run's baseline. It never holds password hashes.
"""

from __future__ import annotations

import json
import os

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

SNAPSHOT_FORMAT = 'appcare.access/1'
ATTRIBUTES = (('rolsuper', 'superuser'), ('rolcanlogin', 'login'), ('rolinherit', 'inherit'),
              ('rolcreaterole', 'createrole'), ('rolcreatedb', 'createdb'), ('rolreplication', 'replication'),
              ('rolbypassrls', 'bypassrls'), ('rolconnlimit', 'connection_limit'), ('rolvaliduntil', 'valid_until'))
MAX_LISTED = 20
ALL_BASELINE_CHECKS = ('new_superusers', 'roles_added', 'roles_removed', 'role_attributes_changed',
                       'memberships_changed', 'grants_changed')

MEMBERSHIPS_SQL = """
SELECT m.rolname AS member, r.rolname AS role, a.admin_option
FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
WHERE m.rolname !~ '^pg_' ORDER BY 1, 2
"""

GRANTS_SQL = """
WITH objects AS (
  SELECT 'schema' AS kind, quote_ident(n.nspname) AS object, n.nspname AS schema,
         coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl
  FROM pg_namespace n
  UNION ALL
  SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                        WHEN 'f' THEN 'foreign table' ELSE 'table' END,
         quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname,
         coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  UNION ALL
  SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
         quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
         n.nspname, coalesce(p.proacl, acldefault('f', p.proowner))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
)
SELECT o.kind, o.object, coalesce(g.rolname, 'PUBLIC') AS grantee, a.privilege_type AS privilege, a.is_grantable
FROM objects o CROSS JOIN LATERAL aclexplode(o.acl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
WHERE o.schema !~ ALL(%(exclude)s)
ORDER BY 2, 3, 4
"""


def take(session, roles, exclude, taken_at):
    """The access snapshot of the database ``session`` is connected to; ``exclude`` is the ``SchemaFilter`` of the
    schemas whose grants are left out."""
    snapshot_roles = {}
    for role in roles:
        entry = {}
        for column, key in ATTRIBUTES:
            value = role[column]
            entry[key] = value.isoformat() if hasattr(value, 'isoformat') else value
        entry['member_of'] = []
        snapshot_roles[role['rolname']] = entry
    for row in session.query(MEMBERSHIPS_SQL):
        if row['member'] in snapshot_roles:
            snapshot_roles[row['member']]['member_of'].append(row['role'] + (' (admin)' if row['admin_option'] else ''))
    grants = sorted(set('%s ON %s %s TO %s%s' % (row['privilege'], row['kind'], row['object'], row['grantee'],
                                                 ' WITH GRANT OPTION' if row['is_grantable'] else '')
                        for row in session.query(GRANTS_SQL, {'exclude': exclude.regexes})))
    return {'format': SNAPSHOT_FORMAT, 'taken_at': taken_at, 'database': session.params['login_db'],
            'roles': snapshot_roles, 'grants': grants}


def load_baseline(value):
    """The baseline snapshot from a dict (the previous RV(snapshot)) or a path to a JSON file."""
    if value is None:
        return None
    if isinstance(value, str):
        path = os.path.expanduser(value)
        if not os.path.isfile(path):
            raise ConfigurationError('baseline %s does not exist (write the snapshot of a previous run there first)'
                                     % value)
        try:
            with open(path, 'r', encoding='utf-8') as handle:
                value = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ConfigurationError('baseline %s is not a readable JSON snapshot: %s' % (path, exc)) from exc
    if not isinstance(value, dict) or value.get('format') != SNAPSHOT_FORMAT or \
            not isinstance(value.get('roles'), dict) or not isinstance(value.get('grants'), list):
        raise ConfigurationError('baseline is not an access snapshot of this module (expected format %s with roles '
                                 'and grants)' % SNAPSHOT_FORMAT)
    return value


def diff(baseline, current):
    """Changes from ``baseline`` to ``current``, as a dict of lists."""
    old_roles, new_roles = baseline['roles'], current['roles']
    changes = {
        'roles_added': sorted(set(new_roles) - set(old_roles)),
        'roles_removed': sorted(set(old_roles) - set(new_roles)),
        'new_superusers': sorted(name for name, role in new_roles.items()
                                 if role.get('superuser') and not old_roles.get(name, {}).get('superuser')),
        'role_attributes_changed': [],
        'memberships_changed': [],
        'grants_added': sorted(set(current['grants']) - set(baseline['grants'])),
        'grants_removed': sorted(set(baseline['grants']) - set(current['grants'])),
    }
    for name in sorted(set(old_roles) & set(new_roles)):
        old, new = old_roles[name], new_roles[name]
        for _column, key in ATTRIBUTES:
            if old.get(key) != new.get(key):
                changes['role_attributes_changed'].append('%s: %s %s -> %s' % (name, key, old.get(key), new.get(key)))
        for membership in sorted(set(new.get('member_of', [])) - set(old.get('member_of', []))):
            changes['memberships_changed'].append('%s: granted %s' % (name, membership))
        for membership in sorted(set(old.get('member_of', [])) - set(new.get('member_of', []))):
            changes['memberships_changed'].append('%s: revoked %s' % (name, membership))
    return changes


def _listing(items):
    shown = '; '.join(items[:MAX_LISTED])
    return shown + ('; ... and %d more' % (len(items) - MAX_LISTED) if len(items) > MAX_LISTED else '')


def findings(changes, baseline, selected, database):
    """One finding per kind of change (ok when nothing of that kind changed)."""
    since = baseline.get('taken_at') or 'the baseline'
    result = C.Findings(obj='db=%s' % database)

    def add(name, items, status, what):
        if name not in selected:
            return
        if items:
            result.add(name, status, '%d %s since %s: %s' % (len(items), what, since, _listing(items)),
                       value=len(items), unit='count')
        else:
            result.ok(name, 'no %s since %s' % (what, since))

    add('new_superusers', changes['new_superusers'], C.CRITICAL, 'new superuser(s)')
    add('roles_added', changes['roles_added'], C.WARNING, 'role(s) added')
    add('roles_removed', changes['roles_removed'], C.WARNING, 'role(s) removed')
    add('role_attributes_changed', changes['role_attributes_changed'], C.WARNING, 'role attribute change(s)')
    add('memberships_changed', changes['memberships_changed'], C.WARNING, 'role membership change(s)')
    grants = ['+ ' + g for g in changes['grants_added']] + ['- ' + g for g in changes['grants_removed']]
    add('grants_changed', grants, C.WARNING, 'grant change(s)')
    return list(result)
