# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""http_health_info against real local HTTP and HTTPS servers: each finding fires where it should and
stays quiet where it should; probes run concurrently; secrets never appear in the output."""

from __future__ import annotations

import socket
import time

import pytest

from modrunner import run_module
from webserver import CertificateAuthority, LocalServer, Route


def by_name(result):
    return dict((r['name'], r) for r in result['endpoints'])


def checks_of(result, endpoint):
    return dict((c['name'], c) for c in result['checks'] if c['object'] == 'endpoint=%s' % endpoint)


@pytest.fixture(scope='module')
def app():
    routes = {
        '/health': Route(200, {'status': 'ok', 'db': {'connected': True}}),
        '/slow': Route(200, {'status': 'ok'}, delay=0.7),
        '/error': Route(500, {'error': 'boom'}),
        '/wrong': Route(200, {'status': 'degraded', 'db': {'connected': False}}),
        '/r1': Route(302, b'', headers={'Location': '/r2'}),
        '/r2': Route(301, b'', headers={'Location': '/health'}),
        '/loop': Route(302, b'', headers={'Location': '/loop'}),
    }
    with LocalServer(routes) as server:
        yield server


@pytest.fixture(scope='module')
def tls(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('tls'))
    ca = CertificateAuthority(directory)
    good = LocalServer({'/health': Route(200, {'status': 'ok'})}, *ca.issue('good', days=365)).start()
    expiring = LocalServer({'/health': Route(200, {'status': 'ok'})}, *ca.issue('expiring', days=5)).start()
    selfsigned = LocalServer({'/health': Route(200, {'status': 'ok'})},
                             *ca.issue('self', days=365, self_signed=True)).start()
    yield {'ca': ca.ca_file, 'good': good, 'expiring': expiring, 'self': selfsigned}
    for server in (good, expiring, selfsigned):
        server.stop()


def closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_healthy_endpoint_is_quiet_with_phases(app):
    result = run_module('http_health_info', {'endpoints': [
        {'name': 'health', 'url': app.url + '/health', 'json': {'status': 'ok', 'db.connected': True},
         'body_regex': '"status"'}]})
    assert result.rc == 0, result.raw
    assert result['status'] == 'ok' and result['changed'] is False
    found = checks_of(result, 'health')
    assert set(found) == {'http_availability', 'http_status', 'http_content', 'http_latency'}
    assert all(c['status'] == 'ok' for c in found.values()), found
    probe = by_name(result)['health']
    assert set(probe['phases_ms']) == {'dns', 'connect', 'ttfb', 'transfer'}
    assert probe['status_codes'] == [200] and probe['bytes'] > 10 and probe['latency_ms']['max'] < 500


def test_slow_error_wrong_json_and_redirects(app):
    result = run_module('http_health_info', {'endpoints': [
        {'name': 'slow', 'url': app.url + '/slow', 'latency_warning_ms': 300, 'latency_critical_ms': 5000},
        {'name': 'error', 'url': app.url + '/error'},
        {'name': 'wrong', 'url': app.url + '/wrong', 'json': {'status': 'ok', 'db.connected': True, 'db.missing': 1}},
        {'name': 'redirects', 'url': app.url + '/r1', 'json': {'status': 'ok'}},
        {'name': 'loop', 'url': app.url + '/loop', 'max_redirects': 3},
        {'name': 'no_follow', 'url': app.url + '/r1', 'follow_redirects': False, 'status': 302},
    ]})
    assert result.rc == 0, result.raw
    slow = checks_of(result, 'slow')['http_latency']
    assert slow['status'] == 'warning' and slow['value'] >= 700
    error = checks_of(result, 'error')['http_status']
    assert error['status'] == 'critical' and 'HTTP 500, expected 200' in error['message']
    wrong = checks_of(result, 'wrong')['http_content']
    assert wrong['status'] == 'critical'
    assert 'status is "degraded", expected "ok"' in wrong['message'] and 'db.missing is missing' in wrong['message']
    redirects = by_name(result)['redirects']
    assert redirects['redirects'] == [app.url + '/r2', app.url + '/health'] and redirects['status_codes'] == [200]
    assert checks_of(result, 'redirects')['http_content']['status'] == 'ok'
    loop = checks_of(result, 'loop')['http_availability']
    assert loop['status'] == 'critical' and 'more than 3 redirects' in loop['message']
    assert checks_of(result, 'no_follow')['http_status']['status'] == 'ok'
    assert result['status'] == 'critical'


def test_closed_port_and_unresolvable_name(app):
    started = time.monotonic()
    result = run_module('http_health_info', {'endpoints': [
        {'name': 'closed', 'url': 'http://127.0.0.1:%d/health' % closed_port()},
        {'name': 'nowhere', 'url': 'http://no-such-host.invalid/health'},
    ], 'retries': 2})
    closed = checks_of(result, 'closed')['http_availability']
    assert closed['status'] == 'critical' and closed['phase'] == 'connect'
    nowhere = checks_of(result, 'nowhere')['http_availability']
    assert nowhere['status'] == 'critical' and nowhere['phase'] == 'dns' and 'cannot resolve' in nowhere['message']
    assert time.monotonic() - started < 20


def test_samples_error_rate_and_percentiles(app):
    calls = {'n': 0}

    def flaky(_record):
        calls['n'] += 1
        return Route(500 if calls['n'] % 4 == 0 else 200, {'status': 'ok'})

    app.routes['/flaky'] = flaky
    result = run_module('http_health_info', {'endpoints': [
        {'name': 'flaky', 'url': app.url + '/flaky'},
        {'name': 'steady', 'url': app.url + '/health'}], 'samples': 8})
    flaky_checks = checks_of(result, 'flaky')
    assert flaky_checks['http_error_rate']['value'] == 25.0 and flaky_checks['http_error_rate']['status'] == 'critical'
    assert flaky_checks['http_status']['status'] == 'warning'  # 2 of 8 answers unexpected
    steady = checks_of(result, 'steady')
    assert steady['http_error_rate']['status'] == 'ok' and steady['http_error_rate']['value'] == 0
    latency = by_name(result)['steady']['latency_ms']
    assert latency['p50'] <= latency['p95'] <= latency['max']


def test_endpoints_are_probed_concurrently(app):
    app.routes['/pause'] = Route(200, b'ok', delay=0.5)
    endpoints = [{'name': 'p%d' % i, 'url': app.url + '/pause?i=%d' % i} for i in range(20)]
    started = time.monotonic()
    result = run_module('http_health_info', {'endpoints': endpoints})
    elapsed = time.monotonic() - started
    assert all(r['status_codes'] == [200] for r in result['endpoints'])
    assert elapsed < 5, 'twenty 0.5 s endpoints took %.1f s: not concurrent' % elapsed


def test_https_certificates(tls):
    result = run_module('http_health_info', {'endpoints': [
        {'name': 'good', 'url': tls['good'].url + '/health'},
        {'name': 'expiring', 'url': tls['expiring'].url + '/health'},
        {'name': 'self', 'url': tls['self'].url + '/health'},
    ], 'ca_cert': tls['ca']})
    good = checks_of(result, 'good')
    assert good['tls_expiry']['status'] == 'ok' and good['tls_expiry']['value'] > 360 and 'certificate' not in good
    assert 'tls' in by_name(result)['good']['phases_ms']
    expiring = checks_of(result, 'expiring')['tls_expiry']
    assert expiring['status'] == 'critical' and 4 < expiring['value'] < 5.1
    self_signed = checks_of(result, 'self')['http_availability']
    assert self_signed['status'] == 'critical' and self_signed['phase'] == 'tls'
    assert 'certificate' in self_signed['message']

    system_only = run_module('http_health_info', {'endpoints': [{'name': 'good', 'url': tls['good'].url + '/health'}]})
    assert checks_of(system_only, 'good')['http_availability']['status'] == 'critical'  # our CA is not the system's
    unverified = run_module('http_health_info', {'endpoints': [{'name': 'self', 'url': tls['self'].url + '/health'}],
                                                 'validate_certs': False})
    assert checks_of(unverified, 'self')['http_status']['status'] == 'ok'
    assert checks_of(unverified, 'self')['tls_expiry']['value'] > 360
    # the findings' earlier names still set their thresholds, with a deprecation warning
    renamed = run_module('http_health_info', {'endpoints': [{'name': 'good', 'url': tls['good'].url + '/health'}],
                                              'ca_cert': tls['ca'], 'thresholds': {'certificate': {'warning': 400},
                                                                                   'latency': {'warning': 0.001}}})
    assert checks_of(renamed, 'good')['tls_expiry']['status'] == 'warning'
    assert checks_of(renamed, 'good')['http_latency']['status'] == 'warning'
    assert 'thresholds.certificate is now thresholds.tls_expiry' in str(renamed['deprecations'])
    assert 'thresholds.latency is now thresholds.http_latency' in str(renamed['deprecations'])


def test_supabase_preset_with_and_without_the_right_key(tmp_path):
    key = 'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNlY3JldA'

    def guarded(answer):
        def route(record):
            if record['headers'].get('apikey') != key or record['headers'].get('Authorization') != 'Bearer ' + key:
                return Route(401, {'message': 'Invalid API key'})
            return answer
        return route

    routes = {
        '/rest/v1/': guarded(Route(200, {'swagger': '2.0', 'paths': {}})),
        '/auth/v1/health': guarded(Route(200, {'version': 'v2.170.0', 'name': 'GoTrue'})),
        '/storage/v1/bucket': guarded(Route(200, [{'id': 'documents', 'name': 'documents'}])),
        '/storage/v1/bucket/documents': guarded(Route(200, {'id': 'documents', 'public': False})),
        '/functions/v1/send-reminders': guarded(Route(200, {'sent': 3})),
    }
    with LocalServer(routes) as project:
        args = {'supabase_url': project.url, 'supabase_key': key, 'supabase_functions': ['send-reminders'],
                'supabase_buckets': ['documents', 'photos']}
        result = run_module('http_health_info', args)
        assert result.rc == 0, result.raw
        names = [r['name'] for r in result['endpoints']]
        assert names == ['supabase_rest', 'supabase_auth', 'supabase_storage', 'supabase_function_send-reminders',
                         'supabase_bucket_documents', 'supabase_bucket_photos']
        for name in names[:-1]:
            assert checks_of(result, name)['http_status']['status'] == 'ok', checks_of(result, name)
        assert checks_of(result, 'supabase_bucket_photos')['http_status']['status'] == 'critical'  # 404
        function_call = [r for r in project.requests if r['path'] == '/functions/v1/send-reminders'][0]
        assert function_call['method'] == 'POST' and function_call['body'] == b'{}'
        assert key not in result.raw, 'the key leaked into the output'

        wrong = run_module('http_health_info', dict(args, supabase_key='sb_publishable_wrong-key-1234567890'))
        for name in ('supabase_rest', 'supabase_auth', 'supabase_storage'):
            assert 'HTTP 401' in checks_of(wrong, name)['http_status']['message']
        sent = project.requests[-1]['headers']
        assert sent['apikey'] == 'sb_publishable_wrong-key-1234567890' and 'Authorization' not in sent
        assert 'sb_publishable_wrong-key-1234567890' not in wrong.raw


def test_secret_headers_never_appear_even_with_verbose_output(app):
    secret = 'Bearer top-secret-token-4711'
    result = run_module('http_health_info', {'endpoints': [
        {'name': 'health', 'url': app.url + '/health', 'headers': {'Authorization': secret}}],
        '_ansible_verbosity': 4})
    assert result.rc == 0
    assert 'top-secret-token-4711' not in result.raw
    assert [r for r in app.requests if r['headers'].get('Authorization') == secret], 'header not sent'


@pytest.mark.parametrize('args, message', [
    ({}, 'give endpoints, or supabase_url'),
    ({'endpoints': [{'url': 'ftp://example.org/'}]}, 'is not an http:// or https:// URL'),
    ({'endpoints': [{'url': 'http://a/', 'name': 'x'}, {'url': 'http://b/', 'name': 'x'}]}, 'used twice'),
    ({'endpoints': [{'url': 'http://a/', 'body_regex': '('}]}, 'not a regular expression'),
    ({'endpoints': [{'url': 'http://a/', 'latency_warning_ms': 900, 'latency_critical_ms': 100}]}, 'warning threshold'),
    ({'endpoints': [{'url': 'http://a/', 'surprise': 1}]}, 'surprise'),
    ({'endpoints': [{'url': 'http://a/'}], 'thresholds': {'http_latency': {'warning': 'fast'}}}, 'must be a number'),
])
def test_bad_options_fail_clearly(args, message):
    result = run_module('http_health_info', args)
    assert result.failed and message in result['msg'], result['msg']
