# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the HTTP probes: endpoint validation, content expectations, percentiles and error rate, the
findings of a result and the Supabase preset (the HTTP exchange itself is replaced; no network)."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import probe as P
from ansible_collections.appcare.maintenance.plugins.module_utils import tlsinfo as T
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

DEFAULTS = {'method': 'GET', 'timeout': 10, 'samples': 1, 'follow_redirects': True, 'max_redirects': 5}
SECRET = 'sb_secret_DoNotLeakThis0123456789'
THRESHOLDS = C.merge_thresholds(P.DEFAULT_THRESHOLDS, {})


def named(found, name):
    return [f for f in found if f['name'] == name]


def one(found, name):
    matches = named(found, name)
    assert len(matches) == 1, [f['name'] for f in found]
    return matches[0]


def normalize_one(**given):
    given.setdefault('url', 'https://app.example.com/health')
    return P.normalize([given], DEFAULTS)[0]


def test_finding_names_and_their_old_threshold_names():
    assert (P.LATENCY, P.ERROR_RATE) == ('http_latency', 'http_error_rate')
    assert set(P.DEFAULT_THRESHOLDS) == {P.LATENCY, P.ERROR_RATE, T.EXPIRY}
    overrides, notices = C.renamed_thresholds({'latency': {'warning': 800}}, P.RENAMED_THRESHOLDS)
    assert overrides == {P.LATENCY: {'warning': 800}} and len(notices) == 1
    assert C.merge_thresholds(P.DEFAULT_THRESHOLDS, overrides)[P.LATENCY]['warning'] == 800


# -- normalize ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('endpoints, message', [
    ([{'url': 'https://a.example.com/'}, {'url': 'https://a.example.com/'}],
     r'endpoints\[1\]: name https://a.example.com/ is used twice'),
    ([{'name': 'a', 'url': 'https://a.example.com/'}, {'name': 'a', 'url': 'https://b.example.com/'}],
     r'endpoints\[1\]: name a is used twice'),
    ([{'name': 'a', 'url': 'ftp://a.example.com/'}], r'endpoints\[0\] \(a\): url ftp://a.example.com/ is not an http'),
    ([{'name': 'a', 'url': 'https:///path'}], r'endpoints\[0\] \(a\): url https:///path is not an http'),
    ([{'name': 'a', 'url': 'a.example.com'}], r'endpoints\[0\] \(a\): url a.example.com is not an http'),
    ([{'name': 'a', 'url': 'https://a.example.com/', 'samples': 0}], 'samples must be at least 1'),
    ([{'name': 'a', 'url': 'https://a.example.com/', 'timeout': 0}], 'timeout more than 0'),
    ([{'name': 'a', 'url': 'https://a.example.com/', 'body_regex': '(unclosed'}],
     r'endpoints\[0\] \(a\): body_regex is not a regular expression'),
    ([{'name': 'a', 'url': 'https://a.example.com/', 'latency_warning_ms': 900, 'latency_critical_ms': 100}],
     r'endpoints\[0\].latency: warning threshold 900 is above the critical threshold 100'),
    ([{'name': 'a', 'url': 'https://a.example.com/', 'latency_warning_ms': 'slow'}],
     'warning threshold must be a number'),
])
def test_normalize_refuses(endpoints, message):
    with pytest.raises(ConfigurationError, match=message):
        P.normalize(endpoints, DEFAULTS)


def test_normalize_fills_defaults_and_keeps_what_is_given():
    endpoint = normalize_one(timeout=None, samples=3, method=None)
    assert endpoint['name'] == 'https://app.example.com/health'
    assert (endpoint['method'], endpoint['timeout'], endpoint['samples']) == ('GET', 10, 3)  # None means default
    assert endpoint['expected'] == [200]
    assert endpoint['_headers'] == {'User-Agent': 'appcare.maintenance.http_health_info'}
    assert endpoint['_body'] is None


@pytest.mark.parametrize('status, expected', [
    (204, [204]),
    ('301', [301]),
    ([200, '201'], [200, 201]),
])
def test_normalize_expected_status(status, expected):
    assert normalize_one(status=status)['expected'] == expected


