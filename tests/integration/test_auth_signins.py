# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_audit_info's suspicious sign-in checks against real PostgreSQL 18 and 15 servers, from rows planted in a
Supabase-like ``auth.audit_log_entries``: each check fires for a real pattern and stays quiet for its harmless
counterpart; the database's sliding-window counts equal a brute-force count over the same rows; too little
history, a silent audit log and an unreadable one are ``unknown``."""

from __future__ import annotations

import random
import uuid

import pytest
from test_pg_audit_info import Db, drop_roles, findings, fired, quiet

from supabase_like import supabase_like

SIGNIN_CHECKS = ['auth_signin_burst', 'auth_address_accounts', 'auth_account_addresses', 'auth_account_new_addresses']
DAY = 24 * 60 * 60  # seconds


@pytest.fixture(scope='module')
def signin_server(spawn_server):
    """A server of its own: the Supabase-like API roles and a monitoring role are cluster-wide."""
    return spawn_server()


@pytest.fixture
def sdb(signin_server):
    name = 's_' + uuid.uuid4().hex[:10]
    signin_server.execute('CREATE DATABASE %s' % name)
    db = Db(signin_server, name)
    supabase_like(db)
    yield db
    signin_server.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)


def account(name):
    """A stable actor_id for a test account."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name + '.example.org'))


def plant(db, rows, action='login'):
    """Insert sign-ins (seconds_ago, address, account name) in one statement, so they share one now()."""
    if not rows:
        return
    db.sql("INSERT INTO auth.audit_log_entries (id, payload, created_at, ip_address) "
           "SELECT gen_random_uuid(), json_build_object('action', %s::text, 'actor_id', a, 'actor_username', a || '@mail', "
           "'log_type', 'account'), now() - make_interval(secs => s), ip "
           "FROM unnest(%s::int[], %s::text[], %s::text[]) AS r(s, ip, a)",
           (action, [r[0] for r in rows], [r[1] for r in rows], [account(r[2]) for r in rows]))


def history(db):
    """One old row, so the audit log covers the default window (168 h) plus auth_lookback_days (30 days)."""
    plant(db, [(40 * DAY, '198.51.100.200', 'old')], action='token_refreshed')


def run(db, **options):
    result = db.run(checks=SIGNIN_CHECKS, **options)
    assert result.rc == 0, result.raw
    return result


# --- bursts from one address -----------------------------------------------------------------------------

def test_signin_burst_fires_for_many_sign_ins_within_minutes_and_not_when_spread(sdb):
    history(sdb)
    # 40 sign-ins of one account, one every 20 minutes: never more than one in a window of 15 minutes.
    plant(sdb, [(i * 20 * 60 + 30, '198.51.100.7', 'ana') for i in range(40)])
    calm = run(sdb)
    burst = quiet(calm, 'auth_signin_burst')
    assert burst['value'] == 1 and '198.51.100.7' in burst['message']
    assert quiet(calm, 'auth_address_accounts')['value'] == 1

    # 31 sign-ins one minute apart: any 15-minute window holds 16 of them (both ends count).
    plant(sdb, [(60 * i, '203.0.113.9', 'bo') for i in range(1, 32)])
    sliding = run(sdb, thresholds={'auth_signin_burst': {'warning': 15, 'critical': 16}})
    hit = fired(sliding, 'auth_signin_burst', 'address=203.0.113.9')
    assert hit['value'] == 16 and hit['status'] == 'warning', hit
    assert hit['sign_ins'] == 31 and hit['accounts'] == 1 and hit['first'] < hit['last']
    assert '16 sign-ins from 203.0.113.9 within 15 minutes' in hit['message']
    assert not [c for c in findings(sliding, 'auth_signin_burst') if c['object'] == 'address=198.51.100.7']

    # 200 sign-ins in 10 minutes: critical by default; the window option widens or narrows what counts.
    plant(sdb, [(5 * 60 + i * 3, '192.0.2.66', 'cy') for i in range(200)])
    busy = run(sdb)
    assert fired(busy, 'auth_signin_burst', 'address=192.0.2.66')['status'] == 'critical'
    assert fired(busy, 'auth_signin_burst', 'address=192.0.2.66')['value'] == 200
    assert busy['auth_events']['signins_by_address'][0]['address'] == '192.0.2.66'
    narrow = run(sdb, auth_signin_window_minutes=1)
    burst = quiet(narrow, 'auth_signin_burst')  # 60 s / 3 s, both ends: 21, under the threshold of 30
    assert burst['value'] == 21 and '192.0.2.66' in burst['message'], burst
    assert narrow['auth_events']['signin_window_minutes'] == 1


