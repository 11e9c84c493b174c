# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults of the logs endpoint supabase_logs_info survives, each named after the fault, against the local HTTPS
stand-in of Supabase's Management API (tests/management_api.py; GET /v1/projects/{ref}/analytics/endpoints/logs.all,
operation v1-get-project-logs of Supabase's published OpenAPI specification, the public supabase/cli repository,
packages/api/src/generated/openapi.json - an AnalyticsResponse of ``result`` and ``error``, windows of at most 24
hours): a refused token, rate limits, a truncated or malformed answer, an ``error`` instead of rows, a row outside
the window asked for - each a clear, specific failure or ``unknown``, never an ``ok``."""

from __future__ import annotations

import datetime
import time

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import supabase_api as S
from ansible_collections.appcare.maintenance.plugins.module_utils import supabase_logs as L
from management_api import PROJECT_REF, TOKEN, ManagementApiStandIn, Reply, auth_log, edge_log, micros, pg_log
from modrunner import run_module
from webserver import CertificateAuthority

LOGS = '/v1/projects/%s/analytics/endpoints/logs.all' % PROJECT_REF


@pytest.fixture(scope='module')
def stand_in(tmp_path_factory):
    ca = CertificateAuthority(str(tmp_path_factory.mktemp('supabase-logs-fault-tls')))
    server = ManagementApiStandIn(*ca.issue('api')).start()
    server.ca_file = ca.ca_file
    yield server
    server.stop()


@pytest.fixture
def api(stand_in):
    stand_in.reset()
    stand_in.logs['postgres_logs'].append(pg_log(2, 'ERROR', 'permission denied for table invoices', '42501'))
    stand_in.logs['auth_logs'].append(auth_log(3, 400, '/token', '203.0.113.7'))
    for index in range(30):
        stand_in.logs['edge_logs'].append(edge_log(1 + index / 10.0))
    return stand_in


def run(api, **extra):
    options = {'project_ref': PROJECT_REF, 'access_token': TOKEN, 'api_url': api.url, 'ca_cert': api.ca_file,
               'retries': 0, 'window_hours': 48}
    options.update(extra)
    result = run_module('supabase_logs_info', options)
    assert TOKEN not in result.raw
    return result


def test_fault_a_refused_token(api):
    result = run(api, access_token='sbp_' + 'e' * 40)
    assert result.failed
    assert 'HTTP 401 Unauthorized (the API said: Unauthorized) - the access token was not accepted' in result['msg']
    assert len(api.requests) == 1  # every other request would be refused the same way
    assert 'sbp_' + 'e' * 40 not in result.raw
    result = run(api, access_token='sbp_' + 'e' * 40, fail_on_error=False)
    assert result.rc == 0 and result.check('supabase_api')['status'] == 'critical'
    for name in ('log_panic', 'auth_failed_signins', 'api_error_rate', 'api_latency'):
        assert result.check(name)['status'] == 'unknown', result.check(name)


def test_fault_a_token_without_the_logs_permission(api):
    api.queue[LOGS] = [Reply(403, {'message': 'Forbidden resource'})]
    result = run(api)
    assert result.failed and 'HTTP 403' in result['msg'] and 'analytics_logs_read' in result['msg'], result['msg']


def test_fault_rate_limited_then_answered(api):
    api.queue[LOGS] = [Reply(429, {'message': 'Too Many Requests'}, {'Retry-After': '1'})]
    started = time.monotonic()
    result = run(api)
    assert result.rc == 0 and result['status'] != 'unknown', result.raw
    assert time.monotonic() - started >= 1.0
    first = result['management_api']['requests'][0]
    assert first['attempts'] == 2 and first['waited_seconds'] == 1.0 and first['status'] == 200
    assert result.check('supabase_api')['status'] == 'ok'


def test_fault_rate_limited_beyond_the_longest_wait(api):
    api.queue[LOGS] = [Reply(429, {'message': 'Too Many Requests'}, {'Retry-After': '120'})]
    started = time.monotonic()
    result = run(api, max_retry_wait=5)
    assert time.monotonic() - started < 5
    assert result.failed
    assert 'rate limited (HTTP 429): the API asks to wait 120 s, more than the 5 s left of max_retry_wait' in result['msg']
    assert len(api.requests) == 1  # no more requests into a rate limit


def test_fault_a_truncated_answer(api):
    api.queue[LOGS] = [Reply(200, b'{"result": [{"timestamp": 1', {'Content-Type': 'application/json'}, length=400)]
    result = run(api)
    assert result.failed and 'truncated' in result['msg'], result['msg']
    api.queue[LOGS] = [Reply(200, b'{"result": [{"timestamp": 1', {'Content-Type': 'application/json'}, length=400)]
    result = run(api, fail_on_error=False)
    assert result.rc == 0, result.raw
    assert result.check('log_new_patterns')['status'] == 'unknown'  # the first request was postgres_logs'
    assert 'truncated' in result.check('log_new_patterns')['message']
    assert result.check('api_error_rate')['status'] == 'ok'  # the other sources still read
    assert result.check('supabase_api')['status'] == 'critical'


@pytest.mark.parametrize('table,answer,message', [
    ('postgres_logs', {'result': {'rows': []}, 'error': None}, 'result is an object, not a list of rows'),
    ('postgres_logs', {'error': None}, 'lacks result'),
    ('postgres_logs', {'result': [['ERROR', 'boom']], 'error': None}, 'result[0] is a list, not a row'),
    ('postgres_logs', [{'timestamp': 1}], 'is not an object but a list'),
    ('postgres_logs', {'result': [{'timestamp': 'yesterday', 'event_message': 'x', 'error_severity': 'ERROR'}]},
     'timestamp is "yesterday", not a time'),
    ('auth_logs', {'result': [{'remote_addr': '203.0.113.7', 'path': '/token', 'status': 400, 'count': 'many',
                               'rate_limit_messages': 0, 'refresh_failures': 0}]}, 'count is "many", not a count'),
    ('auth_logs', {'result': [{'remote_addr': '203.0.113.7', 'path': '/token', 'status': 'bad', 'count': 1}]},
     'status is "bad", not an HTTP status'),
    ('edge_logs', {'result': [{'latency_bucket': 60, 'status_class': '2xx', 'requests': 5}]},
     'status_class is "2xx", not 5xx, 4xx or other'),
])
def test_fault_a_malformed_answer(api, table, answer, message):
    api.log_queue[table] = [answer]
    result = run(api, sources=[table.split('_')[0].replace('edge', 'api')])
    assert result.failed and message in result['msg'], result['msg']
    assert 'supabase_logs_info failed: GET %s' % LOGS in result['msg']


def test_fault_more_errors_than_requests(api):
    api.log_queue['edge_logs'] = [{'result': []}, {'result': [{'method': 'GET', 'path': '/rest/v1/x', 'requests': 1,
                                                               'errors_5xx': 5, 'errors_4xx': 0}]}]
    result = run(api, sources=['api'], window_hours=24)
    assert result.failed and 'more errors (5) than requests (1)' in result['msg'], result['msg']


@pytest.mark.parametrize('error,text', [
    ('Backend error! Retry your query. Please contact support if this continues.', 'Backend error! Retry your query'),
    ({'code': 400, 'message': 'Syntax error: Unexpected keyword FROM at [3:1]', 'status': 'INVALID_ARGUMENT',
      'errors': [{'domain': 'global', 'location': 'q', 'locationType': 'parameter', 'message': 'Unrecognized name: '
                  'parsed', 'reason': 'invalidQuery'}]},
     'Syntax error: Unexpected keyword FROM at [3:1] (Unrecognized name: parsed)'),
])
def test_fault_an_error_in_the_answer(api, error, text):
    api.log_queue['postgres_logs'] = [{'result': None, 'error': error}]
    result = run(api)
    assert result.failed and 'the logs query failed: %s' % text in result['msg'], result['msg']
    api.log_queue['postgres_logs'] = [{'result': None, 'error': error}]
    api.log_windows = []
    result = run(api, fail_on_error=False)
    assert result.rc == 0, result.raw
    for name in ('log_panic', 'log_fatal', 'log_error_rate', 'log_new_patterns'):
        found = result.check(name)
        assert found['status'] == 'unknown' and text in found['message'], found
    assert result['postgres'] is None and 'log_review' in result['report']  # the Auth part still reported
    assert result.check('auth_failed_signins')['status'] == 'ok'
    assert result.check('api_error_rate')['status'] == 'ok'
    api_check = result.check('supabase_api')
    assert api_check['status'] == 'critical' and text in api_check['message']
    # The part that failed is not asked again in the next slice; the others are.
    tables = [w['table'] for w in api.log_windows]
    assert tables.count('postgres_logs') == 1 and tables.count('auth_logs') == 2


def test_fault_a_row_outside_the_window(api):
    # The oldest slice (48 to 24 hours ago) answers a row of an hour ago: not to be counted, not to be trusted.
    row = {'timestamp': micros(1), 'event_message': 'deadlock detected', 'error_severity': 'ERROR',
           'sql_state_code': '40P01', 'user_name': 'postgres', 'database_name': 'postgres'}
    api.log_queue['postgres_logs'] = [{'result': [row], 'error': None}]
    result = run(api, sources=['postgres'])
    assert result.failed and 'lies outside the window asked for' in result['msg'], result['msg']


def test_fault_a_window_over_24_hours_is_refused(api):
    end = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    client = S.ManagementApi(api.url, TOKEN, ca_cert=api.ca_file, retries=0)
    with pytest.raises(ValueError):  # the client never asks for it
        client.logs_all(PROJECT_REF, L.POSTGRES_SQL % 10, end - datetime.timedelta(hours=25), end)
    # The stand-in refuses it as the API does, and the answer's error object reads as a failed query.
    document = client.get(LOGS, [('sql', L.POSTGRES_SQL % 10),
                                 ('iso_timestamp_start', (end - datetime.timedelta(hours=25)).strftime('%Y-%m-%dT%H:%M:%SZ')),
                                 ('iso_timestamp_end', end.strftime('%Y-%m-%dT%H:%M:%SZ'))])
    with pytest.raises(L.LogsQueryError) as raised:
        L.parse_answer(document, 'GET %s' % LOGS)
    assert 'the logs query failed: The timestamp range must be no more than 24 hours' in str(raised.value)
