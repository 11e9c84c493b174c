# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_audit_info's security lints of Supabase's linter (splinter) against real PostgreSQL 18 and 15 servers, in a
Supabase-like database: each fires for a real condition, with splinter's level, and stays quiet for its clean
counterpart; where the exposed schemas come from (pgrst.db_schemas, the authenticator role, the option); the
scope splinter gives each lint; the old name ``security_definer_search_path``."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest
from test_pg_audit_info import Db, drop_roles, findings, fired, quiet

from supabase_like import drop_api_roles, pgmq_like, supabase_like

API_FUNCTION_LINTS = ['anon_security_definer_function_executable', 'authenticated_security_definer_function_executable']
GRAPHQL_LINTS = ['pg_graphql_anon_table_exposed', 'pg_graphql_authenticated_table_exposed']


@pytest.fixture(scope='module')
def lint_server(spawn_server):
    """A server of its own: these tests create the cluster-wide API roles and drop them again."""
    return spawn_server()


@pytest.fixture
def ldb(lint_server):
    name = 's_' + uuid.uuid4().hex[:10]
    lint_server.execute('CREATE DATABASE %s' % name)
    yield Db(lint_server, name)
    lint_server.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
    # Each test starts without the API roles (and their settings), so "the roles do not exist" is testable in any order.
    drop_api_roles(lint_server)


def objects(result, name):
    return sorted(c['object'] for c in findings(result, name) if c['status'] != 'ok')


def install_test_extension(db, name, script='SELECT 1;', version='1.0'):
    """CREATE EXTENSION ``name`` from a control file and script written for this test only, without touching the
    server's installation. PostgreSQL 18 looks for control files in the ``extension`` directory under each entry of
    ``extension_control_path`` (set for this one session, with ``$system`` kept after ours); PostgreSQL 15 has no
    such path, but Debian's build adds ``extension_destdir``, a directory prepended to the server's own share
    directory (read from pg_config). Both are superuser settings of the session that creates the extension; once
    created, the extension is in the catalogue and the files are no longer needed, so they are removed at once."""
    base = tempfile.mkdtemp(prefix='appcare-ext-')
    try:
        os.chmod(base, 0o755)  # the server runs as an unprivileged account
        if int(db.sql('SHOW server_version_num')[0][0]) >= 180000:
            directory, setting = base + '/extension', "SET extension_control_path = '%s:$system'" % base
        else:
            if not db.sql("SELECT 1 FROM pg_settings WHERE name = 'extension_destdir'"):
                pytest.skip('this PostgreSQL has neither extension_control_path nor Debian\'s extension_destdir')
            sharedir = db.sql("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'")[0][0]
            directory, setting = base + sharedir + '/extension', "SET extension_destdir = '%s'" % base
        os.makedirs(directory, exist_ok=True)
        for root, _dirs, _files in os.walk(base):
            os.chmod(root, 0o755)
        with open(os.path.join(directory, name + '.control'), 'w') as handle:
            handle.write("comment = 'test-only stand-in'\ndefault_version = '%s'\nrelocatable = true\n" % version)
        with open(os.path.join(directory, '%s--%s.sql' % (name, version)), 'w') as handle:
            handle.write(script + '\n')
        for root, _dirs, files in os.walk(base):
            for file_name in files:
                os.chmod(os.path.join(root, file_name), 0o644)
        db.sql('%s; CREATE EXTENSION %s' % (setting, name))
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- where the exposed schemas come from ------------------------------------------------------------------

