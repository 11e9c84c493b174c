# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_audit_info's lints about row-level security, policies and what the Supabase / PostgREST API exposes, after
Supabase's database linter (splinter, https://github.com/supabase/splinter): same names, levels and conditions, our
own queries. (Its lints about functions, extensions and column types are ``audit.Audit``'s object checks.)

``ApiLints`` is a mixin of ``audit.Audit`` (it uses its ``session``, ``params``, ``findings``, ``exclude``,
``facts``, ``roles()`` and ``try_query()``). The pieces several lints share exist once here: which schemas the
API serves (``exposed_schemas``), which API roles exist (``api_roles``), and one catalogue read of every
relation with what the API roles may do with it (``relations``).

Levels: splinter's ERROR is ``critical``, WARN ``warning``, INFO ``info`` (advice).
"""

from __future__ import annotations

import re

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import SchemaFilter, qualified

# In splinter's order (lint number); the performance lints are pg_inspect_info's.
EXPOSURE_CHECKS = [
    'auth_users_exposed', 'policy_exists_rls_disabled', 'rls_enabled_no_policy', 'security_definer_view',
    'rls_disabled_in_public', 'rls_references_user_metadata', 'materialized_view_in_api', 'foreign_table_in_api',
    'insecure_queue_exposed_in_api', 'fkey_to_auth_unique', 'sensitive_columns_exposed', 'rls_policy_always_true',
    'public_bucket_allows_listing', 'pg_graphql_anon_table_exposed', 'pg_graphql_authenticated_table_exposed',
    'anon_security_definer_function_executable', 'authenticated_security_definer_function_executable',
]

# The OID of table %s.%s read from the catalogue (to_regclass would need USAGE on the schema).
TABLE_OID = ("SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "WHERE n.nspname = '%s' AND c.relname = '%s'")

# Where the exposed schemas came from (the ``exposed_schemas`` return value).
SOURCE_SETTING = 'setting'              # pgrst.db_schemas as this session sees it (database or login-role setting)
SOURCE_AUTHENTICATOR = 'authenticator'  # pgrst.db_schemas stored for role authenticator (PostgREST's in-database config)
SOURCE_OPTION = 'option'                # the exposed_schemas option

RELKIND_WORDS = {'r': 'table', 'p': 'partitioned table', 'v': 'view', 'm': 'materialized view', 'f': 'foreign table',
                 'c': 'composite type', 'i': 'index', 'I': 'partitioned index', 'S': 'sequence', 't': 'TOAST table'}
# The ``object`` of a finding about a relation: table=… or view=….
OBJECT_WORDS = {'r': 'table', 'p': 'table', 'f': 'table', 'v': 'view', 'm': 'view'}
TABLE_KINDS = ('r', 'p')

# Expressions splinter takes for "always true" once lower-cased and stripped of white space.
ALWAYS_TRUE = ('true', '(true)', '1=1', '(1=1)')
# A policy reading user_metadata: from the JWT (auth.jwt(), or the request.jwt.claim(s) settings it reads), as
# splinter matches it, and auth.users.raw_user_meta_data - the same data, as editable by the user.
USER_METADATA = re.compile(r"(\bjwt\(\)|request\.jwt\.claims?\b).*user_metadata|\braw_user_meta_data\b", re.I | re.S)
# A USING clause that only selects one bucket: (bucket_id = 'avatars'::text), with or without parentheses and cast.
BUCKET_ONLY = re.compile(r"^\(*\s*bucket_id\s*=\s*'((?:[^']|'')*)'(?:\s*::\s*[\w.\"]+)?\s*\)*$", re.I)

# Column names splinter takes for sensitive data (compared lower-cased, '-' read as '_').
SENSITIVE_COLUMNS = frozenset([
    # credentials
    'password', 'passwd', 'pwd', 'passphrase', 'secret', 'secret_key', 'private_key', 'api_key', 'apikey', 'auth_key',
    'token', 'jwt', 'access_token', 'refresh_token', 'oauth_token', 'session_token', 'bearer_token', 'auth_code',
    'session_id', 'session_key', 'session_secret', 'recovery_code', 'backup_code', 'verification_code', 'otp',
    'two_factor', '2fa_secret', '2fa_code',
    # personal identifiers
    'ssn', 'social_security', 'social_security_number', 'driver_license', 'drivers_license', 'license_number',
    'passport_number', 'passport_id', 'national_id', 'tax_id',
    # financial
    'credit_card', 'card_number', 'cvv', 'cvc', 'cvn', 'bank_account', 'account_number', 'routing_number', 'iban',
    'swift_code', 'bic',
    # health
    'health_record', 'medical_record', 'patient_id', 'insurance_number', 'health_insurance', 'medical_insurance',
    'treatment',
    # devices, keys, biometrics
    'mac_address', 'macaddr', 'imei', 'device_uuid', 'pgp_key', 'gpg_key', 'ssh_key', 'certificate', 'license_key',
    'activation_key', 'facial_recognition',
])

# pg_upgrade cannot keep these OID-valued types in user tables (regclass, regrole and regtype it can).
UNSUPPORTED_REG_TYPES = ['regcollation', 'regconfig', 'regdictionary', 'regnamespace', 'regoper', 'regoperator',
                         'regproc', 'regprocedure']


def parse_db_schemas(value):
    """The schemas of a pgrst.db_schemas value ('public, api' -> ['public', 'api']): comma-separated, trimmed,
    without empty entries or repeats. None when the value is unset or names no schema."""
    if value is None:
        return None
    names = []
    for part in value.split(','):
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return names or None


def choose_exposed_schemas(setting, authenticator, option):
    """(schemas, source) from the first of: this session's pgrst.db_schemas, the one stored for role authenticator,
    the exposed_schemas option. A value that names no schema counts as unset (splinter would then lint nothing,
    which is looser than falling back)."""
    for source, value in ((SOURCE_SETTING, setting), (SOURCE_AUTHENTICATOR, authenticator)):
        schemas = parse_db_schemas(value)
        if schemas:
            return schemas, source
    return list(option), SOURCE_OPTION


def _normal(expression):
    """A policy expression lower-cased and without white space, as splinter compares them."""
    return re.sub(r'\s+', '', expression.lower()) if expression is not None else None


def always_true_policy(command, using, check):
    """Whether a permissive policy's USING and WITH CHECK let every row through, by splinter's rule: (using, check).

    ``command`` is SELECT, INSERT, UPDATE, DELETE or ALL; ``using``/``check`` the expression texts (None when the
    policy has none). A SELECT policy with USING (true) is left out (public read access is usually intended)."""
    using_text, check_text = _normal(using), _normal(check)
    using_true = command in ('UPDATE', 'DELETE', 'ALL') and (using is None or using_text in ALWAYS_TRUE)
    check_true = (check_text in ALWAYS_TRUE
                  or (check is None and command == 'INSERT')
                  or (check is None and command in ('UPDATE', 'ALL') and using_text in ALWAYS_TRUE))
    return using_true, check_true


def lists_bucket(using, bucket_id):
    """Whether a SELECT policy on storage.objects with this USING clause lets clients list every object of the bucket:
    no clause, an always-true one, or one that only compares bucket_id with this bucket (splinter's rule)."""
    if using is None or _normal(using) in ALWAYS_TRUE:
        return True
    match = BUCKET_ONLY.match(using.strip())
    return bool(match) and match.group(1).replace("''", "'") == bucket_id


def sensitive_columns(names):
    """The column names among ``names`` that splinter takes for sensitive data, in order."""
    return [name for name in names if name.lower().replace('-', '_') in SENSITIVE_COLUMNS]


def references_user_metadata(expression):
    return bool(expression) and bool(USER_METADATA.search(expression))


def _function(row):
    return '%s(%s)' % (qualified(row['schema'], row['name']), row['args'])


class ApiLints(object):
    """The splinter lints of pg_audit_info (see the module docstring)."""

    _relations = None    # relations(), read once per run
    _policy_rows = None  # _policies(), read once per run

    # -- shared pieces --------------------------------------------------------------------------------
    def exposed_schemas(self):
        """(schemas, source): pgrst.db_schemas as this session sees it (as splinter reads it), else the value stored
        for role authenticator (PostgREST's in-database configuration), else the exposed_schemas option. A setting
        that names no schema counts as unset (splinter would then lint nothing)."""
        if 'exposed_schemas' not in self.facts:
            row = self.session.one(
                "SELECT current_setting('pgrst.db_schemas', true) AS session, "
                "(SELECT substr(s, length('pgrst.db_schemas=') + 1) FROM pg_db_role_setting d "
                " JOIN pg_roles r ON r.oid = d.setrole CROSS JOIN unnest(d.setconfig) s "
                " WHERE r.rolname = 'authenticator' AND s LIKE 'pgrst.db\\_schemas=%%' "
                " AND d.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) "
                " ORDER BY d.setdatabase DESC LIMIT 1) AS authenticator", {})
            schemas, source = choose_exposed_schemas(row['session'], row['authenticator'], self.params['exposed_schemas'])
            self.facts['exposed_schemas'] = {'schemas': schemas, 'source': source}
        found = self.facts['exposed_schemas']
        return found['schemas'], found['source']

    def _exposed_text(self):
        schemas, source = self.exposed_schemas()
        origin = {SOURCE_SETTING: 'pgrst.db_schemas', SOURCE_AUTHENTICATOR: 'pgrst.db_schemas of role authenticator',
                  SOURCE_OPTION: 'exposed_schemas'}[source]
        return '%s (from %s)' % (', '.join(schemas), origin)

    def api_roles(self):
        """The roles of the api_roles option that exist."""
        present = set(r['rolname'] for r in self.roles())
        return [r for r in self.params['api_roles'] if r in present]

    def _role_exists(self, role):
        return any(r['rolname'] == role for r in self.roles())

    def _no_api_roles(self, name):
        if self.api_roles():
            return False
        self.findings.ok(name, 'none of the API roles (%s) exists; PostgREST exposure does not apply'
                         % ', '.join(self.params['api_roles']))
        return True

    def relations(self):
        """Every table, view, materialized view and foreign table outside the system schemas: whether its schema is
        exposed or excluded, whether an extension owns it, row-level security, its policies, and which API roles
        may SELECT it. Read once per run."""
        if self._relations is None:
            schemas, _source = self.exposed_schemas()
            self._relations = self.session.query(
                "SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind, c.relrowsecurity AS rls, "
                "n.nspname = ANY(%(exposed)s) AS exposed, n.nspname ~ ANY(%(excluded)s) AS excluded, "
                "EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid "
                "  AND d.deptype = 'e') AS extension_owned, "
                "ARRAY(SELECT p.polname::text FROM pg_policy p WHERE p.polrelid = c.oid ORDER BY 1) AS policies, "
                "ARRAY(SELECT r FROM unnest(%(roles)s::text[]) r WHERE has_table_privilege(r, c.oid, 'SELECT')) "
                "  AS readers, "
                "coalesce((SELECT bool_or(o ~* '^security_invoker=(on|true|yes|1)$') FROM unnest(c.reloptions) o), "
                "  false) AS security_invoker "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname !~ ALL(%(system)s) ORDER BY 2, 3",
                {'roles': self.api_roles(), 'exposed': schemas, 'excluded': self.exclude.regexes,
                 'system': SchemaFilter([]).regexes})
        return self._relations

    def _in_api(self, kinds, extensions=False):
        """Relations of these kinds the API serves (splinter's scope for its API lints): in an exposed schema that
        is not excluded, readable by an API role, and unless ``extensions``, not owned by an extension."""
        return [r for r in self.relations() if r['relkind'] in kinds and r['exposed'] and not r['excluded']
                and (extensions or not r['extension_owned']) and r['readers']]

    def _application_tables(self):
        """Tables outside the excluded schemas that no extension owns (splinter's scope for its RLS lints 0007 and
        0008, whether the schema is exposed or not)."""
        return [r for r in self.relations() if r['relkind'] in TABLE_KINDS and not r['excluded']
                and not r['extension_owned']]

    def _policies(self):
        """Every policy on a table outside the excluded schemas, with its expressions as PostgreSQL prints them."""
        if self._policy_rows is None:
            self._policy_rows = self.session.query(
                "SELECT n.nspname AS schema, c.relname AS table_name, c.relkind, c.relrowsecurity AS rls, "
                "p.polname AS policy, p.polpermissive AS permissive, "
                "CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' "
                "  WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS command, "
                "ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END "
                "  FROM unnest(p.polroles) r ORDER BY 1) AS roles, "
                "pg_get_expr(p.polqual, p.polrelid) AS using_expr, pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr "
                "FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname !~ ALL(%(excluded)s) ORDER BY 1, 2, 5", {'excluded': self.exclude.regexes})
        return self._policy_rows

    def _relation_lint(self, name, status, hits, message, quiet):
        for row in hits:
            relation = qualified(row['schema'], row['name'])
            word = RELKIND_WORDS.get(row['relkind'], 'relation')
            self.findings.add(name, status, message % {'kind': word, 'name': relation, 'readers': ', '.join(row['readers'])},
                              obj='%s=%s' % (OBJECT_WORDS[row['relkind']], relation))
        if not hits:
            self.findings.ok(name, quiet)

    # -- RLS (0007, 0008, 0013) --------------------------------------------------------------------------
    def check_rls_disabled_in_public(self):
        if self._no_api_roles('rls_disabled_in_public'):
            return
        hits = [r for r in self._in_api(TABLE_KINDS, extensions=True) if not r['rls']]
        self._relation_lint('rls_disabled_in_public', C.CRITICAL, hits,
                            '%(kind)s %(name)s is readable by %(readers)s through the API and row-level security is off, '
                            'so every row is public; ALTER TABLE %(name)s ENABLE ROW LEVEL SECURITY and add policies',
                            'every table the API roles can read in %s has row-level security' % self._exposed_text())

    def check_policy_exists_rls_disabled(self):
        hits = [r for r in self._application_tables() if not r['rls'] and r['policies']]
        for row in hits:
            name = qualified(row['schema'], row['name'])
            count = len(row['policies'])
            self.findings.add('policy_exists_rls_disabled', C.CRITICAL, 'table %s has %d polic%s (%s) but row-level '
                              'security is off, so they are not applied; ALTER TABLE %s ENABLE ROW LEVEL SECURITY'
                              % (name, count, 'y' if count == 1 else 'ies', ', '.join(row['policies']), name),
                              obj='table=%s' % name, policies=row['policies'])
        if not hits:
            self.findings.ok('policy_exists_rls_disabled', 'no table has policies with row-level security off')

    def check_rls_enabled_no_policy(self):
        hits = [r for r in self._application_tables() if r['rls'] and not r['policies']]
        for row in hits:
            name = qualified(row['schema'], row['name'])
            self.findings.info('rls_enabled_no_policy', 'table %s has row-level security on and no policy: only roles '
                               'that bypass RLS (the owner, BYPASSRLS roles such as service_role) see its rows; fine if '
                               'intended, add a policy otherwise' % name, obj='table=%s' % name)
        if not hits:
            self.findings.ok('rls_enabled_no_policy', 'no table has row-level security without a policy')

    # -- policies (0015, 0024) ---------------------------------------------------------------------------
    def check_rls_references_user_metadata(self):
        hits = [p for p in self._policies()
                if references_user_metadata(p['using_expr']) or references_user_metadata(p['check_expr'])]
        for row in hits:
            table = qualified(row['schema'], row['table_name'])
            self.findings.add('rls_references_user_metadata', C.CRITICAL, 'policy %s on %s reads user_metadata, which every '
                              'user can edit for themselves (supabase.auth.updateUser), so the policy can be satisfied by '
                              'the user it should restrict; decide on app_metadata or a table of your own instead'
                              % (row['policy'], table), obj='policy=%s.%s' % (table, row['policy']))
        if not hits:
            self.findings.ok('rls_references_user_metadata', 'no row-level security policy reads user_metadata')

    def check_rls_policy_always_true(self):
        audience = set(self.params['api_roles']) | {'public'}
        fired = False
        for row in self._policies():
            if row['relkind'] not in TABLE_KINDS or not row['rls'] or not row['permissive'] \
                    or not audience & set(row['roles']):
                continue
            using_true, check_true = always_true_policy(row['command'], row['using_expr'], row['check_expr'])
            if not (using_true or check_true):
                continue
            fired = True
            table = qualified(row['schema'], row['table_name'])
            which = ' and '.join(part for part, flag in (('USING', using_true), ('WITH CHECK', check_true)) if flag)
            self.findings.add('rls_policy_always_true', C.WARNING, 'policy %s on %s for %s to %s lets every row through '
                              '(%s always true), so row-level security does not restrict %s for them; write the condition '
                              'the rows must meet (for example owner = (select auth.uid()))'
                              % (row['policy'], table, row['command'], ', '.join(row['roles']), which,
                                 'writes' if row['command'] != 'SELECT' else 'reads'),
                              obj='policy=%s.%s' % (table, row['policy']), command=row['command'])
        if not fired:
            self.findings.ok('rls_policy_always_true', 'no permissive policy for the API roles lets every row be changed')

    # -- views and relations the API serves (0002, 0010, 0016, 0017, 0023) ---------------------------------
    def check_security_definer_view(self):
        if self._no_api_roles('security_definer_view'):
            return
        hits = [r for r in self._in_api(('v',)) if not r['security_invoker']]
        self._relation_lint('security_definer_view', C.CRITICAL, hits,
                            '%(kind)s %(name)s runs with its owner\'s rights (no security_invoker) and %(readers)s can read '
                            'it, bypassing the row-level security of the tables under it; ALTER VIEW %(name)s SET '
                            '(security_invoker = on)',
                            'no view readable by the API roles runs with its owner\'s rights')

    def check_auth_users_exposed(self):
        if self._no_api_roles('auth_users_exposed'):
            return
        rows = self.session.query(
            "SELECT DISTINCT v.oid FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass "
            "AND d.objid = rw.oid JOIN pg_class v ON v.oid = rw.ev_class "
            "WHERE d.refobjid = (%s) AND v.oid <> d.refobjid" % TABLE_OID % ('auth', 'users'))
        using = set(r['oid'] for r in rows)
        # splinter's scope: exposed schemas, whatever exclude_schemas says, extension-owned or not.
        hits = [r for r in self.relations() if r['oid'] in using and r['exposed'] and r['readers']]
        self._relation_lint('auth_users_exposed', C.CRITICAL, hits,
                            '%(kind)s %(name)s reads auth.users and %(readers)s can query it through the API, exposing '
                            'user e-mails and metadata; revoke SELECT from the API roles or drop it',
                            'no view over auth.users is readable by the API roles')

    def check_materialized_view_in_api(self):
        if self._no_api_roles('materialized_view_in_api'):
            return
        self._relation_lint('materialized_view_in_api', C.WARNING, self._in_api(('m',)),
                            '%(kind)s %(name)s is readable by %(readers)s through the API; a materialized view has no '
                            'row-level security, so every row is public; REVOKE SELECT ON %(name)s FROM %(readers)s or '
                            'move it to a schema the API does not serve',
                            'no materialized view is readable by the API roles in %s' % self._exposed_text())

    def check_foreign_table_in_api(self):
        if self._no_api_roles('foreign_table_in_api'):
            return
        self._relation_lint('foreign_table_in_api', C.WARNING, self._in_api(('f',)),
                            '%(kind)s %(name)s is readable by %(readers)s through the API; foreign tables do not apply '
                            'row-level security, so every remote row is public; REVOKE SELECT ON %(name)s FROM %(readers)s '
                            'or move it to a schema the API does not serve',
                            'no foreign table is readable by the API roles in %s' % self._exposed_text())

    def check_sensitive_columns_exposed(self):
        if self._no_api_roles('sensitive_columns_exposed'):
            return
        tables = [r for r in self._in_api(TABLE_KINDS, extensions=True) if not r['rls']]
        columns = {}
        if tables:
            for row in self.session.query(
                    "SELECT attrelid AS oid, attname::text AS name FROM pg_attribute WHERE attrelid = ANY(%s::oid[]) "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attrelid, attnum", ([r['oid'] for r in tables],)):
                columns.setdefault(row['oid'], []).append(row['name'])
        fired = False
        for row in tables:
            found = sensitive_columns(columns.get(row['oid'], []))
            if not found:
                continue
            fired = True
            name = qualified(row['schema'], row['name'])
            self.findings.add('sensitive_columns_exposed', C.CRITICAL, 'table %s is readable by %s through the API without '
                              'row-level security and has column(s) named like sensitive data: %s; ALTER TABLE %s ENABLE ROW '
                              'LEVEL SECURITY with policies, or move the data out of the exposed schema'
                              % (name, ', '.join(row['readers']), ', '.join(found), name), obj='table=%s' % name,
                              columns=found)
        if not fired:
            self.findings.ok('sensitive_columns_exposed', 'no table the API roles can read without row-level security has '
                             'columns named like sensitive data')

    # -- Supabase features (0019, 0021, 0025) ---------------------------------------------------------------
    def check_insecure_queue_exposed_in_api(self):
        if self._no_api_roles('insecure_queue_exposed_in_api'):
            return
        schemas, _source = self.exposed_schemas()
        if 'pgmq_public' not in schemas:
            self.findings.ok('insecure_queue_exposed_in_api', 'schema pgmq_public is not exposed (%s): the queues are not '
                             'reachable through the API' % self._exposed_text())
            return
        # splinter's scope: pgmq's queue tables (q_<queue>; its pattern 'q_%' takes any name starting with q), whatever
        # exclude_schemas says about pgmq.
        hits = [r for r in self.relations() if r['schema'] == 'pgmq' and r['relkind'] in TABLE_KINDS
                and r['name'].startswith('q') and len(r['name']) > 1 and not r['rls'] and r['readers']]
        self._relation_lint('insecure_queue_exposed_in_api', C.CRITICAL, hits,
                            'queue %(kind)s %(name)s is readable by %(readers)s and row-level security is off while '
                            'pgmq_public is exposed, so anyone with the API key can read, send and delete its messages; '
                            'ALTER TABLE %(name)s ENABLE ROW LEVEL SECURITY and add policies',
                            'every pgmq queue table the API roles can read has row-level security')

    def check_fkey_to_auth_unique(self):
        rows = self.session.query(
            "SELECT n.nspname AS schema, c.relname AS table_name, con.conname AS constraint_name, "
            "pg_get_constraintdef(con.oid) AS definition, ix.relname AS index_name "
            "FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class ref ON ref.oid = con.confrelid "
            "JOIN pg_namespace rn ON rn.oid = ref.relnamespace JOIN pg_index i ON i.indexrelid = con.conindid "
            "JOIN pg_class ix ON ix.oid = i.indexrelid "
            "WHERE con.contype = 'f' AND rn.nspname = 'auth' AND i.indisunique AND NOT i.indisprimary ORDER BY 1, 2, 3")
        for row in rows:
            table = qualified(row['schema'], row['table_name'])
            self.findings.add('fkey_to_auth_unique', C.CRITICAL, 'foreign key %s on %s (%s) references auth through the '
                              'unique constraint %s, not a primary key: Supabase Auth may change or drop such constraints '
                              'when it upgrades, which then fails or leaves the key without its target; reference the '
                              'primary key (auth.users.id) instead'
                              % (row['constraint_name'], table, row['definition'], row['index_name']),
                              obj='constraint=%s.%s' % (table, row['constraint_name']))
        if not rows:
            self.findings.ok('fkey_to_auth_unique', 'no foreign key references a unique constraint in schema auth')

    def check_public_bucket_allows_listing(self):
        name = 'public_bucket_allows_listing'
        present = self.session.one("SELECT (%s) IS NOT NULL AND (%s) IS NOT NULL AS present"
                                   % (TABLE_OID % ('storage', 'buckets'), TABLE_OID % ('storage', 'objects')))
        if not present['present']:
            self.findings.ok(name, 'no storage.buckets and storage.objects: Supabase Storage is not installed')
            return
        buckets, error = self.try_query("SELECT id::text AS id, name::text AS name FROM storage.buckets WHERE public "
                                        "ORDER BY 1")
        if buckets is None:
            self.findings.unknown(name, 'cannot read storage.buckets as %s (%s)' % (self.facts['login_role'], error))
            return
        audience = set(self.params['api_roles']) | {'public'}
        policies = self.session.query(
            "SELECT p.polname AS policy, ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END "
            "FROM unnest(p.polroles) r) AS roles, pg_get_expr(p.polqual, p.polrelid) AS using_expr "
            "FROM pg_policy p WHERE p.polrelid = (%s) AND p.polpermissive AND p.polcmd IN ('r', '*') ORDER BY 1"
            % TABLE_OID % ('storage', 'objects'))
        policies = [p for p in policies if audience & set(p['roles'])]
        fired = False
        for bucket in buckets:
            listing = [p['policy'] for p in policies if lists_bucket(p['using_expr'], bucket['id'])]
            if not listing:
                continue
            fired = True
            self.findings.add(name, C.WARNING, 'public bucket %s has %d SELECT polic%s on storage.objects (%s) that let '
                              'clients list every file in it; a public bucket serves its files by URL without them, so '
                              'drop the polic%s or narrow them to what clients must list'
                              % (bucket['name'], len(listing), 'y' if len(listing) == 1 else 'ies', ', '.join(listing),
                                 'y' if len(listing) == 1 else 'ies'), obj='bucket=%s' % bucket['id'], policies=listing)
        if not fired:
            self.findings.ok(name, '%d public bucket(s), none listable through a broad SELECT policy' % len(buckets),
                             value=len(buckets))

    # -- pg_graphql (0026, 0027) --------------------------------------------------------------------------------
    def _graphql_lint(self, name, role, audience):
        installed = self.session.one("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_graphql') AS yes")
        if not installed['yes']:
            self.findings.ok(name, 'pg_graphql is not installed: there is no GraphQL schema to introspect')
            return
        if not self._role_exists(role):
            self.findings.ok(name, 'role %s does not exist' % role)
            return
        rows = self.session.query(
            "SELECT n.nspname AS schema, c.relname AS name, c.relkind FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v', 'm', 'f') "
            "AND n.nspname !~ ALL(%s) AND has_any_column_privilege(%s::name, c.oid, 'SELECT') ORDER BY 1, 2",
            (self.exclude.regexes, role))
        for row in rows:
            row['readers'] = [role]
        self._relation_lint(name, C.WARNING, rows,
                            '%%(kind)s %%(name)s is visible in the GraphQL schema (pg_graphql introspection) to %s, because '
                            '%s can SELECT it or some of its columns; REVOKE SELECT ON %%(name)s FROM %s if it should not '
                            'be discoverable%s' % (audience, role, role, ' without signing in' if role == 'anon' else
                                                   ' by every account'),
                            'no table or view is visible to %s in the GraphQL schema' % role)

    def check_pg_graphql_anon_table_exposed(self):
        self._graphql_lint('pg_graphql_anon_table_exposed', 'anon', 'anyone with the public anon key')

    def check_pg_graphql_authenticated_table_exposed(self):
        self._graphql_lint('pg_graphql_authenticated_table_exposed', 'authenticated', 'every signed-in user')

    # -- SECURITY DEFINER functions the API serves (0028, 0029) --------------------------------------------------
    def _definer_function_lint(self, name, role, audience):
        if not self._role_exists(role):
            self.findings.ok(name, 'role %s does not exist' % role)
            return
        schemas, _source = self.exposed_schemas()
        rows = self.session.query(
            "SELECT n.nspname AS schema, p.proname AS name, pg_get_function_identity_arguments(p.oid) AS args "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prosecdef "
            "AND n.nspname = ANY(%s) AND n.nspname !~ ALL(%s) AND has_function_privilege(%s::name, p.oid, 'EXECUTE') "
            "ORDER BY 1, 2, 3", (schemas, self.exclude.regexes, role))
        for row in rows:
            signature = _function(row)
            self.findings.add(name, C.WARNING, 'SECURITY DEFINER function %s can be called by %s through the API '
                              '(/rest/v1/rpc/%s) and runs with its owner\'s rights, past row-level security; REVOKE EXECUTE '
                              'ON FUNCTION %s FROM %s, PUBLIC, or make it SECURITY INVOKER, unless %s is meant to call it'
                              % (signature, audience, row['name'], signature, role, role), obj='function=%s' % signature)
        if not rows:
            self.findings.ok(name, '%s can execute no SECURITY DEFINER function in %s' % (role, self._exposed_text()))

    def check_anon_security_definer_function_executable(self):
        self._definer_function_lint('anon_security_definer_function_executable', 'anon',
                                    'anyone with the public anon key (role anon)')

    def check_authenticated_security_definer_function_executable(self):
        self._definer_function_lint('authenticated_security_definer_function_executable', 'authenticated',
                                    'every signed-in user (role authenticated)')
