# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The least-privilege monitoring role that pg_maintenance_roles creates sees what every daily and weekly check
reads, against real PostgreSQL 18 and 15 servers: a Supabase-like database with application tables, sequences,
pg_stat_statements in schema ``extensions`` and Supabase Auth's audit log; every check of pg_health_info,
pg_inspect_info and pg_audit_info once as a superuser and once as the monitoring role; the monitor gets no
``unknown`` the superuser does not get, except those listed in ONLY_SUPERUSER with the reason. And it gets
nothing more: no application rows, no password hashes, no sequence it could advance."""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from modrunner import run_module
from supabase_like import supabase_like

MONITOR = 'appcare_monitor_t'
MONITOR_PASSWORD = 'monitor-pw-%s' % uuid.uuid4().hex[:8]

# The unknowns the monitor gets and the superuser does not, on purpose (pg_maintenance_roles' documentation and
# the README's section on the roles say the same), per module:
ONLY_SUPERUSER = {
    'pg_health_info': {},
    'pg_inspect_info': {
        # pg_stats shows a column's statistics, whose most common values are the table's data, only to roles that
        # may SELECT the column; a monitor must not read application rows, so it cannot estimate table bloat.
        'table_bloat': 'pg_stats hides the column statistics of tables the role may not SELECT',
    },
    'pg_audit_info': {
        # pg_authid holds the password hashes; only a superuser may read it, and a monitor must not.
        'password_hashes': 'pg_authid (password hashes) is readable by superusers only',
        'passwordless_logins': 'needs pg_authid (password hashes) as well as pg_hba_file_rules',
        # pg_hba_file_rules shows ldapbindpasswd and radiussecrets in its options column: granted only with
        # monitor_hba_rules=true (test_hba_rules_only_when_asked).
        'hba_rules': 'pg_hba_file_rules can show LDAP bind passwords and RADIUS secrets; opt-in monitor_hba_rules',
    },
}

# The daily (health_check) and weekly (performance_review, security_audit) modules, with every check.
MODULES = {
    'pg_health_info': {},
    'pg_inspect_info': {'min_table_size': '0'},  # judge even the small tables of the fixture
    'pg_audit_info': {},
}


@pytest.fixture(scope='module')
def monitor_server(spawn_server):
    """A server of its own: the monitoring role and the Supabase-like roles are cluster-wide."""
    return spawn_server()


class Db(object):
    def __init__(self, server, name):
        self.server = server
        self.name = name

    def sql(self, statement, args=None):
        return self.server.execute(statement, self.name, args)

    def args(self, **overrides):
        return dict(self.server.login_args(self.name), **overrides)

    def run(self, module, **overrides):
        result = run_module(module, self.args(**overrides))
        assert result.rc == 0 and not result.failed, result.raw
        return result

    def as_monitor(self):
        return dict(login_user=MONITOR, login_password=MONITOR_PASSWORD)


def application(db):
    """A Supabase-like application database: tables with identity and serial keys, a standalone sequence in a
    schema of its own, a foreign key, rows and statistics, statements in pg_stat_statements, and sign-ins in
    Supabase Auth's audit log reaching back past the audit's window plus lookback."""
    supabase_like(db)
    db.sql('CREATE EXTENSION pg_stat_statements SCHEMA extensions')
    db.sql('CREATE TABLE public.applicants (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL)')
    db.sql('CREATE TABLE public.applications (id serial PRIMARY KEY, applicant_id bigint NOT NULL '
           'REFERENCES public.applicants, state text NOT NULL, secret_note text)')
    db.sql('ALTER TABLE public.applicants ENABLE ROW LEVEL SECURITY')
    db.sql('ALTER TABLE public.applications ENABLE ROW LEVEL SECURITY')
    db.sql('CREATE POLICY own ON public.applicants USING (true)')
    db.sql('CREATE POLICY own ON public.applications USING (true)')
    db.sql('CREATE SCHEMA billing')
    db.sql('CREATE SEQUENCE billing.invoice_no AS integer')
    db.sql("SELECT setval('billing.invoice_no', 1900000000)")  # 88 % of an integer: sequence_exhaustion fires
    db.sql("INSERT INTO public.applicants (email) SELECT 'a' || g || '@example.org' FROM generate_series(1, 500) g")
    db.sql("INSERT INTO public.applications (applicant_id, state, secret_note) "
           "SELECT 1 + g % 500, 'open', 'confidential ' || g FROM generate_series(1, 2000) g")
    db.sql('ANALYZE')
    for _round in range(3):
        db.sql("SELECT count(*) FROM public.applications WHERE state = 'open'")
    db.sql("INSERT INTO auth.users (id, email, last_sign_in_at) VALUES (gen_random_uuid(), 'ana@example.org', now())")
    db.sql("INSERT INTO auth.audit_log_entries (id, payload, created_at, ip_address) "
           "SELECT gen_random_uuid(), json_build_object('action', 'login', 'actor_id', 'ana', 'actor_username', "
           "'ana@example.org'), now() - make_interval(days => d), '198.51.100.7' FROM generate_series(0, 40, 5) d")


@pytest.fixture
def app_db(monitor_server):
    name = 'm_' + uuid.uuid4().hex[:10]
    monitor_server.execute('CREATE DATABASE %s' % name)
    db = Db(monitor_server, name)
    application(db)
    yield db
    monitor_server.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
    monitor_server.execute("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                           "EXECUTE 'DROP ROLE %s'; END IF; END $$" % (MONITOR, MONITOR))


def setup_roles(db, check_mode=False, **options):
    result = run_module('pg_maintenance_roles', db.args(monitor_role=MONITOR, monitor_password=MONITOR_PASSWORD,
                                                        databases=[db.name], **options), check_mode=check_mode)
    assert result.rc == 0 and not result.failed, result.raw
    return result


def unknowns(result):
    return dict((c['name'], c['message']) for c in result['checks'] if c['status'] == 'unknown')


def by_name(result, name):
    return [c for c in result['checks'] if c['name'] == name]


def test_monitor_gets_no_unknown_the_superuser_does_not(app_db):
    setup = setup_roles(app_db)
    assert setup['changed'], setup
    assert 'GRANT pg_monitor TO %s' % MONITOR in setup['changes']
    assert [c for c in setup['changes'] if c.startswith('GRANT SELECT ON SEQUENCE') and 'billing.invoice_no' in c]
    assert [c for c in setup['changes'] if c.startswith('GRANT USAGE ON SCHEMA extensions')]
    assert [c for c in setup['changes'] if c.startswith('GRANT SELECT ON auth.audit_log_entries')]
    again = setup_roles(app_db)
    assert not again['changed'] and again['changes'] == [], again['changes']  # idempotent

    # the baseline checks too (failed_logins reads the server's log file, an operating-system permission, not a
    # database one: it is not run here)
    baseline = app_db.run('pg_audit_info', checks=['superusers'])['snapshot']
    seen = {}
    for module, options in MODULES.items():
        if module == 'pg_audit_info':
            options = dict(options, baseline=baseline)
        superuser = app_db.run(module, **options)
        monitor = app_db.run(module, **dict(options, **app_db.as_monitor()))
        seen[module] = (superuser, monitor)
        assert monitor['checks'], monitor
        # the monitor runs the same checks: a check that fails outright would be missing, not unknown
        assert set(c['name'] for c in monitor['checks']) == set(c['name'] for c in superuser['checks']), module
        extra = dict((name, message) for name, message in unknowns(monitor).items() if name not in unknowns(superuser))
        unexpected = dict((name, message) for name, message in extra.items() if name not in ONLY_SUPERUSER[module])
        assert not unexpected, '%s: the monitor cannot see %s' % (module, unexpected)
        assert set(extra) == set(ONLY_SUPERUSER[module]), extra  # the exceptions are real, and still needed

    health_su, health_mon = seen['pg_health_info']
    for name in ('sequence_exhaustion', 'slow_queries'):
        assert by_name(health_mon, name)[0]['status'] == by_name(health_su, name)[0]['status'] != 'unknown', name
    sequences = by_name(health_mon, 'sequence_exhaustion')[0]
    assert sequences['object'] == 'sequence=billing.invoice_no' and sequences['status'] == 'warning', sequences
    assert 'not readable' not in sequences['message']
    assert by_name(health_mon, 'sequence_exhaustion')[0]['value'] == by_name(health_su, 'sequence_exhaustion')[0]['value']

    review_su, review_mon = seen['pg_inspect_info']
    assert review_mon['sections']['slow_queries'] is not None and review_mon['sections']['slow_queries']['by_mean_time']
    assert [c['value'] for c in by_name(review_mon, 'index_bloat')] == [c['value'] for c in by_name(review_su, 'index_bloat')]
    hidden = by_name(review_mon, 'table_bloat')
    assert len(hidden) == 1 and 'pg_stats' in hidden[0]['message'] and 'public.applications' in hidden[0]['message']
    assert review_su['sections']['bloat']['tables'] and not review_mon['sections']['bloat']['tables']

    audit_su, audit_mon = seen['pg_audit_info']
    assert set(c['name'] for c in audit_mon['checks']) >= {'grants_changed', 'roles_added', 'auth_signin_burst'}
    # the access snapshot the monitor takes is the superuser's (no password hashes in either)
    for key in ('roles', 'grants'):
        assert audit_mon['snapshot'][key] == audit_su['snapshot'][key], key
    for name in ('auth_new_addresses', 'auth_signin_burst', 'auth_account_new_addresses'):
        assert by_name(audit_mon, name)[0]['value'] == by_name(audit_su, name)[0]['value'], name
    assert audit_mon['auth_events']['actions'] == audit_su['auth_events']['actions']


def test_monitor_gets_nothing_more(app_db):
    setup_roles(app_db)
    conn = psycopg2.connect(**app_db.server.dsn(app_db.name, user=MONITOR, password=MONITOR_PASSWORD))
    conn.autocommit = True
    denied = ['SELECT rolpassword FROM pg_authid',                       # password hashes
              'SELECT secret_note FROM public.applications',             # application rows
              'SELECT email FROM public.applicants',
              'SELECT email FROM auth.users',                            # only last_sign_in_at of auth.users
              "SELECT nextval('public.applicants_id_seq')",              # a sequence it could advance
              "SELECT setval('public.applications_id_seq', 1)",
              'SELECT * FROM pg_hba_file_rules',                         # not without monitor_hba_rules
              'CREATE TABLE extensions.mine (id int)',                   # USAGE is not CREATE
              'SELECT * FROM storage.objects',                           # bucket names only, no objects
              'SELECT owner FROM storage.buckets']
    try:
        for statement in denied:
            with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
        with conn.cursor() as cur:
            # what sequence_exhaustion reads (pg_sequences; no USAGE on schema billing needed)
            cur.execute("SELECT last_value FROM pg_sequences WHERE schemaname = 'billing' AND sequencename = 'invoice_no'")
            assert cur.fetchone()[0] == 1900000000
            cur.execute("SELECT id, name, public FROM storage.buckets")     # public_bucket_allows_listing
            assert cur.fetchall() == []
            cur.execute('SELECT count(*) FROM auth.users WHERE last_sign_in_at > now() - interval \'1 day\'')
            assert cur.fetchone()[0] == 1
    finally:
        conn.close()


def test_sequences_created_later_are_readable_and_a_rerun_covers_other_owners(app_db):
    setup_roles(app_db)
    app_db.sql('CREATE TABLE public.documents (id serial PRIMARY KEY)')  # by the login role: default privileges
    app_db.sql('CREATE ROLE app_owner_t')
    try:
        app_db.sql('CREATE SCHEMA app AUTHORIZATION app_owner_t')
        app_db.sql('SET ROLE app_owner_t; CREATE SEQUENCE app.orders_seq; RESET ROLE')
        health = app_db.run('pg_health_info', checks=['sequence_exhaustion'], **app_db.as_monitor())
        check = by_name(health, 'sequence_exhaustion')[0]
        assert 'public.documents_id_seq' not in check['message'] and 'app.orders_seq' in check['message'], check
        rerun = setup_roles(app_db)
        assert [c for c in rerun['changes'] if 'app.orders_seq' in c], rerun['changes']
        assert [c for c in rerun['changes'] if c.startswith('ALTER DEFAULT PRIVILEGES FOR ROLE app_owner_t')], rerun
        app_db.sql('SET ROLE app_owner_t; CREATE SEQUENCE app.later_seq; RESET ROLE')
        health = app_db.run('pg_health_info', checks=['sequence_exhaustion'], **app_db.as_monitor())
        assert 'not readable' not in by_name(health, 'sequence_exhaustion')[0]['message']
    finally:
        app_db.sql('DROP SCHEMA IF EXISTS app CASCADE')
        app_db.sql('DROP OWNED BY app_owner_t')
        app_db.sql('DROP ROLE app_owner_t')


def test_check_mode_plans_the_grants_and_changes_nothing(app_db):
    planned = setup_roles(app_db, check_mode=True)
    assert planned['changed'] and 'CREATE ROLE %s LOGIN' % MONITOR in planned['changes']
    assert [c for c in planned['changes'] if c.startswith('GRANT USAGE ON SCHEMA extensions')], planned['changes']
    assert [c for c in planned['changes'] if c.startswith('ALTER DEFAULT PRIVILEGES')], planned['changes']
    assert not app_db.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (MONITOR,))
    assert MONITOR_PASSWORD not in planned.raw


def test_hba_rules_only_when_asked(app_db):
    setup_roles(app_db)
    blind = app_db.run('pg_audit_info', checks=['hba_rules'], **app_db.as_monitor())
    assert by_name(blind, 'hba_rules')[0]['status'] == 'unknown'
    asked = setup_roles(app_db, monitor_hba_rules=True)
    assert [c for c in asked['changes'] if 'pg_hba_file_rules' in c], asked['changes']
    seeing = app_db.run('pg_audit_info', checks=['hba_rules'], **app_db.as_monitor())
    assert [c['status'] for c in by_name(seeing, 'hba_rules')] == [c['status'] for c in by_name(
        app_db.run('pg_audit_info', checks=['hba_rules']), 'hba_rules')] and by_name(seeing, 'hba_rules')[0]['status'] != 'unknown'


def test_a_login_role_that_cannot_grant_gets_notes_not_a_failure(app_db):
    app_db.sql("CREATE ROLE limited_admin_t LOGIN CREATEROLE PASSWORD 'limited-pw'")
    try:
        app_db.sql('GRANT CONNECT ON DATABASE %s TO limited_admin_t' % app_db.name)
        app_db.sql('GRANT pg_monitor TO limited_admin_t WITH ADMIN OPTION')
        result = run_module('pg_maintenance_roles', app_db.args(
            login_user='limited_admin_t', login_password='limited-pw', monitor_role=MONITOR,
            monitor_password=MONITOR_PASSWORD, databases=[app_db.name]))
        assert result.rc == 0 and not result.failed, result.raw
        notes = ' '.join(result['notes'])
        assert 'billing.invoice_no' in notes and 'extensions' in notes and 'auth.audit_log_entries' in notes, notes
    finally:
        app_db.sql('DROP OWNED BY limited_admin_t')
        app_db.sql("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                   "EXECUTE 'DROP OWNED BY %s'; EXECUTE 'DROP ROLE %s'; END IF; END $$" % (MONITOR, MONITOR, MONITOR))
        app_db.sql('DROP ROLE limited_admin_t')


def test_every_database_of_databases_gets_its_grants(app_db):
    other = 'm2_' + uuid.uuid4().hex[:10]
    app_db.server.execute('CREATE DATABASE %s' % other)
    try:
        app_db.server.execute('CREATE TABLE public.orders (id serial PRIMARY KEY)', other)
        result = run_module('pg_maintenance_roles', app_db.args(monitor_role=MONITOR, monitor_password=MONITOR_PASSWORD,
                                                                databases=[app_db.name, other]))
        assert result.rc == 0 and not result.failed, result.raw
        assert [c for c in result['changes'] if 'public.orders_id_seq' in c and '(database %s)' % other in c], result
        assert [c for c in result['changes'] if 'billing.invoice_no' in c and '(database %s)' % app_db.name in c]
        health = Db(app_db.server, other).run('pg_health_info', checks=['sequence_exhaustion'], **app_db.as_monitor())
        check = by_name(health, 'sequence_exhaustion')[0]
        assert check['status'] != 'unknown' and 'not readable' not in check['message'], check
    finally:
        app_db.server.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % other)