def test_exposed_schemas_from_pgrst_db_schemas_then_authenticator_then_option(ldb):
    supabase_like(ldb)
    ldb.sql('CREATE SCHEMA api')
    ldb.sql('GRANT USAGE ON SCHEMA api TO anon, authenticated')
    ldb.sql('CREATE TABLE api.orders (id int PRIMARY KEY, total numeric)')
    ldb.sql('GRANT SELECT ON api.orders TO anon')
    checks = ['rls_disabled_in_public']
    default = ldb.run(checks=checks)
    assert default['exposed_schemas'] == {'schemas': ['public'], 'source': 'option'}
    assert 'public (from exposed_schemas)' in quiet(default, 'rls_disabled_in_public')['message']

    ldb.sql("ALTER DATABASE %s SET pgrst.db_schemas = ' public , api ,, public'" % ldb.name)
    from_setting = ldb.run(checks=checks)
    assert from_setting['exposed_schemas'] == {'schemas': ['public', 'api'], 'source': 'setting'}
    assert fired(from_setting, 'rls_disabled_in_public', 'table=api.orders')['status'] == 'critical'

    # A blank setting names no schema: the module falls back rather than lint nothing.
    ldb.sql("ALTER DATABASE %s SET pgrst.db_schemas = ' '" % ldb.name)
    ldb.sql("ALTER ROLE authenticator IN DATABASE %s SET pgrst.db_schemas = 'api'" % ldb.name)
    from_role = ldb.run(checks=checks)
    assert from_role['exposed_schemas'] == {'schemas': ['api'], 'source': 'authenticator'}
    assert fired(from_role, 'rls_disabled_in_public', 'table=api.orders')

    ldb.sql('ALTER ROLE authenticator IN DATABASE %s RESET pgrst.db_schemas' % ldb.name)
    assert ldb.run(checks=checks)['exposed_schemas'] == {'schemas': ['public'], 'source': 'option'}
    assert ldb.run(checks=checks, exposed_schemas=['api'])['exposed_schemas']['source'] == 'option'


# --- function_search_path_mutable (0011), and its old name ------------------------------------------------

def test_function_search_path_mutable_covers_every_function_once(ldb):
    ldb.sql("CREATE FUNCTION public.fixed(int) RETURNS int LANGUAGE sql SET search_path = '' AS $$ SELECT $1 $$")
    ldb.sql("CREATE AGGREGATE public.total(int) (SFUNC = int4pl, STYPE = int)")  # cannot have a search_path
    ldb.sql('CREATE EXTENSION hstore')  # its functions have none, but belong to the extension
    quiet(ldb.run(checks=['function_search_path_mutable']), 'function_search_path_mutable')

    ldb.sql('CREATE FUNCTION public.add_tax(numeric) RETURNS numeric LANGUAGE sql AS $$ SELECT $1 * 1.2 $$')
    ldb.sql('CREATE FUNCTION public.grant_admin(uuid) RETURNS void LANGUAGE sql SECURITY DEFINER AS $$ SELECT $$')
    ldb.sql('CREATE PROCEDURE public.archive() LANGUAGE sql AS $$ SELECT 1 $$')
    result = ldb.run(checks=['function_search_path_mutable'])
    assert objects(result, 'function_search_path_mutable') == [
        'function=public.add_tax(numeric)', 'function=public.archive()', 'function=public.grant_admin(uuid)']
    invoker = fired(result, 'function_search_path_mutable', 'function=public.add_tax(numeric)')
    assert invoker['status'] == 'warning' and invoker['security_definer'] is False
    assert 'SECURITY DEFINER' not in invoker['message']
    definer = fired(result, 'function_search_path_mutable', 'function=public.grant_admin(uuid)')
    assert definer['status'] == 'warning' and definer['security_definer'] is True
    assert definer['message'].startswith('SECURITY DEFINER function public.grant_admin(uuid)'), definer
    assert 'ALTER PROCEDURE public.archive()' in fired(result, 'function_search_path_mutable',
                                                       'function=public.archive()')['message']

    old = ldb.run(checks=['security_definer_search_path', 'function_search_path_mutable'])
    assert old.rc == 0, old.raw
    assert objects(old, 'function_search_path_mutable') == objects(result, 'function_search_path_mutable')
    assert not findings(old, 'security_definer_search_path')
    assert 'checks: security_definer_search_path is now function_search_path_mutable' in str(old['deprecations'])
    assert not ldb.run(checks=['function_search_path_mutable']).get('deprecations')


