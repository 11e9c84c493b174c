# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""supabase_logs_info against the local HTTPS stand-in of Supabase's Management API (tests/management_api.py).

The stand-in answers GET /v1/projects/{ref}/analytics/endpoints/logs.all as Supabase's published OpenAPI
specification describes it (the public supabase/cli repository, packages/api/src/generated/openapi.json, operation
v1-get-project-logs, schema AnalyticsResponse: ``result`` and ``error``; windows of at most 24 hours), from log events
of the shapes of the Logs Explorer's field reference (the public supabase/supabase repository,
packages/shared-data/logConstants.ts). Every finding fires where it should and stays quiet where it should; the week
is read in 24-hour slices on whole minutes; new error patterns are remembered across runs; the token never appears
in any output."""

from __future__ import annotations

import datetime
import json
import sys
import textwrap

import pytest

from management_api import PROJECT_REF, TOKEN, ManagementApiStandIn, auth_log, edge_log, pg_log
from modrunner import run_module, run_playbook
from webserver import CertificateAuthority

LOGS = '/v1/projects/%s/analytics/endpoints/logs.all' % PROJECT_REF


@pytest.fixture(scope='module')
def tls(tmp_path_factory):
    ca = CertificateAuthority(str(tmp_path_factory.mktemp('supabase-logs-tls')))
    return {'ca': ca.ca_file, 'cert': ca.issue('api')}


@pytest.fixture(scope='module')
def stand_in(tls):
    server = ManagementApiStandIn(*tls['cert']).start()
    yield server
    server.stop()


@pytest.fixture
def api(stand_in):
    stand_in.reset()
    return stand_in


def run(api, tls, check_mode=False, **extra):
    options = {'project_ref': PROJECT_REF, 'access_token': TOKEN, 'api_url': api.url, 'ca_cert': tls['ca'],
               'retries': 0}
    options.update(extra)
    result = run_module('supabase_logs_info', options, check_mode=check_mode)
    assert TOKEN not in result.raw, 'the access token appeared in the output'
    return result


def findings(result, name):
    return [c for c in result['checks'] if c['name'] == name]


def steady_traffic(api, requests=200, hours=160):
    """``requests`` successful API calls spread over ``hours``, 20-60 ms each."""
    for index in range(requests):
        api.logs['edge_logs'].append(edge_log(hours * index / float(requests) + 0.1, origin_time=20 + index % 41))


def test_a_quiet_week_read_in_24_hour_slices(api, tls):
    steady_traffic(api)
    api.logs['postgres_logs'].append(pg_log(30, 'WARNING', 'there is no transaction in progress', '25P01'))
    api.logs['auth_logs'].append(auth_log(5, 200))  # a good sign-in is no failure
    api.logs['edge_logs'].append(edge_log(200))  # older than the week: not read
    result = run(api, tls)
    assert result.rc == 0, result.raw
    assert result['status'] == 'ok' and result['changed'] is False, result['checks']
    for name in ('log_panic', 'log_fatal', 'log_error_rate', 'log_new_patterns', 'auth_failed_signins',
                 'auth_rate_limited', 'api_error_rate', 'api_latency', 'supabase_api'):
        assert result.check(name)['status'] == 'ok', result.check(name)
    assert result.check('auth_failed_signins')['category'] == 'security'
    assert result.check('auth_rate_limited')['category'] == 'security'
    assert result['postgres']['severities'] == {'PANIC': 0, 'FATAL': 0, 'ERROR': 0, 'WARNING': 1}
    assert result['api']['requests'] == 200 and result['api']['errors_5xx'] == 0
    assert 20 <= result['api']['latency_ms']['p50'] <= 60 * 1.06
    assert result['window']['slices'] == 7 and result['window']['hours'] == 168
    assert result['truncated'] == {'postgres': [], 'auth': [], 'api_latency': [], 'api_paths': []}

    # The week, paged: per query 7 windows of exactly 24 hours on whole minutes, each starting where the one before
    # ended, the last ending at the current minute.
    assert len(api.log_windows) == 28 and len(result['management_api']['requests']) == 28
    by_table = {}
    for window in api.log_windows:
        by_table.setdefault((window['table'], 'latency_bucket' in window['sql']), []).append(window)
    assert sorted(by_table) == [('auth_logs', False), ('edge_logs', False), ('edge_logs', True),
                                ('postgres_logs', False)]
    for windows in by_table.values():
        assert len(windows) == 7
        for before, after in zip(windows, windows[1:], strict=False):
            assert before['end'] == after['start']
        for window in windows:
            assert window['end'] - window['start'] == datetime.timedelta(hours=24)
            assert window['raw_start'].endswith(':00Z') and window['raw_end'].endswith(':00Z')
        assert windows[-1]['end'] - windows[0]['start'] == datetime.timedelta(hours=168)
        assert datetime.datetime.now(datetime.timezone.utc) - windows[-1]['end'] < datetime.timedelta(minutes=2)
    assert all(r['path'] == LOGS and r['status'] == 200 for r in result['management_api']['requests'])
    assert api.requests[0]['headers']['Authorization'] == 'Bearer %s' % TOKEN
    report = result['report']
    assert report['log_review']['source'] == 'supabase' and report['log_review']['finished_at']
    assert report['api_traffic']['requests'] == 200


def test_postgres_errors_are_grouped_and_judged(api, tls):
    for index in range(30):
        api.logs['postgres_logs'].append(pg_log(2 + index / 100.0, 'ERROR', 'duplicate key value violates unique '
                                                'constraint "orders_pkey"', '23505', client='10.0.0.%d' % index))
    now = datetime.datetime.now(datetime.timezone.utc)
    burst = (now - datetime.timedelta(hours=50)).replace(minute=5, second=0, microsecond=0)
    for index in range(120):  # a burst: 120 errors within one clock hour
        moment = burst + datetime.timedelta(seconds=10 * index)
        api.logs['postgres_logs'].append(pg_log((now - moment).total_seconds() / 3600.0, 'ERROR',
                                                'relation "order_%d" does not exist' % index, '42P01', base=now))
    api.logs['postgres_logs'].append(pg_log(70, 'FATAL', 'terminating connection because of crash of another '
                                            'server process', '57P02'))
    api.logs['postgres_logs'].append(pg_log(70.1, 'PANIC', 'could not write to file "pg_wal/xlogtemp.123": No '
                                            'space left on device', '53100'))
    api.logs['postgres_logs'].append(pg_log(100, 'LOG', 'checkpoint complete'))  # not asked for
    result = run(api, tls, sources=['postgres'])
    assert result.rc == 0, result.raw
    assert result['postgres']['severities'] == {'PANIC': 1, 'FATAL': 1, 'ERROR': 150, 'WARNING': 0}
    top = result['postgres']['top_errors']
    assert top[0]['count'] == 120 and top[0]['pattern'] == 'relation "..." does not exist', top[0]
    assert top[1]['count'] == 30 and top[1]['sqlstate'] == '23505' and top[1]['severity'] == 'ERROR'
    assert top[1]['pattern'] == 'duplicate key value violates unique constraint "..."'
    assert top[1]['users'] == ['authenticator'] and top[1]['databases'] == ['postgres']
    assert len(top[1]['clients']) == 10  # pglog keeps at most ten
    panic = result.check('log_panic')
    assert panic['status'] == 'critical' and panic['value'] == 1 and 'No space left on device' in panic['message']
    assert result.check('log_fatal')['status'] == 'critical'
    rate = result.check('log_error_rate')
    assert rate['status'] == 'warning' and rate['value'] == 120, rate  # pg_log_info's levels: 60 / 600 errors an hour
    new = result.check('log_new_patterns')
    assert new['status'] == 'ok' and 'set state_file' in new['message']  # without a state file nothing is "new"
    assert result['api'] is None and result['auth'] is None
    assert not findings(result, 'api_error_rate') and not findings(result, 'auth_failed_signins')
    assert {w['table'] for w in api.log_windows} == {'postgres_logs'}
    assert result['report']['log_review']['top_errors'][0]['count'] == 120
    assert 'api_traffic' not in result['report']


def test_new_patterns_are_remembered_across_runs(api, tls, tmp_path):
    state = tmp_path / 'state' / 'supabase.json'
    api.logs['postgres_logs'].append(pg_log(3, 'ERROR', 'permission denied for table invoices', '42501'))
    first = run(api, tls, sources=['postgres'], state_file=str(state))
    assert first.rc == 0, first.raw
    # the first run records the baseline, as pg_log_info's does: nothing is "new" before anything was seen
    baseline = first.check('log_new_patterns')
    assert baseline['status'] == 'ok' and 'first run' in baseline['message'], baseline
    assert first['postgres']['new_patterns'] == [] and first['postgres']['top_errors'][0]['new'] is False
    assert first.check('log_state')['status'] == 'ok'
    saved = json.loads(state.read_text())
    assert saved['format'] == 'appcare.supabase_logs/1' and saved['project_ref'] == PROJECT_REF
    assert list(saved['patterns']) == [first['postgres']['top_errors'][0]['key']]
    last_seen = datetime.datetime.strptime(saved['patterns'][first['postgres']['top_errors'][0]['key']],
                                           '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc)
    hours_ago = (datetime.datetime.now(datetime.timezone.utc) - last_seen).total_seconds() / 3600.0
    assert 2.9 < hours_ago < 3.1  # when the pattern was last seen, not when the run was
    assert oct(state.stat().st_mode & 0o777) == '0o600'

    second = run(api, tls, sources=['postgres'], state_file=str(state))
    quiet = second.check('log_new_patterns')
    assert quiet['status'] == 'ok' and quiet['value'] == 0, quiet
    assert second['postgres']['top_errors'][0]['new'] is False and second['postgres']['new_patterns'] == []

    api.logs['postgres_logs'].append(pg_log(1, 'ERROR', 'canceling statement due to statement timeout', '57014'))
    before = state.read_text()
    checked = run(api, tls, check_mode=True, sources=['postgres'], state_file=str(state))
    assert checked.check('log_new_patterns')['value'] == 1
    assert state.read_text() == before  # check mode writes nothing
    third = run(api, tls, sources=['postgres'], state_file=str(state))
    fired = third.check('log_new_patterns')
    assert fired['status'] == 'warning' and fired['value'] == 1 and 'statement timeout' in fired['message']
    assert [p['pattern'] for p in third['postgres']['new_patterns']] == ['canceling statement due to statement timeout']
    assert len(json.loads(state.read_text())['patterns']) == 2


def test_failed_signins_per_address(api, tls):
    for index in range(60):
        api.logs['auth_logs'].append(auth_log(10 + index / 60.0, 400, '/token', '203.0.113.7',
                                              error='400: Invalid login credentials'))
    for index in range(12):
        api.logs['auth_logs'].append(auth_log(30 + index, 400, '/verify', '198.51.100.9:51234',
                                              error='403: Email link is invalid or has expired'))
    for index in range(40):  # expired sessions: failed refreshes, not failed sign-ins
        api.logs['auth_logs'].append(auth_log(40 + index / 10.0, 400, '/token', '192.0.2.50',
                                              error='invalid_grant: Invalid Refresh Token: Already Used'))
    for index in range(5):
        api.logs['auth_logs'].append(auth_log(50 + index, 422, '/signup', '192.0.2.77'))  # not a sign-in endpoint
    result = run(api, tls, sources=['auth'])
    assert result.rc == 0, result.raw
    fired = dict((c['object'], c) for c in findings(result, 'auth_failed_signins'))
    assert sorted(fired) == ['address=198.51.100.9', 'address=203.0.113.7'], fired
    worst = fired['address=203.0.113.7']
    assert worst['status'] == 'critical' and worst['value'] == 60 and worst['category'] == 'security'
    assert '/token 60' in worst['message'] and worst['critical'] == 50
    assert fired['address=198.51.100.9']['status'] == 'warning'  # the port is not part of the address
    listed = result['auth']['failed_signins_by_address']
    assert [(r['address'], r['count']) for r in listed] == [('203.0.113.7', 60), ('198.51.100.9', 12)]
    assert listed[0]['statuses'] == {'400': 60}
    assert result.check('auth_rate_limited')['status'] == 'ok'
    assert result['report']['log_review']['failed_signins'][0]['address'] == '203.0.113.7'


def test_rate_limited_requests_per_address(api, tls):
    for index in range(15):
        api.logs['auth_logs'].append(auth_log(6 + index / 30.0, 429, '/otp', '2001:db8::17',
                                              error='429: over_request_rate_limit'))
    for _attempt in range(3):
        api.logs['auth_logs'].append(auth_log(9, 429, '/token', '192.0.2.5', error='429: Too Many Requests'))
    result = run(api, tls, sources=['auth'])
    limited = findings(result, 'auth_rate_limited')
    assert len(limited) == 1, limited
    assert limited[0]['status'] == 'warning' and limited[0]['value'] == 15 and limited[0]['object'] == 'address=2001:db8::17'
    assert limited[0]['category'] == 'security'
    assert [r['count'] for r in result['auth']['rate_limited_by_address']] == [15, 3]
    assert result.check('auth_failed_signins')['status'] == 'ok'  # a 429 is not a failed sign-in
    raised = run(api, tls, sources=['auth'], thresholds={'auth_rate_limited': {'warning': 20, 'critical': 200}})
    assert raised.check('auth_rate_limited')['status'] == 'ok'


def test_api_error_rate_fires_and_4xx_are_apart(api, tls):
    for index in range(1000):
        code = 503 if index % 50 == 0 else 404 if index % 10 == 1 else 200  # 2 % 5xx, 10 % 4xx
        path = '/rest/v1/rpc/checkout' if code == 503 else '/rest/v1/items'
        api.logs['edge_logs'].append(edge_log(1 + index / 10.0, code, path, 'POST' if code == 503 else 'GET'))
    result = run(api, tls, sources=['api'])
    assert result.rc == 0, result.raw
    rate = result.check('api_error_rate')
    assert rate['status'] == 'warning' and rate['value'] == 2.0 and rate['unit'] == '%', rate
    assert 'POST /rest/v1/rpc/checkout' in rate['message'] and '4xx: 100 (10 %)' in rate['message'], rate['message']
    assert result['api']['errors_4xx'] == 100 and result['api']['error_4xx_percent'] == 10.0
    top = result['api']['top_error_paths']
    assert top[0] == {'method': 'POST', 'path': '/rest/v1/rpc/checkout', 'requests': 20, 'errors_5xx': 20,
                      'errors_4xx': 0, 'error_rate_percent': 100.0}
    assert top[1]['path'] == '/rest/v1/items' and top[1]['errors_4xx'] == 100
    assert result.check('api_latency')['status'] == 'ok'
    for index in range(40):
        api.logs['edge_logs'].append(edge_log(2 + index / 10.0, 500, '/rest/v1/rpc/checkout', 'POST'))
    assert run(api, tls, sources=['api']).check('api_error_rate')['status'] == 'critical'  # 60 of 1040: 5.8 %


def test_api_latency_p95(api, tls):
    for index in range(200):
        slow = index % 10 == 0  # 10 % answered in 2 s
        api.logs['edge_logs'].append(edge_log(1 + index / 10.0, origin_time=2000 if slow else 30))
    result = run(api, tls, sources=['api'])
    latency = result.check('api_latency')
    assert latency['status'] == 'warning' and 2000 <= latency['value'] <= 2000 * 1.052, latency
    assert result['api']['latency_ms']['p50'] <= 30 * 1.052
    assert result.check('api_error_rate')['status'] == 'ok'
    quiet = run(api, tls, sources=['api'], thresholds={'api_latency': {'warning': 2500, 'critical': 4000}})
    assert quiet.check('api_latency')['status'] == 'ok'


def test_too_few_requests_are_not_judged(api, tls):
    for index in range(5):
        api.logs['edge_logs'].append(edge_log(1 + index, 500, origin_time=9000))
    result = run(api, tls, sources=['api'])
    for name in ('api_error_rate', 'api_latency'):
        found = result.check(name)
        assert found['status'] == 'ok' and 'too few to judge' in found['message'], found
    assert result['api']['errors_5xx'] == 5
    assert run(api, tls, sources=['api'], min_requests=5).check('api_error_rate')['status'] == 'critical'


def test_a_limit_reached_is_said(api, tls):
    for index in range(30):
        api.logs['postgres_logs'].append(pg_log(1 + index / 100.0, 'ERROR', 'value too long for type character '
                                                'varying(%d)' % index, '22001'))
    result = run(api, tls, sources=['postgres'], row_limit=10, window_hours=48)
    assert result['window']['slices'] == 2
    assert len(result['truncated']['postgres']) == 1 and result['report']['log_review']['truncated'] is True
    assert result['postgres']['severities']['ERROR'] == 10
    assert 'counts are a lower bound' in result.check('log_error_rate')['message']
    # Auth and the API are counted by the API: a low row_limit cuts the listed paths, never the error rate.
    for index in range(60):
        api.logs['edge_logs'].append(edge_log(1 + index / 10.0, 500 if index % 3 == 0 else 200,
                                              '/rest/v1/table_%d' % (index % 6), origin_time=10 + index * 7))
    result = run(api, tls, sources=['api'], row_limit=2, window_hours=24)
    assert result['api']['requests'] == 60 and result['api']['errors_5xx'] == 20
    assert result['truncated']['api_paths'] and not result['truncated']['api_latency']
    assert len(result['api']['top_error_paths']) == 2 and result['api']['top_paths_truncated'] is True
    assert result.check('api_error_rate')['status'] == 'critical'


@pytest.mark.parametrize('extra,message', [
    ({'project_ref': 'abc'}, "project_ref 'abc' is not a project reference"),
    ({'window_hours': 0}, 'window_hours must be more than 0'),
    ({'window_hours': 24 * 91}, 'at most 2160'),
    ({'row_limit': 0}, 'row_limit must be from 1 to 10000'),
    ({'sources': []}, 'sources is empty'),
    ({'thresholds': {'api_errors': {'warning': 1}}}, "thresholds: 'api_errors' is not a check with thresholds"),
    ({'thresholds': {'api_latency': {'warning': 5000, 'critical': 1000}}}, 'warning threshold 5000 is above'),
    ({'api_url': 'http://api.example.org'}, 'is plain http'),
    ({'severity': {'api_latency': 'fatal'}}, 'severity.api_latency must be one of'),
])
def test_bad_options_are_refused_before_any_request(api, tls, extra, message):
    result = run(api, tls, **extra)
    assert result.failed and result['msg'].startswith('invalid options: ') and message in result['msg'], result['msg']
    assert not api.requests


def test_severity_changes_a_fired_finding(api, tls):
    for _attempt in range(12):
        api.logs['auth_logs'].append(auth_log(3, 400, '/token', '203.0.113.8'))
    result = run(api, tls, sources=['auth'], severity={'auth_failed_signins': 'critical'})
    found = result.check('auth_failed_signins')
    assert found['status'] == 'critical' and found['default_status'] == 'warning'


def test_the_token_is_never_shown_even_at_vvvv(api, tls, tmp_path):
    api.logs['auth_logs'].append(auth_log(3, 400, '/token', '203.0.113.8'))
    playbook = tmp_path / 'play.yml'
    playbook.write_text(textwrap.dedent('''\
        - hosts: localhost
          gather_facts: false
          vars_files: [secrets.yml]
          tasks:
            - name: Review the logs
              appcare.maintenance.supabase_logs_info:
                project_ref: {ref}
                access_token: "{{{{ token }}}}"
                api_url: {url}
                ca_cert: {ca}
                window_hours: 24
            - name: A refused token
              appcare.maintenance.supabase_logs_info:
                project_ref: {ref}
                access_token: "{{{{ token }}}}x"
                api_url: {url}
                ca_cert: {ca}
                window_hours: 24
              ignore_errors: true
        ''').format(ref=PROJECT_REF, url=api.url, ca=tls['ca']))
    (tmp_path / 'secrets.yml').write_text('token: %s\n' % TOKEN)
    inventory = tmp_path / 'hosts.ini'
    inventory.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
    proc = run_playbook(str(playbook), str(inventory), options=['-vvvv'],
                        env={'APPCARE_REPORT_DIR': str(tmp_path / 'reports')})
    assert 'HTTP 401' in proc.stdout, proc.stdout
    assert 'failed=0' in proc.stdout and 'ignored=1' in proc.stdout, proc.stdout
    assert 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER' in proc.stdout
    assert TOKEN not in proc.stdout
    with open(str(tmp_path / 'reports' / 'latest.json')) as handle:
        report = json.load(handle)
    target = report['targets'][0]
    assert target['log_review']['source'] == 'supabase' and 'age_hours' in target['log_review']
    assert TOKEN not in json.dumps(report)
