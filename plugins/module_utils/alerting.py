# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alerts from the collection's uniform findings: routing rules, deduplication with a state file, and
delivery to Slack, generic webhooks (optionally HMAC-signed), SMS/chat text webhooks and e-mail.

An alert is one finding at or above a rule's minimum severity, identified by target, check name and
object. It is sent when it is new, when it changes severity, or when ``repeat_minutes`` has passed since it
was last sent; a finding that was alerted and is now below every rule's severity (or gone) is sent once as
"resolved" to the channels that had it. Delivery failures are reported, never raised.
"""

from __future__ import annotations

import datetime
import email.message
import email.utils
import fnmatch
import hashlib
import hmac
import json
import os
import smtplib
import time
import urllib.error

from ansible.module_utils.urls import open_url

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.files import write_atomic
from ansible_collections.appcare.maintenance.plugins.module_utils.tlsinfo import client_context

SEVERITIES = (C.WARNING, C.CRITICAL)
CHANNEL_TYPES = ('slack', 'webhook', 'sms', 'email')
STATE_FORMAT = 'appcare.alerts/1'
EMOJI = {C.CRITICAL: ':red_circle:', C.WARNING: ':large_orange_circle:', 'resolved': ':large_green_circle:'}


def alert_key(finding):
    return '%s|%s|%s' % (finding.get('target') or '-', finding['name'], finding.get('object') or '-')


SMS_MIN_LENGTH = 20  # room for a severity, a check name and the '...' of a cut text


def validate(channels, rules):
    names = set()
    for channel in channels:
        if channel['name'] in names:
            raise ConfigurationError('channel %s is defined twice' % channel['name'])
        names.add(channel['name'])
        kind = channel['type']
        if kind in ('slack', 'webhook', 'sms') and not channel.get('url'):
            raise ConfigurationError('channel %s (%s) needs url' % (channel['name'], kind))
        if kind == 'email' and (not channel.get('smtp_host') or not channel.get('recipients') or not channel.get('sender')):
            raise ConfigurationError('channel %s (email) needs smtp_host, sender and recipients' % channel['name'])
        if channel.get('url') and not channel['url'].startswith(('http://', 'https://')):
            raise ConfigurationError('channel %s: url must start with http:// or https://' % channel['name'])
        if kind == 'sms' and (channel.get('max_length') or 0) < SMS_MIN_LENGTH:
            raise ConfigurationError('channel %s (sms): max_length must be at least %d characters, got %s'
                                     % (channel['name'], SMS_MIN_LENGTH, channel.get('max_length')))
    for index, rule in enumerate(rules):
        if rule['min_severity'] not in SEVERITIES:
            raise ConfigurationError('rules[%d]: min_severity must be warning or critical' % index)
        unknown = [c for c in rule['channels'] if c not in names]
        if unknown:
            raise ConfigurationError('rules[%d] names unknown channel(s) %s; defined: %s'
                                     % (index, ', '.join(unknown), ', '.join(sorted(names)) or 'none'))


def route(findings, rules):
    """{alert key: (finding, set of channel names)} for findings at or above a matching rule's severity."""
    routed = {}
    for finding in findings:
        status = finding.get('status')
        if status not in SEVERITIES:
            continue
        for rule in rules:
            if C.STATUS_ORDER.index(status) < C.STATUS_ORDER.index(rule['min_severity']):
                continue
            if not any(fnmatch.fnmatchcase(finding['name'], pattern) for pattern in rule['match']):
                continue
            if rule.get('targets') and not any(fnmatch.fnmatchcase(finding.get('target') or '', pattern)
                                               for pattern in rule['targets']):
                continue
            key = alert_key(finding)
            entry = routed.setdefault(key, (finding, set()))
            entry[1].update(rule['channels'])
    return routed


def load_state(path):
    if not path or not os.path.exists(path):
        return {'format': STATE_FORMAT, 'alerts': {}}
    try:
        with open(path, 'r', encoding='utf-8') as handle:
            state = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigurationError('state_file %s is not readable alert state: %s' % (path, exc)) from exc
    if not isinstance(state, dict) or state.get('format') != STATE_FORMAT:
        raise ConfigurationError('state_file %s was not written by this module' % path)
    return state


