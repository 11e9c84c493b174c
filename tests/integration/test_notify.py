# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""notify against real local sinks: an HTTP server that records what it receives (Slack, signed webhook,
SMS preset), a real SMTP server (aiosmtpd) with STARTTLS and login, sinks that fail or never answer, and
deduplication with "resolved" across three runs."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import socket
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from modrunner import run_module
from webserver import CertificateAuthority, LocalServer, Route

SLACK_PATH = '/services/T000/B000/slack-secret-path-123'
SECRET = 'hmac-signing-secret-456'
SMTP_PASSWORD = 'smtp-password-789'

CRITICAL = {'name': 'backup_age', 'status': 'critical', 'object': 'db=ims', 'message': 'newest backup is 31 h old'}
WARNING = {'name': 'connections_used', 'status': 'warning', 'object': 'server', 'message': '83% of connections'}
OK = {'name': 'cache_hit_ratio', 'status': 'ok', 'object': 'db=ims', 'message': '99.9%'}


def free_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def sink():
    routes = {SLACK_PATH: Route(200, b'ok'), '/hook': Route(204, b''), '/sms': Route(200, {'queued': True}),
              '/broken': Route(500, b'boom'), '/slow': Route(200, b'late', delay=3), '/gone': Route(404, b'no')}
    with LocalServer(routes) as server:
        yield server


class Mailbox(object):
    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, _server, session, envelope):
        self.messages.append({'from': envelope.mail_from, 'to': envelope.rcpt_tos, 'tls': session.ssl is not None,
                              'message': email.message_from_bytes(envelope.content)})
        return '250 OK'

    def authenticate(self, _server, _session, _envelope, _mechanism, auth_data):
        self.logins.append(auth_data.login.decode())
        return AuthResult(success=auth_data.login == b'ops' and auth_data.password == SMTP_PASSWORD.encode())


@pytest.fixture
def smtp(tmp_path):
    ca = CertificateAuthority(str(tmp_path / 'ca'))
    cert, key = ca.issue('smtp', names=('localhost', '127.0.0.1'))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = Mailbox()
    controller = Controller(box, hostname='127.0.0.1', port=free_port(), tls_context=context, require_starttls=True,
                            authenticator=box.authenticate, auth_required=True)
    controller.start()
    box.port = controller.port
    box.ca = ca.ca_file
    yield box
    controller.stop()


def channels(sink, smtp=None, **overrides):
    result = [
        {'name': 'slack', 'type': 'slack', 'url': sink.url + SLACK_PATH},
        {'name': 'hook', 'type': 'webhook', 'url': sink.url + '/hook', 'secret': SECRET},
        {'name': 'sms', 'type': 'sms', 'url': sink.url + '/sms', 'message_field': 'body',
         'extra_fields': {'to': '+15550100'}, 'headers': {'Authorization': 'Bearer sms-token-000'}},
    ]
    if smtp is not None:
        result.append({'name': 'mail', 'type': 'email', 'smtp_host': '127.0.0.1', 'smtp_port': smtp.port,
                       'security': 'starttls', 'username': 'ops', 'password': SMTP_PASSWORD, 'ca_cert': smtp.ca,
                       'sender': 'ops@example.org', 'recipients': ['oncall@example.org']})
    for channel in result:
        channel.update(overrides.get(channel['name'], {}))
    return result


RULES_WITH_MAIL = [{'min_severity': 'critical', 'channels': ['hook', 'sms', 'mail']},
                   {'min_severity': 'warning', 'channels': ['slack']}]
RULES = [{'min_severity': 'critical', 'channels': ['hook', 'sms']}, {'min_severity': 'warning', 'channels': ['slack']}]


def received(sink, path):
    return [r for r in sink.requests if r['path'] == path]


def test_routing_payloads_signature_and_email(sink, smtp):
    result = run_module('notify', {'findings': [CRITICAL, WARNING, OK], 'target': 'ims', 'title': 'daily',
                                   'channels': channels(sink, smtp), 'rules': RULES_WITH_MAIL,
                                   '_ansible_verbosity': 4})
    assert result.rc == 0, result.raw
    assert all(d['ok'] for d in result['deliveries']) and result['failed_channels'] == []
    assert result['changed'] is True
    slack = json.loads(received(sink, SLACK_PATH)[0]['body'])
    assert 'CRITICAL backup_age on ims' in slack['text'] and 'WARNING connections_used' in slack['text']
    assert 'cache_hit_ratio' not in slack['text']
    hook = received(sink, '/hook')[0]
    payload = json.loads(hook['body'])
    assert [a['name'] for a in payload['alerts']] == ['backup_age'] and payload['status'] == 'critical'
    expected = hmac.new(SECRET.encode(), hook['headers']['X-Appcare-Timestamp'].encode() + b'.' + hook['body'],
                        hashlib.sha256).hexdigest()
    assert hook['headers']['X-Appcare-Signature'] == 'sha256=' + expected
    sms = received(sink, '/sms')[0]
    text = json.loads(sms['body'])
    assert text['to'] == '+15550100' and len(text['body']) <= 160 and 'CRIT backup_age@ims' in text['body']
    assert sms['headers']['Authorization'] == 'Bearer sms-token-000'
    mail = smtp.messages[0]
    assert mail['tls'] is True and mail['to'] == ['oncall@example.org'] and smtp.logins == ['ops']
    assert mail['message']['Subject'].startswith('[CRITICAL] daily: 1 critical')
    assert 'backup_age' in mail['message'].get_payload()
    for secret in (SLACK_PATH, SECRET, SMTP_PASSWORD, 'sms-token-000'):
        assert secret not in result.raw, 'secret %s leaked' % secret


