#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: notify
short_description: Send alerts from the collection's findings to Slack, webhooks, SMS gateways and e-mail
version_added: 0.1.0
description:
  - Turns findings (the C(checks) every module of the collection returns) into alerts, routes them by O(rules)
    like the guides' monitoring configuration (for example critical to e-mail, Slack and SMS, warning to Slack),
    and sends one message per channel.
  - "Channels (O(channels[].type)): V(slack) - an incoming webhook, a C(text) message; V(webhook) - a JSON POST of
    C({source, title, summary, status, sent_at, alerts, resolved}), signed when O(channels[].secret) is set with
    C(X-Appcare-Signature: sha256=<hex HMAC-SHA256 of \"<X-Appcare-Timestamp>.<body>\">); V(sms) - a webhook preset
    for SMS gateways and chat tools: a JSON POST of C({<message_field>: <short text>}) plus
    O(channels[].extra_fields), the text cut to O(channels[].max_length); V(email) - SMTP with STARTTLS, TLS or
    neither, optional login."
  - Deduplication with O(state_file) (on the host the module runs on - the controller, with
    C(delegate_to=localhost)). An alert (target, check, object) is sent when it is new, when its severity
    changes, or when it is still open after O(repeat_minutes); a finding that was alerted and no longer is (cleared or gone) is sent once
    as resolved to the channels that had it. Without O(state_file) every alert is sent every time.
  - Each delivery has a timeout and O(channels[].retries) retries with backoff (not for a 4xx answer other than
    429). A channel that fails is reported in RV(deliveries) and as a warning, and never fails the task, so alerting
    cannot change or hide the maintenance result. An alert whose every channel failed stays due and is sent again
    next run.
  - Webhook URLs, signing secrets, header values and SMTP passwords are secrets - never returned, and masked in
    Ansible's output.
author:
  - appcare maintainers (@appcare)
attributes:
  check_mode:
    support: full
    description: Returns what would be sent; sends nothing and does not write the state file.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  findings:
    description:
      - Findings in the collection's shape (C(name), C(status), C(message), C(object)), each optionally with a
        C(target); findings without one get O(target).
    type: list
    elements: dict
    default: []
  target:
    description: The target of findings that do not name one, such as C(inventory_hostname).
    type: str
  title:
    description: The title of the messages (for example the tier and the inventory).
    type: str
    default: appcare.maintenance
  channels:
    description: The channels alerts can be sent to.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The channel's name, used by O(rules[].channels).
        type: str
        required: true
      type:
        description: The kind of channel.
        type: str
        required: true
        choices: [slack, webhook, sms, email]
      url:
        description: The webhook URL (slack, webhook, sms). A secret.
        type: str
      secret:
        description: HMAC-SHA256 signing secret (webhook, sms).
        type: str
      headers:
        description: Extra request headers (webhook, sms); values are secrets.
        type: dict
      message_field:
        description: The JSON field the text goes in (sms).
        type: str
        default: text
      extra_fields:
        description: Fixed JSON fields sent with the text, such as the recipient number (sms).
        type: dict
      max_length:
        description: The longest text sent (sms); at least 20.
        type: int
        default: 160
      smtp_host:
        description: SMTP server (email).
        type: str
      smtp_port:
        description: SMTP port (email; default 587 for starttls, 465 for tls, 25 for none).
        type: int
      security:
        description: SMTP transport security (email).
        type: str
        choices: [starttls, tls, none]
        default: starttls
      username:
        description: SMTP login (email).
        type: str
      password:
        description: SMTP password (email). A secret.
        type: str
      sender:
        description: The From address (email).
        type: str
      recipients:
        description: The To addresses (email).
        type: list
        elements: str
      timeout:
        description: Seconds for one delivery attempt.
        type: float
        default: 10
      retries:
        description: Retries after a failed attempt.
        type: int
        default: 2
      retry_delay:
        description: Seconds before the first retry, doubled after each.
        type: float
        default: 1
      validate_certs:
        description: Verify TLS certificates (https webhooks, SMTP TLS).
        type: bool
        default: true
      ca_cert:
        description: CA bundle to verify TLS certificates with.
        type: path
  rules:
    description:
      - Routing rules; a finding goes to the channels of every rule it matches.
    type: list
    elements: dict
    required: true
    suboptions:
      match:
        description: Check-name patterns (shell style, such as C(backup_*)).
        type: list
        elements: str
        default: ['*']
      min_severity:
        description: The lowest status that matches.
        type: str
        choices: [warning, critical]
        default: warning
      targets:
        description: Target patterns (all targets when absent).
        type: list
        elements: str
      channels:
        description: The channel names to send to.
        type: list
        elements: str
        required: true
  state_file:
    description: The deduplication state (JSON, written atomically with mode 0600).
    type: path
  repeat_minutes:
    description: Minutes after which a still-open alert is sent again.
    type: int
    default: 720
seealso:
  - module: appcare.maintenance.pg_health_info
'''

EXAMPLES = r'''
- name: Alert on this run's findings, like the guides' monitoringConfig
  appcare.maintenance.notify:
    title: "daily maintenance ({{ inventory_hostname }})"
    target: "{{ inventory_hostname }}"
    findings: "{{ health.checks + backup.checks | default([]) }}"
    state_file: "{{ playbook_dir }}/../reports/alert-state.json"
    repeat_minutes: 720
    channels:
      - {name: oncall_mail, type: email, smtp_host: smtp.example.org, sender: ops@example.org,
         recipients: [oncall@example.org], username: ops@example.org, password: "{{ vault_smtp_password }}"}
      - {name: ops_slack, type: slack, url: "{{ vault_slack_webhook }}"}
      - {name: sms, type: sms, url: "{{ vault_sms_gateway_url }}", extra_fields: {to: "+15550100"},
         headers: {Authorization: "Bearer {{ vault_sms_token }}"}}
    rules:
      - {min_severity: critical, channels: [oncall_mail, ops_slack, sms]}
      - {min_severity: warning, channels: [ops_slack]}
  delegate_to: localhost
'''

RETURN = r'''
alerts:
  description: Every alert and resolution considered, with C(sent) and the C(reason).
  returned: always
  type: list
  elements: dict
  sample:
    - key: "ims|backup_age|db=ims"
      target: ims
      name: backup_age
      status: critical
      object: db=ims
      message: the newest good backup is 31 hours old (critical threshold - above 24)
      first_seen: "2026-11-23T02:00:05+00:00"
      sent: true
      reason: new
deliveries:
  description: One entry per channel that had something to send - C(channel), C(type), C(alerts), C(resolved),
    C(ok), C(attempts), C(error). Never contains the URL or secrets.
  returned: always
  type: list
  elements: dict
  sample:
    - {channel: ops_slack, type: slack, alerts: 1, resolved: 0, ok: true, attempts: 1, error: null}
report:
  description: What the run report shows (the C(appcare.maintenance.maintenance_report) callback merges it) - the
    C(deliveries) section, one entry per channel.
  returned: always
  type: dict
  sample: {deliveries: [{channel: ops_slack, type: slack, alerts: 2, resolved: 0, ok: true, error: null}]}
failed_channels:
  description: The channels that could not deliver.
  returned: always
  type: list
  elements: str
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import alerting as AL
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import AppcareError, failure_message


def channel_options():
    return dict(
        name=dict(type='str', required=True),
        type=dict(type='str', required=True, choices=list(AL.CHANNEL_TYPES)),
        url=dict(type='str', no_log=True),
        secret=dict(type='str', no_log=True),
        headers=dict(type='dict', no_log=True),
        message_field=dict(type='str', default='text'),
        extra_fields=dict(type='dict'),
        max_length=dict(type='int', default=160),
        smtp_host=dict(type='str'),
        smtp_port=dict(type='int'),
        security=dict(type='str', default='starttls', choices=['starttls', 'tls', 'none']),
        username=dict(type='str'),
        password=dict(type='str', no_log=True),
        sender=dict(type='str'),
        recipients=dict(type='list', elements='str'),
        timeout=dict(type='float', default=10),
        retries=dict(type='int', default=2),
        retry_delay=dict(type='float', default=1),
        validate_certs=dict(type='bool', default=True),
        ca_cert=dict(type='path'),
    )


def rule_options():
    return dict(
        match=dict(type='list', elements='str', default=['*']),
        min_severity=dict(type='str', default='warning', choices=['warning', 'critical']),
        targets=dict(type='list', elements='str'),
        channels=dict(type='list', elements='str', required=True),
    )


def with_report(result):
    """The result with its ``report`` for the run report: the deliveries section."""
    result['report'] = {'deliveries': [dict((k, d.get(k)) for k in ('channel', 'type', 'alerts', 'resolved', 'ok', 'error'))
                                       for d in result['deliveries']]}
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            findings=dict(type='list', elements='dict', default=[]),
            target=dict(type='str'),
            title=dict(type='str', default='appcare.maintenance'),
            channels=dict(type='list', elements='dict', required=True, options=channel_options()),
            rules=dict(type='list', elements='dict', required=True, options=rule_options()),
            state_file=dict(type='path'),
            repeat_minutes=dict(type='int', default=720),
        ),
        supports_check_mode=True,
    )
    try:
        result = AL.run_notify(module.params, module.check_mode, module.warn, utcnow())
    except (AppcareError, OSError) as exc:
        module.fail_json(msg=failure_message('notify', exc))
    module.exit_json(**with_report(result))


if __name__ == '__main__':
    main()
