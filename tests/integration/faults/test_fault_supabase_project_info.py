# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults supabase_project_info survives, each named after the fault, against the local HTTPS stand-in of Supabase's
Management API (tests/management_api.py; shapes from Supabase's published OpenAPI specification, the public
supabase/cli repository, packages/api/src/generated/openapi.json): a backup or a recoverable moment dated in the
future never passes as fresh, and a malformed or truncated answer is a clear failure or ``unknown``, never ``ok``."""

from __future__ import annotations

import json

import pytest

from management_api import PROJECT_REF, TOKEN, ManagementApiStandIn, Reply, backup, backups_answer
from modrunner import run_module
from webserver import CertificateAuthority

HEALTH = '/v1/projects/%s/health' % PROJECT_REF
BACKUPS = '/v1/projects/%s/database/backups' % PROJECT_REF


@pytest.fixture(scope='module')
def stand_in(tmp_path_factory):
    ca = CertificateAuthority(str(tmp_path_factory.mktemp('supabase-fault-tls')))
    server = ManagementApiStandIn(*ca.issue('api')).start()
    server.ca_file = ca.ca_file
    yield server
    server.stop()


@pytest.fixture
def api(stand_in):
    stand_in.reset()
    return stand_in


def run(api, **extra):
    options = {'project_ref': PROJECT_REF, 'access_token': TOKEN, 'api_url': api.url, 'ca_cert': api.ca_file,
               'retries': 0}
    options.update(extra)
    result = run_module('supabase_project_info', options)
    assert TOKEN not in result.raw
    return result


def test_fault_a_backup_dated_in_the_future_is_not_fresh(api):
    # The newest "completed" backup says tomorrow (clock skew, or an answer not to be believed); the one before it is
    # 40 hours old, past the objective. The future one must neither hide that nor count as the restore point.
    api.backups = backups_answer([backup(99, -24), backup(98, 40), backup(97, 64)])
    result = run(api)
    assert result.rc == 0, result.raw
    age = result.check('supabase_backup_age')
    assert age['status'] == 'critical' and 39.9 < age['value'] < 40.1 and 'backup 98' in age['message'], age
    future = result.check('supabase_backup_future_dated')
    assert future['status'] == 'warning' and future['value'] == 1 and 'backup 99' in future['message']
    assert [b['future_dated'] for b in result['backups']] == [True, False, False]
    assert result['restore_point']['at'] == result['backups'][1]['inserted_at']


def test_fault_only_backups_dated_in_the_future(api):
    api.backups = backups_answer([backup(99, -2), backup(98, -30)])
    age = run(api).check('supabase_backup_age')
    assert age['status'] == 'critical' and age['value'] is None and '2 dated in the future not counted' in age['message']


def test_fault_a_recoverable_moment_dated_in_the_future_is_not_fresh(api):
    api.backups = backups_answer([backup(7, 50)], pitr=True, earliest=24 * 7, latest=-3)
    result = run(api, rpo_hours=1)
    pitr = result.check('supabase_pitr')
    assert pitr['status'] == 'warning' and 'after this host\'s clock' in pitr['message'], pitr
    age = result.check('supabase_backup_age')
    assert age['status'] == 'critical' and 49.9 < age['value'] < 50.1, age
    assert result.check('supabase_backup_future_dated')['status'] == 'warning'
    assert result['restore_point']['source'] == 'backup'


def test_fault_a_recoverable_window_that_ends_before_it_begins(api):
    api.backups = backups_answer([backup(7, 5)], pitr=True, earliest=1, latest=20)
    result = run(api)
    pitr = result.check('supabase_pitr')
    assert pitr['status'] == 'unknown' and 'makes no sense' in pitr['message']
    assert result['restore_point']['source'] == 'backup'


@pytest.mark.parametrize('path,reply,message', [
    (BACKUPS, Reply(200, b'{"region": "eu-central-1", "walg_enabled": true, "pitr_enabled": false, "backups": [{"id"',
                    {'Content-Type': 'application/json'}), 'the answer is not JSON'),
    (BACKUPS, Reply(200, b'{"region": "eu-central-1", "walg_enabled": true', {'Content-Type': 'application/json'},
                    length=400), 'the answer was cut off: 47 of the 400 bytes announced arrived (truncated)'),
    (BACKUPS, Reply(200, b'<html><body>Bad gateway</body></html>', {'Content-Type': 'text/html'}),
     'the answer is not JSON'),
    (BACKUPS, Reply(200, {'region': 'eu-central-1', 'walg_enabled': True, 'pitr_enabled': False, 'backups': []}),
     'lacks physical_backup_data'),
    (BACKUPS, Reply(200, dict(backups_answer(), backups=[{'id': 1, 'is_physical_backup': True, 'status': 'COMPLETED',
                                                          'inserted_at': 'yesterday'}])),
     'backups[0].inserted_at is "yesterday", not a date and time'),
    (BACKUPS, Reply(200, dict(backups_answer(), backups=[{'id': '1', 'is_physical_backup': True, 'status': 'COMPLETED',
                                                          'inserted_at': '2026-02-08 16:44:07'}])),
     'backups[0].id is "1", not an integer'),
    (BACKUPS, Reply(200, dict(backups_answer(), pitr_enabled='yes')), 'pitr_enabled is "yes", not true or false'),
    (BACKUPS, Reply(200, dict(backups_answer(), physical_backup_data={'latest_physical_backup_date_unix': 1770569047000})),
     'too large for seconds since 1970 (milliseconds?)'),
    (BACKUPS, Reply(200, [backups_answer()]), 'is not an object but a list'),
])
def test_fault_a_malformed_backups_answer_is_never_ok(api, path, reply, message):
    api.queue[path] = [reply]
    result = run(api)
    assert result.failed and message in result['msg'], result['msg']
    api.queue[path] = [reply]
    result = run(api, fail_on_error=False)
    assert result.rc == 0, result.raw
    for name in ('supabase_backup_age', 'supabase_backup_failed', 'supabase_backup_future_dated', 'supabase_pitr'):
        assert result.check(name)['status'] == 'unknown', result.check(name)
    assert result.check('supabase_api')['status'] == 'critical' and message in result.check('supabase_api')['message']
    assert result['status'] == 'critical' and result['backups'] == []


@pytest.mark.parametrize('reply,message', [
    (Reply(200, {'name': 'db', 'status': 'ACTIVE_HEALTHY'}), 'is not a list of services but an object'),
    (Reply(200, [{'status': 'ACTIVE_HEALTHY', 'healthy': True}]), 'entry 0 has no service name'),
    (Reply(200, b'[{"name": "db", "healthy": true, "status": "ACTIVE_HEAL', {'Content-Type': 'application/json'}),
     'the answer is not JSON'),
])
def test_fault_a_malformed_health_answer_is_never_ok(api, reply, message):
    api.queue[HEALTH] = [reply]
    result = run(api, fail_on_error=False)
    assert result.rc == 0, result.raw
    services = [c for c in result['checks'] if c['name'] == 'supabase_service']
    assert len(services) == 6 and all(c['status'] == 'unknown' for c in services), services
    assert message in result.check('supabase_api')['message']
    assert result.check('supabase_backup_age')['status'] == 'ok'  # the backups answer was fine


def test_fault_a_service_entry_without_a_status_is_unknown(api):
    api.health['db'] = {'healthy': True}
    api.health['auth'] = {'status': 'ACTIVE_HEALTHY', 'healthy': 'yes'}
    result = run(api)
    found = dict((c['object'], c) for c in result['checks'] if c['name'] == 'supabase_service')
    assert found['service=db']['status'] == 'unknown' and 'answered status null' in found['service=db']['message']
    assert found['service=auth']['status'] == 'unknown' and 'healthy is "yes"' in found['service=auth']['message']
    assert json.dumps(result['services'])  # returned as read, no crash on odd values