# --- RLS lints: 0007 and 0008 over every schema, 0013 over the exposed ones ----------------------------------

def test_rls_lints_take_splinter_scope(ldb):
    supabase_like(ldb)
    ldb.sql('CREATE SCHEMA app')
    ldb.sql('CREATE TABLE app.ledger (id int PRIMARY KEY)')
    ldb.sql('ALTER TABLE app.ledger ENABLE ROW LEVEL SECURITY')
    ldb.sql('CREATE POLICY own ON app.ledger USING (true)')
    clean = ldb.run(checks=['policy_exists_rls_disabled', 'rls_enabled_no_policy', 'rls_disabled_in_public'])
    for name in ('policy_exists_rls_disabled', 'rls_enabled_no_policy', 'rls_disabled_in_public'):
        quiet(clean, name)  # storage.objects (RLS, no policy) is Supabase's: excluded

    ldb.sql('CREATE TABLE app.payouts (id int PRIMARY KEY)')                       # not exposed
    ldb.sql('CREATE POLICY nobody ON app.payouts USING (false)')                   # policy, RLS off
    ldb.sql('CREATE TABLE app.audit (id int PRIMARY KEY) PARTITION BY RANGE (id)')
    ldb.sql('ALTER TABLE app.audit ENABLE ROW LEVEL SECURITY')                     # RLS, no policy
    ldb.sql('GRANT USAGE ON SCHEMA app TO anon')
    ldb.sql('CREATE TABLE app.open (id int)')
    ldb.sql('GRANT SELECT ON app.open TO anon')                                   # readable, but app is not exposed
    dirty = ldb.run(checks=['policy_exists_rls_disabled', 'rls_enabled_no_policy', 'rls_disabled_in_public'])
    payouts = fired(dirty, 'policy_exists_rls_disabled', 'table=app.payouts')
    assert payouts['status'] == 'critical' and payouts['policies'] == ['nobody']
    audit = fired(dirty, 'rls_enabled_no_policy', 'table=app.audit')
    assert audit['status'] == 'info' and 'no policy' in audit['message']
    assert objects(dirty, 'rls_enabled_no_policy') == ['table=app.audit']
    quiet(dirty, 'rls_disabled_in_public')
    assert dirty['status'] == 'critical'

    everything = ldb.run(checks=['rls_enabled_no_policy'], exclude_schemas=[])
    assert objects(everything, 'rls_enabled_no_policy') == ['table=app.audit', 'table=storage.objects']
    exposed = ldb.run(checks=['rls_disabled_in_public'], exposed_schemas=['public', 'app'])
    assert objects(exposed, 'rls_disabled_in_public') == ['table=app.open']  # the API roles cannot read payouts
    info_only = ldb.run(checks=['rls_enabled_no_policy'])
    assert info_only['status'] == 'info'  # advice: worse than ok, never a warning


# --- policies: rls_references_user_metadata (0015), rls_policy_always_true (0024) -----------------------------

