# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the alerts: configuration checks, routing, deduplication with the state file, the payloads of
each channel type and the HMAC signature of webhooks (the sending itself is replaced; no network)."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import io
import json
import os
import urllib.error

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import alerting as AL
from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
HOUR = 3600


def finding(name='disk_usage', status=C.WARNING, target='db1', obj='db=app', message='81% used'):
    return {'name': name, 'status': status, 'target': target, 'object': obj, 'message': message}


def rule(min_severity=C.WARNING, match=('*',), channels=('ops',), targets=None):
    result = {'min_severity': min_severity, 'match': list(match), 'channels': list(channels)}
    if targets is not None:
        result['targets'] = list(targets)
    return result


def channel(name='ops', kind='webhook', **extra):
    result = {'name': name, 'type': kind, 'timeout': 5, 'retries': 0, 'retry_delay': 1}
    if kind in ('slack', 'webhook', 'sms'):
        result['url'] = 'https://hooks.example.com/%s' % name
    if kind == 'sms':
        result.update(message_field='text', max_length=160)
    if kind == 'email':
        result.update(smtp_host='smtp.example.com', sender='alerts@example.com',
                      recipients=['dba@example.com', 'ops@example.com'], security='starttls')
    result.update(extra)
    return result


# -- validate ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('channels, rules, message', [
    ([channel('ops'), channel('ops', 'slack')], [], 'channel ops is defined twice'),
    ([channel('ops', url=None)], [], 'channel ops (webhook) needs url'),
    ([channel('ops', 'slack', url='')], [], 'channel ops (slack) needs url'),
    ([channel('ops', 'sms', url=None)], [], 'channel ops (sms) needs url'),
    ([channel('mail', 'email', smtp_host=None)], [], 'channel mail (email) needs smtp_host, sender and recipients'),
    ([channel('mail', 'email', recipients=[])], [], 'channel mail (email) needs smtp_host, sender and recipients'),
    ([channel('mail', 'email', sender=None)], [], 'channel mail (email) needs smtp_host, sender and recipients'),
    ([channel('ops', url='ftp://hooks.example.com/x')], [], 'channel ops: url must start with http:// or https://'),
    ([channel('ops')], [rule(min_severity=C.OK)], 'rules[0]: min_severity must be warning or critical'),
    ([channel('ops')], [rule(), rule(min_severity='unknown')], 'rules[1]: min_severity must be warning or critical'),
    ([channel('ops'), channel('pager', 'sms')], [rule(channels=['ops', 'nope', 'other'])],
     'rules[0] names unknown channel(s) nope, other; defined: ops, pager'),
    ([], [rule(channels=['ops'])], 'rules[0] names unknown channel(s) ops; defined: none'),
])
def test_validate_refuses(channels, rules, message):
    with pytest.raises(ConfigurationError) as caught:
        AL.validate(channels, rules)
    assert str(caught.value) == message


@pytest.mark.parametrize('channels, rules', [
    ([], []),
    ([channel('ops'), channel('chat', 'slack'), channel('pager', 'sms', url='http://gw.internal/send'),
      channel('mail', 'email')],
     [rule(C.WARNING, channels=['ops', 'chat']), rule(C.CRITICAL, channels=['pager', 'mail'])]),
])
def test_validate_accepts(channels, rules):
    assert AL.validate(channels, rules) is None


# -- alert_key and route ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('given, key', [
    (finding(), 'db1|disk_usage|db=app'),
    (finding(target=None), '-|disk_usage|db=app'),
    (finding(target='', obj=None), '-|disk_usage|-'),
    ({'name': 'replication_lag', 'status': C.CRITICAL}, '-|replication_lag|-'),
])
def test_alert_key(given, key):
    assert AL.alert_key(given) == key


@pytest.mark.parametrize('status, min_severity, routed', [
    (C.OK, C.WARNING, False),
    (C.UNKNOWN, C.WARNING, False),
    (C.WARNING, C.WARNING, True),
    (C.CRITICAL, C.WARNING, True),
    (C.WARNING, C.CRITICAL, False),
    (C.CRITICAL, C.CRITICAL, True),
])
def test_route_by_severity(status, min_severity, routed):
    result = AL.route([finding(status=status)], [rule(min_severity)])
    assert (AL.alert_key(finding()) in result) is routed