@pytest.mark.parametrize('body, sent, content_type', [
    ({'ping': 1}, b'{"ping": 1}', 'application/json'),
    ([1, 2], b'[1, 2]', 'application/json'),
    ('plain text', b'plain text', None),
    (None, None, None),
])
def test_normalize_body(body, sent, content_type):
    endpoint = normalize_one(body=body)
    assert endpoint['_body'] == sent
    assert endpoint['_headers'].get('Content-Type') == content_type


def test_normalize_keeps_given_headers_as_text():
    endpoint = normalize_one(headers={'User-Agent': 'mine', 'X-Retry': 3, 'Content-Type': 'text/x'}, body={'a': 1})
    assert endpoint['_headers'] == {'User-Agent': 'mine', 'X-Retry': '3', 'Content-Type': 'text/x'}


# -- content expectations -------------------------------------------------------------------------------------------

DOC = {'status': 'ok', 'data': {'items': [{'name': 'first'}, {'name': 'second'}], 'count': 2}, 'ready': True}


@pytest.mark.parametrize('path, value', [
    ('status', 'ok'),
    ('data.count', 2),
    ('data.items.1.name', 'second'),
    ('data.items', DOC['data']['items']),
])
def test_json_path(path, value):
    assert P.json_path(DOC, path) == value


@pytest.mark.parametrize('path, error', [
    ('missing', KeyError),
    ('data.items.5.name', IndexError),
    ('data.items.x', ValueError),
    ('status.deeper', KeyError),
])
def test_json_path_absent(path, error):
    with pytest.raises(error):
        P.json_path(DOC, path)


@pytest.mark.parametrize('endpoint, body, problems', [
    ({}, b'anything', []),
    ({'body_regex': r'"status":\s*"ok"'}, json.dumps(DOC).encode(), []),
    ({'body_regex': 'healthy'}, b'sick', ["body does not match 'healthy'"]),
    ({'json': {'status': 'ok', 'data.count': 2}}, json.dumps(DOC).encode(), []),
    ({'json': {'status': 'ok'}}, b'<html>', ['body is not JSON']),
    ({'json': {'data.count': 3}}, json.dumps(DOC).encode(), ['data.count is 2, expected 3']),
    ({'json': {'status': 'up'}}, json.dumps(DOC).encode(), ['status is "ok", expected "up"']),
    ({'json': {'data.missing': 1, 'data.items.9': 'x'}}, json.dumps(DOC).encode(),
     ['data.missing is missing', 'data.items.9 is missing']),
    ({'body_regex': 'healthy', 'json': {'status': 'ok'}}, b'not json',
     ["body does not match 'healthy'", 'body is not JSON']),
    ({'body_regex': 'caf\u00e9'}, 'caf\u00e9'.encode('utf-8'), []),
])
def test_content_problems(endpoint, body, problems):
    assert P.content_problems(endpoint, body) == problems


# -- percentiles ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('values, share, result', [
    ([42], 50, 42),
    ([42], 95, 42),
    ([1, 2, 3, 4], 50, 2),
    ([4, 3, 2, 1], 50, 2),  # order does not matter
    ([1, 2, 3, 4, 5], 50, 3),
    (list(range(1, 21)), 95, 19),
    (list(range(1, 21)), 100, 20),
    (list(range(1, 101)), 95, 95),
    ([10, 10, 900], 95, 900),
    ([1, 2, 3], 0, 1),
])
def test_percentile_nearest_rank(values, share, result):
    assert P.percentile(values, share) == result


# -- one endpoint's samples (the exchange replaced) -----------------------------------------------------------------

def answer(status=200, ms=100.0, body=b'{"status": "ok"}', cert_expiry=None):
    return {'status': status, 'ms': ms, 'phases': {'dns': 1.0, 'connect': 2.0, 'ttfb': ms - 3.0},
            'bytes': len(body), 'body': body, 'location': None, 'content_type': 'application/json',
            'cert_expiry': cert_expiry, 'redirects': [], 'attempts': 1, 'final_url': 'https://app.example.com/'}