def test_policy_lints_fire_for_user_metadata_and_always_true_writes(ldb):
    supabase_like(ldb)
    ldb.sql('CREATE TABLE public.docs (id int PRIMARY KEY, owner uuid, body text)')
    ldb.sql('ALTER TABLE public.docs ENABLE ROW LEVEL SECURITY')
    ldb.sql('CREATE POLICY read_all ON public.docs FOR SELECT TO anon USING (true)')          # public reads: meant
    ldb.sql('CREATE POLICY edit_own ON public.docs FOR UPDATE TO authenticated USING (owner = auth.uid()) '
            'WITH CHECK (owner = auth.uid())')
    ldb.sql("CREATE POLICY admins ON public.docs FOR DELETE TO authenticated USING ((auth.jwt() -> 'app_metadata' "
            "->> 'role') = 'admin')")
    ldb.sql('CREATE POLICY service ON public.docs FOR DELETE TO service_role USING (true)')   # not an API audience
    ldb.sql('CREATE POLICY guard ON public.docs AS RESTRICTIVE FOR ALL TO authenticated USING (true)')
    checks = ['rls_references_user_metadata', 'rls_policy_always_true']
    clean = ldb.run(checks=checks)
    for name in checks:
        quiet(clean, name)

    ldb.sql("CREATE POLICY meta_admin ON public.docs FOR UPDATE TO authenticated USING ((auth.jwt() -> "
            "'user_metadata' ->> 'role') = 'admin')")
    ldb.sql("CREATE POLICY meta_claims ON public.docs FOR INSERT TO authenticated WITH CHECK ((current_setting("
            "'request.jwt.claims', true)::jsonb #>> '{user_metadata,team}') = 'ops')")
    ldb.sql("CREATE POLICY meta_table ON public.docs FOR SELECT TO authenticated USING (EXISTS (SELECT 1 FROM auth.users u "
            "WHERE u.id = auth.uid() AND u.raw_user_meta_data ->> 'role' = 'editor'))")
    ldb.sql('CREATE POLICY wipe ON public.docs FOR DELETE TO authenticated USING (1 = 1)')
    ldb.sql('CREATE POLICY post ON public.docs FOR INSERT TO anon WITH CHECK (true)')
    ldb.sql('CREATE POLICY everything ON public.docs FOR ALL USING (true)')                 # TO PUBLIC
    dirty = ldb.run(checks=checks)
    assert objects(dirty, 'rls_references_user_metadata') == [
        'policy=public.docs.meta_admin', 'policy=public.docs.meta_claims', 'policy=public.docs.meta_table']
    assert set(c['status'] for c in findings(dirty, 'rls_references_user_metadata')) == {'critical'}
    assert objects(dirty, 'rls_policy_always_true') == [
        'policy=public.docs.everything', 'policy=public.docs.post', 'policy=public.docs.wipe']
    wipe = fired(dirty, 'rls_policy_always_true', 'policy=public.docs.wipe')
    assert wipe['status'] == 'warning' and wipe['command'] == 'DELETE' and '(USING always true)' in wipe['message']
    assert '(USING and WITH CHECK always true)' in fired(dirty, 'rls_policy_always_true',
                                                         'policy=public.docs.everything')['message']
    assert '(WITH CHECK always true)' in fired(dirty, 'rls_policy_always_true', 'policy=public.docs.post')['message']


# --- relations the API serves: 0016, 0017, 0023 ----------------------------------------------------------------

def test_materialized_views_foreign_tables_and_sensitive_columns_in_api(ldb):
    supabase_like(ldb)
    ldb.sql('CREATE FOREIGN DATA WRAPPER test_fdw')  # no handler needed to define foreign tables
    ldb.sql('CREATE SERVER test_remote FOREIGN DATA WRAPPER test_fdw')
    ldb.sql('CREATE TABLE public.accounts (id int PRIMARY KEY, email text, "Password" text, "API-Key" text)')
    ldb.sql('ALTER TABLE public.accounts ENABLE ROW LEVEL SECURITY')
    ldb.sql('CREATE MATERIALIZED VIEW public.daily_totals AS SELECT 1 AS total')
    ldb.sql('REVOKE ALL ON public.daily_totals FROM anon, authenticated')
    ldb.sql('CREATE FOREIGN TABLE public.remote_orders (id int) SERVER test_remote')
    ldb.sql('REVOKE ALL ON public.remote_orders FROM anon, authenticated')
    ldb.sql('CREATE TABLE public.articles (id int PRIMARY KEY, token_count int)')  # readable, nothing sensitive
    checks = ['materialized_view_in_api', 'foreign_table_in_api', 'sensitive_columns_exposed']
    clean = ldb.run(checks=checks)
    for name in checks:
        quiet(clean, name)

    ldb.sql('GRANT SELECT ON public.daily_totals TO authenticated')
    ldb.sql('GRANT SELECT ON public.remote_orders TO anon')
    ldb.sql('ALTER TABLE public.accounts DISABLE ROW LEVEL SECURITY')
    ldb.sql('CREATE SCHEMA app')
    ldb.sql('CREATE MATERIALIZED VIEW app.hidden AS SELECT 1 AS n')
    ldb.sql('GRANT USAGE ON SCHEMA app TO anon')
    ldb.sql('GRANT SELECT ON app.hidden TO anon')                             # readable, but app is not exposed
    dirty = ldb.run(checks=checks)
    matview = fired(dirty, 'materialized_view_in_api', 'view=public.daily_totals')
    assert matview['status'] == 'warning' and 'readable by authenticated' in matview['message']
    assert objects(dirty, 'materialized_view_in_api') == ['view=public.daily_totals']
    foreign = fired(dirty, 'foreign_table_in_api', 'table=public.remote_orders')
    assert foreign['status'] == 'warning' and 'foreign table public.remote_orders' in foreign['message']
    sensitive = fired(dirty, 'sensitive_columns_exposed', 'table=public.accounts')
    assert sensitive['status'] == 'critical' and sensitive['columns'] == ['Password', 'API-Key']
    assert objects(dirty, 'sensitive_columns_exposed') == ['table=public.accounts']