@pytest.mark.parametrize('patterns, name, routed', [
    (['*'], 'disk_usage', True),
    (['disk_*'], 'disk_usage', True),
    (['disk_*'], 'replication_lag', False),
    (['tls_expiry', 'replication_*'], 'replication_lag', True),
    (['Disk_*'], 'disk_usage', False),  # case-sensitive
])
def test_route_by_name_pattern(patterns, name, routed):
    result = AL.route([finding(name=name)], [rule(match=patterns)])
    assert bool(result) is routed


@pytest.mark.parametrize('targets, target, routed', [
    (None, 'db1', True),
    ([], 'db1', True),  # an empty list does not restrict
    (['db*'], 'db1', True),
    (['prod-*'], 'db1', False),
    (['prod-*'], None, False),
    (['*'], None, True),
])
def test_route_by_target(targets, target, routed):
    result = AL.route([finding(target=target)], [rule(targets=targets)])
    assert bool(result) is routed


def test_route_joins_the_channels_of_every_matching_rule():
    rules = [rule(C.WARNING, channels=['chat']), rule(C.CRITICAL, channels=['pager']),
             rule(C.WARNING, match=['backup_*'], channels=['mail'])]
    crit, warn = finding(status=C.CRITICAL), finding(name='cache_hit', status=C.WARNING, obj=None)
    routed = AL.route([crit, warn], rules)
    assert routed == {'db1|disk_usage|db=app': (crit, {'chat', 'pager'}), 'db1|cache_hit|-': (warn, {'chat'})}


# -- plan -------------------------------------------------------------------------------------------------------

def empty_state():
    return {'format': AL.STATE_FORMAT, 'alerts': {}}


def state_with(status=C.WARNING, last_sent=NOW - datetime.timedelta(hours=1), channels=('ops',),
               key='db1|disk_usage|db=app', message='81% used'):
    return {'format': AL.STATE_FORMAT, 'alerts': {key: {
        'status': status, 'message': message, 'channels': list(channels), 'first_seen': '2026-02-01T00:00:00+00:00',
        'last_sent': last_sent.isoformat() if last_sent else None}}}


def routed_of(*findings, channels=('ops',)):
    return dict((AL.alert_key(f), (f, set(channels))) for f in findings)


def test_plan_sends_a_new_alert_to_each_of_its_channels():
    outgoing, resolved, decisions, state = AL.plan(routed_of(finding(), channels=('ops', 'chat')), empty_state(),
                                                   NOW, 12 * HOUR)
    assert sorted(outgoing) == ['chat', 'ops'] and resolved == {}
    alert = outgoing['ops'][0]
    assert alert == {'key': 'db1|disk_usage|db=app', 'target': 'db1', 'name': 'disk_usage', 'status': C.WARNING,
                     'object': 'db=app', 'message': '81% used', 'first_seen': NOW.isoformat()}
    assert decisions == [dict(alert, sent=True, reason='new')]
    record = state['alerts']['db1|disk_usage|db=app']
    assert record == {'status': C.WARNING, 'message': '81% used', 'channels': ['chat', 'ops'],
                      'target': 'db1', 'name': 'disk_usage', 'object': 'db=app',
                      'first_seen': NOW.isoformat(), 'last_sent': NOW.isoformat()}
    assert state['format'] == AL.STATE_FORMAT and state['updated'] == NOW.isoformat()


@pytest.mark.parametrize('since_sent, sent', [
    (datetime.timedelta(hours=1), False),
    (datetime.timedelta(hours=12) - datetime.timedelta(seconds=1), False),
    (datetime.timedelta(hours=12), True),  # the interval has passed once it is reached
    (datetime.timedelta(days=3), True),
])
def test_plan_repeats_an_open_alert_after_the_repeat_interval(since_sent, sent):
    previous = state_with(last_sent=NOW - since_sent)
    outgoing, resolved, decisions, state = AL.plan(routed_of(finding()), previous, NOW, 12 * HOUR)
    assert bool(outgoing) is sent and resolved == {}
    assert decisions[0]['sent'] is sent
    assert decisions[0]['reason'] == ('still open after the repeat interval' if sent else 'already sent; repeat not due')
    record = state['alerts']['db1|disk_usage|db=app']
    assert record['first_seen'] == '2026-02-01T00:00:00+00:00'  # kept across runs
    assert record['last_sent'] == (NOW if sent else NOW - since_sent).isoformat()