def test_many_accounts_from_one_address_fires_and_not_when_spread(sdb):
    history(sdb)
    # 12 accounts from one address, one every 30 minutes: one account per window.
    plant(sdb, [(i * 30 * 60 + 60, '198.51.100.20', 'user%d' % i) for i in range(12)])
    calm = run(sdb)
    assert quiet(calm, 'auth_address_accounts')['value'] == 1

    # 12 accounts within 6 minutes from another address (credential stuffing), two sign-ins each.
    plant(sdb, [(60 + i * 30, '203.0.113.77', 'victim%d' % i) for i in range(12)] +
          [(70 + i * 30, '203.0.113.77', 'victim%d' % i) for i in range(12)])
    stuffed = run(sdb)
    hit = fired(stuffed, 'auth_address_accounts', 'address=203.0.113.77')
    assert hit['status'] == 'warning' and hit['value'] == 12 and hit['accounts'] == 12 and hit['sign_ins'] == 24
    assert 'credential stuffing' in hit['message']
    assert not [c for c in findings(stuffed, 'auth_address_accounts') if c['object'] == 'address=198.51.100.20']
    assert quiet(stuffed, 'auth_signin_burst')['value'] == 24  # 24 sign-ins stay under the burst threshold


def test_many_accounts_from_one_address_among_many_busier_addresses(sdb):
    # 55 busy addresses (one account, 25 sign-ins in 10 minutes each: under the burst threshold) rank above the
    # stuffing address by sign-ins; it is still named, with its 12 accounts of one sign-in each.
    history(sdb)
    plant(sdb, [(60 + i * 24, '198.18.%d.1' % n, 'office%d' % n) for n in range(55) for i in range(25)] +
          [(120 + i * 20, '203.0.113.78', 'target%d' % i) for i in range(12)])
    result = run(sdb)
    hit = fired(result, 'auth_address_accounts', 'address=203.0.113.78')
    assert hit['value'] == 12 and hit['sign_ins'] == 12, hit
    assert len(findings(result, 'auth_address_accounts')) == 1
    assert quiet(result, 'auth_signin_burst')['value'] == 25
    assert len(result['auth_events']['signins_by_address']) == 50  # the facts list the 50 busiest


# --- one account from many addresses ----------------------------------------------------------------------------

def test_one_account_from_many_addresses_fires_and_not_when_spread(sdb):
    history(sdb)
    plant(sdb, [(i * 3600 + 60, '198.51.100.%d' % (30 + i), 'traveller') for i in range(5)])  # one an hour
    calm = run(sdb)
    assert quiet(calm, 'auth_account_addresses')['value'] == 1
    assert calm['auth_events']['signins_by_account'][0]['addresses'] == 5

    plant(sdb, [(60 + i * 90, '203.0.113.%d' % (100 + i), 'shared') for i in range(5)])  # 5 addresses in 6 minutes
    shared = run(sdb)
    hit = fired(shared, 'auth_account_addresses', 'account=%s' % account('shared'))
    assert hit['status'] == 'warning' and hit['value'] == 5 and hit['username'] == account('shared') + '@mail'
    assert hit['first'] < hit['last'] and 'sign the account out everywhere' in hit['message']
    assert not [c for c in findings(shared, 'auth_account_addresses') if account('traveller') in c['object']]


# --- addresses new for an account ---------------------------------------------------------------------------------

def test_account_new_addresses_against_its_own_history(sdb):
    history(sdb)
    plant(sdb, [(10 * DAY, '198.51.100.7', 'ana'), (10 * DAY, '198.51.100.8', 'bo')])          # before the window
    plant(sdb, [(3600, '198.51.100.7', 'ana'), (3600, '198.51.100.8', 'bo'), (1800, '192.0.2.8', 'bo')])
    plant(sdb, [(600 + i * DAY, '192.0.2.%d' % (50 + i), 'newcomer') for i in range(5)])        # no history
    calm = run(sdb)
    check = quiet(calm, 'auth_account_new_addresses')
    assert check['value'] == 1 and check['accounts_judged'] == 2 and check['accounts_without_history'] == 1

    plant(sdb, [(1200, '203.0.113.5', 'ana'), (900, '203.0.113.6', 'ana'), (2 * DAY, '203.0.113.7', 'ana')])
    taken = run(sdb)
    hit = fired(taken, 'auth_account_new_addresses', 'account=%s' % account('ana'))
    assert hit['status'] == 'warning' and hit['value'] == 3, hit
    assert hit['addresses'] == ['203.0.113.7', '203.0.113.5', '203.0.113.6']  # first seen first
    assert '198.51.100.7' not in hit['addresses'] and 'did not use in the 30 days before' in hit['message']
    assert not [c for c in findings(taken, 'auth_account_new_addresses') if account('newcomer') in c['object']]
    # ana's 2-day-old address is history once the window is one day
    short = run(sdb, log_window_hours=24)
    assert quiet(short, 'auth_account_new_addresses')['value'] == 2


