# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_audit_info against real PostgreSQL 18 and 15 servers: every finding fires for a real condition and
stays quiet for its clean counterpart; a Supabase-like database for the API and auth-event findings; real
failed logins in a real server log; a baseline diff; an audit as a pg_monitor role."""

from __future__ import annotations

import json
import os
import uuid

import psycopg2
import pytest

from pgserver import SUPERUSER_PASSWORD
from supabase_like import supabase_like

ROLE_CHECKS = ['superusers', 'privileged_roles', 'password_hashes', 'passwordless_logins', 'untrusted_languages']


@pytest.fixture(scope='module')
def audit_server(spawn_server):
    """A server of its own: these tests create cluster-wide roles and change server settings."""
    return spawn_server()


class Db(object):
    def __init__(self, server, name):
        self.server = server
        self.name = name

    def sql(self, statement, args=None):
        return self.server.execute(statement, self.name, args)

    def args(self, **overrides):
        return dict(self.server.login_args(self.name), **overrides)

    def run(self, **overrides):
        from modrunner import run_module  # noqa: PLC0415 - keeps the import next to its only use
        return run_module('pg_audit_info', self.args(**overrides))


@pytest.fixture
def db(audit_server):
    name = 'a_' + uuid.uuid4().hex[:10]
    audit_server.execute('CREATE DATABASE %s' % name)
    yield Db(audit_server, name)
    audit_server.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)


def findings(result, name):
    return [c for c in result['checks'] if c['name'] == name]


def statuses(result, name):
    return sorted(set(c['status'] for c in findings(result, name)))


def fired(result, name, obj):
    hits = [c for c in findings(result, name) if c['object'] == obj]
    assert hits, 'expected %s to fire for %s: %s' % (name, obj, findings(result, name))
    return hits[0]


def quiet(result, name):
    got = findings(result, name)
    assert len(got) == 1 and got[0]['status'] == 'ok', got
    return got[0]


def drop_roles(db, *names):
    for name in names:
        db.sql("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
               "EXECUTE 'DROP OWNED BY %s'; EXECUTE 'DROP ROLE %s'; END IF; END $$" % (name, name, name))


# --- roles ----------------------------------------------------------------------------------------

def test_roles_clean_then_each_role_finding_fires(db):
    clean = db.run(checks=ROLE_CHECKS)
    assert clean.rc == 0, clean.raw
    for name in ROLE_CHECKS:
        quiet(clean, name)
    try:
        db.sql('CREATE ROLE intruder SUPERUSER LOGIN')
        db.sql('CREATE ROLE builder CREATEDB CREATEROLE')
        db.sql("SET password_encryption = 'md5'; CREATE ROLE legacy LOGIN PASSWORD 'legacy-pw-123'")
        db.sql('CREATE LANGUAGE plrisky HANDLER plpgsql_call_handler')
        dirty = db.run(checks=ROLE_CHECKS)
        assert fired(dirty, 'superusers', 'role=intruder')['status'] == 'critical'
        builder = fired(dirty, 'privileged_roles', 'role=builder')
        assert builder['status'] == 'warning' and builder['attributes'] == ['CREATEROLE', 'CREATEDB']
        legacy = fired(dirty, 'password_hashes', 'role=legacy')
        assert legacy['status'] == 'warning' and legacy['hash'] == 'md5'
        assert fired(dirty, 'untrusted_languages', 'language=plrisky')['status'] == 'warning'
        assert 'legacy-pw-123' not in dirty.raw  # the kind of hash is reported, never the password or the hash
        stored = db.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'legacy'")[0][0]
        assert stored not in dirty.raw
        allowed = db.run(checks=['superusers', 'privileged_roles'], allowed_superusers=['postgres', 'intruder'],
                         allowed_privileged_roles=['builder'])
        quiet(allowed, 'superusers')
        quiet(allowed, 'privileged_roles')
    finally:
        db.sql('DROP LANGUAGE IF EXISTS plrisky')
        drop_roles(db, 'intruder', 'builder', 'legacy')


def test_passwordless_login_reachable_through_trust_and_hba_rules(db):
    hba = os.path.join(db.server.datadir, 'pg_hba.conf')
    with open(hba) as handle:
        original = handle.read()
    quiet_run = db.run(checks=['hba_rules', 'passwordless_logins'])
    quiet(quiet_run, 'hba_rules')
    quiet(quiet_run, 'passwordless_logins')
    try:
        db.sql('CREATE ROLE nopass LOGIN')
        with open(hba, 'w') as handle:
            handle.write('host all nopass 127.0.0.1/32 trust\n'
                         'host all app 0.0.0.0/0 md5\n'
                         'hostnossl all web 10.0.0.0/8 md5\n'
                         'host all all 192.168.0.0/16 password\n'
                         'host all all 10.1.0.0/16 scram-sha-256\n' + original)
        result = db.run(checks=['hba_rules', 'passwordless_logins'])
        assert result.rc == 0, result.raw
        # trust on 127.0.0.1/32 admits local users only: a warning, not a network-wide critical
        assert fired(result, 'passwordless_logins', 'role=nopass')['status'] == 'warning'
        rules = dict((c['object'], c) for c in findings(result, 'hba_rules'))
        assert rules['hba_line=1']['status'] == 'warning' and 'trust' in rules['hba_line=1']['message']
        assert rules['hba_line=2']['status'] == 'warning' and 'open to every address' in rules['hba_line=2']['message']
        assert rules['hba_line=3']['status'] == 'warning' and 'md5 accepts' in rules['hba_line=3']['message']
        assert 'clear text' in rules['hba_line=4']['message']
        assert rules['hba_line=4']['status'] == 'critical'
        assert 'hba_line=5' not in rules  # scram on a private network: fine
    finally:
        with open(hba, 'w') as handle:
            handle.write(original)
        drop_roles(db, 'nopass')


# --- server settings --------------------------------------------------------------------------------

def test_server_settings_fire_and_clear(db):
    server_checks = ['ssl', 'password_encryption', 'log_connections', 'log_disconnections']
    try:
        db.sql("ALTER SYSTEM SET password_encryption = 'md5'")
        db.sql('ALTER SYSTEM SET log_connections = off')
        db.sql('ALTER SYSTEM SET log_disconnections = off')
        db.sql('SELECT pg_reload_conf()')
        loose = db.run(checks=server_checks)
        for name in server_checks:
            assert statuses(loose, name) == ['warning'], findings(loose, name)
        db.sql("ALTER SYSTEM SET password_encryption = 'scram-sha-256'")
        db.sql("ALTER SYSTEM SET log_connections = 'on'")
        db.sql('ALTER SYSTEM SET log_disconnections = on')
        db.sql('SELECT pg_reload_conf()')
        strict = db.run(checks=server_checks)
        for name in ('password_encryption', 'log_connections', 'log_disconnections'):
            quiet(strict, name)
    finally:
        db.sql('ALTER SYSTEM RESET ALL')
        db.sql('SELECT pg_reload_conf()')


def test_ssl_on_is_quiet(spawn_server, pg_version):
    if pg_version == '18':
        pytest.skip('the embedded PostgreSQL 18 build has no SSL support; covered on the distribution server')
    srv = spawn_server(tls=True)
    result = Db(srv, 'postgres').run(checks=['ssl'])
    quiet(result, 'ssl')


# --- schemas and objects ------------------------------------------------------------------------------

def test_object_hygiene_fires_and_clears(db):
    checks = ['public_schema_create', 'function_search_path_mutable', 'extension_in_public']
    clean = db.run(checks=checks)
    for name in checks:
        quiet(clean, name)
    db.sql('GRANT CREATE ON SCHEMA public TO PUBLIC')
    db.sql('CREATE FUNCTION public.raise_salary(int) RETURNS int LANGUAGE sql SECURITY DEFINER AS $$ SELECT $1 $$')
    db.sql("CREATE FUNCTION public.safe_definer(int) RETURNS int LANGUAGE sql SECURITY DEFINER "
           "SET search_path = '' AS $$ SELECT $1 $$")
    db.sql('CREATE EXTENSION pg_stat_statements SCHEMA public')
    dirty = db.run(checks=checks)
    assert fired(dirty, 'public_schema_create', 'schema=public')['status'] == 'warning'
    assert fired(dirty, 'function_search_path_mutable', 'function=public.raise_salary(integer)')
    assert len(findings(dirty, 'function_search_path_mutable')) == 1  # the one with search_path is fine
    assert fired(dirty, 'extension_in_public', 'extension=pg_stat_statements')['status'] == 'warning'


def test_functions_of_supabase_managed_schemas_are_not_linted(db):
    # pgmq and _supavisor belong to the platform (the Supabase CLI's internal schemas), like auth
    for schema in ('pgmq', '_supavisor'):
        db.sql('CREATE SCHEMA %s' % schema)
        db.sql('CREATE FUNCTION %s.send(int) RETURNS int LANGUAGE sql SECURITY DEFINER AS $$ SELECT $1 $$' % schema)
    checks = ['function_search_path_mutable']
    quiet(db.run(checks=checks), 'function_search_path_mutable')
    everything = db.run(checks=checks, exclude_schemas=[])
    assert fired(everything, 'function_search_path_mutable', 'function=pgmq.send(integer)')
    assert fired(everything, 'function_search_path_mutable', 'function=_supavisor.send(integer)')
    patterned = db.run(checks=checks, exclude_schemas=['_*'])  # a wildcard, matched in SQL
    assert [c['object'] for c in findings(patterned, 'function_search_path_mutable')] == ['function=pgmq.send(integer)']


# --- Supabase / PostgREST exposure --------------------------------------------------------------------

def test_api_exposure_findings_fire_for_exposed_tables_and_views(db):
    supabase_like(db)
    db.sql('CREATE TABLE public.profiles (id uuid PRIMARY KEY, owner uuid, bio text)')
    db.sql('ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY')
    db.sql('CREATE POLICY own_profile ON public.profiles FOR SELECT USING (true)')
    db.sql("CREATE VIEW public.safe_profiles WITH (security_invoker = on) AS SELECT id, bio FROM public.profiles")
    clean = db.run()
    assert clean.rc == 0, clean.raw
    for name in ('rls_disabled_in_public', 'policy_exists_rls_disabled', 'rls_enabled_no_policy',
                 'security_definer_view', 'auth_users_exposed'):
        quiet(clean, name)

    db.sql('CREATE TABLE public.applications (id int PRIMARY KEY, secret text)')             # RLS off, readable
    db.sql('CREATE TABLE public.notes (id int PRIMARY KEY)')
    db.sql('CREATE POLICY nobody ON public.notes USING (false)')                                # policy, RLS off
    db.sql('CREATE TABLE public.vault_items (id int PRIMARY KEY)')
    db.sql('ALTER TABLE public.vault_items ENABLE ROW LEVEL SECURITY')                          # RLS, no policy
    db.sql('CREATE VIEW public.all_applications AS SELECT * FROM public.applications')         # definer view
    db.sql('CREATE VIEW public.user_emails WITH (security_invoker = on) AS SELECT email FROM auth.users')
    db.sql('GRANT SELECT ON public.user_emails TO anon')
    db.sql('CREATE TABLE public.internal (id int)')
    db.sql('REVOKE ALL ON public.internal FROM anon, authenticated, service_role')              # not exposed
    dirty = db.run()
    assert fired(dirty, 'rls_disabled_in_public', 'table=public.applications')['status'] == 'critical'
    assert 'anon, authenticated' in fired(dirty, 'rls_disabled_in_public', 'table=public.applications')['message']
    assert not [c for c in findings(dirty, 'rls_disabled_in_public') if c['object'] == 'table=public.internal']
    assert fired(dirty, 'policy_exists_rls_disabled', 'table=public.notes')['status'] == 'critical'
    info = fired(dirty, 'rls_enabled_no_policy', 'table=public.vault_items')
    assert info['status'] == 'info' and 'no policy' in info['message']  # splinter's INFO: advice
    assert fired(dirty, 'security_definer_view', 'view=public.all_applications')['status'] == 'critical'
    assert not [c for c in findings(dirty, 'security_definer_view') if 'safe_profiles' in c['object']]
    assert fired(dirty, 'auth_users_exposed', 'view=public.user_emails')['status'] == 'critical'
    assert dirty['status'] == 'critical'

    no_api = db.run(checks=['rls_disabled_in_public', 'security_definer_view'], api_roles=['no_such_role'])
    assert 'none of the API roles' in quiet(no_api, 'rls_disabled_in_public')['message']


def audit_rows(db, rows):
    for minutes_ago, action, address in rows:
        db.sql("INSERT INTO auth.audit_log_entries (id, payload, created_at, ip_address) VALUES "
               "(%s, json_build_object('action', %s::text, 'actor_id', gen_random_uuid(), 'log_type', 'account'), "
               "now() - make_interval(mins => %s), %s)", (str(uuid.uuid4()), action, minutes_ago, address))


def test_supabase_auth_events(db):
    supabase_like(db)
    ten_days = 10 * 24 * 60
    audit_rows(db, [(40 * 24 * 60, 'token_refreshed', '198.51.100.7')])  # history beyond window + lookback
    audit_rows(db, [(ten_days, 'login', '198.51.100.7')] * 3)
    audit_rows(db, [(60, 'login', '198.51.100.7')] * 5 + [(30, 'login', '203.0.113.50')])
    audit_rows(db, [(120, 'token_refreshed', '198.51.100.7')] * 40 + [(120, 'token_revoked', '198.51.100.7')] * 40)
    calm = db.run(checks=['auth_new_addresses', 'auth_repeated_signups', 'auth_signup_burst', 'auth_token_revocations'])
    assert calm.rc == 0, calm.raw
    new = calm.check('auth_new_addresses')
    assert new['value'] == 1 and '203.0.113.50' in new['message'] and new['status'] == 'ok'
    for name in ('auth_repeated_signups', 'auth_signup_burst', 'auth_token_revocations'):
        assert calm.check(name)['status'] == 'ok', calm.check(name)
    assert calm.check('auth_token_revocations')['value'] == 0  # refresh rotation is not counted
    assert calm['auth_events']['actions']['login'] == 6
    assert calm['auth_events']['sign_ins_by_address'][0] == dict(calm['auth_events']['sign_ins_by_address'][0],
                                                                 address='198.51.100.7', sign_ins=5)

    audit_rows(db, [(10, 'user_repeated_signup', '203.0.113.9')] * 12)
    audit_rows(db, [(15, 'user_signedup', '203.0.113.9')] * 60)
    audit_rows(db, [(15, 'token_revoked', '203.0.113.9')] * 70)
    audit_rows(db, [(20, 'login', '192.0.2.%d' % i) for i in range(25)])
    busy = db.run(checks=['auth_new_addresses', 'auth_repeated_signups', 'auth_signup_burst', 'auth_token_revocations'])
    assert busy.check('auth_repeated_signups')['status'] == 'warning' and busy.check('auth_repeated_signups')['value'] == 12
    assert busy.check('auth_signup_burst')['status'] == 'warning' and busy.check('auth_signup_burst')['value'] == 60
    assert busy.check('auth_token_revocations')['status'] == 'warning'
    assert busy.check('auth_token_revocations')['value'] == 70
    assert busy.check('auth_new_addresses')['status'] == 'warning' and busy.check('auth_new_addresses')['value'] == 26


def test_auth_audit_log_empty_while_users_sign_in_is_unknown(db):
    supabase_like(db)
    db.sql("INSERT INTO auth.users (id, email, last_sign_in_at) VALUES (gen_random_uuid(), 'a@example.org', now())")
    result = db.run(checks=['auth_new_addresses'])
    check = result.check('auth_new_addresses')
    assert check['status'] == 'unknown' and 'GOTRUE_AUDIT_LOG_DISABLE_POSTGRES' in check['message']


# --- failed logins from a real server log ---------------------------------------------------------------

def test_failed_logins_from_the_real_server_log(spawn_server, tmp_path):
    srv = spawn_server(settings={'log_connections': 'on'})
    attempts = [('postgres', 9), ('admin', 3), ('root', 2)]
    for user, count in attempts:
        for _attempt in range(count):
            with pytest.raises(psycopg2.OperationalError):
                psycopg2.connect(host='127.0.0.1', port=srv.port, user=user, password='wrong-guess', dbname='postgres')
    result = Db(srv, 'postgres').run(checks=['failed_logins'], log_path=srv.logfile)
    assert result.rc == 0, result.raw
    hit = fired(result, 'failed_logins', 'address=127.0.0.1')
    assert hit['status'] == 'warning' and hit['value'] == 14, hit
    assert hit['users'] == ['admin', 'postgres', 'root'] and 'password guessing' in hit['message']
    assert result['failed_logins']['by_user'] == {'postgres': 9, 'admin': 3, 'root': 2}
    assert 'wrong-guess' not in result.raw

    relaxed = Db(srv, 'postgres').run(checks=['failed_logins'], log_path=srv.logfile,
                                      thresholds={'failed_logins': {'warning': 20, 'critical': 100}})
    assert quiet(relaxed, 'failed_logins')['value'] == 14
    calm_log = tmp_path / 'calm.log'
    calm_log.write_text('2026-11-23 10:00:00.000 UTC [42] LOG:  checkpoint starting: time\n')
    assert quiet(Db(srv, 'postgres').run(checks=['failed_logins'], log_path=str(calm_log)), 'failed_logins')['value'] == 0
    missing = Db(srv, 'postgres').run(checks=['failed_logins'], log_path=str(tmp_path / 'nope.log'))
    assert missing.check('failed_logins')['status'] == 'unknown' and 'does not exist' in missing.check('failed_logins')['message']


# --- access snapshot and baseline diff ---------------------------------------------------------------------

def test_baseline_diff_after_grant_revoke_and_new_superuser(db, tmp_path):
    try:
        db.sql("CREATE ROLE reader LOGIN PASSWORD 'reader-pw'")
        db.sql('CREATE TABLE public.applications (id int)')
        db.sql('CREATE TABLE public.documents (id int)')
        db.sql('GRANT SELECT ON public.documents TO reader')
        first = db.run()
        snapshot = first['snapshot']
        assert snapshot['format'] == 'appcare.access/1'
        assert 'SELECT ON table public.documents TO reader' in snapshot['grants']
        assert snapshot['roles']['reader']['login'] is True
        assert 'reader-pw' not in first.raw and 'SCRAM-SHA-256$' not in first.raw

        same = db.run(baseline=snapshot)
        for name in ('new_superusers', 'roles_added', 'roles_removed', 'role_attributes_changed',
                     'memberships_changed', 'grants_changed'):
            quiet(same, name)

        db.sql('GRANT INSERT, UPDATE ON public.applications TO reader')
        db.sql('REVOKE SELECT ON public.documents FROM reader')
        db.sql('CREATE ROLE boss SUPERUSER LOGIN')
        db.sql('ALTER ROLE reader CONNECTION LIMIT 5')
        db.sql('GRANT pg_monitor TO reader')
        path = tmp_path / 'baseline.json'
        path.write_text(json.dumps(snapshot))
        changed = db.run(baseline=str(path))
        assert changed.check('new_superusers')['status'] == 'critical' and 'boss' in changed.check('new_superusers')['message']
        assert changed['changes']['roles_added'] == ['boss']
        assert changed.check('role_attributes_changed')['status'] == 'warning'
        assert 'reader: connection_limit -1 -> 5' in changed['changes']['role_attributes_changed']
        assert changed['changes']['memberships_changed'] == ['reader: granted pg_monitor']
        assert set(changed['changes']['grants_added']) == {'INSERT ON table public.applications TO reader',
                                                           'UPDATE ON table public.applications TO reader'}
        assert changed['changes']['grants_removed'] == ['SELECT ON table public.documents TO reader']
        assert changed.check('grants_changed')['value'] == 3
    finally:
        drop_roles(db, 'boss', 'reader')


@pytest.mark.parametrize('baseline, message', [
    ({'format': 'something-else'}, 'not an access snapshot'),
    ('/nonexistent/baseline.json', 'does not exist'),
])
def test_bad_baseline_fails_clearly(db, baseline, message):
    result = db.run(baseline=baseline)
    assert result.failed and message in result['msg'], result['msg']


# --- as a monitoring role ----------------------------------------------------------------------------------

def test_audit_as_pg_monitor_role_reports_what_it_cannot_read(db):
    supabase_like(db)
    try:
        db.sql("CREATE ROLE auditor LOGIN PASSWORD 'auditor-pw' IN ROLE pg_monitor")
        result = db.run(login_user='auditor', login_password='auditor-pw')
        assert result.rc == 0, result.raw
        for name in ('password_hashes', 'hba_rules', 'passwordless_logins'):
            check = result.check(name)
            assert check['status'] == 'unknown' and 'auditor' in check['message'], check
        assert 'permission denied' in result.check('hba_rules')['message']
        assert result.check('auth_repeated_signups')['status'] == 'unknown'
        for name in ('superusers', 'privileged_roles', 'public_schema_create', 'rls_disabled_in_public',
                     'function_search_path_mutable', 'rls_policy_always_true', 'anon_security_definer_function_executable',
                     'extension_versions_outdated', 'unsupported_reg_types'):
            assert statuses(result, name) == ['ok'], findings(result, name)
        # the catalogue is readable by anyone; the buckets table is not
        bucket = result.check('public_bucket_allows_listing')
        assert bucket['status'] == 'unknown' and 'cannot read storage.buckets as auditor' in bucket['message'], bucket
        assert result['login'] == dict(result['login'], login_role='auditor', superuser=False)
        assert 'auditor-pw' not in result.raw
    finally:
        drop_roles(db, 'auditor')


def test_unreachable_server_fails_clearly(db):
    result = db.run(login_port=1)
    assert result.failed and 'cannot connect to 127.0.0.1:1' in result['msg']
    assert SUPERUSER_PASSWORD not in result.raw


@pytest.mark.parametrize('options, message', [
    (dict(log_window_hours=0), 'log_window_hours must be more than 0'),
    (dict(thresholds={'failed_logins': {'warning': 50, 'critical': 10}}), 'warning threshold 50 is above'),
    (dict(thresholds={'superusers': {'warning': 1}}), 'not a check with thresholds'),
])
def test_bad_options_fail_clearly(db, options, message):
    result = db.run(**options)
    assert result.failed and message in result['msg'], result['msg']
