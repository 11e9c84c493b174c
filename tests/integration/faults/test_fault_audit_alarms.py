# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The false alarms of pg_audit_info this file proves gone, against real PostgreSQL 18 and 15 servers:

- a pg_hba.conf ``trust`` rule that admits only loopback addresses (127.0.0.1/32, ::1/128) is no longer a
  critical "anyone who reaches the server over the network" in ``hba_rules`` nor in ``passwordless_logins``:
  it is a warning naming local users (anyone with a shell on the server host); network trust stays critical;
- ``public_schema_create`` no longer calls an explicit GRANT on PostgreSQL 15 and later "the pre-PostgreSQL-15
  default": it names who granted CREATE, and guesses an upgrade only when the schema's owner says so;
- ``auth_new_addresses`` with less audit history than the window plus the baseline is ``unknown`` (not
  enough history) instead of counting every address as new;
- an unreadable ``auth.audit_log_entries`` makes the event checks that read it ``unknown``, and adds no second
  ``auth_users_exposed`` finding (an exposure check that does not read the audit log).
"""

from __future__ import annotations

import os
import uuid

import pytest
from test_pg_audit_info import Db, audit_rows, drop_roles, findings, fired, quiet, supabase_like

AUTH_EVENT_CHECKS = ['auth_new_addresses', 'auth_repeated_signups', 'auth_signup_burst', 'auth_token_revocations']
DAY = 24 * 60  # minutes


@pytest.fixture(scope='module')
def alarm_server(spawn_server):
    """A server of its own: these tests create cluster-wide roles and rewrite pg_hba.conf."""
    return spawn_server()


@pytest.fixture
def adb(alarm_server):
    name = 'f_' + uuid.uuid4().hex[:10]
    alarm_server.execute('CREATE DATABASE %s' % name)
    yield Db(alarm_server, name)
    alarm_server.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)


# --- trust on loopback is a local exposure, not a network one ---------------------------------------------

def test_fault_loopback_trust_is_not_a_network_alarm(adb):
    hba = os.path.join(adb.server.datadir, 'pg_hba.conf')
    with open(hba) as handle:
        original = handle.read()
    checks = ['hba_rules', 'passwordless_logins']
    clean = adb.run(checks=checks)
    quiet(clean, 'hba_rules')
    quiet(clean, 'passwordless_logins')
    try:
        adb.sql('CREATE ROLE localonly LOGIN')
        adb.sql('CREATE ROLE netreach LOGIN')
        with open(hba, 'w') as handle:
            handle.write('host all localonly 127.0.0.1/32 trust\n'
                         'host all localonly ::1/128 trust\n'
                         'host all netreach 10.0.0.0/8 trust\n' + original)
        result = adb.run(checks=checks)
        assert result.rc == 0, result.raw
        rules = dict((c['object'], c) for c in findings(result, 'hba_rules'))
        for line in ('hba_line=1', 'hba_line=2'):
            assert rules[line]['status'] == 'warning', rules[line]
            assert 'local users' in rules[line]['message'] and 'over the network' not in rules[line]['message']
        assert rules['hba_line=3']['status'] == 'critical' and 'over the network' in rules['hba_line=3']['message']
        local = fired(result, 'passwordless_logins', 'role=localonly')
        assert local['status'] == 'warning' and 'local users' in local['message'], local
        assert 'over the network' not in local['message']
        remote = fired(result, 'passwordless_logins', 'role=netreach')
        assert remote['status'] == 'critical' and 'over the network' in remote['message'], remote
    finally:
        with open(hba, 'w') as handle:
            handle.write(original)
        drop_roles(adb, 'localonly', 'netreach')


def test_fault_unix_socket_trust_went_unreported(adb):
    """A 'local ... trust' rule admits every local user as any role it names without a password; it was not
    reported at all (only host* rules were read). It is a warning that names the socket and local users; the
    test servers' own 'local all all scram-sha-256' (the clean run above) stays quiet."""
    hba = os.path.join(adb.server.datadir, 'pg_hba.conf')
    with open(hba) as handle:
        original = handle.read()
    assert 'trust' not in [line.split()[-1] for line in original.splitlines() if line.strip() and not line.startswith('#')]
    try:
        adb.sql('CREATE ROLE sockonly LOGIN')
        with open(hba, 'w') as handle:
            handle.write('local all sockonly trust\n' + original)
        result = adb.run(checks=['hba_rules', 'passwordless_logins'])
        assert result.rc == 0, result.raw
        rule = fired(result, 'hba_rules', 'hba_line=1')
        assert rule['status'] == 'warning', rule
        assert 'Unix socket' in rule['message'] and 'local users' in rule['message'], rule
        assert 'over the network' not in rule['message'] and 'loopback' not in rule['message']
        login = fired(result, 'passwordless_logins', 'role=sockonly')
        assert login['status'] == 'warning' and 'Unix socket' in login['message'], login
    finally:
        with open(hba, 'w') as handle:
            handle.write(original)
        drop_roles(adb, 'sockonly')