def test_plan_repeat_interval_zero_sends_every_run():
    outgoing, _resolved, decisions, _state = AL.plan(routed_of(finding()), state_with(last_sent=NOW), NOW, 0)
    assert outgoing and decisions[0]['reason'] == 'still open after the repeat interval'


@pytest.mark.parametrize('old, new, sent', [
    (C.WARNING, C.CRITICAL, True),
    (C.CRITICAL, C.WARNING, True),
    (C.WARNING, C.WARNING, False),
])
def test_plan_sends_a_change_of_severity_at_once(old, new, sent):
    outgoing, _resolved, decisions, state = AL.plan(routed_of(finding(status=new)), state_with(status=old),
                                                    NOW, 12 * HOUR)
    assert bool(outgoing) is sent
    assert decisions[0]['reason'] == ('severity changed from %s' % old if sent else 'already sent; repeat not due')
    assert state['alerts']['db1|disk_usage|db=app']['status'] == new


@pytest.mark.parametrize('last_sent, sent', [(None, True), (NOW, False)])
def test_plan_sends_what_was_not_delivered_yet(last_sent, sent):
    _outgoing, _resolved, decisions, _state = AL.plan(routed_of(finding()), state_with(last_sent=last_sent),
                                                      NOW, 12 * HOUR)
    assert decisions[0]['sent'] is sent
    assert (decisions[0]['reason'] == 'not delivered yet') is sent


def test_plan_resolves_an_alert_that_is_gone_once_to_the_channels_that_had_it():
    previous = state_with(status=C.CRITICAL, channels=('ops', 'pager'), key='db1|disk_usage|db=app')
    outgoing, resolved, decisions, state = AL.plan({}, previous, NOW, 12 * HOUR)
    assert outgoing == {} and sorted(resolved) == ['ops', 'pager']
    item = resolved['ops'][0]
    assert item['status'] == 'resolved' and item['was'] == C.CRITICAL
    assert (item['target'], item['name'], item['object']) == ('db1', 'disk_usage', 'db=app')
    assert item['message'] == 'resolved (was critical: 81% used)'
    assert decisions == [dict(item, sent=True, reason='resolved')]
    assert state['alerts'] == {}  # sent once: the next run has nothing to resolve
    assert AL.plan({}, state, NOW, 12 * HOUR)[1] == {}


def test_plan_keeps_an_alert_that_is_still_routed_and_resolves_only_the_others():
    previous = state_with()
    previous['alerts']['db2|replication_lag|-'] = dict(previous['alerts']['db1|disk_usage|db=app'], status=C.CRITICAL)
    _outgoing, resolved, decisions, state = AL.plan(routed_of(finding()), previous, NOW, 12 * HOUR)
    assert [r['key'] for r in resolved['ops']] == ['db2|replication_lag|-']
    assert sorted(state['alerts']) == ['db1|disk_usage|db=app']
    assert [d['reason'] for d in decisions] == ['already sent; repeat not due', 'resolved']


# -- state file -------------------------------------------------------------------------------------------------

def test_state_round_trip(tmp_path):
    path = str(tmp_path / 'sub' / 'alerts.json')
    assert AL.load_state(path) == empty_state()
    assert AL.load_state(None) == empty_state()
    _outgoing, _resolved, _decisions, state = AL.plan(routed_of(finding()), empty_state(), NOW, HOUR)
    AL.save_state(path, state)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)
    loaded = AL.load_state(path)
    assert loaded == state
    # The loaded state deduplicates exactly like the one in memory.
    assert AL.plan(routed_of(finding()), loaded, NOW, HOUR)[0] == {}


@pytest.mark.parametrize('content, message', [
    ('not json', 'is not readable alert state'),
    ('[]', 'was not written by this module'),
    ('{"format": "appcare.alerts/0", "alerts": {}}', 'was not written by this module'),
    ('{"alerts": {}}', 'was not written by this module'),
])
def test_load_state_refuses_foreign_files(tmp_path, content, message):
    path = tmp_path / 'alerts.json'
    path.write_text(content, encoding='utf-8')
    with pytest.raises(ConfigurationError, match=message):
        AL.load_state(str(path))