class Script(object):
    """Stands in for ``probe``: returns (or raises) the given outcomes in turn and records the endpoints."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.seen = []

    def __call__(self, endpoint, context, retries):
        self.seen.append(endpoint)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def run(monkeypatch, outcomes, **given):
    given.setdefault('samples', len(outcomes))
    endpoint = normalize_one(name='app', **given)
    monkeypatch.setattr(P, 'probe', Script(outcomes))
    return endpoint, P.run_endpoint(endpoint, None, 0)


def test_run_endpoint_summarises_latency_and_phases(monkeypatch):
    _endpoint, result = run(monkeypatch, [answer(ms=float(ms)) for ms in range(10, 210, 10)])
    assert result['latency_ms'] == {'p50': 100.0, 'p95': 190.0, 'max': 200.0}
    assert result['phases_ms'] == {'dns': 1.0, 'connect': 2.0, 'ttfb': 197.0}  # of the last sample
    assert (result['responses'], result['error_rate'], result['errors']) == (20, 0.0, [])
    assert result['method'] == 'GET' and result['certificate_days_left'] is None


@pytest.mark.parametrize('outcomes, rate, responses', [
    ([answer(), answer(), answer(), answer()], 0.0, 4),
    ([answer(), answer(500), answer(), answer()], 25.0, 4),
    ([answer(), P.ProbeError('connect', 'refused'), answer(), answer()], 25.0, 3),
    ([answer(503), P.ProbeError('tls', 'bad'), answer(), P.ProbeError('dns', 'no such host')], 75.0, 2),
    ([P.ProbeError('connect', 'refused')] * 3, 100.0, 0),
])
def test_run_endpoint_error_rate_counts_failures_and_unexpected_status(monkeypatch, outcomes, rate, responses):
    _endpoint, result = run(monkeypatch, outcomes)
    assert result['error_rate'] == rate
    assert result['responses'] == responses
    assert len(result['errors']) == len([o for o in outcomes if isinstance(o, Exception)])
    assert (result['latency_ms'] is None) is (responses == 0)


def test_run_endpoint_checks_the_content_of_an_expected_answer_only(monkeypatch):
    _endpoint, result = run(monkeypatch, [answer(500, body=b'oops'), answer(body=b'{"status": "ok"}')],
                            json={'status': 'ok'})
    assert result['content_problems'] == []
    _endpoint, result = run(monkeypatch, [answer(body=b'{"status": "degraded"}')], json={'status': 'ok'})
    assert result['content_problems'] == ['status is "degraded", expected "ok"']
    _endpoint, result = run(monkeypatch, [answer(500, body=b'oops')], json={'status': 'ok'})
    assert result['content_problems'] == []  # no expected answer: the status finding speaks


def test_run_endpoint_reads_the_certificate_expiry(monkeypatch):
    expiry = T.utcnow() + datetime.timedelta(days=10, hours=1)
    _endpoint, result = run(monkeypatch, [answer(cert_expiry=expiry)])
    assert 10.0 <= result['certificate_days_left'] < 10.1
    assert result['certificate_not_after'] == expiry.isoformat()


def test_header_secrets_never_reach_the_results(monkeypatch):
    headers = {'apikey': SECRET, 'Authorization': 'Bearer %s' % SECRET}
    endpoint, result = run(monkeypatch, [answer(), answer(401), P.ProbeError('http', 'no HTTP answer')],
                           headers=headers, json={'status': 'ok'})
    assert P.probe.seen[0]['_headers']['apikey'] == SECRET  # sent ...
    found = P.findings_for(result, endpoint, THRESHOLDS)
    text = json.dumps([result, found], default=str)
    assert SECRET not in text  # ... never reported
    assert 'headers' not in result and '_headers' not in result


# -- findings -------------------------------------------------------------------------------------------------------

def result_of(monkeypatch, outcomes, **given):
    endpoint, result = run(monkeypatch, outcomes, **given)
    return P.findings_for(result, endpoint, THRESHOLDS)


def test_unavailable_endpoint_is_one_critical_finding(monkeypatch):
    found = result_of(monkeypatch, [P.ProbeError('connect', 'cannot connect to app.example.com:443: refused')])
    assert len(found) == 1
    assert one(found, 'http_availability')['status'] == C.CRITICAL
    assert found[0]['phase'] == 'connect'
    assert found[0]['message'] == 'app is unavailable: cannot connect to app.example.com:443: refused'
    assert found[0]['object'] == 'endpoint=app'


def test_healthy_endpoint_is_all_ok(monkeypatch):
    found = result_of(monkeypatch, [answer(ms=120.0)] * 3, json={'status': 'ok'})
    assert C.worst_status(found) == C.OK
    assert one(found, 'http_availability')['message'] == 'app answered 3 of 3 probe(s)'
    assert one(found, 'http_status')['message'] == 'HTTP 200 as expected'
    assert one(found, 'http_content')['status'] == C.OK
    assert one(found, P.ERROR_RATE)['value'] == 0.0
    assert not named(found, T.EXPIRY)


@pytest.mark.parametrize('statuses, status', [
    ([200, 200, 200], C.OK),
    ([200, 200, 503], C.WARNING),
    ([200, 503], C.WARNING),  # half is not a majority
    ([200, 503, 503], C.CRITICAL),
    ([404], C.CRITICAL),
])
def test_unexpected_status(monkeypatch, statuses, status):
    found = result_of(monkeypatch, [answer(s) for s in statuses])
    check = one(found, 'http_status')
    assert check['status'] == status
    if status != C.OK:
        bad = [s for s in statuses if s != 200]
        assert check['message'] == 'app answered HTTP %s, expected 200 (%d of %d answers)' % (
            bad[-1], len(bad), len(statuses))


def test_content_finding(monkeypatch):
    bad = result_of(monkeypatch, [answer(body=b'down')], body_regex='^\\{')
    assert one(bad, 'http_content')['status'] == C.CRITICAL
    assert one(bad, 'http_content')['message'] == "app: body does not match '^\\\\{'"
    good = result_of(monkeypatch, [answer(body=b'{}')], body_regex='^\\{')
    assert one(good, 'http_content')['status'] == C.OK
    # No expectation, no content finding; an unexpected status only, none either.
    assert not named(result_of(monkeypatch, [answer(body=b'down')]), 'http_content')
    assert not named(result_of(monkeypatch, [answer(500)], body_regex='x'), 'http_content')


@pytest.mark.parametrize('ms, status', [
    (100.0, C.OK),
    (500.0, C.OK),  # crossed only when passed
    (501.0, C.WARNING),
    (3000.1, C.CRITICAL),
])
def test_latency_of_a_single_sample(monkeypatch, ms, status):
    found = result_of(monkeypatch, [answer(ms=ms)])
    check = one(found, P.LATENCY)
    assert (check['status'], check['value']) == (status, round(ms, 1))
    assert '(p95' not in check['message']
    assert not named(found, P.ERROR_RATE)  # one sample has no rate


def test_latency_of_several_samples_is_the_p95(monkeypatch):
    found = result_of(monkeypatch, [answer(ms=100.0)] * 19 + [answer(ms=9000.0)])
    check = one(found, P.LATENCY)
    assert check['status'] == C.OK and check['value'] == 100.0  # one slow outlier in 20 is not the p95
    assert 'app took 100 ms (p95 of 20)' in check['message']
    found = result_of(monkeypatch, [answer(ms=100.0)] * 18 + [answer(ms=9000.0)] * 2)
    assert one(found, P.LATENCY)['status'] == C.CRITICAL


@pytest.mark.parametrize('warning, critical, ms, status', [
    (50, None, 100.0, C.WARNING),
    (None, 900, 1000.0, C.CRITICAL),
    (None, 900, 600.0, C.WARNING),  # the module's warning level still applies
    (200, 400, 100.0, C.OK),
    (800, 4000, 600.0, C.OK),
])
def test_latency_thresholds_of_the_endpoint_win(monkeypatch, warning, critical, ms, status):
    given = dict((k, v) for k, v in (('latency_warning_ms', warning), ('latency_critical_ms', critical)) if v)
    found = result_of(monkeypatch, [answer(ms=ms)], **given)
    assert one(found, P.LATENCY)['status'] == status


@pytest.mark.parametrize('outcomes, status', [
    ([answer()] * 20, C.OK),
    ([answer()] * 19 + [P.ProbeError('connect', 'refused')], C.OK),  # 5 % is the limit, not past it
    ([answer()] * 18 + [P.ProbeError('connect', 'refused')] * 2, C.CRITICAL),
])
def test_error_rate_finding(monkeypatch, outcomes, status):
    check = one(result_of(monkeypatch, outcomes), P.ERROR_RATE)
    assert check['status'] == status
    assert check['unit'] == 'percent'


@pytest.mark.parametrize('days, status', [(90, C.OK), (20, C.WARNING), (3, C.CRITICAL), (-1, C.CRITICAL)])
def test_certificate_expiry_finding(monkeypatch, days, status):
    expiry = T.utcnow() + datetime.timedelta(days=days, minutes=5)
    check = one(result_of(monkeypatch, [answer(cert_expiry=expiry)]), T.EXPIRY)
    assert check['status'] == status
    assert check['message'].startswith('the certificate of app expire')


# -- Supabase preset ------------------------------------------------------------------------------------------------

JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl'


@pytest.mark.parametrize('key, bearer', [
    (JWT, True),
    ('sb_publishable_abc.def.ghi', False),  # looks like a JWT but is a new-style key
    ('sb_secret_abc', False),
])
def test_supabase_headers_follow_the_key_kind(key, bearer):
    endpoints = P.supabase_endpoints('https://ref.supabase.co/', key, None, None)
    assert [e['name'] for e in endpoints] == ['supabase_rest', 'supabase_auth', 'supabase_storage']
    assert [e['url'] for e in endpoints] == ['https://ref.supabase.co/rest/v1/', 'https://ref.supabase.co/auth/v1/health',
                                             'https://ref.supabase.co/storage/v1/bucket']
    for endpoint in endpoints:
        assert endpoint['headers']['apikey'] == key
        assert (endpoint['headers'].get('Authorization') == 'Bearer %s' % key) is bearer
        assert ('Authorization' in endpoint['headers']) is bearer
    endpoints[0]['headers']['apikey'] = 'changed'
    assert endpoints[1]['headers']['apikey'] == key  # each endpoint has its own headers


def test_supabase_functions_and_buckets():
    endpoints = P.supabase_endpoints('https://ref.supabase.co', 'sb_secret_x',
                                     ['hello', {'name': 'report', 'method': 'GET', 'status': [200, 204]}],
                                     ['avatars'])
    extra = dict((e['name'], e) for e in endpoints[3:])
    assert sorted(extra) == ['supabase_bucket_avatars', 'supabase_function_hello', 'supabase_function_report']
    hello = extra['supabase_function_hello']
    assert (hello['url'], hello['method'], hello['body'], hello['status']) == (
        'https://ref.supabase.co/functions/v1/hello', 'POST', {}, [200])
    report = extra['supabase_function_report']
    assert (report['method'], report['status']) == ('GET', [200, 204])
    assert extra['supabase_bucket_avatars']['url'] == 'https://ref.supabase.co/storage/v1/bucket/avatars'
    # The preset is valid input for normalize.
    normalized = P.normalize(endpoints, DEFAULTS)
    assert normalized[3]['_body'] == b'{}' and normalized[3]['_headers']['Content-Type'] == 'application/json'


@pytest.mark.parametrize('functions', [[{'method': 'GET'}], [''], [{'name': ''}]])
def test_supabase_function_needs_a_name(functions):
    with pytest.raises(ConfigurationError, match='supabase_functions entries need a name'):
        P.supabase_endpoints('https://ref.supabase.co', JWT, functions, [])


def test_request_once_refuses_other_urls_before_any_connection():
    with pytest.raises(ConfigurationError, match='is not an http:// or https:// URL'):
        P.request_once('GET', 'file:///etc/hosts', {}, None, 1, None)