def test_account_new_addresses_without_enough_history_is_unknown(sdb):
    plant(sdb, [(5 * DAY, '198.51.100.7', 'ana'), (600, '203.0.113.5', 'ana')])
    result = run(sdb)
    check = result.check('auth_account_new_addresses')
    assert check['status'] == 'unknown' and 'not enough history' in check['message'], check
    for name in ('auth_signin_burst', 'auth_address_accounts', 'auth_account_addresses'):
        assert result.check(name)['status'] == 'ok'  # the sliding windows need no history


# --- the database's counts equal a brute-force count ------------------------------------------------------------

def brute_force(rows, seconds):
    """Peaks over every window [t - seconds, t] ending at a sign-in t (rows are (seconds_ago, address, account)):
    {('sign_ins', address), ('accounts', address), ('addresses', account)} -> the largest count in one window."""
    events = [(-ago, ip, acct) for ago, ip, acct in rows]
    peaks = {}

    def keep(key, value):
        peaks[key] = max(peaks.get(key, 0), value)

    for end, ip, acct in events:
        inside = [(ip2, acct2) for t, ip2, acct2 in events if end - seconds <= t <= end]
        keep(('sign_ins', ip), sum(1 for i, _a in inside if i == ip))
        keep(('accounts', ip), len(set(a for i, a in inside if i == ip)))
        keep(('addresses', acct), len(set(i for i, a in inside if a == acct)))
    return peaks


def test_sliding_window_counts_equal_a_brute_force_count(sdb):
    rng = random.Random(16)
    rows = [(rng.randrange(0, 6 * 3600), '10.0.0.%d' % rng.randrange(6), 'acct%d' % rng.randrange(9))
            for _row in range(400)]
    rows += [(1000 + rng.randrange(0, 300), '10.0.0.1', 'acct%d' % rng.randrange(9)) for _row in range(60)]
    plant(sdb, rows)
    expected = brute_force(rows, 10 * 60)
    result = run(sdb, auth_signin_window_minutes=10)
    by_address = dict((r['address'], r) for r in result['auth_events']['signins_by_address'])
    assert len(by_address) == 6
    for ip, row in by_address.items():
        assert row['peak_sign_ins'] == expected[('sign_ins', ip)], (ip, row)
        assert row['peak_accounts'] == expected[('accounts', ip)], (ip, row)
        assert row['sign_ins'] == sum(1 for r in rows if r[1] == ip)
    by_account = dict((r['account'], r) for r in result['auth_events']['signins_by_account'])
    several = set(r[2] for r in rows if len(set(x[1] for x in rows if x[2] == r[2])) > 1)
    assert len(several) == 9 and set(by_account) == set(account(name) for name in several)
    for name in several:
        assert by_account[account(name)]['peak_addresses'] == expected[('addresses', name)], name
    assert expected[('sign_ins', '10.0.0.1')] > 30  # the planted burst
    assert fired(result, 'auth_signin_burst', 'address=10.0.0.1')['value'] == expected[('sign_ins', '10.0.0.1')]


# --- what cannot be judged ---------------------------------------------------------------------------------------

def test_silent_or_unreadable_audit_log_is_unknown(sdb):
    history(sdb)
    sdb.sql("INSERT INTO auth.users (id, email, last_sign_in_at) VALUES (gen_random_uuid(), 'a@example.org', now())")
    silent = run(sdb)
    for name in SIGNIN_CHECKS:
        check = silent.check(name)
        assert check['status'] == 'unknown' and 'GOTRUE_AUDIT_LOG_DISABLE_POSTGRES' in check['message'], check
    try:
        sdb.sql("CREATE ROLE signin_watcher LOGIN PASSWORD 'watcher-pw' IN ROLE pg_monitor")
        blind = run(sdb, login_user='signin_watcher', login_password='watcher-pw')
        for name in SIGNIN_CHECKS:
            check = blind.check(name)
            assert check['status'] == 'unknown' and 'cannot read auth.audit_log_entries' in check['message'], check
    finally:
        drop_roles(sdb, 'signin_watcher')


def test_not_a_supabase_database_has_no_sign_in_findings(signin_server):
    result = Db(signin_server, 'postgres').run(checks=SIGNIN_CHECKS)
    assert result.rc == 0 and not [c for c in result['checks'] if c['name'] in SIGNIN_CHECKS], result['checks']


@pytest.mark.parametrize('options, message', [
    (dict(auth_signin_window_minutes=0), 'auth_signin_window_minutes must be more than 0'),
    (dict(thresholds={'auth_address_accounts': {'warning': 20, 'critical': 5}}), 'warning threshold 20 is above'),
])
def test_bad_sign_in_options_fail_clearly(sdb, options, message):
    result = sdb.run(**options)
    assert result.failed and message in result['msg'], result['msg']