def save_state(path, state):
    write_atomic(path, json.dumps(state, indent=1, sort_keys=True), mode=0o600)


def plan(routed, state, now, repeat_seconds):
    """What to send: ({channel: [alert dicts]}, {channel: [resolved dicts]}, decisions, new state)."""
    previous = state.get('alerts', {})
    outgoing, resolved, decisions = {}, {}, []
    alerts = {}
    for key, (finding, channels) in sorted(routed.items()):
        old = previous.get(key)
        reason = None
        if old is None:
            reason = 'new'
        elif old.get('status') != finding['status']:
            reason = 'severity changed from %s' % old.get('status')
        elif not old.get('last_sent'):
            reason = 'not delivered yet'
        elif (now - datetime.datetime.fromisoformat(old['last_sent'])).total_seconds() >= repeat_seconds:
            reason = 'still open after the repeat interval'
        record = {'status': finding['status'], 'message': finding.get('message'), 'channels': sorted(channels),
                  'target': finding.get('target') or '-', 'name': finding['name'], 'object': finding.get('object') or '-',
                  'first_seen': old['first_seen'] if old else now.isoformat(),
                  'last_sent': old['last_sent'] if old else None}
        alert = {'key': key, 'target': finding.get('target'), 'name': finding['name'], 'status': finding['status'],
                 'object': finding.get('object'), 'message': finding.get('message'), 'first_seen': record['first_seen']}
        if reason:
            record['last_sent'] = now.isoformat()
            for channel in channels:
                outgoing.setdefault(channel, []).append(alert)
        decisions.append(dict(alert, sent=bool(reason), reason=reason or 'already sent; repeat not due'))
        alerts[key] = record
    for key, old in sorted(previous.items()):
        if key in alerts:
            continue
        # Records carry their identity; one written before they did is split from its key, target|name|object.
        target, _sep, rest = key.partition('|') if 'name' not in old else (old.get('target'), None, None)
        name, obj = (rest.split('|', 1) + ['-'])[:2] if 'name' not in old else (old['name'], old.get('object'))
        item = {'key': key, 'target': target, 'name': name, 'object': obj, 'status': 'resolved',
                'was': old.get('status'), 'message': 'resolved (was %s: %s)' % (old.get('status'), old.get('message')),
                'first_seen': old.get('first_seen')}
        for channel in old.get('channels', []):
            resolved.setdefault(channel, []).append(item)
        decisions.append(dict(item, sent=True, reason='resolved'))
    return outgoing, resolved, decisions, {'format': STATE_FORMAT, 'alerts': alerts, 'updated': now.isoformat()}


def _line(alert):
    where = ' on %s' % alert['target'] if alert.get('target') and alert['target'] != '-' else ''
    obj = ' [%s]' % alert['object'] if alert.get('object') and alert['object'] != '-' else ''
    return '%s %s%s%s: %s' % (alert['status'].upper(), alert['name'], where, obj, alert.get('message') or '')


def summary(title, alerts, resolved):
    worst = C.worst_status([a['status'] for a in alerts]) if alerts else 'resolved'
    counts = []
    for level in (C.CRITICAL, C.WARNING):
        n = len([a for a in alerts if a['status'] == level])
        if n:
            counts.append('%d %s' % (n, level))
    if resolved:
        counts.append('%d resolved' % len(resolved))
    return worst, '%s: %s' % (title, ', '.join(counts) or 'nothing to report')


def slack_payload(title, alerts, resolved):
    worst, head = summary(title, alerts, resolved)
    lines = ['%s *%s*' % (EMOJI.get(worst, ''), head)]
    lines += ['%s %s' % (EMOJI[a['status']], _line(a)) for a in alerts]
    lines += ['%s %s' % (EMOJI['resolved'], _line(r)) for r in resolved]
    return {'text': '\n'.join(lines)}


def webhook_payload(title, alerts, resolved, now):
    worst, head = summary(title, alerts, resolved)
    return {'source': 'appcare.maintenance', 'title': title, 'summary': head, 'status': worst,
            'sent_at': now.isoformat(), 'alerts': alerts, 'resolved': resolved}


