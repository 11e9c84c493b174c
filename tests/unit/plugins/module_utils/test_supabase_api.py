# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the Management API client and of supabase_project_info's judgement: times, retry waits, option
checks, the service statuses, the backups answer against Supabase's specification (supabase/cli,
packages/api/src/generated/openapi.json, V1BackupsResponse) and the retry loop with the network replaced."""

from __future__ import annotations

import datetime
import io
import urllib.error
from email.message import Message

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import supabase_api as S
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError, ThresholdError

NOW = datetime.datetime(2026, 11, 23, 12, 0, 0, tzinfo=datetime.timezone.utc)
TOKEN = 'sbp_' + 'a' * 40
PARAMS = {'project_ref': 'abcdefghijklmnopqrst', 'access_token': TOKEN, 'api_url': S.DEFAULT_API_URL,
          'services': list(S.DEFAULT_SERVICES), 'check_backups': True, 'rpo_hours': 26.0,
          'backup_age_warning_hours': None, 'require_pitr': False, 'min_pitr_window_days': None,
          'validate_certs': True, 'ca_cert': None, 'timeout': 30.0, 'retries': 2, 'max_retry_wait': 60.0,
          'fail_on_error': True, 'severity': {}}


def headers(**values):
    message = Message()
    for name, value in values.items():
        message[name.replace('_', '-')] = value
    return message


def at(hours_ago):
    return NOW - datetime.timedelta(hours=hours_ago)


def item(backup_id, hours_ago, status='COMPLETED'):
    return {'id': backup_id, 'is_physical_backup': True, 'status': status,
            'inserted_at': at(hours_ago).strftime('%Y-%m-%dT%H:%M:%S.000Z')}


def answer(backups, pitr=False, earliest=None, latest=None):
    physical = {}
    if earliest is not None:
        physical['earliest_physical_backup_date_unix'] = int(at(earliest).timestamp())
    if latest is not None:
        physical['latest_physical_backup_date_unix'] = int(at(latest).timestamp())
    return {'region': 'eu-central-1', 'walg_enabled': True, 'pitr_enabled': pitr, 'backups': backups,
            'physical_backup_data': physical}


def judge(document, **params):
    found, data = S.backup_findings(S.parse_backups(document), dict(PARAMS, **params), 'project=x', NOW)
    return dict((f['name'], f) for f in found), data


@pytest.mark.parametrize('text,expected', [
    ('2026-11-23T10:00:00Z', datetime.datetime(2026, 11, 23, 10, 0, tzinfo=datetime.timezone.utc)),
    ('2026-11-23T10:00:00.123456789Z', datetime.datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=datetime.timezone.utc)),
    ('2026-11-23T12:00:00+02:00', datetime.datetime(2026, 11, 23, 10, 0, tzinfo=datetime.timezone.utc)),
    ('2026-11-23T05:30:00-0430', datetime.datetime(2026, 11, 23, 10, 0, tzinfo=datetime.timezone.utc)),
    ('2026-02-08 16:44:07', datetime.datetime(2026, 2, 8, 16, 44, 7, tzinfo=datetime.timezone.utc)),  # the CLI's
    ('2026-11-23', None), ('yesterday', None), ('2026-13-01T00:00:00Z', None), (None, None), (1770569047, None),
    ('2026-11-23T10:00:00+25:00', None),
])
def test_parse_time(text, expected):
    assert S.parse_time(text) == expected


@pytest.mark.parametrize('given,expected', [
    (headers(Retry_After='7'), 7.0),
    (headers(Retry_After='Mon, 23 Nov 2026 12:00:30 GMT'), 30.0),
    (headers(Retry_After='Mon, 23 Nov 2026 11:00:00 GMT'), 0.0),
    (headers(X_RateLimit_Reset='42'), 42.0),
    (headers(Retry_After='soon', X_RateLimit_Reset='12'), 12.0),
    (headers(Retry_After='-5'), None),
    (headers(), None),
    (None, None),
])
def test_retry_after_seconds(given, expected):
    assert S.retry_after_seconds(given, now=NOW) == expected


def test_rate_limit_headers():
    assert S.rate_limit_of(headers(X_RateLimit_Limit='120', X_RateLimit_Remaining='3', X_RateLimit_Reset='60')) == {
        'limit': 120, 'remaining': 3, 'reset': 60}
    assert S.rate_limit_of(headers()) is None


@pytest.mark.parametrize('url,error', [
    ('https://api.supabase.com/', None), ('http://127.0.0.1:8080', None), ('https://proxy.example.org/supabase', None),
    ('http://api.example.org', 'plain http'), ('ftp://api.supabase.com', 'not an https:// URL'),
    ('https://api.supabase.com?x=1', 'plain address'), ('https://user:pw@api.supabase.com', 'plain address'),
    ('https://api.supabase.com:0', 'port 0'), ('https://api.supabase.com:99999', 'a port is a number'),
])
def test_api_url(url, error):
    if error is None:
        assert S.validate_api_url(url) == url.rstrip('/')
    else:
        with pytest.raises(ConfigurationError, match=error):
            S.validate_api_url(url)


def test_options():
    S.validate_params(dict(PARAMS))
    with pytest.raises(ThresholdError):
        S.validate_params(dict(PARAMS, backup_age_warning_hours=30.0))
    for bad in ({'project_ref': 'ABCDEFGHIJKLMNOPQRST'}, {'access_token': None}, {'access_token': 'a\nb'},
                {'timeout': 0}, {'retries': -1}, {'max_retry_wait': -1}, {'rpo_hours': 0},
                {'backup_age_warning_hours': -2.0}, {'ca_cert': '/nonexistent/ca.pem'},
                {'ca_cert': '/etc/hostname', 'validate_certs': False}):
        with pytest.raises(ConfigurationError):
            S.validate_params(dict(PARAMS, **bad))


@pytest.mark.parametrize('entry,status', [
    ({'name': 'db', 'healthy': True, 'status': 'ACTIVE_HEALTHY'}, C.OK),
    ({'name': 'db', 'status': 'ACTIVE_HEALTHY'}, C.OK),  # healthy is deprecated: its absence is fine
    ({'name': 'db', 'healthy': False, 'status': 'COMING_UP'}, C.WARNING),
    ({'name': 'db', 'healthy': False, 'status': 'UNHEALTHY', 'error': 'down'}, C.CRITICAL),
    ({'name': 'db', 'healthy': True, 'status': 'UNHEALTHY'}, C.CRITICAL),
    ({'name': 'db', 'healthy': False, 'status': 'ACTIVE_HEALTHY'}, C.WARNING),
    ({'name': 'db', 'healthy': True, 'status': 'active_healthy'}, C.UNKNOWN),
    ({'name': 'db', 'healthy': True}, C.UNKNOWN),
    (None, C.UNKNOWN),
])
def test_service_statuses(entry, status):
    assert S.service_finding('db', entry, 'service=db')['status'] == status


def test_health_answer_shape():
    entries = S.parse_health([{'name': 'db', 'status': 'ACTIVE_HEALTHY'}, {'name': 'db', 'status': 'UNHEALTHY'}])
    assert S.service_finding('db', entries['db'], 'service=db')['status'] == C.UNKNOWN  # answered twice
    with pytest.raises(S.MalformedAnswer, match='not a list'):
        S.parse_health({'db': 'ok'})
    with pytest.raises(S.MalformedAnswer, match='no service name'):
        S.parse_health([{'name': '', 'status': 'ACTIVE_HEALTHY'}])


def test_backups_answer_shape():
    assert S.parse_backups(dict(answer([]), backups=None, physical_backup_data=None))['backups'] == []
    for broken, message in (
            (dict(answer([]), walg_enabled=None), 'walg_enabled is null'),
            (dict(answer([]), region=3), 'region is 3'),
            (dict(answer([item(1, 1)]), backups={'0': item(1, 1)}), 'backups is an object, not a list'),
            (answer([dict(item(1, 1), is_physical_backup='true')]), 'is_physical_backup is "true"'),
            (answer([dict(item(1, 1), id=True)]), 'id is true, not an integer'),
            (answer([dict(item(1, 1), status=None)]), 'status is null'),
            (answer([{'id': 1, 'status': 'COMPLETED', 'is_physical_backup': True}]), 'lacks inserted_at'),
            (dict(answer([]), physical_backup_data={'earliest_physical_backup_date_unix': -1}), 'not seconds'),
            (dict(answer([]), physical_backup_data={'earliest_physical_backup_date_unix': 1.5}), 'not seconds')):
        with pytest.raises(S.MalformedAnswer, match=message.replace('(', r'\(').replace('[', r'\[')):
            S.parse_backups(broken)


def test_daily_backups_are_quiet_and_a_missed_day_fires():
    found, data = judge(answer([item(2, 5), item(1, 29)]))
    assert found[S.BACKUP_AGE]['status'] == C.OK and found[S.BACKUP_AGE]['value'] == 5.0
    assert data['restore_point'] == {'at': '2026-11-23T07:00:00.000000Z', 'age_hours': 5.0, 'source': 'backup'}
    assert [b['age_hours'] for b in data['backups']] == [5.0, 29.0]
    found, _data = judge(answer([item(1, 29)]))
    assert found[S.BACKUP_AGE]['status'] == C.CRITICAL
    found, _data = judge(answer([item(1, 29)]), rpo_hours=48.0, backup_age_warning_hours=25.0)
    assert found[S.BACKUP_AGE]['status'] == C.WARNING


def test_a_clock_a_little_behind_is_not_the_future():
    found, data = judge(answer([item(1, -0.05)]))  # 3 minutes ahead: within the store's 5-minute tolerance
    assert found[S.BACKUP_AGE]['status'] == C.OK and found[S.BACKUP_AGE]['value'] == 0.0
    assert found[S.BACKUP_FUTURE]['status'] == C.OK and data['backups'][0]['future_dated'] is False
    found, data = judge(answer([item(1, -0.2)]))  # 12 minutes ahead
    assert found[S.BACKUP_AGE]['status'] == C.CRITICAL and found[S.BACKUP_FUTURE]['status'] == C.WARNING


def test_failed_backups():
    found, _data = judge(answer([item(3, 1, 'PENDING'), item(2, 2, 'FAILED'), item(1, 20)]))
    assert found[S.BACKUP_FAILED]['status'] == C.CRITICAL  # the newest that ended failed; a pending one is no outcome
    found, _data = judge(answer([item(3, 1, 'CANCELLED'), item(2, 2), item(1, 20, 'FAILED')]))
    assert found[S.BACKUP_FAILED]['status'] == C.WARNING and found[S.BACKUP_FAILED]['value'] == 1
    found, _data = judge(answer([item(2, -30, 'FAILED'), item(1, 2)]))
    assert found[S.BACKUP_FAILED]['status'] == C.WARNING  # a failure dated in the future is counted, not "newest"


def test_pitr():
    found, data = judge(answer([], pitr=True, earliest=14 * 24, latest=0.5), rpo_hours=1.0, require_pitr=True,
                        min_pitr_window_days=7.0)
    assert found[S.PITR]['status'] == C.OK and found[S.PITR]['value'] == 13.98
    assert found[S.BACKUP_AGE]['status'] == C.OK and data['restore_point']['source'] == 'pitr'
    assert data['pitr']['latest_age_hours'] == 0.5
    found, _data = judge(answer([item(1, 3)], pitr=True, earliest=14 * 24, latest=5))
    assert found[S.BACKUP_AGE]['value'] == 3.0  # the newer of the backup and the window's end
    found, _data = judge(answer([item(1, 3)], pitr=True, latest=5))
    assert found[S.PITR]['status'] == C.WARNING
    found, _data = judge(answer([item(1, 3)]), require_pitr=True)
    assert found[S.PITR]['status'] == C.CRITICAL


class FakeResponse(object):
    def __init__(self, body, status=200, hdrs=None):
        self.status = status
        self.headers = hdrs or headers(Content_Length=str(len(body)))
        self.body = io.BytesIO(body)

    def read(self, amount=None):
        return self.body.read(amount)

    def close(self):
        pass


def http_error(code, **values):
    return urllib.error.HTTPError('https://api.supabase.com/x', code, 'reason', headers(**values), io.BytesIO(b'{}'))


def client(script, **options):
    waits = []
    api = S.ManagementApi(S.DEFAULT_API_URL, TOKEN, sleep=waits.append, **options)
    steps = list(script)

    def fake_open(url):
        step = steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    api._open = fake_open  # pylint: disable=protected-access
    return api, waits


def test_rate_limit_waits_what_it_is_asked_within_the_budget():
    api, waits = client([http_error(429, Retry_After='3'), http_error(429, X_RateLimit_Reset='4'), FakeResponse(b'[]')],
                        max_retry_wait=10)
    assert api.get('/v1/x') == []
    assert waits == [3.0, 4.0] and api.calls[0]['attempts'] == 3 and api.calls[0]['waited_seconds'] == 7.0
    api, waits = client([http_error(429, Retry_After='3'), http_error(429, Retry_After='8')], max_retry_wait=10)
    with pytest.raises(S.ApiError, match='asks to wait 8 s, more than the 7 s left') as caught:
        api.get('/v1/x')
    assert caught.value.kind == 'rate_limit' and waits == [3.0]


def test_rate_limit_retries_are_bounded_even_when_the_wait_is_zero():
    api, waits = client([http_error(429, Retry_After='0') for _attempt in range(S.MAX_RATE_LIMIT_RETRIES + 1)])
    with pytest.raises(S.ApiError, match='still rate limited'):
        api.get('/v1/x')
    assert len(waits) == S.MAX_RATE_LIMIT_RETRIES


def test_server_errors_and_dropped_connections_are_retried_a_bounded_number_of_times():
    api, waits = client([http_error(503, Retry_After='5'), urllib.error.URLError(ConnectionResetError(104, 'reset')),
                         FakeResponse(b'{}')], retries=2)
    assert api.get('/v1/x') == {} and waits == [5.0, 2.0]
    api, waits = client([http_error(500), http_error(500)], retries=1)
    with pytest.raises(S.ApiError, match='HTTP 500'):
        api.get('/v1/x')
    assert waits == [1.0]
    api, waits = client([http_error(401)])
    with pytest.raises(S.ApiError, match='not accepted') as caught:
        api.get('/v1/x')
    assert caught.value.kind == 'auth' and waits == []


def test_a_short_or_oversized_answer_is_malformed():
    api, _waits = client([FakeResponse(b'[1, 2', hdrs=headers(Content_Length='20'))])
    with pytest.raises(S.MalformedAnswer, match='5 of the 20 bytes'):
        api.get('/v1/x')
    api, _waits = client([FakeResponse(b' ' * (S.MAX_BODY + 1), hdrs=headers())])
    with pytest.raises(S.MalformedAnswer, match='larger than'):
        api.get('/v1/x')


def test_the_token_is_only_in_the_authorization_header():
    api, _waits = client([FakeResponse(b'[]')])
    api.get('/v1/x')
    assert TOKEN not in repr(api.calls) and TOKEN not in repr(api.rate_limit)
    assert TOKEN not in repr(vars(api).get('calls'))
