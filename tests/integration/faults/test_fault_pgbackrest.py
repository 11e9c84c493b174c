# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_info survives what pgBackRest might say: a backup dated in the future is not fresh, and output cut short
is an error, never a good state. Only these parsing faults use a stand-in ``pgbackrest`` (the module's ``executable``
option); the database is a real server."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from modrunner import run_module

NOW = int(time.time())


def info_json(stop_offset):
    backup = {'label': '20260101-000000F', 'type': 'full', 'prior': None, 'error': False,
              'timestamp': {'start': NOW - 7200, 'stop': NOW + stop_offset},
              'info': {'size': 1000, 'delta': 1000, 'repository': {'size': 100, 'delta': 100}},
              'database': {'id': 1, 'repo-key': 1}, 'archive': {'start': '0' * 23 + '2', 'stop': '0' * 23 + '2'}}
    return [{'name': 'fault', 'status': {'code': 0, 'message': 'ok', 'lock': {'backup': {'held': False}}},
             'cipher': 'none', 'repo': [{'key': 1, 'cipher': 'none', 'status': {'code': 0, 'message': 'ok'}}],
             'db': [], 'archive': [{'id': '15-1', 'min': '0' * 23 + '1', 'max': '0' * 23 + '2'}], 'backup': [backup]}]


def fake_pgbackrest(tmp_path, info_text):
    """A stand-in that answers ``version`` like pgBackRest 2.59 and ``info`` with ``info_text``."""
    answer = tmp_path / 'info.json'
    answer.write_text(info_text)
    script = tmp_path / 'pgbackrest'
    script.write_text('#!/bin/sh\ncase "$*" in\n  *version*) echo "pgBackRest 2.59.0";;\n'
                      '  *info*) cat "%s";;\n  *) exit 25;;\nesac\n' % answer)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def run_info(server, executable):
    return run_module('pgbackrest_info', dict(server.login_args(), stanza='fault', executable=executable))


def test_fault_future_dated_backup_is_not_fresh(server, tmp_path):
    result = run_info(server, fake_pgbackrest(tmp_path, json.dumps(info_json(stop_offset=86400))))
    assert not result.failed, result
    assert result.check('backup_future_dated')['status'] == 'warning'
    assert result.check('full_backup_age')['status'] == 'critical'
    assert result.check('backup_age')['status'] == 'critical'
    assert result['window'] is None and result.check('pitr_rpo')['status'] == 'critical'


def test_fault_recent_backup_is_fresh(server, tmp_path):
    # The negative case: the same answer dated an hour ago is a fresh backup.
    result = run_info(server, fake_pgbackrest(tmp_path, json.dumps(info_json(stop_offset=-3600))))
    assert not result.failed, result
    assert result.check('full_backup_age')['status'] == 'ok'
    assert result.check('backup_future_dated')['status'] == 'ok'


@pytest.mark.parametrize('cut', [0.5, 0.95])
def test_fault_truncated_info_json_fails(server, tmp_path, cut):
    text = json.dumps(info_json(stop_offset=-3600))
    result = run_info(server, fake_pgbackrest(tmp_path, text[:int(len(text) * cut)]))
    assert result.failed and 'not valid JSON' in result['msg'] and 'cannot be trusted' in result['msg'], result


def test_fault_malformed_timestamp_fails(server, tmp_path):
    data = info_json(stop_offset=-3600)
    data[0]['backup'][0]['timestamp']['stop'] = 'yesterday'
    result = run_info(server, fake_pgbackrest(tmp_path, json.dumps(data)))
    assert result.failed and 'integer start and stop times' in result['msg'], result
    assert os.path.exists(str(tmp_path / 'pgbackrest'))