def sms_text(title, alerts, resolved, limit):
    _worst, head = summary(title, alerts, resolved)
    parts = [head] + ['%s %s%s' % (a['status'][:4].upper(), a['name'],
                                   '@%s' % a['target'] if a.get('target') and a['target'] != '-' else '')
                      for a in alerts]
    text = '; '.join(parts)
    return text if len(text) <= limit else text[:max(0, limit - 3)] + '...'


def email_message(channel, title, alerts, resolved):
    worst, head = summary(title, alerts, resolved)
    message = email.message.EmailMessage()
    message['Subject'] = '[%s] %s' % (worst.upper(), head)
    message['From'] = channel['sender']
    message['To'] = ', '.join(channel['recipients'])
    message['Date'] = email.utils.formatdate(localtime=False)
    message['Message-ID'] = email.utils.make_msgid(domain='appcare.maintenance')
    body = [head, '']
    body += [_line(a) for a in alerts]
    if resolved:
        body += ['', 'Resolved:'] + [_line(r) for r in resolved]
    message.set_content('\n'.join(body) + '\n')
    return message


def _post(channel, body, headers):
    response = open_url(channel['url'], data=body, headers=headers, method='POST', timeout=channel['timeout'],
                        validate_certs=channel.get('validate_certs', True), ca_path=channel.get('ca_cert'),
                        follow_redirects='none')
    return response.status


def _describe(exc):
    if isinstance(exc, urllib.error.HTTPError):
        return 'HTTP %s %s' % (exc.code, exc.reason)
    if isinstance(exc, urllib.error.URLError):
        return 'cannot reach the endpoint: %s' % exc.reason
    return '%s: %s' % (type(exc).__name__, exc)


def deliver(channel, title, alerts, resolved, now, sleep=time.sleep):
    """Send one message on one channel with retries. Returns a delivery record (never raises)."""
    record = {'channel': channel['name'], 'type': channel['type'], 'alerts': len(alerts), 'resolved': len(resolved),
              'ok': False, 'attempts': 0, 'error': None}
    context = None
    if channel['type'] == 'email':
        context = client_context(verify=channel.get('validate_certs', True), ca_cert=channel.get('ca_cert'))
    for attempt in range(channel['retries'] + 1):
        record['attempts'] = attempt + 1
        try:
            if channel['type'] == 'email':
                _send_email(channel, email_message(channel, title, alerts, resolved), context)
            else:
                headers = {'Content-Type': 'application/json', 'User-Agent': 'appcare.maintenance.notify'}
                headers.update(channel.get('headers') or {})
                if channel['type'] == 'slack':
                    payload = slack_payload(title, alerts, resolved)
                elif channel['type'] == 'sms':
                    payload = dict(channel.get('extra_fields') or {})
                    payload[channel['message_field']] = sms_text(title, alerts, resolved, channel['max_length'])
                else:
                    payload = webhook_payload(title, alerts, resolved, now)
                body = json.dumps(payload, sort_keys=True, default=str).encode('utf-8')
                if channel.get('secret'):
                    stamp = str(int(now.timestamp()))
                    digest = hmac.new(channel['secret'].encode('utf-8'), stamp.encode('ascii') + b'.' + body,
                                      hashlib.sha256).hexdigest()
                    headers['X-Appcare-Timestamp'] = stamp
                    headers['X-Appcare-Signature'] = 'sha256=' + digest
                _post(channel, body, headers)
            record.update(ok=True, error=None)
            return record
        # Every failure is reported, none is raised.
        except Exception as exc:  # pylint: disable=broad-except
            record['error'] = _describe(exc)
            if isinstance(exc, urllib.error.HTTPError) and 400 <= exc.code < 500 and exc.code != 429:
                return record  # the request is wrong; repeating it will not help
        if attempt < channel['retries']:
            sleep(channel['retry_delay'] * (2 ** attempt))
    return record


