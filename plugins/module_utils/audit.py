# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_audit_info: the security and access audit of one database, read-only.

Each check returns findings in the collection's ``checks`` shape: one finding per offending object
(role, rule, table, function …) when it fires, one ``ok`` finding when it does not, or one ``unknown``
finding naming the privilege the login role lacks. Password hashes and secrets are never returned:
only the kind of hash (``scram-sha-256``, ``md5``, ``none``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from ansible_collections.appcare.maintenance.plugins.module_utils import access as AC
from ansible_collections.appcare.maintenance.plugins.module_utils import apilints as API
from ansible_collections.appcare.maintenance.plugins.module_utils import authlog as AL
from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import signins as SI
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import db_error_text
from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import SchemaFilter, qualified

try:
    import psycopg2
except ImportError:  # pragma: no cover - reported by require_psycopg2()
    psycopg2 = None

ROLE_CHECKS = ['superusers', 'privileged_roles', 'password_hashes', 'passwordless_logins', 'untrusted_languages']
SERVER_CHECKS = ['ssl', 'password_encryption', 'log_connections', 'log_disconnections', 'hba_rules']
OBJECT_CHECKS = ['public_schema_create', 'function_search_path_mutable', 'extension_in_public',
                 'extension_versions_outdated', 'unsupported_reg_types']
# splinter's lints about what the API exposes (apilints.py).
EXPOSURE_CHECKS = list(API.EXPOSURE_CHECKS)
# The event checks that read auth.audit_log_entries (auth_users_exposed is an exposure check: it reads the catalogue).
AUTH_EVENT_CHECKS = ['auth_new_addresses', 'auth_repeated_signups', 'auth_signup_burst', 'auth_token_revocations'] + \
    SI.SIGNIN_CHECKS
EVENT_CHECKS = ['failed_logins'] + AUTH_EVENT_CHECKS
BASELINE_CHECKS = list(AC.ALL_BASELINE_CHECKS)
ALL_CHECKS = ROLE_CHECKS + SERVER_CHECKS + OBJECT_CHECKS + EXPOSURE_CHECKS + EVENT_CHECKS + BASELINE_CHECKS

# Checks judged by a number against thresholds; the others are judged by condition (severity table in the
# module documentation).
DEFAULT_THRESHOLDS = {
    'failed_logins': {'warning': 10, 'critical': 50, 'direction': C.ABOVE, 'unit': 'count'},
    'auth_new_addresses': {'warning': 20, 'critical': None, 'direction': C.ABOVE, 'unit': 'count'},
    'auth_repeated_signups': {'warning': 10, 'critical': 50, 'direction': C.ABOVE, 'unit': 'count'},
    'auth_signup_burst': {'warning': 50, 'critical': 200, 'direction': C.ABOVE, 'unit': 'per hour'},
    'auth_token_revocations': {'warning': 50, 'critical': 200, 'direction': C.ABOVE, 'unit': 'per hour'},
}
DEFAULT_THRESHOLDS.update(SI.DEFAULT_THRESHOLDS)  # suspicious sign-ins (signins.py)

DEFAULT_ALLOWED_SUPERUSERS = ['postgres', 'supabase_admin']
# Roles Supabase itself creates with CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS.
DEFAULT_ALLOWED_PRIVILEGED = ['postgres', 'supabase_admin', 'supabase_auth_admin', 'supabase_storage_admin',
                              'supabase_replication_admin', 'supabase_realtime_admin', 'supabase_read_only_user',
                              'supabase_etl_admin', 'dashboard_user', 'service_role', 'authenticator']
PRIVILEGE_ATTRIBUTES = (('rolcreaterole', 'CREATEROLE'), ('rolcreatedb', 'CREATEDB'),
                        ('rolbypassrls', 'BYPASSRLS'), ('rolreplication', 'REPLICATION'))
HOST_TYPES = ('host', 'hostssl', 'hostnossl', 'hostgssenc', 'hostnogssenc')
CONNECTION_TYPES = ('local',) + HOST_TYPES
LOCAL_USERS = 'local users (anyone with a shell on the server host)'

# Old check names still accepted in O(checks), with a deprecation notice: old name -> new name.
RENAMED_CHECKS = {'security_definer_search_path': 'function_search_path_mutable'}

INSUFFICIENT_PRIVILEGE = '42501'
# The OID of a table in schema auth, read from the catalogue (to_regclass needs USAGE on the schema).
AUTH_TABLE_OID = API.TABLE_OID % ('auth', '%s')
# Schemas whose tables pg_upgrade skips, and pgsodium, which splinter's unsupported_reg_types leaves out too.
REG_TYPES_SKIPPED = ['pgsodium']


def renamed_checks(selected):
    """``selected`` (O(checks)) with the old names of renamed checks replaced by the new ones, in order and once, and
    a deprecation notice per old name used."""
    result, notices = [], []
    for name in selected or []:
        new = RENAMED_CHECKS.get(name, name)
        if new != name:
            notices.append('checks: %s is now %s (renamed after Supabase\'s linter, and it now covers every function, '
                           'not only SECURITY DEFINER ones); the old name will be refused in a future release'
                           % (name, new))
        if new not in result:
            result.append(new)
    return result, notices


def hba_reach(rule):
    """Who a pg_hba.conf rule admits: 'local' (Unix socket), 'loopback' (only 127.0.0.0/8 or ::1 addresses),
    or 'network' (anything else, including host names and samehost/samenet)."""
    if rule['type'] == 'local':
        return 'local'
    try:
        address = ipaddress.ip_address(rule['address'])
        prefix = bin(int(ipaddress.ip_address(rule['netmask']))).count('1') if rule['netmask'] else address.max_prefixlen
        network = ipaddress.ip_network('%s/%d' % (address, prefix), strict=False)
    except (TypeError, ValueError):
        return 'network'
    return 'loopback' if network.is_loopback else 'network'


def _hba_channel(rule):
    """What a trust rule that does not reach the network admits, in words."""
    return 'connections over the Unix socket' if rule['type'] == 'local' else 'loopback connections'


def _hba_rule_text(rule):
    """A pg_hba.conf rule's type, address (none for local) and method, as a message quotes it."""
    return ' '.join(part for part in (rule['type'], _hba_address(rule), rule['auth_method']) if part)


def _hba_address(rule):
    """The address column of a pg_hba.conf rule as written ('127.0.0.1/255.255.255.255'), '' for local."""
    return '%s%s' % (rule['address'] or '', '/' + rule['netmask'] if rule['netmask'] else '')


class Audit(API.ApiLints):
    """Runs the selected checks over one read-only session (splinter's API lints come from ``ApiLints``)."""

    def __init__(self, session, params, thresholds):
        self.session = session
        self.params = params
        self.thresholds = thresholds
        self.exclude = SchemaFilter(params['exclude_schemas'])
        self.findings = C.Findings(thresholds, 'db=%s' % params['login_db'])
        self.facts = {}
        self._hba = None
        self._hashes = None
        self._roles = None
        self._settings = None

    # -- helpers ------------------------------------------------------------------------------------
    def try_query(self, sql, args=None):
        """Rows, or the text of an insufficient-privilege error (other errors propagate)."""
        try:
            return self.session.query(sql, args), None
        except psycopg2.Error as exc:
            if getattr(exc, 'pgcode', None) == INSUFFICIENT_PRIVILEGE:
                return None, db_error_text(exc)
            raise

    def query_if_allowed(self, allowed_sql, denied, sql, args=None):
        """``try_query`` after asking the server whether the role may read (``allowed_sql`` returns one boolean
        column ``ok``): a read the role may not make is not tried, so the audit writes no "permission denied" ERROR
        into the server log that the weekly log review would then report."""
        if not self.session.one(allowed_sql)['ok']:
            return None, denied
        return self.try_query(sql, args)

    def run(self, selected):
        row = self.session.one("SELECT current_user AS login, current_database() AS db, "
                               "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser, "
                               "current_setting('server_version_num')::int AS version")
        self.facts.update(login_role=row['login'], database=row['db'], superuser=row['superuser'],
                          server_version_num=row['version'])
        self.exposed_schemas()
        for name in selected:
            if name in BASELINE_CHECKS or name in EVENT_CHECKS:
                continue
            getattr(self, 'check_' + name)()
        return self.findings

    # -- roles --------------------------------------------------------------------------------------
    def roles(self):
        if self._roles is None:
            self._roles = self.session.query(
                "SELECT r.oid, r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, "
                "r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil "
                "FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY r.rolname")
        return self._roles

    def check_superusers(self):
        allowed = set(self.params['allowed_superusers'])
        extra = [r['rolname'] for r in self.roles() if r['rolsuper'] and r['rolname'] not in allowed]
        for name in extra:
            self.findings.add('superusers', C.CRITICAL, 'role %s is a superuser and not in allowed_superusers; remove it '
                              '(ALTER ROLE %s NOSUPERUSER) or allow it explicitly' % (name, name), obj='role=%s' % name)
        if not extra:
            supers = sorted(r['rolname'] for r in self.roles() if r['rolsuper'])
            self.findings.ok('superusers', 'only allowed roles are superusers (%s)' % (', '.join(supers) or 'none'))

    def check_privileged_roles(self):
        allowed = set(self.params['allowed_privileged_roles']) | set(self.params['allowed_superusers'])
        fired = False
        for role in self.roles():
            if role['rolsuper'] or role['rolname'] in allowed:
                continue
            granted = [label for column, label in PRIVILEGE_ATTRIBUTES if role[column]]
            if granted:
                fired = True
                self.findings.add('privileged_roles', C.WARNING, 'role %s has %s and is not in allowed_privileged_roles; '
                                  'revoke what it does not need (ALTER ROLE %s %s)'
                                  % (role['rolname'], ', '.join(granted), role['rolname'],
                                     ' '.join('NO' + g for g in granted)), obj='role=%s' % role['rolname'], attributes=granted)
        if not fired:
            self.findings.ok('privileged_roles', 'no role outside the allow-list has CREATEROLE, CREATEDB, BYPASSRLS '
                             'or REPLICATION')

    def password_kinds(self):
        """{role: kind} from pg_authid (superuser only), or the error text."""
        if self._hashes is None:
            rows, error = self.query_if_allowed(
                "SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS ok", 'permission denied for table pg_authid',
                "SELECT rolname, rolcanlogin, CASE WHEN rolpassword IS NULL THEN 'none' "
                "WHEN rolpassword LIKE 'SCRAM-SHA-256$%%' THEN 'scram-sha-256' "
                "WHEN rolpassword ~ '^md5[0-9a-f]{32}$' THEN 'md5' ELSE 'plain' END AS kind "
                "FROM pg_authid WHERE rolname !~ '^pg_'")
            self._hashes = (dict((r['rolname'], (r['kind'], r['rolcanlogin'])) for r in rows) if rows is not None
                            else None, error)
        return self._hashes

    def check_password_hashes(self):
        kinds, error = self.password_kinds()
        if kinds is None:
            self.findings.unknown('password_hashes', 'cannot read pg_authid as %s (%s); only a superuser can see how '
                                  'passwords are stored' % (self.facts['login_role'], error))
            return
        fired = False
        for name, (kind, login) in sorted(kinds.items()):
            if not login or kind not in ('md5', 'plain'):
                continue
            fired = True
            status = C.CRITICAL if kind == 'plain' else C.WARNING
            self.findings.add('password_hashes', status, 'login role %s has a%s password; set password_encryption = '
                              'scram-sha-256 and set the password again (ALTER ROLE %s PASSWORD ...)'
                              % (name, 'n MD5-hashed' if kind == 'md5' else ' plain-text', name), obj='role=%s' % name,
                              hash=kind)
        if not fired:
            self.findings.ok('password_hashes', 'every login role with a password stores it as SCRAM-SHA-256')

    def hba_rules(self):
        if self._hba is None:
            rows, error = self.query_if_allowed(
                "SELECT has_table_privilege('pg_catalog.pg_hba_file_rules', 'SELECT') "
                "AND has_function_privilege('pg_catalog.pg_hba_file_rules()', 'EXECUTE') AS ok",
                'permission denied for function pg_hba_file_rules',
                "SELECT line_number, type, database, user_name, address, netmask, auth_method, error "
                "FROM pg_hba_file_rules ORDER BY line_number")
            self._hba = (rows, error)
        return self._hba

    def check_passwordless_logins(self):
        kinds, error = self.password_kinds()
        rules, hba_error = self.hba_rules()
        if kinds is None or rules is None:
            self.findings.unknown('passwordless_logins', 'needs pg_authid and pg_hba_file_rules, which %s cannot read (%s)'
                                  % (self.facts['login_role'], error or hba_error))
            return
        trust_rules = [r for r in rules if r['type'] in CONNECTION_TYPES and r['auth_method'] == 'trust' and not r['error']]
        fired = False
        without = sorted(name for name, (kind, login) in kinds.items() if login and kind == 'none')
        for name in without:
            reaching = [r for r in trust_rules if 'all' in (r['user_name'] or []) or name in (r['user_name'] or [])]
            if not reaching:
                continue
            fired = True
            network = [r for r in reaching if hba_reach(r) == 'network']
            rule = (network or reaching)[0]
            if network:
                self.findings.add('passwordless_logins', C.CRITICAL, 'login role %s has no password and pg_hba.conf line %s '
                                  '(%s %s trust) lets anyone who reaches the server over the network log in as it; set a '
                                  'password and replace trust with scram-sha-256'
                                  % (name, rule['line_number'], rule['type'], _hba_address(rule)), obj='role=%s' % name)
            else:
                self.findings.add('passwordless_logins', C.WARNING, 'login role %s has no password and pg_hba.conf line %s '
                                  '(%s) admits only %s, so %s can log in as it; set a password and replace trust with '
                                  'scram-sha-256 (or peer)'
                                  % (name, rule['line_number'], _hba_rule_text(rule), _hba_channel(rule), LOCAL_USERS),
                                  obj='role=%s' % name)
        if not fired:
            self.findings.ok('passwordless_logins', '%d login role(s) without a password, none reachable through a '
                             'trust rule for network connections' % len(without), value=len(without))

    def check_untrusted_languages(self):
        rows = self.session.query("SELECT lanname FROM pg_language WHERE NOT lanpltrusted "
                                  "AND lanname NOT IN ('c', 'internal') ORDER BY 1")
        for row in rows:
            self.findings.add('untrusted_languages', C.WARNING, 'untrusted language %s is installed: its functions run with '
                              'the server\'s operating-system rights; drop it (DROP EXTENSION/LANGUAGE %s) unless needed'
                              % (row['lanname'], row['lanname']), obj='language=%s' % row['lanname'])
        if not rows:
            self.findings.ok('untrusted_languages', 'no untrusted procedural language installed')

    # -- server ---------------------------------------------------------------------------------------
    def settings(self):
        """The server settings the checks read, queried once per run."""
        if self._settings is None:
            rows = self.session.query("SELECT name, setting FROM pg_settings WHERE name IN ('ssl', "
                                      "'password_encryption', 'log_connections', 'log_disconnections', 'log_timezone', "
                                      "'log_line_prefix', 'log_destination')")
            self._settings = dict((r['name'], r['setting']) for r in rows)
        return self._settings

    def check_ssl(self):
        value = self.settings().get('ssl')
        if value == 'on':
            self.findings.ok('ssl', 'ssl is on', value=1, unit=None)
        else:
            self.findings.add('ssl', C.WARNING, 'ssl is off: passwords and data cross the network unencrypted; configure '
                              'ssl_cert_file/ssl_key_file and set ssl = on', obj='server', value=0)

    def check_password_encryption(self):
        value = self.settings().get('password_encryption')
        if value == 'scram-sha-256':
            self.findings.ok('password_encryption', 'password_encryption is scram-sha-256', value=None, unit=None)
        else:
            self.findings.add('password_encryption', C.WARNING, 'password_encryption is %s: new passwords are stored as %s; '
                              'set it to scram-sha-256' % (value, value), obj='server')

    def _logging(self, name):
        value = (self.settings().get(name) or '').strip().lower()
        # PostgreSQL 18 turned log_connections into a list of aspects ('receipt,authentication,...').
        if value in ('', 'off', 'false', '0', 'no'):
            self.findings.add(name, C.WARNING, '%s is off: failed and successful logins leave no trace in the server log; '
                              'set %s = on' % (name, name), obj='server')
        else:
            self.findings.ok(name, '%s = %s' % (name, value), value=None, unit=None)

    def check_log_connections(self):
        self._logging('log_connections')

    def check_log_disconnections(self):
        self._logging('log_disconnections')

    def check_hba_rules(self):
        rules, error = self.hba_rules()
        if rules is None:
            self.findings.unknown('hba_rules', 'cannot read pg_hba_file_rules as %s (%s); only a superuser (or a role granted '
                                  'EXECUTE on pg_hba_file_rules()) can' % (self.facts['login_role'], error))
            return
        fired = False
        for rule in rules:
            if rule['error']:
                fired = True
                self.findings.add('hba_rules', C.WARNING, 'pg_hba.conf line %s does not parse: %s' % (rule['line_number'],
                                                                                                      rule['error']),
                                  obj='hba_line=%s' % rule['line_number'])
                continue
            if rule['type'] not in CONNECTION_TYPES or rule['auth_method'] == 'reject':
                continue
            if rule['type'] == 'local' and rule['auth_method'] != 'trust':
                continue  # a password over the Unix socket never crosses the network
            text = '%s %s %s %s %s' % (rule['type'], ','.join(rule['database'] or []), ','.join(rule['user_name'] or []),
                                       _hba_address(rule), rule['auth_method'])
            everywhere = rule['address'] == 'all' or (rule['address'] in ('0.0.0.0', '::') and
                                                      rule['netmask'] in ('0.0.0.0', '::'))
            problems = []
            status = C.OK
            if rule['auth_method'] == 'trust' and hba_reach(rule) == 'network':
                problems.append('trust lets anyone who reaches the server over the network in without a password')
                status = C.CRITICAL
            elif rule['auth_method'] == 'trust':
                problems.append('trust admits only %s, so %s can log in as %s without a password%s'
                                % (_hba_channel(rule), LOCAL_USERS, 'any role' if 'all' in (rule['user_name'] or []) else
                                   ', '.join(rule['user_name'] or []),
                                   ' (peer would check who they are)' if rule['type'] == 'local' else ''))
                status = C.WARNING
            elif rule['auth_method'] == 'password':
                problems.append('password sends the password in clear text')
                status = C.CRITICAL if rule['type'] != 'hostssl' else C.WARNING
            elif rule['auth_method'] == 'md5':
                problems.append('md5 accepts MD5 password hashes (use scram-sha-256)')
                status = C.WARNING
            if everywhere:
                problems.append('it is open to every address')
                status = C.worst_status([status, C.WARNING])
            if problems:
                fired = True
                self.findings.add('hba_rules', status, 'pg_hba.conf line %s (%s): %s' % (rule['line_number'], text,
                                                                                         '; '.join(problems)),
                                  obj='hba_line=%s' % rule['line_number'])
        if not fired:
            self.findings.ok('hba_rules', '%d pg_hba.conf rule(s), none with trust, password or md5 for network '
                             'connections or open to every address' % len(rules), value=len(rules))

    # -- schemas and objects ----------------------------------------------------------------------------
    def check_public_schema_create(self):
        rows = self.session.query(
            "SELECT pg_get_userbyid(n.nspowner) AS owner, pg_get_userbyid(a.grantor) AS grantor "
            "FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a "
            "WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE' ORDER BY 2")
        if not rows:
            self.findings.ok('public_schema_create', 'PUBLIC may not create objects in schema public')
            return
        owner = rows[0]['owner']
        grantors = sorted(set(r['grantor'] for r in rows))
        observed = 'every role (PUBLIC) may create objects in schema public (CREATE granted by %s; schema owner %s)' \
            % (', '.join(grantors), owner)
        if self.facts['server_version_num'] < 150000:
            cause = ('the default before PostgreSQL 15' if grantors == [owner]
                     else 'granted explicitly: the default would be granted by the owner')
        elif owner != 'pg_database_owner' and grantors == [owner]:
            # PostgreSQL 15+ creates public owned by pg_database_owner; an upgrade keeps the old owner and ACL.
            cause = ('not a PostgreSQL 15+ default; the schema is not owned by pg_database_owner, as in a database '
                     'created before PostgreSQL 15 and upgraded, which keeps the old default')
        else:
            cause = 'not a PostgreSQL 15+ default: someone granted it'
        self.findings.add('public_schema_create', C.WARNING, '%s, %s; REVOKE CREATE ON SCHEMA public FROM PUBLIC'
                          % (observed, cause), obj='schema=public', grantors=grantors)

    def check_function_search_path_mutable(self):
        # Aggregates are left out: they cannot be given a search_path; their support functions are linted themselves.
        rows = self.session.query(
            "SELECT n.nspname AS schema, p.proname AS name, pg_get_function_identity_arguments(p.oid) AS args, "
            "p.prosecdef AS definer, p.prokind AS kind FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.prokind <> 'a' AND n.nspname !~ ALL(%s) "
            "AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search\\_path=%%') "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid "
            "AND d.deptype = 'e') ORDER BY 1, 2, 3", (self.exclude.regexes,))
        for row in rows:
            signature = '%s(%s)' % (qualified(row['schema'], row['name']), row['args'])
            kind = 'PROCEDURE' if row['kind'] == 'p' else 'FUNCTION'
            if row['definer']:
                risk = ('SECURITY DEFINER %s %s has a mutable search_path (none set): a caller can put objects of their '
                        'own first on it and make it run them with its owner\'s rights' % (kind.lower(), signature))
            else:
                risk = ('%s %s has a mutable search_path (none set): it resolves unqualified names through the search_path '
                        'of whoever calls it, so a role that can create objects may make it run theirs'
                        % (kind.lower(), signature))
            self.findings.add('function_search_path_mutable', C.WARNING, '%s; ALTER %s %s SET search_path = \'\' (and '
                              'qualify the names it uses)' % (risk, kind, signature), obj='function=%s' % signature,
                              security_definer=row['definer'])
        if not rows:
            self.findings.ok('function_search_path_mutable', 'every function outside the excluded schemas that no '
                             'extension owns has a fixed search_path')

    def check_extension_in_public(self):
        rows = self.session.query("SELECT e.extname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                                  "WHERE n.nspname = 'public' ORDER BY 1")
        for row in rows:
            self.findings.add('extension_in_public', C.WARNING, 'extension %s is installed in schema public, where its '
                              'objects are exposed with the application\'s; move it (ALTER EXTENSION %s SET SCHEMA '
                              'extensions) when it is relocatable' % (row['extname'], row['extname']),
                              obj='extension=%s' % row['extname'])
        if not rows:
            self.findings.ok('extension_in_public', 'no extension installed in schema public')

    def check_extension_versions_outdated(self):
        # Only installed versions the server still has scripts for (a version left behind by pg_upgrade is not one).
        rows = self.session.query(
            "SELECT e.name, e.installed_version AS installed, e.default_version AS latest FROM pg_available_extensions e "
            "WHERE e.installed_version IS NOT NULL AND e.default_version IS NOT NULL "
            "AND e.installed_version <> e.default_version AND EXISTS (SELECT 1 FROM pg_available_extension_versions v "
            "WHERE v.name = e.name AND v.version = e.installed_version) ORDER BY 1")
        for row in rows:
            self.findings.add('extension_versions_outdated', C.WARNING, 'extension %s is at version %s while this server '
                              'ships %s, which may hold security fixes; ALTER EXTENSION %s UPDATE (after reading its '
                              'release notes)' % (row['name'], row['installed'], row['latest'], row['name']),
                              obj='extension=%s' % row['name'], installed_version=row['installed'],
                              default_version=row['latest'])
        if not rows:
            self.findings.ok('extension_versions_outdated', 'every installed extension is at the version the server ships '
                             'as default')

    def check_unsupported_reg_types(self):
        # pg_upgrade checks every user schema, so exclude_schemas does not apply; splinter leaves out pgsodium.
        rows = self.session.query(
            "SELECT n.nspname AS schema, c.relname AS name, c.relkind, a.attname AS column_name, "
            "format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname !~ ALL(%(skipped)s) "
            "AND (t.oid = ANY(%(types)s::regtype[]) OR t.typelem = ANY(%(types)s::regtype[]) "
            "  OR t.typbasetype = ANY(%(types)s::regtype[])) ORDER BY 1, 2, a.attnum",
            {'skipped': SchemaFilter(REG_TYPES_SKIPPED).regexes, 'types': API.UNSUPPORTED_REG_TYPES})
        for row in rows:
            relation = qualified(row['schema'], row['name'])
            self.findings.add('unsupported_reg_types', C.WARNING, '%s %s has column %s of type %s, which pg_upgrade cannot '
                              'carry over (it stores OIDs that change): the server cannot be upgraded in place while it '
                              'exists; store the name (text) or a regclass/regtype/regrole instead'
                              % (API.RELKIND_WORDS.get(row['relkind'], 'relation'), relation, row['column_name'],
                                 row['type']), obj='column=%s.%s' % (relation, row['column_name']))
        if not rows:
            self.findings.ok('unsupported_reg_types', 'no column uses a reg* type pg_upgrade cannot carry over')

    # -- authentication events --------------------------------------------------------------------------
    def run_events(self, selected):
        if 'failed_logins' in selected and self.params['log_path']:
            self.check_failed_logins()
        wanted = [name for name in selected if name in AUTH_EVENT_CHECKS]
        if wanted:
            self.check_auth_events(wanted)
        return self.findings

    def check_failed_logins(self):
        path = self.params['log_path']
        hours = self.params['log_window_hours']
        since = utcnow() - datetime.timedelta(hours=hours)
        if not os.path.exists(path) or not os.access(path, os.R_OK):
            self.findings.unknown('failed_logins', 'log_path %s %s for the user the module runs as (uid %d)'
                                  % (path, 'is not readable' if os.path.exists(path) else 'does not exist', os.getuid()))
            return
        settings = self.settings()
        parser = AL.FailedLogins(since, settings.get('log_timezone'),
                                 settings.get('log_line_prefix') if settings.get('log_destination') == 'stderr' else None)
        files = AL.log_files(path, since)
        try:
            for name in files:
                parser.feed_file(name)
        except OSError as exc:
            self.findings.unknown('failed_logins', 'cannot read %s: %s' % (path, exc))
            return
        rows = parser.by_address()
        self.facts['failed_logins'] = {'window_hours': hours, 'files': files, 'lines_read': parser.lines,
                                       'by_address': rows[:50], 'by_user': parser.by_user()}
        AL.failed_login_findings(self.findings, 'failed_logins', rows, hours, parser.lines)

    def check_auth_events(self, wanted):
        present = self.session.one("SELECT (%s) IS NOT NULL AS present" % AUTH_TABLE_OID % 'audit_log_entries')
        if not present['present']:
            return  # not a Supabase database
        hours = self.params['log_window_hours']
        args = {'window': '%d seconds' % int(hours * 3600), 'lookback': '%d days' % self.params['auth_lookback_days']}
        results = {}
        for key in ('sign_ins', 'new_addresses', 'history', 'counts', 'hourly'):
            rows, error = self.try_query(AL.AUTH_SQL[key], args)
            if rows is None:
                for name in wanted:
                    self.findings.unknown(name, 'cannot read auth.audit_log_entries as %s (%s)'
                                          % (self.facts['login_role'], error))
                return
            results[key] = rows
        counts = dict((r['action'], r['n']) for r in results['counts'])
        self.facts['auth_events'] = {
            'window_hours': hours, 'actions': counts,
            'sign_ins_by_address': [dict(address=r['address'], sign_ins=r['sign_ins'], last=r['last'].isoformat())
                                    for r in results['sign_ins'][:50]],
            'new_addresses': [r['address'] for r in results['new_addresses']],
        }
        if 'auth_new_addresses' in wanted:
            self._auth_new_addresses(results, counts, args, hours)
        if 'auth_repeated_signups' in wanted:
            self.findings.judge('auth_repeated_signups', counts.get('user_repeated_signup', 0),
                                '{value} sign-ups for already registered e-mails in the last %s h (user_repeated_signup; '
                                'many of them probe which addresses have accounts)' % hours)
        hourly = results['hourly']
        if 'auth_signup_burst' in wanted:
            peak = max(hourly, key=lambda r: r['signups'], default=None)
            self.findings.judge('auth_signup_burst', peak['signups'] if peak else 0,
                                ('at most {value} sign-ups in one hour (%s) in the last %s h' % (peak['hour'].isoformat(), hours))
                                if peak else 'no sign-ups in the last %s h' % hours)
        if 'auth_token_revocations' in wanted:
            # Every refresh also revokes the token it replaces; revocations beyond that are sign-outs,
            # "sign out everywhere" and refresh-token reuse.
            extra = [(max(0, r['revoked'] - r['refreshed']), r['hour']) for r in hourly]
            value, hour = max(extra, key=lambda item: item[0], default=(0, None))
            self.findings.judge('auth_token_revocations', value,
                                '{value} token revocations beyond refresh rotation in one hour%s in the last %s h'
                                % (' (%s)' % hour.isoformat() if hour is not None and value else '', hours))
        signins = [name for name in wanted if name in SI.SIGNIN_CHECKS]
        if signins:
            self._auth_signins(signins, results, counts, args, hours)

    def _audit_log_silent(self, counts, args, hours):
        """Why the sign-ins of auth.audit_log_entries cannot be judged when it holds none while auth.users says
        users signed in (the Auth server does not write its audit log to the database), else None."""
        if counts.get('login', 0) + counts.get('mfa_code_login', 0):
            return None
        recent, _error = self.try_query(AL.AUTH_SQL['recent_sign_ins'], args)
        signed_in = recent[0]['n'] if recent else 0
        if not signed_in:
            return None
        return ('auth.audit_log_entries holds no sign-in in the last %s h although %d user(s) signed in '
                '(auth.users.last_sign_in_at): the Auth server may not write its audit log to the database '
                '(GOTRUE_AUDIT_LOG_DISABLE_POSTGRES)' % (hours, signed_in))

    def _short_history(self, results, hours, what):
        """Why a check that compares the window with the auth_lookback_days before it cannot judge: the audit log
        holds less history than both (every address would look new), else None."""
        history = results['history'][0]
        if float(history['seconds']) >= float(history['needed']):
            return None
        return ('not enough history (%d days of audit log, need window + baseline): the window is %s h and the '
                'baseline auth_lookback_days = %d days; %s' % (int(float(history['seconds']) // 86400), hours,
                                                               self.params['auth_lookback_days'], what))

    def _auth_new_addresses(self, results, counts, args, hours):
        silent = self._audit_log_silent(counts, args, hours)
        if silent:
            self.findings.unknown('auth_new_addresses', silent)
            return
        new = [r['address'] for r in results['new_addresses']]
        short = self._short_history(results, hours, '%d address(es) signed in in the window' % len(results['sign_ins']))
        if short:
            self.findings.unknown('auth_new_addresses', short)
            return
        self.findings.judge('auth_new_addresses', len(new), '{value} address(es) signed in for the first time in %d days: %s'
                            % (self.params['auth_lookback_days'], ', '.join(new[:20]) or 'none'), addresses=new)

    def _auth_signins(self, wanted, results, counts, args, hours):
        """The suspicious sign-in checks (signins.py): bursts and spread over a sliding window of
        auth_signin_window_minutes, and addresses new for an account against auth_lookback_days."""
        silent = self._audit_log_silent(counts, args, hours)
        if silent:
            for name in wanted:
                self.findings.unknown(name, silent)
            return
        minutes = self.params.get('auth_signin_window_minutes') or SI.DEFAULT_WINDOW_MINUTES
        facts = self.facts['auth_events']
        facts['signin_window_minutes'] = minutes
        found = []
        if 'auth_signin_burst' in wanted or 'auth_address_accounts' in wanted:
            rows = self.session.query(SI.peaks_sql('address'), SI.peaks_args(args, minutes, self.thresholds, 'address'))
            facts['signins_by_address'] = SI.address_rows(rows)
            found.extend(SI.address_findings(self.thresholds, rows, minutes, hours, wanted))
        if 'auth_account_addresses' in wanted:
            rows = self.session.query(SI.peaks_sql('account'), SI.peaks_args(args, minutes, self.thresholds, 'account'))
            facts['signins_by_account'] = SI.account_rows(rows)
            found.extend(SI.account_findings(self.thresholds, rows, minutes, hours))
        if 'auth_account_new_addresses' in wanted:
            short = self._short_history(results, hours, 'the addresses of an account are judged against its sign-ins '
                                        'in those days')
            if short:
                found.append(C.unknown(self.thresholds, 'auth_account_new_addresses', short))
            else:
                rows = self.session.query(SI.new_addresses_sql(), SI.new_addresses_args(args, self.thresholds))
                found.extend(SI.new_address_findings(self.thresholds, rows, hours, self.params['auth_lookback_days']))
        for item in found:
            item['object'] = item['object'] or self.findings.obj
            self.findings.append(item)


def validate(params):
    if params['log_window_hours'] <= 0:
        raise ConfigurationError('log_window_hours must be more than 0, got %s' % params['log_window_hours'])
    if params['auth_lookback_days'] < 0:
        raise ConfigurationError('auth_lookback_days must be 0 or more, got %s' % params['auth_lookback_days'])
    try:
        SI.validate_minutes(params.get('auth_signin_window_minutes', SI.DEFAULT_WINDOW_MINUTES))
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    if not params['exposed_schemas']:
        raise ConfigurationError('exposed_schemas must name at least one schema')