# --- CREATE on schema public: what was observed, not a guessed history -------------------------------------

def test_fault_public_create_grant_is_not_called_the_old_default(adb):
    quiet(adb.run(checks=['public_schema_create']), 'public_schema_create')
    adb.sql('GRANT CREATE ON SCHEMA public TO PUBLIC')  # both servers are PostgreSQL 15 or later
    granted = fired(adb.run(checks=['public_schema_create']), 'public_schema_create', 'schema=public')
    assert granted['status'] == 'warning', granted
    assert 'granted by pg_database_owner' in granted['message'] and 'someone granted it' in granted['message']
    assert 'pre-PostgreSQL-15' not in granted['message'] and 'upgraded' not in granted['message'], granted
    assert granted['grantors'] == ['pg_database_owner']

    # The evidence an upgrade leaves: public owned by the old owner, who granted CREATE to PUBLIC.
    owner = adb.sql('SELECT current_user')[0][0]
    adb.sql('ALTER SCHEMA public OWNER TO %s' % owner)
    upgraded = fired(adb.run(checks=['public_schema_create']), 'public_schema_create', 'schema=public')
    assert 'granted by %s' % owner in upgraded['message'] and 'upgraded' in upgraded['message'], upgraded

    adb.sql('REVOKE CREATE ON SCHEMA public FROM PUBLIC')
    quiet(adb.run(checks=['public_schema_create']), 'public_schema_create')


# --- auth_new_addresses needs a baseline the audit log covers ----------------------------------------------

def test_fault_short_auth_history_is_unknown_not_every_address_new(adb):
    supabase_like(adb)
    options = dict(checks=['auth_new_addresses'], log_window_hours=24, auth_lookback_days=30)
    newcomers = ['192.0.2.%d' % i for i in range(1, 26)]
    audit_rows(adb, [(3 * DAY, 'login', '198.51.100.7')])  # three days of audit log, the baseline is 30
    audit_rows(adb, [(30, 'login', address) for address in newcomers + ['198.51.100.7']])
    short = adb.run(**options).check('auth_new_addresses')
    assert short['status'] == 'unknown', short
    assert 'not enough history (3 days of audit log, need window + baseline)' in short['message'], short
    assert '192.0.2.' not in short['message']

    # The same sign-ins, with an audit log that covers window + baseline and has seen every address: quiet.
    audit_rows(adb, [(40 * DAY, 'token_refreshed', '198.51.100.7')])
    audit_rows(adb, [(5 * DAY, 'login', address) for address in newcomers])
    covered = quiet(adb.run(**options), 'auth_new_addresses')
    assert covered['value'] == 0, covered


# --- an unreadable audit log concerns only the checks that read it ---------------------------------------------

def test_fault_unreadable_auth_log_adds_no_second_auth_users_exposed(adb):
    supabase_like(adb)
    try:
        adb.sql("CREATE ROLE logless LOGIN PASSWORD 'logless-pw' IN ROLE pg_monitor")
        blind = adb.run(login_user='logless', login_password='logless-pw')
        assert blind.rc == 0, blind.raw
        for name in AUTH_EVENT_CHECKS:
            check = blind.check(name)
            assert check['status'] == 'unknown' and 'cannot read auth.audit_log_entries' in check['message'], check
        exposed = findings(blind, 'auth_users_exposed')
        assert len(exposed) == 1 and exposed[0]['status'] == 'ok', exposed

        readable = adb.run()
        assert readable.rc == 0, readable.raw
        for name in AUTH_EVENT_CHECKS:
            assert 'cannot read' not in readable.check(name)['message'], readable.check(name)
        quiet(readable, 'auth_users_exposed')
    finally:
        drop_roles(adb, 'logless')