def _send_email(channel, message, context):
    security = channel['security']
    port = channel.get('smtp_port') or {'tls': 465, 'starttls': 587, 'none': 25}[security]
    if security == 'tls':
        client = smtplib.SMTP_SSL(channel['smtp_host'], port, timeout=channel['timeout'], context=context)
    else:
        client = smtplib.SMTP(channel['smtp_host'], port, timeout=channel['timeout'])
    try:
        if security == 'starttls':
            client.starttls(context=context)
        if channel.get('username'):
            client.login(channel['username'], channel.get('password') or '')
        client.send_message(message)
    finally:
        try:
            client.quit()
        except Exception:  # pylint: disable=broad-except
            client.close()


def check_findings(findings, default_target):
    """The findings to route, each with its target; raises ConfigurationError for anything that is not one."""
    checked = []
    for index, finding in enumerate(findings or []):
        if not isinstance(finding, dict) or 'name' not in finding or 'status' not in finding:
            raise ConfigurationError('findings[%d] is not a finding (needs name and status)' % index)
        checked.append(dict(finding, target=finding.get('target') or default_target))
    return checked


def run_notify(params, check_mode, warn, now):
    """The whole notify run: route, plan against the state, deliver (not in check mode), and keep in the state
    only what was delivered. Returns the module result. ``warn`` reports a channel or state file that failed:
    alerting never fails the run."""
    validate(params['channels'], params['rules'])
    if params['repeat_minutes'] < 0:
        raise ConfigurationError('repeat_minutes must be 0 or more')
    findings = check_findings(params['findings'], params['target'])
    state = load_state(params['state_file'])
    outgoing, resolved, decisions, new_state = plan(route(findings, params['rules']), state, now,
                                                    params['repeat_minutes'] * 60)
    channels = dict((c['name'], c) for c in params['channels'])
    result = dict(changed=False, alerts=decisions, deliveries=[], failed_channels=[])
    for name in sorted(set(resolved) - set(channels)):
        # A channel removed since the alert was sent: nothing can deliver its resolution.
        warn('notify: %d resolution(s) for channel %s are dropped: it is no longer configured'
             % (len(resolved.pop(name)), name))
    names = sorted(set(outgoing) | set(resolved))
    if check_mode:
        result['deliveries'] = [{'channel': name, 'type': channels[name]['type'], 'alerts': len(outgoing.get(name, [])),
                                 'resolved': len(resolved.get(name, [])), 'ok': None, 'would_send': True}
                                for name in names]
        return result
    delivered = {}
    for name in names:
        record = deliver(channels[name], params['title'], outgoing.get(name, []), resolved.get(name, []), now)
        result['deliveries'].append(record)
        delivered[name] = record['ok']
        if record['ok']:
            result['changed'] = True
        else:
            result['failed_channels'].append(name)
            warn('notify: channel %s (%s) failed after %d attempt(s): %s'
                 % (name, record['type'], record['attempts'], record['error']))
    keep_undelivered(decisions, state.get('alerts', {}), new_state, delivered, set(channels))
    if params['state_file']:
        try:
            save_state(params['state_file'], new_state)
            result['changed'] = result['changed'] or new_state['alerts'] != state.get('alerts', {})
        except OSError as exc:
            warn('notify: could not write the state file %s: %s' % (params['state_file'], exc))
    return result


def keep_undelivered(decisions, old_alerts, new_state, delivered, configured):
    """What no channel delivered stays due: an alert keeps its old status and last_sent (so a severity change
    that was not delivered is sent again next run), a resolution keeps the alert open - unless none of its
    channels is configured any more."""
    for decision in decisions:
        key = decision['key']
        if not decision['sent']:
            continue
        if decision['status'] == 'resolved':
            channels_of = [c for c in old_alerts.get(key, {}).get('channels', []) if c in configured]
            if channels_of and not any(delivered.get(c) for c in channels_of):
                new_state['alerts'][key] = old_alerts[key]
                decision['sent'] = False
            continue
        record = new_state['alerts'][key]
        if not any(delivered.get(c) for c in record['channels']):
            old = old_alerts.get(key)
            record['last_sent'] = old.get('last_sent') if old else None
            if old:
                record['status'] = old.get('status')
            decision['sent'] = False
