# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults notify survives, each named after the fault, against a real local HTTP sink: a severity change no
channel could deliver, a state file naming a channel that was since removed, an SMS limit too small to hold
an alert, and a target whose name holds the key separator."""

from __future__ import annotations

import json

import pytest

from modrunner import run_module
from webserver import LocalServer, Route

WARNING = {'name': 'connections_used', 'status': 'warning', 'object': 'server', 'message': '83% of connections'}
CRITICAL = dict(WARNING, status='critical', message='97% of connections')


@pytest.fixture
def sink():
    routes = {'/hook': Route(204, b'')}
    with LocalServer(routes) as server:
        yield server


def notify(sink, state, findings, channels=None, target='db1'):
    channels = channels or [{'name': 'ops', 'type': 'webhook', 'url': '%s/hook' % sink.url, 'retries': 0}]
    return run_module('notify', {'findings': findings, 'target': target, 'state_file': str(state),
                                 'channels': channels,
                                 'rules': [{'min_severity': 'warning', 'channels': [c['name'] for c in channels]}]})


def test_fault_notify_undelivered_escalation_is_sent_again(sink, tmp_path):
    state = tmp_path / 'state.json'
    first = notify(sink, state, [WARNING])
    assert first.rc == 0 and [d['ok'] for d in first['deliveries']] == [True]
    sink.routes['/hook'] = Route(500, b'down')
    escalated = notify(sink, state, [CRITICAL])
    assert escalated['failed_channels'] == ['ops']
    sink.routes['/hook'] = Route(204, b'')
    before = len(sink.requests)
    again = notify(sink, state, [CRITICAL])
    assert [a['reason'] for a in again['alerts']] == ['severity changed from warning'], again['alerts']
    assert len(sink.requests) == before + 1 and b'critical' in sink.requests[-1]['body']


def test_fault_notify_state_naming_a_removed_channel(sink, tmp_path):
    state = tmp_path / 'state.json'
    old = [{'name': 'old', 'type': 'webhook', 'url': '%s/hook' % sink.url, 'retries': 0}]
    assert notify(sink, state, [WARNING], channels=old).rc == 0
    result = notify(sink, state, [])  # resolved, but 'old' is no longer configured
    assert result.rc == 0, result.raw
    assert 'resolution(s) for channel old are dropped: it is no longer configured' in result.raw
    assert json.loads(state.read_text())['alerts'] == {}


def test_fault_notify_sms_limit_too_small_is_refused(sink, tmp_path):
    result = notify(sink, tmp_path / 'state.json', [WARNING],
                    channels=[{'name': 'sms', 'type': 'sms', 'url': '%s/hook' % sink.url, 'max_length': 2}])
    assert result.failed and 'max_length must be at least 20 characters, got 2' in result['msg']
    assert sink.requests == []


def test_fault_notify_target_with_the_key_separator_resolves_intact(sink, tmp_path):
    state = tmp_path / 'state.json'
    assert notify(sink, state, [WARNING], target='pool|a').rc == 0
    resolved = notify(sink, state, [], target='pool|a')
    item = [a for a in resolved['alerts'] if a['status'] == 'resolved'][0]
    assert (item['target'], item['name'], item['object']) == ('pool|a', 'connections_used', 'server')
