# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""signins.py's pure parts: findings from the rows the database aggregates (one per address or account that
fires, else one summary), the counts of what was not listed, the thresholds, and the window option."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import audit as A
from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import signins as SI

T0 = datetime.datetime(2026, 11, 23, 3, 0, tzinfo=datetime.timezone.utc)


def thresholds(**overrides):
    return C.merge_thresholds(A.DEFAULT_THRESHOLDS, overrides)


def peak_row(key, peak_sign_ins, peak_others, sign_ins=None, others=None, over_sign_ins=0, over_others=0, keys=1,
             username=None):
    return dict(key=key, sign_ins=sign_ins or peak_sign_ins, others=others or peak_others, first=T0,
                last=T0 + datetime.timedelta(minutes=9), username=username, peak_sign_ins=peak_sign_ins,
                peak_sign_ins_at=T0 + datetime.timedelta(minutes=9), peak_others=peak_others,
                peak_others_at=T0 + datetime.timedelta(minutes=8), keys=keys, keys_over_sign_ins=over_sign_ins,
                keys_over_others=over_others)


def by_name(findings, name):
    return [f for f in findings if f['name'] == name]


def test_sign_in_checks_are_auth_event_checks_with_thresholds():
    for name in SI.SIGNIN_CHECKS:
        assert name.startswith('auth_') and name in A.AUTH_EVENT_CHECKS and name in A.ALL_CHECKS
        assert A.DEFAULT_THRESHOLDS[name] == SI.DEFAULT_THRESHOLDS[name]
    merged = thresholds(auth_signin_burst={'warning': '100', 'critical': None})
    assert merged['auth_signin_burst']['warning'] == 100 and merged['auth_signin_burst']['critical'] is None
    with pytest.raises(Exception, match='warning threshold 20 is above'):
        thresholds(auth_address_accounts={'warning': 20, 'critical': 5})


def test_burst_and_many_accounts_fire_per_address_with_counts_and_times():
    rows = [peak_row('203.0.113.9', 200, 60, sign_ins=260, others=70, over_sign_ins=1, over_others=1, keys=2),
            peak_row('198.51.100.7', 5, 1, keys=2)]
    found = SI.address_findings(thresholds(), rows, 15, 168, ['auth_signin_burst', 'auth_address_accounts'])
    burst = by_name(found, 'auth_signin_burst')
    assert len(burst) == 1 and burst[0]['status'] == 'critical' and burst[0]['object'] == 'address=203.0.113.9'
    assert burst[0]['value'] == 200 and burst[0]['sign_ins'] == 260 and burst[0]['accounts'] == 70
    assert '200 sign-ins from 203.0.113.9 within 15 minutes' in burst[0]['message']
    assert burst[0]['first'] == T0.isoformat() and '2026-11-23T03:09:00+00:00' in burst[0]['message']
    spread = by_name(found, 'auth_address_accounts')
    assert len(spread) == 1 and spread[0]['status'] == 'critical' and spread[0]['value'] == 60
    assert 'more' not in spread[0]['message']  # nothing over the threshold was left unlisted


def test_quiet_addresses_give_one_summary_judged_on_the_highest_value():
    rows = [peak_row('198.51.100.7', 12, 2, keys=3), peak_row('192.0.2.1', 3, 4, keys=3)]
    found = SI.address_findings(thresholds(), rows, 15, 168, ['auth_signin_burst', 'auth_address_accounts'])
    burst, spread = by_name(found, 'auth_signin_burst'), by_name(found, 'auth_address_accounts')
    assert len(burst) == 1 and burst[0]['status'] == 'ok' and burst[0]['value'] == 12 and '198.51.100.7' in burst[0]['message']
    assert len(spread) == 1 and spread[0]['status'] == 'ok' and spread[0]['value'] == 4 and '192.0.2.1' in spread[0]['message']
    empty = SI.address_findings(thresholds(), [], 15, 24, ['auth_signin_burst'])
    assert [(f['name'], f['status'], f['value']) for f in empty] == [('auth_signin_burst', 'ok', 0)]
    assert 'no sign-ins in the last 24 h' in empty[0]['message']


