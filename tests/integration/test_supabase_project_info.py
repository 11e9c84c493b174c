# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""supabase_project_info against a local HTTPS stand-in of Supabase's Management API (tests/management_api.py).

The stand-in answers with the shapes of Supabase's published OpenAPI specification of the Management API - the
public supabase/cli repository, packages/api/src/generated/openapi.json: GET /v1/projects/{ref}/health
(v1-get-services-health, V1ServiceHealthResponse, the required ``services`` query parameter) and
GET /v1/projects/{ref}/database/backups (v1-list-all-backups, V1BackupsResponse). The real API is not reachable from
the tests. Every finding fires where it should and stays quiet where it should; rate limits, 401, 5xx, an
unreachable host and TLS failures end in clear messages; the token never appears in any output."""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time

import pytest

from management_api import (
    PROJECT_REF,
    SERVICES,
    TOKEN,
    ManagementApiStandIn,
    Reply,
    backup,
    backups_answer,
    daily_backups,
)
from modrunner import REPO_ROOT, run_module, run_playbook
from webserver import CertificateAuthority


@pytest.fixture(scope='module')
def tls(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('supabase-tls'))
    ca = CertificateAuthority(directory)
    return {'ca': ca.ca_file, 'cert': ca.issue('api'), 'self_signed': ca.issue('self', self_signed=True)}


@pytest.fixture(scope='module')
def stand_in(tls):
    server = ManagementApiStandIn(*tls['cert']).start()
    yield server
    server.stop()


@pytest.fixture
def api(stand_in):
    stand_in.reset()
    return stand_in


def args(api, tls, **extra):
    result = {'project_ref': PROJECT_REF, 'access_token': TOKEN, 'api_url': api.url, 'ca_cert': tls['ca'],
              'retries': 0}
    result.update(extra)
    return result


def run(api, tls, **extra):
    result = run_module('supabase_project_info', args(api, tls, **extra))
    assert TOKEN not in result.raw, 'the access token appeared in the output'
    return result


def findings(result, name):
    return [c for c in result['checks'] if c['name'] == name]


def service(result, name):
    found = [c for c in findings(result, 'supabase_service') if c['object'] == 'service=%s' % name]
    assert len(found) == 1, result['checks']
    return found[0]


def closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_a_healthy_project_is_quiet_and_the_requests_follow_the_specification(api, tls):
    result = run(api, tls)
    assert result.rc == 0, result.raw
    assert result['status'] == 'ok' and result['changed'] is False, result['checks']
    assert [s['name'] for s in result['services']] == list(SERVICES)
    assert all(service(result, name)['status'] == 'ok' for name in SERVICES)
    assert service(result, 'auth')['message'] == 'auth is ACTIVE_HEALTHY (GoTrue v2.170.0)'
    assert all(c['category'] == 'health' for c in findings(result, 'supabase_service'))
    age = result.check('supabase_backup_age')
    assert age['status'] == 'ok' and 5.4 < age['value'] < 5.7 and age['critical'] == 26 and age['unit'] == 'hours'
    assert 'backup 41 (physical' in age['message']
    assert result.check('supabase_backup_failed')['status'] == 'ok'
    assert result.check('supabase_backup_future_dated')['status'] == 'ok'
    pitr = result.check('supabase_pitr')
    assert pitr['status'] == 'ok' and 'point-in-time recovery is off (WAL-G on)' in pitr['message']
    assert result.check('supabase_api')['status'] == 'ok'
    assert [b['id'] for b in result['backups']] == [41, 40, 39, 38, 37, 36, 35]
    assert result['region'] == 'eu-central-1' and result['walg_enabled'] is True
    assert result['restore_point']['source'] == 'backup'
    assert result['report']['supabase']['services']['db'] == 'ACTIVE_HEALTHY'
    assert result['report']['supabase']['finished_at'] == result['restore_point']['at']
    assert result['api']['rate_limit'] == {'limit': 120, 'remaining': result['api']['rate_limit']['remaining'],
                                           'reset': 60}
    health, backups = api.requests
    # The specification's form-style array: one services= per service, and the token as a bearer token.
    assert health['path'] == '/v1/projects/%s/health' % PROJECT_REF
    assert health['query'] == {'services': list(SERVICES)}
    assert health['raw'].endswith('?services=auth&services=db&services=pooler&services=realtime&services=rest'
                                  '&services=storage')
    assert health['headers']['Authorization'] == 'Bearer %s' % TOKEN
    assert backups['path'] == '/v1/projects/%s/database/backups' % PROJECT_REF


@pytest.mark.parametrize('state,expected,text', [
    ('COMING_UP', 'warning', 'realtime is COMING_UP: starting or restarting'),
    ('UNHEALTHY', 'critical', 'realtime is UNHEALTHY: connection to realtime timed out'),
    ('RESIZING', 'unknown', 'realtime answered status "RESIZING", which is none of'),
])
def test_each_service_status_fires(api, tls, state, expected, text):
    api.health['realtime'] = state
    result = run(api, tls)
    assert result.rc == 0, result.raw
    found = service(result, 'realtime')
    assert found['status'] == expected and text in found['message'], found
    assert found['service_status'] == state
    assert all(service(result, name)['status'] == 'ok' for name in SERVICES if name != 'realtime')


def test_a_service_missing_from_the_answer_or_contradicting_itself_is_never_ok(api, tls):
    del api.health['storage']
    api.health['rest'] = {'status': 'ACTIVE_HEALTHY', 'healthy': False}
    result = run(api, tls)
    missing = service(result, 'storage')
    assert missing['status'] == 'unknown' and 'not in the API' in missing['message']
    contradicting = service(result, 'rest')
    assert contradicting['status'] == 'warning' and 'healthy says false' in contradicting['message']


def test_only_the_services_asked_for(api, tls):
    result = run(api, tls, services=['db', 'pg_bouncer', 'db'], check_backups=False)
    assert result.rc == 0, result.raw
    assert [s['name'] for s in result['services']] == ['db', 'pg_bouncer']
    assert api.requests[0]['query'] == {'services': ['db', 'pg_bouncer']} and len(api.requests) == 1
    assert service(result, 'pg_bouncer')['status'] == 'unknown'  # the stand-in knows no pg_bouncer
    assert not findings(result, 'supabase_backup_age')


def test_backup_age_fires_past_the_objective_and_the_warning(api, tls):
    api.backups = backups_answer([backup(7, 30), backup(6, 54)])
    result = run(api, tls)
    age = result.check('supabase_backup_age')
    assert age['status'] == 'critical' and 29.9 < age['value'] < 30.1 and '(critical threshold: above 26)' in age['message']
    result = run(api, tls, rpo_hours=48, backup_age_warning_hours=24)
    age = result.check('supabase_backup_age')
    assert age['status'] == 'warning' and age['warning'] == 24 and age['critical'] == 48


def test_no_backup_at_all_is_critical(api, tls):
    api.backups = backups_answer([backup(3, 2, status='PENDING'), backup(2, 30, status='REMOVED')])
    result = run(api, tls)
    age = result.check('supabase_backup_age')
    assert age['status'] == 'critical' and age['value'] is None
    assert 'no completed backup and no point-in-time restore point' in age['message']
    assert result['restore_point'] is None


def test_failed_backups_fire(api, tls):
    api.backups = backups_answer([backup(9, 2, status='FAILED'), backup(8, 26), backup(7, 50, status='FAILED')])
    result = run(api, tls, rpo_hours=48)
    failed = result.check('supabase_backup_failed')
    assert failed['status'] == 'critical' and failed['value'] == 2 and 'the newest backup failed' in failed['message']
    api.backups = backups_answer([backup(9, 2), backup(8, 26, status='FAILED')])
    failed = run(api, tls).check('supabase_backup_failed')
    assert failed['status'] == 'warning' and failed['value'] == 1 and 'a later one completed' in failed['message']


def test_pitr_window_is_the_restore_point(api, tls):
    api.backups = backups_answer([backup(9, 20)], pitr=True, earliest=7 * 24 + 0.1, latest=0.1)
    result = run(api, tls, rpo_hours=1, require_pitr=True, min_pitr_window_days=7)
    assert result.rc == 0, result.raw
    pitr = result.check('supabase_pitr')
    assert pitr['status'] == 'ok' and 6.99 < pitr['value'] < 7.01 and pitr['unit'] == 'days', pitr
    age = result.check('supabase_backup_age')
    assert age['status'] == 'ok' and age['value'] < 0.2 and 'latest point-in-time restore point' in age['message']
    assert result['restore_point']['source'] == 'pitr' and result['pitr']['enabled'] is True
    assert 6.99 < result['pitr']['window_days'] < 7.01
    short = run(api, tls, min_pitr_window_days=14).check('supabase_pitr')
    assert short['status'] == 'warning' and '(warning threshold: below 14)' in short['message']


def test_pitr_off_when_required_and_on_without_a_window(api, tls):
    pitr = run(api, tls, require_pitr=True).check('supabase_pitr')
    assert pitr['status'] == 'critical' and 'require_pitr' in pitr['message']
    api.backups = backups_answer(daily_backups(), pitr=True)
    pitr = run(api, tls).check('supabase_pitr')
    assert pitr['status'] == 'warning' and 'no recoverable window' in pitr['message']


def test_rate_limited_then_answered(api, tls):
    path = '/v1/projects/%s/health' % PROJECT_REF
    api.queue[path] = [Reply(429, {'message': 'Too Many Requests'}, {'Retry-After': '1'})]
    started = time.monotonic()
    result = run(api, tls)
    assert result.rc == 0, result.raw
    assert time.monotonic() - started >= 1.0
    health = result['api']['requests'][0]
    assert health['attempts'] == 2 and health['waited_seconds'] == 1.0 and health['status'] == 200
    assert result['status'] == 'ok'


def test_rate_limited_beyond_the_longest_wait(api, tls):
    path = '/v1/projects/%s/health' % PROJECT_REF
    api.queue[path] = [Reply(429, {'message': 'Too Many Requests'}, {'Retry-After': '120'})]
    started = time.monotonic()
    result = run(api, tls, max_retry_wait=5)
    assert time.monotonic() - started < 5
    assert result.failed
    assert 'rate limited (HTTP 429): the API asks to wait 120 s, more than the 5 s left of max_retry_wait' in result['msg']


def test_a_refused_token(api, tls):
    result = run(api, tls, access_token='sbp_' + 'f' * 40)
    assert result.failed
    assert 'HTTP 401 Unauthorized (the API said: Unauthorized) - the access token was not accepted' in result['msg']
    assert 'SUPABASE_ACCESS_TOKEN' in result['msg']
    assert len(api.requests) == 1  # the backups request would be refused the same way
    assert 'sbp_' + 'f' * 40 not in result.raw


def test_a_token_without_the_permission(api, tls):
    path = '/v1/projects/%s/database/backups' % PROJECT_REF
    api.queue[path] = [Reply(403, {'message': 'Forbidden resource'})]
    result = run(api, tls, fail_on_error=False)
    assert result.rc == 0, result.raw
    assert service(result, 'db')['status'] == 'ok'
    assert result.check('supabase_backup_age')['status'] == 'unknown'
    failure = result.check('supabase_api')
    assert failure['status'] == 'critical' and 'HTTP 403' in failure['message'] and 'backups_read' in failure['message']


def test_a_server_error_is_retried_then_reported(api, tls):
    path = '/v1/projects/%s/health' % PROJECT_REF
    api.queue[path] = [Reply(500, {'message': "Failed to retrieve project's service health status"})]
    result = run(api, tls, retries=1)
    assert result.rc == 0 and result['status'] == 'ok', result.raw
    assert result['api']['requests'][0]['attempts'] == 2
    api.queue[path] = [Reply(500, {'message': "Failed to retrieve project's service health status"})] * 2
    result = run(api, tls, retries=1)
    assert result.failed
    assert ("HTTP 500 Internal Server Error (the API said: Failed to retrieve project's service health status) - the "
            "Management API failed (after 1 retries)") in result['msg']
    api.queue[path] = [Reply(502, b'<html>bad gateway</html>')]
    result = run(api, tls, fail_on_error=False)
    assert result.rc == 0 and result['status'] == 'critical', result.raw
    assert all(service(result, name)['status'] == 'unknown' for name in SERVICES)
    assert result.check('supabase_backup_age')['status'] == 'ok'  # the other request still read


def test_an_unreachable_host(tls):
    started = time.monotonic()
    result = run_module('supabase_project_info', {'project_ref': PROJECT_REF, 'access_token': TOKEN,
                                                  'api_url': 'https://127.0.0.1:%d' % closed_port(), 'retries': 1})
    assert result.failed
    assert 'cannot connect to 127.0.0.1' in result['msg'] and 'connection refused' in result['msg'], result['msg']
    assert result['api']['requests'][0]['attempts'] == 2 and len(result['api']['requests']) == 1
    assert time.monotonic() - started < 15
    assert TOKEN not in result.raw


def test_a_certificate_it_cannot_verify(tls):
    server = ManagementApiStandIn(*tls['self_signed']).start()
    try:
        result = run_module('supabase_project_info', {'project_ref': PROJECT_REF, 'access_token': TOKEN,
                                                      'api_url': server.url, 'ca_cert': tls['ca']})
        assert result.failed and 'TLS certificate of 127.0.0.1 was not accepted' in result['msg'], result['msg']
        assert not server.requests  # the token never left
        result = run_module('supabase_project_info', {'project_ref': PROJECT_REF, 'access_token': TOKEN,
                                                      'api_url': server.url, 'validate_certs': False})
        assert result.rc == 0 and result['status'] == 'ok', result.raw
    finally:
        server.stop()


def test_a_redirect_is_not_followed(api, tls):
    path = '/v1/projects/%s/health' % PROJECT_REF
    api.queue[path] = [Reply(302, b'', {'Location': 'https://elsewhere.example.org/v1/projects'})]
    result = run(api, tls)
    assert result.failed and 'a redirect to https://elsewhere.example.org/v1/projects' in result['msg'], result['msg']


def test_an_unknown_project(api, tls):
    result = run(api, tls, project_ref='zyxwvutsrqponmlkjihg')
    assert result.failed and 'HTTP 404' in result['msg'] and 'check project_ref' in result['msg']


@pytest.mark.parametrize('extra,message', [
    ({'project_ref': 'abc'}, "project_ref 'abc' is not a project reference"),
    ({'project_ref': '../../v1/organizations'}, 'is not a project reference'),
    ({'rpo_hours': -1}, 'rpo_hours must be more than 0'),
    ({'rpo_hours': 24, 'backup_age_warning_hours': 30}, 'warning threshold 30.0 is above the critical threshold 24.0'),
    ({'min_pitr_window_days': -1}, 'min_pitr_window_days must be 0 or more'),
    ({'api_url': 'http://api.example.org'}, 'is plain http'),
    ({'services': [], 'check_backups': False}, 'nothing to check'),
    ({'severity': {'supabase_pitr': 'fatal'}}, 'severity.supabase_pitr must be one of'),
    ({'access_token': 'two words'}, 'access_token holds spaces'),
])
def test_bad_options_are_refused_before_any_request(api, tls, extra, message):
    result = run(api, tls, **extra)
    assert result.failed and result['msg'].startswith('invalid options: ') and message in result['msg'], result['msg']
    assert not api.requests


def test_the_token_from_the_environment(api, tls):
    options = args(api, tls)
    del options['access_token']
    result = run_module('supabase_project_info', options, env={'SUPABASE_ACCESS_TOKEN': TOKEN})
    assert result.rc == 0 and result['status'] == 'ok', result.raw
    assert TOKEN not in result.raw
    result = run_module('supabase_project_info', options, env={'SUPABASE_ACCESS_TOKEN': ''})
    assert result.failed and 'SUPABASE_ACCESS_TOKEN' in result['msg']


def test_severity_changes_a_fired_finding(api, tls):
    api.health['pooler'] = 'COMING_UP'
    result = run(api, tls, severity={'supabase_service': 'critical'})
    found = service(result, 'pooler')
    assert found['status'] == 'critical' and found['default_status'] == 'warning'
    assert service(result, 'db')['status'] == 'ok'


def test_the_token_is_never_shown_even_at_vvvv(api, tls, tmp_path):
    playbook = tmp_path / 'play.yml'
    playbook.write_text(textwrap.dedent('''\
        - hosts: localhost
          gather_facts: false
          vars_files: [secrets.yml]
          tasks:
            - name: Read the project
              appcare.maintenance.supabase_project_info:
                project_ref: {ref}
                access_token: "{{{{ token }}}}"
                api_url: {url}
                ca_cert: {ca}
              register: good
            - name: A refused token
              appcare.maintenance.supabase_project_info:
                project_ref: {ref}
                access_token: "{{{{ token }}}}x"
                api_url: {url}
                ca_cert: {ca}
              ignore_errors: true
        ''').format(ref=PROJECT_REF, url=api.url, ca=tls['ca']))
    (tmp_path / 'secrets.yml').write_text('token: %s\n' % TOKEN)  # as from a vault: not on the command line
    inventory = tmp_path / 'hosts.ini'
    inventory.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
    proc = run_playbook(str(playbook), str(inventory), options=['-vvvv'],
                        env={'APPCARE_REPORT_DIR': str(tmp_path / 'reports')})
    assert 'HTTP 401' in proc.stdout, proc.stdout
    assert 'failed=0' in proc.stdout and 'ignored=1' in proc.stdout, proc.stdout
    assert 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER' in proc.stdout  # -vvvv shows the arguments, the token masked
    assert TOKEN not in proc.stdout


def test_the_daily_playbook_runs_it_and_the_report_gathers_its_findings(api, tls, tmp_path):
    api.health['storage'] = 'UNHEALTHY'
    (tmp_path / 'secrets.yml').write_text('vault_supabase_access_token: %s\n' % TOKEN)
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text(textwrap.dedent('''\
        all:
          hosts:
            ims-supabase:
              ansible_connection: local
              ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
              health_check_database: false
              health_check_supabase_project_ref: {ref}
              health_check_supabase_access_token: "{{{{ vault_supabase_access_token }}}}"
              health_check_supabase_api_url: {url}
              health_check_ca_cert: {ca}
        ''').format(ref=PROJECT_REF, url=api.url, ca=tls['ca']))
    reports = tmp_path / 'reports'
    proc = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'daily.yml'), str(inventory),
                        extra_vars={'appcare_targets': 'all'}, options=['-e', '@%s' % (tmp_path / 'secrets.yml')],
                        env={'APPCARE_REPORT_DIR': str(reports)})
    assert proc.returncode == 0, proc.stdout
    assert 'ims-supabase: overall CRITICAL' in proc.stdout, proc.stdout
    assert TOKEN not in proc.stdout
    with open(str(reports / 'latest.json')) as handle:
        report = json.load(handle)
    target = [t for t in report['targets'] if t['name'] == 'ims-supabase'][0]
    gathered = dict(((c['name'], c['object']), c) for c in target['checks'])
    storage = gathered[('supabase_service', 'service=storage')]
    assert storage['status'] == 'critical' and storage['category'] == 'health'
    assert gathered[('supabase_backup_age', 'project=%s' % PROJECT_REF)]['category'] == 'backups'
    assert target['supabase']['services']['storage'] == 'UNHEALTHY' and target['supabase']['age_hours'] > 5