# --- insecure_queue_exposed_in_api (0019) ---------------------------------------------------------------------

def test_insecure_queue_exposed_only_when_pgmq_public_is(ldb):
    supabase_like(ldb)
    pgmq_like(ldb, 'orders')
    hidden = quiet(ldb.run(checks=['insecure_queue_exposed_in_api']), 'insecure_queue_exposed_in_api')
    assert 'pgmq_public is not exposed' in hidden['message']

    ldb.sql("ALTER DATABASE %s SET pgrst.db_schemas = 'public, graphql_public, pgmq_public'" % ldb.name)
    exposed = ldb.run(checks=['insecure_queue_exposed_in_api'])
    queue = fired(exposed, 'insecure_queue_exposed_in_api', 'table=pgmq.q_orders')
    assert queue['status'] == 'critical'
    assert objects(exposed, 'insecure_queue_exposed_in_api') == ['table=pgmq.q_orders']  # not the archive

    ldb.sql('ALTER TABLE pgmq.q_orders ENABLE ROW LEVEL SECURITY')
    quiet(ldb.run(checks=['insecure_queue_exposed_in_api']), 'insecure_queue_exposed_in_api')


# --- fkey_to_auth_unique (0021) --------------------------------------------------------------------------------

def test_fkey_to_auth_unique_constraint(ldb):
    supabase_like(ldb)
    ldb.sql('ALTER TABLE auth.users ADD COLUMN phone text UNIQUE')  # as Supabase Auth's users_phone_key
    ldb.sql('CREATE TABLE public.profiles (id uuid PRIMARY KEY REFERENCES auth.users (id))')
    quiet(ldb.run(checks=['fkey_to_auth_unique']), 'fkey_to_auth_unique')

    ldb.sql('CREATE TABLE public.contacts (phone text CONSTRAINT contacts_phone_fkey REFERENCES auth.users (phone))')
    hit = fired(ldb.run(checks=['fkey_to_auth_unique']), 'fkey_to_auth_unique',
                'constraint=public.contacts.contacts_phone_fkey')
    assert hit['status'] == 'critical' and 'users_phone_key' in hit['message'], hit


# --- public_bucket_allows_listing (0025) ---------------------------------------------------------------------