def test_only_the_selected_address_checks_and_the_unlisted_count():
    rows = [peak_row('203.0.113.%d' % i, 40, 1, over_sign_ins=60, keys=60) for i in range(SI.TOP)]
    found = SI.address_findings(thresholds(), rows, 5, 168, ['auth_signin_burst'])
    assert set(f['name'] for f in found) == {'auth_signin_burst'} and len(found) == SI.TOP
    assert all('10 more address(es) over the threshold, not listed' in f['message'] for f in found)
    assert 'within 5 minutes' in found[0]['message']


def test_one_account_from_many_addresses():
    rows = [peak_row('5b1c-user', 6, 5, others=7, username='ana@example.org', over_others=1, keys=2),
            peak_row('8e2f-user', 2, 2, keys=2)]
    found = SI.account_findings(thresholds(), rows, 15, 168)
    assert len(found) == 1 and found[0]['status'] == 'warning' and found[0]['object'] == 'account=5b1c-user'
    assert 'ana@example.org (5b1c-user) signed in from 5 different addresses within 15 minutes' in found[0]['message']
    assert found[0]['addresses'] == 7 and found[0]['username'] == 'ana@example.org'
    quiet = SI.account_findings(thresholds(auth_account_addresses={'warning': 5, 'critical': 10}), rows, 15, 168)
    assert len(quiet) == 1 and quiet[0]['status'] == 'ok' and quiet[0]['value'] == 5 and '2 account(s)' in quiet[0]['message']
    assert SI.account_rows(rows)[0]['peak_addresses'] == 5


def new_row(account, new, has_history=True, judged=2, without=1, over=0):
    return dict(account=account, username=None, new_addresses=new, addresses=['203.0.113.%d' % i for i in range(new)],
                sign_ins=new * 2, first=T0, last=T0, has_history=has_history, judged=judged, without_history=without,
                over=over)


def test_new_addresses_for_an_account_with_history():
    rows = [new_row('a-1', 3, over=1), new_row('a-2', 0), new_row('fresh', 4, has_history=False)]
    found = SI.new_address_findings(thresholds(), rows, 168, 30)
    assert len(found) == 1 and found[0]['object'] == 'account=a-1' and found[0]['status'] == 'warning'
    assert found[0]['value'] == 3 and found[0]['addresses'] == ['203.0.113.0', '203.0.113.1', '203.0.113.2']
    assert 'did not use in the 30 days before' in found[0]['message']


def test_new_addresses_quiet_and_accounts_without_history_not_judged():
    rows = [new_row('a-1', 1), new_row('fresh', 9, has_history=False)]
    found = SI.new_address_findings(thresholds(), rows, 168, 30)
    assert len(found) == 1 and found[0]['status'] == 'ok' and found[0]['value'] == 1
    assert found[0]['accounts_judged'] == 2 and found[0]['accounts_without_history'] == 1
    assert SI.new_address_findings(thresholds(), [], 168, 30)[0]['value'] == 0


def test_sql_arguments_carry_the_window_and_limits():
    args = SI.peaks_args({'window': '3600 seconds', 'lookback': '30 days'}, 2.5, thresholds(), 'address')
    assert args['minutes'] == '150 seconds' and args['top'] == SI.TOP
    assert args['sign_ins_limit'] == 30 and args['others_limit'] == 10
    disabled = thresholds(auth_account_addresses={'warning': None, 'critical': None})
    assert SI.peaks_args({}, 15, disabled, 'account')['others_limit'] == float('inf')
    assert 'ip_address AS key' in SI.peaks_sql('address') and "payload->>'actor_id' AS key" in SI.peaks_sql('account')
    with pytest.raises(ValueError):
        SI.peaks_sql('user')


@pytest.mark.parametrize('minutes', [0, -1, 1441, None])
def test_window_minutes_out_of_range_is_refused(minutes):
    with pytest.raises(ValueError, match='auth_signin_window_minutes'):
        SI.validate_minutes(minutes)
    with pytest.raises(Exception, match='auth_signin_window_minutes'):
        A.validate(dict(log_window_hours=1, auth_lookback_days=1, exposed_schemas=['public'],
                        auth_signin_window_minutes=minutes))
    assert SI.validate_minutes(0.5) == 0.5