# -- payloads ---------------------------------------------------------------------------------------------------

def alert(name='disk_usage', status=C.WARNING, target='db1', obj='db=app', message='81% used'):
    return {'key': '%s|%s|%s' % (target, name, obj), 'target': target, 'name': name, 'status': status,
            'object': obj, 'message': message, 'first_seen': NOW.isoformat()}


def gone(name='replication_lag', target='db2'):
    return {'key': '%s|%s|-' % (target, name), 'target': target, 'name': name, 'object': '-', 'status': 'resolved',
            'was': C.CRITICAL, 'message': 'resolved (was critical: 40 s)', 'first_seen': NOW.isoformat()}


@pytest.mark.parametrize('alerts, resolved, worst, head', [
    ([alert(status=C.CRITICAL), alert(), alert(name='x')], [gone()], C.CRITICAL,
     'prod: 1 critical, 2 warning, 1 resolved'),
    ([alert()], [], C.WARNING, 'prod: 1 warning'),
    ([], [gone(), gone('y')], 'resolved', 'prod: 2 resolved'),
    ([], [], 'resolved', 'prod: nothing to report'),
])
def test_summary(alerts, resolved, worst, head):
    assert AL.summary('prod', alerts, resolved) == (worst, head)


def test_slack_payload_has_one_line_per_alert_with_its_emoji():
    payload = AL.slack_payload('prod', [alert(status=C.CRITICAL, target='-', obj='-')], [gone()])
    lines = payload['text'].split('\n')
    assert lines == [
        ':red_circle: *prod: 1 critical, 1 resolved*',
        ':red_circle: CRITICAL disk_usage: 81% used',  # '-' target and object are left out
        ':large_green_circle: RESOLVED replication_lag on db2: resolved (was critical: 40 s)',
    ]
    warn = AL.slack_payload('prod', [alert()], [])['text'].split('\n')
    assert warn == [':large_orange_circle: *prod: 1 warning*',
                    ':large_orange_circle: WARNING disk_usage on db1 [db=app]: 81% used']


def test_webhook_payload_carries_the_alerts_as_data():
    payload = AL.webhook_payload('prod', [alert()], [gone()], NOW)
    assert payload == {'source': 'appcare.maintenance', 'title': 'prod', 'summary': 'prod: 1 warning, 1 resolved',
                       'status': C.WARNING, 'sent_at': NOW.isoformat(), 'alerts': [alert()], 'resolved': [gone()]}
    json.dumps(payload)  # serialisable as it is


@pytest.mark.parametrize('limit', [20, 40, 160])
def test_sms_text_is_cut_to_the_limit(limit):
    alerts = [alert(name='check_number_%d' % n, status=C.CRITICAL) for n in range(10)]
    text = AL.sms_text('prod', alerts, [], limit)
    assert len(text) == limit
    assert text.endswith('...')
    assert text.startswith('prod: 10 critical'[:limit - 3])


def test_sms_text_short_enough_is_left_whole():
    text = AL.sms_text('prod', [alert(status=C.CRITICAL), alert(name='lag', target='-')], [gone()], 160)
    assert text == 'prod: 1 critical, 1 warning, 1 resolved; CRIT disk_usage@db1; WARN lag'
    assert AL.sms_text('prod', [alert()], [], len('prod: 1 warning; WARN disk_usage@db1')) == \
        'prod: 1 warning; WARN disk_usage@db1'


def test_email_message_headers_and_body():
    mail = AL.email_message(channel('mail', 'email'), 'prod', [alert(status=C.CRITICAL)], [gone()])
    assert mail['Subject'] == '[CRITICAL] prod: 1 critical, 1 resolved'
    assert mail['From'] == 'alerts@example.com'
    assert mail['To'] == 'dba@example.com, ops@example.com'
    assert mail['Date'] and mail['Message-ID'].endswith('@appcare.maintenance>')
    body = mail.get_content()
    assert body.splitlines() == ['prod: 1 critical, 1 resolved', '',
                                 'CRITICAL disk_usage on db1 [db=app]: 81% used', '', 'Resolved:',
                                 'RESOLVED replication_lag on db2: resolved (was critical: 40 s)']
    quiet = AL.email_message(channel('mail', 'email'), 'prod', [alert()], [])
    assert quiet['Subject'] == '[WARNING] prod: 1 warning'
    assert 'Resolved:' not in quiet.get_content()