def test_public_bucket_allows_listing(ldb):
    name = 'public_bucket_allows_listing'
    assert 'Storage is not installed' in quiet(ldb.run(checks=[name]), name)['message']
    supabase_like(ldb)
    ldb.sql("INSERT INTO storage.buckets (id, name, public) VALUES ('avatars', 'avatars', true), "
            "('docs', 'docs', false), ('it''s', 'it''s', true)")
    ldb.sql("CREATE POLICY docs_read ON storage.objects FOR SELECT TO authenticated USING (bucket_id = 'docs')")
    ldb.sql("CREATE POLICY own_avatar ON storage.objects FOR SELECT TO authenticated USING (bucket_id = 'avatars' "
            "AND owner = auth.uid())")
    ldb.sql("CREATE POLICY upload ON storage.objects FOR INSERT TO authenticated WITH CHECK (bucket_id = 'avatars')")
    clean = quiet(ldb.run(checks=[name]), name)
    assert clean['value'] == 2  # two public buckets, neither listable

    ldb.sql("CREATE POLICY list_avatars ON storage.objects FOR SELECT USING (bucket_id = 'avatars')")
    ldb.sql("CREATE POLICY list_quoted ON storage.objects FOR SELECT TO anon USING ((bucket_id)::text = 'it''s')")
    dirty = ldb.run(checks=[name])
    avatars = fired(dirty, name, 'bucket=avatars')
    assert avatars['status'] == 'warning' and avatars['policies'] == ['list_avatars']
    assert fired(dirty, name, "bucket=it's")['policies'] == ['list_quoted']
    assert objects(dirty, name) == ['bucket=avatars', "bucket=it's"]  # not the private one

    try:
        ldb.sql("CREATE ROLE lint_monitor LOGIN PASSWORD 'lint-monitor-pw' IN ROLE pg_monitor")
        blind = ldb.run(checks=[name], login_user='lint_monitor', login_password='lint-monitor-pw')
        check = blind.check(name)
        assert check['status'] == 'unknown' and 'cannot read storage.buckets as lint_monitor' in check['message']
    finally:
        drop_roles(ldb, 'lint_monitor')


# --- pg_graphql_anon/authenticated_table_exposed (0026, 0027) -------------------------------------------------

def test_pg_graphql_lints_need_the_extension_and_a_select_grant(ldb):
    supabase_like(ldb)
    ldb.sql('CREATE TABLE public.posts (id int PRIMARY KEY, title text, draft text)')  # default grants: both roles
    absent = ldb.run(checks=GRAPHQL_LINTS)
    for name in GRAPHQL_LINTS:
        assert 'pg_graphql is not installed' in quiet(absent, name)['message']

    install_test_extension(ldb, 'pg_graphql', 'CREATE SCHEMA graphql;')
    both = ldb.run(checks=GRAPHQL_LINTS)
    for name in GRAPHQL_LINTS:
        assert objects(both, name) == ['table=public.posts'], findings(both, name)
        assert fired(both, name, 'table=public.posts')['status'] == 'warning'

    ldb.sql('REVOKE ALL ON public.posts FROM anon')
    ldb.sql('REVOKE ALL ON public.posts FROM authenticated')
    ldb.sql('GRANT SELECT (id, title) ON public.posts TO authenticated')  # a column grant is enough to be listed
    split = ldb.run(checks=GRAPHQL_LINTS)
    quiet(split, 'pg_graphql_anon_table_exposed')
    assert objects(split, 'pg_graphql_authenticated_table_exposed') == ['table=public.posts']


# --- anon/authenticated_security_definer_function_executable (0028, 0029) -------------------------------------

def test_security_definer_functions_the_api_roles_can_execute(ldb):
    supabase_like(ldb)
    ldb.sql("CREATE FUNCTION public.safe(int) RETURNS int LANGUAGE sql SET search_path = '' AS $$ SELECT $1 $$")
    ldb.sql('CREATE SCHEMA app')
    ldb.sql("CREATE FUNCTION app.promote(uuid) RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = '' "
            "AS $$ SELECT $$")  # EXECUTE for PUBLIC, but app is not exposed
    clean = ldb.run(checks=API_FUNCTION_LINTS)
    for name in API_FUNCTION_LINTS:
        quiet(clean, name)

    ldb.sql("CREATE FUNCTION public.delete_user(uuid) RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = '' "
            "AS $$ SELECT $$")
    both = ldb.run(checks=API_FUNCTION_LINTS)
    for name in API_FUNCTION_LINTS:
        assert objects(both, name) == ['function=public.delete_user(uuid)'], findings(both, name)
        assert fired(both, name, 'function=public.delete_user(uuid)')['status'] == 'warning'
    assert '/rest/v1/rpc/delete_user' in fired(both, 'anon_security_definer_function_executable',
                                               'function=public.delete_user(uuid)')['message']

    ldb.sql('REVOKE EXECUTE ON FUNCTION public.delete_user(uuid) FROM PUBLIC, anon')
    signed_in = ldb.run(checks=API_FUNCTION_LINTS)
    quiet(signed_in, 'anon_security_definer_function_executable')
    assert objects(signed_in, 'authenticated_security_definer_function_executable') == [
        'function=public.delete_user(uuid)']


