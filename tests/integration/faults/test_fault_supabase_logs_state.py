# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A damaged state file of supabase_logs_info never hides an error pattern as known: cut off, altered, dated after
this host's clock, of another project or not this module's, it is read as empty - every pattern counts as new,
``log_state`` says why - and rewritten, so the run after is right again. Against the local HTTPS stand-in of
Supabase's Management API (tests/management_api.py; the logs endpoint as Supabase's published OpenAPI specification
describes it, the public supabase/cli repository, packages/api/src/generated/openapi.json, operation
v1-get-project-logs)."""

from __future__ import annotations

import datetime
import json

import pytest

from management_api import PROJECT_REF, TOKEN, ManagementApiStandIn, pg_log
from modrunner import run_module
from webserver import CertificateAuthority


@pytest.fixture(scope='module')
def stand_in(tmp_path_factory):
    ca = CertificateAuthority(str(tmp_path_factory.mktemp('supabase-logs-state-tls')))
    server = ManagementApiStandIn(*ca.issue('api')).start()
    server.ca_file = ca.ca_file
    yield server
    server.stop()


@pytest.fixture
def api(stand_in):
    stand_in.reset()
    stand_in.logs['postgres_logs'].append(pg_log(2, 'ERROR', 'permission denied for table invoices', '42501'))
    return stand_in


def run(api, state):
    result = run_module('supabase_logs_info', {'project_ref': PROJECT_REF, 'access_token': TOKEN, 'api_url': api.url,
                                               'ca_cert': api.ca_file, 'retries': 0, 'window_hours': 24,
                                               'sources': ['postgres'], 'state_file': str(state)})
    assert result.rc == 0, result.raw
    assert TOKEN not in result.raw
    return result


def later(text, days):
    moment = datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%fZ') + datetime.timedelta(days=days)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def cut_off(saved, text):
    return text[:len(text) // 2]


def future_saved(saved, text):
    return json.dumps(dict(saved, saved_at=later(saved['saved_at'], 3)))


def future_pattern(saved, text):
    return json.dumps(dict(saved, patterns=dict((k, later(v, 3)) for k, v in saved['patterns'].items())))


def other_project(saved, text):
    return json.dumps(dict(saved, project_ref='zyxwvutsrqponmlkjihg'))


def other_format(saved, text):
    return json.dumps(dict(saved, format='appcare.pg_log/1'))


def pattern_time_garbage(saved, text):
    return json.dumps(dict(saved, patterns=dict((k, 'soon') for k in saved['patterns'])))


def patterns_as_list(saved, text):
    return json.dumps(dict(saved, patterns=list(saved['patterns'])))


def not_an_object(saved, text):
    return json.dumps([saved])


@pytest.mark.parametrize('tamper,reason', [
    (cut_off, 'it cannot be read as JSON'),
    (future_saved, "is after this host's clock"),
    (future_pattern, "after the file was saved or this host's clock"),
    (other_project, 'it belongs to project "zyxwvutsrqponmlkjihg", not %s' % PROJECT_REF),
    (other_format, 'it is not a state file of this module (format "appcare.pg_log/1")'),
    (pattern_time_garbage, 'that is no time'),
    (patterns_as_list, 'its patterns are not a map'),
    (not_an_object, 'it is not a state file of this module'),
])
def test_fault_a_tampered_state_file_hides_no_pattern(api, tmp_path, tamper, reason):
    state = tmp_path / 'supabase.json'
    first = run(api, state)
    assert first.check('log_state')['status'] == 'ok'
    text = state.read_text()
    saved = json.loads(text)
    known = run(api, state)
    assert known.check('log_new_patterns')['status'] == 'ok'  # remembered: not new

    state.write_text(tamper(saved, text))
    result = run(api, state)
    problem = result.check('log_state')
    assert problem['status'] == 'warning' and reason in problem['message'], problem['message']
    assert 'every pattern counts as new' in problem['message']
    new = result.check('log_new_patterns')
    assert new['status'] == 'warning' and new['value'] == 1, new  # never hidden as known
    assert result['postgres']['top_errors'][0]['new'] is True

    rewritten = json.loads(state.read_text())
    assert rewritten['format'] == 'appcare.supabase_logs/1' and rewritten['project_ref'] == PROJECT_REF
    after = run(api, state)
    assert after.check('log_state')['status'] == 'ok' and after.check('log_new_patterns')['status'] == 'ok'


def test_fault_a_state_file_that_is_a_directory_is_refused(api, tmp_path):
    result = run_module('supabase_logs_info', {'project_ref': PROJECT_REF, 'access_token': TOKEN, 'api_url': api.url,
                                               'ca_cert': api.ca_file, 'state_file': str(tmp_path)})
    assert result.failed and 'is a directory' in result['msg'] and not api.requests
