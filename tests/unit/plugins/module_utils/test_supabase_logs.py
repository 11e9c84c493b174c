# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of supabase_logs_info: the window in slices of at most 24 hours (the limit of the Management API's
logs endpoint, operation v1-get-project-logs of supabase/cli's packages/api/src/generated/openapi.json), the latency
histogram and its percentiles, client addresses and sign-in paths of Auth's logs, the AnalyticsResponse checks and
the state file."""

from __future__ import annotations

import datetime
import json
import random

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import supabase_api as S
from ansible_collections.appcare.maintenance.plugins.module_utils import supabase_logs as L
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

NOW = datetime.datetime(2026, 11, 23, 12, 0, 42, 123456, tzinfo=datetime.timezone.utc)
REF = 'abcdefghijklmnopqrst'


# --- the window ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('hours,expected', [
    (168, [24] * 7),
    (30, [24, 6]),
    (24, [24]),
    (0.5, [0.5]),
    (49.25, [24, 24, 1.25]),
])
def test_window_slices_cover_the_window_on_whole_minutes(hours, expected):
    slices = L.window_slices(NOW, hours)
    assert [round((end - start).total_seconds() / 3600.0, 4) for start, end in slices] == expected
    assert slices[-1][1] == NOW.replace(second=0, microsecond=0)
    assert slices[0][0] == slices[-1][1] - datetime.timedelta(hours=hours)
    for (_start, before), (after, _end) in zip(slices, slices[1:], strict=False):
        assert before == after
    assert all(s.second == 0 and s.microsecond == 0 for pair in slices for s in pair)
    assert all(end - start <= S.MAX_LOGS_WINDOW for start, end in slices)


def test_the_client_refuses_a_window_the_api_would():
    api = S.ManagementApi('https://127.0.0.1:9', 'sbp_' + 'a' * 40)
    for start, end in ((NOW - datetime.timedelta(hours=24, minutes=1), NOW), (NOW, NOW)):
        with pytest.raises(ValueError):
            api.logs_all(REF, 'select 1', start, end)
    assert not api.calls
    assert S._iso_seconds(NOW) == '2026-11-23T12:00:42Z'


# --- the latency histogram -----------------------------------------------------------------------------------

@pytest.mark.parametrize('values,percent,expected', [
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5),
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95, 10),
    ([7], 99, 7),
    ([], 50, None),
    (list(range(1, 101)), 99, 99),
])
def test_percentile_nearest_rank(values, percent, expected):
    assert L.percentile(values, percent) == expected


def test_histogram_percentiles_are_upper_bounds_within_five_percent():
    generator = random.Random(7)
    values = [generator.lognormvariate(4, 1.2) for unused in range(5000)] + [0.2, 0.9, 60000.0]
    buckets = {}
    for value in values:
        bucket = L.latency_bucket(value)
        buckets[bucket] = buckets.get(bucket, 0) + 1
    for percent in (50, 95, 99):
        exact = L.percentile(values, percent)
        estimate = L.histogram_percentile(buckets, percent)
        assert max(exact, 1) <= estimate + 0.05 <= max(exact, 1) * 1.052 + 0.1, (percent, exact, estimate)


def test_histogram_edges():
    assert L.histogram_percentile({}, 95) is None
    assert L.latency_bucket(0) == 0 and L.latency_bucket(1) == 0 and L.latency_bucket(-3) == 0
    assert L.latency_upper_ms(L.latency_bucket(1000)) >= 1000
    assert L.histogram_percentile({L.latency_bucket(30): 95, L.latency_bucket(5000): 5}, 95) <= 30 * 1.052
    assert L.histogram_percentile({L.latency_bucket(30): 94, L.latency_bucket(5000): 6}, 95) >= 5000


def test_traffic_adds_up_slices_and_orders_error_paths():
    traffic = L.Traffic()
    traffic.add_latency([{'latency_bucket': 68, 'status_class': 'other', 'requests': 90},
                         {'latency_bucket': 68, 'status_class': '5xx', 'requests': 4}], 'q')
    traffic.add_latency([{'latency_bucket': None, 'status_class': '4xx', 'requests': 6}], 'q')
    traffic.add_paths([{'method': 'GET', 'path': '/a', 'requests': 50, 'errors_5xx': 0, 'errors_4xx': 6},
                       {'method': 'POST', 'path': '/b', 'requests': 10, 'errors_5xx': 4, 'errors_4xx': 0},
                       {'method': 'GET', 'path': '/c', 'requests': 40, 'errors_5xx': 0, 'errors_4xx': 0}], 'q')
    summary = traffic.summary(10)
    assert summary['requests'] == 100 and summary['errors_5xx'] == 4 and summary['errors_4xx'] == 6
    assert summary['error_rate_percent'] == 4.0 and summary['requests_without_latency'] == 6
    assert [p['path'] for p in summary['top_error_paths']] == ['/b', '/a']
    with pytest.raises(S.MalformedAnswer, match='latency_bucket is "x", not a bucket'):
        traffic.add_latency([{'latency_bucket': 'x', 'status_class': 'other', 'requests': 1}], 'q')
    with pytest.raises(S.MalformedAnswer, match='requests is -1, not a count'):
        traffic.add_latency([{'latency_bucket': 1, 'status_class': 'other', 'requests': -1}], 'q')


def test_api_findings_judge_only_with_enough_requests():
    thresholds = L.thresholds_for({})
    summary = {'requests': 10, 'errors_5xx': 10, 'errors_4xx': 0, 'error_rate_percent': 100.0,
               'error_4xx_percent': 0.0, 'latency_ms': {'p50': 9000.0, 'p95': 9000.0, 'p99': 9000.0},
               'requests_without_latency': 0, 'top_error_paths': []}
    quiet = L.api_findings(thresholds, summary, 168, 20, 'project=x', False)
    assert [f['status'] for f in quiet] == ['ok', 'ok'] and 'too few to judge' in quiet[0]['message']
    judged = L.api_findings(thresholds, summary, 168, 10, 'project=x', False)
    assert [f['status'] for f in judged] == ['critical', 'critical']


# --- Auth --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('value,expected', [
    ('203.0.113.7', '203.0.113.7'),
    ('203.0.113.7:51234', '203.0.113.7'),
    ('[2001:db8::17]:443', '2001:db8::17'),
    ('2001:DB8:0:0::17', '2001:db8::17'),
    ('203.0.113.7, 10.0.0.1', '203.0.113.7'),
    ('', 'unknown'),
    (None, 'unknown'),
    ('not-an-ip', 'not-an-ip'),
])
def test_addresses_are_grouped_by_ip(value, expected):
    assert L.normalise_address(value) == expected


@pytest.mark.parametrize('path,expected', [
    ('/token', True), ('/auth/v1/token', True), ('/token?grant_type=password', True), ('/otp', True),
    ('/verify', True), ('/factors/0b7e/verify', True), ('/signup', False), ('/user', False), ('/logout', False),
    (None, False), ('/tokens', False),
])
def test_sign_in_paths(path, expected):
    assert L.signin_path(path) is expected


def auth_row(address, path, status, count, limited=0, refresh=0):
    return {'address': address, 'path': path, 'status': status, 'count': count, 'rate_limit_messages': limited,
            'refresh_failures': refresh, 'first_seen': NOW - datetime.timedelta(hours=count),
            'last_seen': NOW - datetime.timedelta(hours=1)}


def test_auth_addresses_count_failed_sign_ins_and_rate_limits_apart():
    addresses = L.AuthAddresses()
    for row in (auth_row('a', '/token', 400, 30, refresh=10), auth_row('a', '/verify', 403, 5),
                auth_row('a', '/token', 429, 7, limited=7), auth_row('b', '/signup', 422, 50),
                auth_row('b', '/token', 500, 3), auth_row('c', None, None, 4, limited=2),
                auth_row('d', '/otp', 400, 2, limited=1)):
        addresses.add(row)
    failed = addresses.failed_rows()
    assert [(r['address'], r['count']) for r in failed] == [('a', 25), ('d', 2)]
    assert failed[0]['paths'] == {'/token': 20, '/verify': 5} and failed[0]['statuses'] == {'400': 20, '403': 5}
    assert failed[0]['first_seen'] == iso(NOW - datetime.timedelta(hours=30))
    limited = addresses.limited_rows()
    assert [(r['address'], r['count']) for r in limited] == [('a', 7), ('c', 2), ('d', 1)]


def test_address_findings_one_per_address_past_the_first_level():
    thresholds = L.thresholds_for({})
    rows = [{'address': 'a', 'count': 60, 'paths': {'/token': 60}, 'statuses': {'400': 60}, 'first_seen': 'x',
             'last_seen': 'y'},
            {'address': 'b', 'count': 11, 'paths': {'/otp': 11}, 'statuses': {'400': 11}, 'first_seen': 'x',
             'last_seen': 'y'},
            {'address': 'c', 'count': 3, 'paths': {}, 'statuses': {}, 'first_seen': 'x', 'last_seen': 'y'}]
    found = L.address_findings(thresholds, L.AUTH_FAILED, rows, 168, 'failed sign-ins', 'act', 'project=p', False)
    assert [(f['object'], f['status']) for f in found] == [('address=a', 'critical'), ('address=b', 'warning')]
    assert all(f['category'] == 'security' for f in found)
    quiet = L.address_findings(thresholds, L.AUTH_FAILED, rows[2:], 168, 'failed sign-ins', 'act', 'project=p', True)
    assert len(quiet) == 1 and quiet[0]['status'] == 'ok' and 'lower bound' in quiet[0]['message']
    none = L.address_findings(thresholds, L.AUTH_RATE, [], 24, 'rate-limited', 'act', 'project=p', False)
    assert none[0]['status'] == 'ok' and none[0]['value'] == 0


# --- answers -------------------------------------------------------------------------------------------------

def test_parse_answer():
    assert L.parse_answer({'result': [{'a': 1}], 'error': None}, 'q') == [{'a': 1}]
    assert L.parse_answer({'result': []}, 'q') == []
    with pytest.raises(L.LogsQueryError, match='the logs query failed: Backend error'):
        L.parse_answer({'result': None, 'error': 'Backend error'}, 'q')
    with pytest.raises(S.MalformedAnswer, match='result is null, not a list'):
        L.parse_answer({'result': None, 'error': None}, 'q')
    with pytest.raises(S.MalformedAnswer, match=r'result\[1\] is a text'):
        L.parse_answer({'result': [{}, 'row']}, 'q')
    assert L.LogsQueryError('x').kind == 'query'


def test_error_text_of_the_object_form():
    error = {'code': 400, 'message': 'bad', 'status': 'INVALID_ARGUMENT',
             'errors': [{'domain': 'global', 'location': 'q', 'locationType': 'parameter', 'message': 'bad',
                         'reason': 'invalid'}, {'message': 'worse', 'reason': 'invalid'}]}
    assert L.error_text(error) == 'bad (worse)'
    assert L.error_text('  two\nlines ') == 'two lines'
    assert L.error_text(42) == '42'
    assert len(L.error_text('x' * 1000)) == 303


@pytest.mark.parametrize('value,expected', [
    (1795435242123456, datetime.datetime(2026, 11, 23, 12, 0, 42, 123456, tzinfo=datetime.timezone.utc)),
    ('1795435242123456', datetime.datetime(2026, 11, 23, 12, 0, 42, 123456, tzinfo=datetime.timezone.utc)),
    ('2026-11-23T12:00:42.123456Z', datetime.datetime(2026, 11, 23, 12, 0, 42, 123456, tzinfo=datetime.timezone.utc)),
    ('2026-11-23 12:00:42', datetime.datetime(2026, 11, 23, 12, 0, 42, tzinfo=datetime.timezone.utc)),
    (True, None), (-5, None), (10 ** 20, None), ('soon', None), (None, None), (float('nan'), None),
])
def test_row_time(value, expected):
    assert L.row_time(value) == expected


# --- options -----------------------------------------------------------------------------------------------

PARAMS = {'project_ref': REF, 'access_token': 'sbp_' + 'a' * 40, 'api_url': S.DEFAULT_API_URL,
          'sources': ['postgres', 'auth', 'api'], 'window_hours': 168.0, 'row_limit': 1000, 'top': 10,
          'min_requests': 20, 'state_file': None, 'thresholds': {}, 'validate_certs': True, 'ca_cert': None,
          'timeout': 30.0, 'retries': 2, 'max_retry_wait': 60.0, 'fail_on_error': True, 'severity': {}}


@pytest.mark.parametrize('change,message', [
    ({'window_hours': float('inf')}, 'window_hours must be more than 0'),
    ({'window_hours': 0.001}, 'at least one minute'),
    ({'top': 0}, 'top must be from 1 to 1000'),
    ({'min_requests': 0}, 'min_requests must be 1 or more'),
    ({'row_limit': 10001}, 'row_limit must be from 1 to 10000'),
    ({'ca_cert': '/nonexistent/ca.pem'}, 'ca_cert /nonexistent/ca.pem is not a file'),
    ({'thresholds': {'log_panic': 'x'}}, 'thresholds.log_panic must be a dict'),
])
def test_options_refused(change, message):
    with pytest.raises(ConfigurationError, match=message):
        L.validate_params(dict(PARAMS, **change))


def test_thresholds_defaults_and_overrides():
    merged = L.validate_params(PARAMS)
    assert merged[L.API_ERRORS]['warning'] == 1 and merged[L.API_ERRORS]['critical'] == 5
    assert merged[L.API_LATENCY]['critical'] == 3000 and merged[L.AUTH_FAILED]['critical'] == 50
    assert merged['log_panic']['critical'] == 0 and merged['log_new_patterns']['warning'] == 0
    changed = L.validate_params(dict(PARAMS, thresholds={'api_error_rate': {'warning': '2', 'critical': None}}))
    assert changed[L.API_ERRORS]['warning'] == 2 and changed[L.API_ERRORS]['critical'] is None
    assert C.first_limit(changed[L.API_ERRORS]) == 2


# --- the state file ----------------------------------------------------------------------------------------

def test_state_round_trip_keeps_the_newest(tmp_path, monkeypatch):
    path = str(tmp_path / 'state.json')
    assert L.read_state(path, REF, NOW) == ({}, None)
    seen = {'k1': NOW - datetime.timedelta(hours=2), 'k2': NOW - datetime.timedelta(hours=1)}
    assert L.write_state(path, REF, {}, seen, NOW) == 2
    known, problem = L.read_state(path, REF, NOW)
    assert problem is None and known == dict((k, v.replace(microsecond=v.microsecond)) for k, v in seen.items())
    monkeypatch.setattr(L, 'MAX_STATE_PATTERNS', 1)
    L.write_state(path, REF, known, {}, NOW)
    assert list(json.load(open(path))['patterns']) == ['k2']


def test_state_problems(tmp_path):
    path = tmp_path / 'state.json'
    good = {'format': L.STATE_FORMAT, 'project_ref': REF, 'saved_at': iso(NOW), 'patterns': {'k': iso(NOW)}}
    cases = [
        (dict(good, patterns={'': iso(NOW)}), 'a pattern key is ""'),
        (dict(good, saved_at=None), 'its saved_at null is not a time'),
        (dict(good, patterns={'k': iso(NOW + datetime.timedelta(minutes=10))}), 'after the file was saved'),
    ]
    for data, reason in cases:
        path.write_text(json.dumps(data))
        known, problem = L.read_state(str(path), REF, NOW)
        assert known == {} and reason in problem, problem
    path.write_bytes(b'\xff\xfe')
    assert 'cannot be read as JSON' in L.read_state(str(path), REF, NOW)[1]