def test_failing_and_silent_sinks_are_reported_not_raised(sink):
    chans = [{'name': 'broken', 'type': 'webhook', 'url': sink.url + '/broken', 'retries': 1, 'retry_delay': 0.1},
             {'name': 'slow', 'type': 'webhook', 'url': sink.url + '/slow', 'timeout': 0.5, 'retries': 1,
              'retry_delay': 0.1},
             {'name': 'gone', 'type': 'slack', 'url': sink.url + '/gone', 'retries': 3},
             {'name': 'closed', 'type': 'slack', 'url': 'http://127.0.0.1:%d/x' % free_port(), 'retries': 0},
             {'name': 'good', 'type': 'webhook', 'url': sink.url + '/hook'}]
    result = run_module('notify', {'findings': [CRITICAL], 'target': 'ims', 'channels': chans,
                                   'rules': [{'channels': ['broken', 'slow', 'gone', 'closed', 'good']}]})
    assert result.rc == 0 and not result.failed, result.raw
    deliveries = dict((d['channel'], d) for d in result['deliveries'])
    assert deliveries['broken']['error'] == 'HTTP 500 Internal Server Error' and deliveries['broken']['attempts'] == 2
    assert not deliveries['slow']['ok'] and 'timed out' in deliveries['slow']['error']
    assert deliveries['gone']['attempts'] == 1 and 'HTTP 404' in deliveries['gone']['error']  # a 4xx is not retried
    assert 'cannot reach' in deliveries['closed']['error']
    assert deliveries['good']['ok'] is True
    assert sorted(result['failed_channels']) == ['broken', 'closed', 'gone', 'slow']
    assert 'notify: channel broken (webhook) failed after 2 attempt(s)' in result.raw


def test_dedup_repeat_and_resolved_across_three_runs(sink, tmp_path):
    state = str(tmp_path / 'alert-state.json')
    args = {'target': 'ims', 'channels': channels(sink), 'rules': RULES, 'state_file': state}
    first = run_module('notify', dict(args, findings=[CRITICAL, WARNING]))
    assert [a['reason'] for a in first['alerts']] == ['new', 'new']
    assert len(received(sink, SLACK_PATH)) == 1 and len(received(sink, '/hook')) == 1

    second = run_module('notify', dict(args, findings=[CRITICAL, WARNING]))
    assert [a['sent'] for a in second['alerts']] == [False, False]
    assert second['deliveries'] == [] and second['changed'] is False
    assert len(received(sink, SLACK_PATH)) == 1, 'an open alert was sent again before repeat_minutes'

    third = run_module('notify', dict(args, findings=[dict(WARNING, status='ok'), CRITICAL]))
    resolved = [a for a in third['alerts'] if a['status'] == 'resolved']
    assert [a['name'] for a in resolved] == ['connections_used']
    slack = json.loads(received(sink, SLACK_PATH)[-1]['body'])['text']
    assert 'RESOLVED connections_used' in slack and 'backup_age' not in slack
    assert len(received(sink, '/hook')) == 1  # the critical is still open and not due
    saved = json.load(open(state))
    assert list(saved['alerts']) == ['ims|backup_age|db=ims']

    repeat = run_module('notify', dict(args, findings=[CRITICAL], repeat_minutes=0))
    assert repeat['alerts'][0]['reason'] == 'still open after the repeat interval'
    assert len(received(sink, '/hook')) == 2


def test_undelivered_alert_stays_due(sink, tmp_path):
    state = str(tmp_path / 'state.json')
    down = [{'name': 'hook', 'type': 'webhook', 'url': sink.url + '/broken', 'retries': 0}]
    args = {'target': 'ims', 'rules': [{'channels': ['hook']}], 'state_file': state, 'findings': [CRITICAL]}
    failed = run_module('notify', dict(args, channels=down))
    assert failed['failed_channels'] == ['hook'] and failed['alerts'][0]['sent'] is False
    up = [{'name': 'hook', 'type': 'webhook', 'url': sink.url + '/hook'}]
    again = run_module('notify', dict(args, channels=up))
    assert again['alerts'][0]['reason'] == 'not delivered yet' and again['deliveries'][0]['ok'] is True


def test_check_mode_sends_nothing(sink, tmp_path):
    state = tmp_path / 'state.json'
    result = run_module('notify', {'findings': [CRITICAL], 'channels': channels(sink), 'rules': RULES,
                                   'state_file': str(state)}, check_mode=True)
    assert result['changed'] is False and sink.requests == [] and not state.exists()
    assert result['deliveries'][0]['would_send'] is True


@pytest.mark.parametrize('args, message', [
    ({'rules': [{'channels': ['nowhere']}]}, 'unknown channel(s) nowhere'),
    ({'channels': [{'name': 'm', 'type': 'email'}], 'rules': [{'channels': ['m']}]}, 'needs smtp_host'),
    ({'channels': [{'name': 's', 'type': 'slack'}], 'rules': [{'channels': ['s']}]}, 'needs url'),
    ({'findings': [{'status': 'critical'}]}, 'is not a finding'),
])
def test_bad_options_fail_clearly(sink, args, message):
    base = {'channels': channels(sink), 'rules': RULES}
    base.update(args)
    result = run_module('notify', base)
    assert result.failed and message in result['msg'], result['msg']