# -- delivery (the HTTP POST replaced) ----------------------------------------------------------------------------

class Poster(object):
    """Stands in for the HTTP POST: records each request, raises the given errors first."""

    def __init__(self, errors=()):
        self.errors = list(errors)
        self.requests = []

    def __call__(self, chan, body, headers):
        self.requests.append((chan['url'], body, dict(headers)))
        if self.errors:
            raise self.errors.pop(0)
        return 200


def http_error(code):
    return urllib.error.HTTPError('https://hooks.example.com/ops', code, 'Reason', {}, io.BytesIO(b''))


def test_webhook_with_secret_is_signed(monkeypatch):
    poster = Poster()
    monkeypatch.setattr(AL, '_post', poster)
    record = AL.deliver(channel(secret='s3cret', headers={'X-Team': 'dba'}), 'prod', [alert()], [], NOW)
    assert record == {'channel': 'ops', 'type': 'webhook', 'alerts': 1, 'resolved': 0, 'ok': True, 'attempts': 1,
                      'error': None}
    _url, body, headers = poster.requests[0]
    stamp = str(int(NOW.timestamp()))
    assert headers['X-Appcare-Timestamp'] == stamp
    expected = hmac.new(b's3cret', stamp.encode('ascii') + b'.' + body, hashlib.sha256).hexdigest()
    assert headers['X-Appcare-Signature'] == 'sha256=' + expected
    assert headers['X-Team'] == 'dba' and headers['Content-Type'] == 'application/json'
    assert json.loads(body)['summary'] == 'prod: 1 warning'
    assert b's3cret' not in body


def test_webhook_without_secret_is_not_signed(monkeypatch):
    poster = Poster()
    monkeypatch.setattr(AL, '_post', poster)
    assert AL.deliver(channel(), 'prod', [alert()], [], NOW)['ok'] is True
    headers = poster.requests[0][2]
    assert 'X-Appcare-Signature' not in headers and 'X-Appcare-Timestamp' not in headers


@pytest.mark.parametrize('kind, check', [
    ('slack', lambda payload: payload == AL.slack_payload('prod', [alert()], [])),
    ('sms', lambda payload: payload == {'text': 'prod: 1 warning; WARN disk_usage@db1', 'to': '+10000'}),
    ('webhook', lambda payload: payload['alerts'] == [alert()] and payload['sent_at'] == NOW.isoformat()),
])
def test_each_channel_type_posts_its_payload(monkeypatch, kind, check):
    poster = Poster()
    monkeypatch.setattr(AL, '_post', poster)
    AL.deliver(channel(kind=kind, extra_fields={'to': '+10000'}), 'prod', [alert()], [], NOW)
    assert check(json.loads(poster.requests[0][1]))


@pytest.mark.parametrize('errors, ok, attempts, sleeps, error', [
    ([], True, 1, [], None),
    ([http_error(503)], True, 2, [1], None),
    ([http_error(503), urllib.error.URLError('refused'), OSError('reset')], False, 3, [1, 2],
     'OSError: reset'),
    ([http_error(429), http_error(429)], True, 3, [1, 2], None),
    ([http_error(400)], False, 1, [], 'HTTP 400 Reason'),  # a wrong request is not repeated
    ([http_error(404)], False, 1, [], 'HTTP 404 Reason'),
])
def test_delivery_retries_with_backoff_and_never_raises(monkeypatch, errors, ok, attempts, sleeps, error):
    poster = Poster(errors)
    monkeypatch.setattr(AL, '_post', poster)
    slept = []
    record = AL.deliver(channel(retries=2), 'prod', [alert()], [], NOW, sleep=slept.append)
    assert (record['ok'], record['attempts'], record['error']) == (ok, attempts, error)
    assert slept == sleeps
    assert len(poster.requests) == attempts


def test_unreachable_endpoint_is_described():
    assert AL._describe(urllib.error.URLError('connection refused')) == 'cannot reach the endpoint: connection refused'
    assert AL._describe(http_error(502)) == 'HTTP 502 Reason'
    assert AL._describe(ValueError('bad')) == 'ValueError: bad'