# --- extension_versions_outdated (0022), unsupported_reg_types (0018) -------------------------------------------

def test_extension_versions_outdated(ldb):
    ldb.sql('CREATE EXTENSION hstore')
    quiet(ldb.run(checks=['extension_versions_outdated']), 'extension_versions_outdated')
    ldb.sql('DROP EXTENSION hstore')
    ldb.sql("CREATE EXTENSION hstore VERSION '1.4'")  # an old version the server still has an update path from
    old = fired(ldb.run(checks=['extension_versions_outdated']), 'extension_versions_outdated', 'extension=hstore')
    assert old['status'] == 'warning' and old['installed_version'] == '1.4', old
    assert old['default_version'] != '1.4' and 'ALTER EXTENSION hstore UPDATE' in old['message']
    ldb.sql('ALTER EXTENSION hstore UPDATE')
    quiet(ldb.run(checks=['extension_versions_outdated']), 'extension_versions_outdated')


def test_unsupported_reg_types_in_any_user_schema(ldb):
    ldb.sql('CREATE TABLE public.catalogue_refs (rel regclass, typ regtype, who regrole)')  # pg_upgrade keeps these
    quiet(ldb.run(checks=['unsupported_reg_types']), 'unsupported_reg_types')

    ldb.sql('CREATE TABLE public.jobs (id int, handler regproc, spaces regnamespace[])')
    ldb.sql('CREATE SCHEMA auth')  # Supabase's, excluded from other lints, but pg_upgrade checks it too
    ldb.sql('CREATE TABLE auth.hooks (fn regprocedure)')
    result = ldb.run(checks=['unsupported_reg_types'])
    assert objects(result, 'unsupported_reg_types') == [
        'column=auth.hooks.fn', 'column=public.jobs.handler', 'column=public.jobs.spaces']
    handler = fired(result, 'unsupported_reg_types', 'column=public.jobs.handler')
    assert handler['status'] == 'warning' and 'type regproc' in handler['message']


# --- without the API roles ----------------------------------------------------------------------------------------

def test_api_lints_do_not_apply_without_the_api_roles(ldb):
    ldb.sql('CREATE TABLE public.notes (id int, password text)')
    ldb.sql('GRANT SELECT ON public.notes TO PUBLIC')
    ldb.sql('CREATE MATERIALIZED VIEW public.counts AS SELECT 1 AS n')
    ldb.sql('GRANT SELECT ON public.counts TO PUBLIC')
    ldb.sql("CREATE FUNCTION public.wipe() RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = '' AS $$ SELECT $$")
    install_test_extension(ldb, 'pg_graphql')
    lints = ['rls_disabled_in_public', 'materialized_view_in_api', 'sensitive_columns_exposed', 'security_definer_view',
             'foreign_table_in_api', 'insecure_queue_exposed_in_api', 'auth_users_exposed']
    result = ldb.run(checks=lints + API_FUNCTION_LINTS + GRAPHQL_LINTS)
    for name in lints:
        assert 'none of the API roles' in quiet(result, name)['message']
    for name in API_FUNCTION_LINTS + GRAPHQL_LINTS:
        assert 'does not exist' in quiet(result, name)['message']
