# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP(S) probes with timed phases, for http_health_info.

One probe resolves the name, connects, does the TLS handshake, sends the request and reads the answer,
timing each phase (DNS, connect, TLS, time to first byte, transfer), then follows redirects. Only
connection errors (refused, reset, timed out while connecting) are retried. Probes of different
endpoints run concurrently in threads.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import http.client
import json
import re
import socket
import ssl
import time
from urllib.parse import urljoin, urlsplit

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import tlsinfo as T
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError, ThresholdError

REDIRECTS = (301, 302, 303, 307, 308)
MAX_BODY = 1024 * 1024  # bytes read for content checks; the rest is counted, not kept
# Every finding of http_health_info is named http_<what>, except the certificate's tls_expiry (tls_cert_info's too).
LATENCY = 'http_latency'
ERROR_RATE = 'http_error_rate'
DEFAULT_THRESHOLDS = {
    LATENCY: {'warning': 500, 'critical': 3000, 'direction': C.ABOVE, 'unit': 'ms'},
    ERROR_RATE: {'warning': None, 'critical': 5, 'direction': C.ABOVE, 'unit': 'percent'},
    T.EXPIRY: dict(T.DEFAULT_THRESHOLDS[T.EXPIRY]),
}
# Threshold names of earlier releases (the findings were called certificate, latency and error_rate): accepted
# with a deprecation.
RENAMED_THRESHOLDS = {'certificate': T.EXPIRY, 'latency': LATENCY, 'error_rate': ERROR_RATE}


class ProbeError(Exception):
    """A probe that got no HTTP answer; ``phase`` says where it failed."""

    def __init__(self, phase, message):
        super().__init__(message)
        self.phase = phase


def _cert_expiry(sslsock):
    """notAfter of the peer certificate (validated or not) as an aware datetime, or None."""
    cert = sslsock.getpeercert()
    if cert and cert.get('notAfter'):
        return datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert['notAfter']), datetime.timezone.utc)
    der = sslsock.getpeercert(binary_form=True)
    return T.not_after(der) if der else None


def request_once(method, url, headers, body, timeout, context):
    """One HTTP exchange, no redirects. Returns a dict with status, phases (ms), bytes, body, location."""
    parts = urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise ConfigurationError('%s is not an http:// or https:// URL' % url)
    https = parts.scheme == 'https'
    port = parts.port or (443 if https else 80)
    path = (parts.path or '/') + ('?' + parts.query if parts.query else '')
    phases = {}
    started = time.monotonic()
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProbeError('dns', 'cannot resolve %s: %s' % (parts.hostname, exc.strerror or exc)) from exc
    phases['dns'] = (time.monotonic() - started) * 1000.0
    mark = time.monotonic()
    sock, last_error = None, None
    for family, kind, proto, _name, address in infos:
        try:
            sock = socket.socket(family, kind, proto)
            sock.settimeout(timeout)
            sock.connect(address)
            break
        except OSError as exc:
            last_error = exc
            sock.close()
            sock = None
    if sock is None:
        raise ProbeError('connect', 'cannot connect to %s:%s: %s' % (parts.hostname, port, last_error))
    phases['connect'] = (time.monotonic() - mark) * 1000.0
    expiry = None
    try:
        if https:
            mark = time.monotonic()
            try:
                sock = context.wrap_socket(sock, server_hostname=parts.hostname)
            except ssl.SSLCertVerificationError as exc:
                raise ProbeError('tls', 'TLS certificate of %s not accepted: %s' % (parts.hostname,
                                                                                    exc.verify_message or exc)) from exc
            except (ssl.SSLError, OSError) as exc:
                raise ProbeError('tls', 'TLS handshake with %s:%s failed: %s' % (parts.hostname, port, exc)) from exc
            phases['tls'] = (time.monotonic() - mark) * 1000.0
            expiry = _cert_expiry(sock)
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
        conn.sock = sock
        mark = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            phases['ttfb'] = (time.monotonic() - mark) * 1000.0
            mark = time.monotonic()
            data = response.read(MAX_BODY)
            size = len(data)
            while True:
                chunk = response.read(65536)
                if not chunk:
                    break
                size += len(chunk)
            phases['transfer'] = (time.monotonic() - mark) * 1000.0
        except (OSError, http.client.HTTPException) as exc:
            raise ProbeError('http', 'no HTTP answer from %s:%s: %s' % (parts.hostname, port,
                                                                        exc or type(exc).__name__)) from exc
        finally:
            conn.close()
    finally:
        sock.close()
    return {'status': response.status, 'phases': phases, 'bytes': size, 'body': data,
            'location': response.getheader('Location'), 'content_type': response.getheader('Content-Type'),
            'cert_expiry': expiry, 'ms': (time.monotonic() - started) * 1000.0}


def probe(endpoint, context, retries, retry_delay=0.2, sleep=time.sleep):
    """One sample of an endpoint, following redirects; retries connection errors only."""
    method = endpoint['method'].upper()
    url = endpoint['url']
    body = endpoint.get('_body')
    redirects = []
    total_ms = 0.0
    phases = {}
    attempts = 0
    while True:
        for attempt in range(retries + 1):
            attempts += 1
            try:
                answer = request_once(method, url, endpoint['_headers'], body, endpoint['timeout'], context)
                break
            except ProbeError as exc:
                if exc.phase != 'connect' or attempt == retries:
                    raise
                sleep(retry_delay)
        total_ms += answer['ms']
        for key, value in answer['phases'].items():
            phases[key] = phases.get(key, 0.0) + value
        if answer['status'] in REDIRECTS and answer['location'] and endpoint['follow_redirects']:
            if len(redirects) >= endpoint['max_redirects']:
                raise ProbeError('http', 'more than %d redirects (last to %s)'
                                 % (endpoint['max_redirects'], answer['location']))
            url = urljoin(url, answer['location'])
            redirects.append(url)
            if answer['status'] == 303 or (answer['status'] in (301, 302) and method == 'POST'):
                method, body = 'GET', None
            continue
        answer.update(ms=total_ms, phases=phases, redirects=redirects, attempts=attempts, final_url=url)
        return answer


def json_path(document, path):
    """Value at a dotted path ('data.items.0.name'); raises KeyError when absent."""
    value = document
    for part in path.split('.'):
        if isinstance(value, list):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value[part]
        else:
            raise KeyError(part)
    return value


def same_json(actual, expected):
    """JSON equality that keeps the JSON types apart: ``true`` is not ``1`` and ``false`` is not ``0`` (as they are
    in Python); integers and decimals are both numbers (``1`` is ``1.0``). Objects and arrays compare member by member."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(actual, dict) or isinstance(expected, dict):
        return (isinstance(actual, dict) and isinstance(expected, dict) and set(actual) == set(expected)
                and all(same_json(actual[key], expected[key]) for key in actual))
    if isinstance(actual, list) or isinstance(expected, list):
        return (isinstance(actual, list) and isinstance(expected, list) and len(actual) == len(expected)
                and all(same_json(actual[i], expected[i]) for i in range(len(actual))))
    return actual == expected  # text, numbers, null: Python's equality already keeps these apart


def content_problems(endpoint, body):
    problems = []
    text = body.decode('utf-8', errors='replace')
    if endpoint.get('body_regex') and not re.search(endpoint['body_regex'], text):
        problems.append('body does not match %r' % endpoint['body_regex'])
    if endpoint.get('json'):
        try:
            document = json.loads(text)
        except ValueError:
            return problems + ['body is not JSON']
        for path, expected in endpoint['json'].items():
            try:
                actual = json_path(document, path)
            except (KeyError, IndexError, ValueError, TypeError):
                problems.append('%s is missing' % path)
                continue
            if not same_json(actual, expected):
                problems.append('%s is %s, expected %s' % (path, json.dumps(actual), json.dumps(expected)))
    return problems


def percentile(values, share):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, int(-(-share * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


def run_endpoint(endpoint, context, retries):
    """All samples of one endpoint, summarised."""
    samples, errors, statuses = [], [], []
    good_body = None
    last = None
    for _sample in range(endpoint['samples']):
        try:
            answer = probe(endpoint, context, retries)
        except ProbeError as exc:
            errors.append({'phase': exc.phase, 'message': str(exc)})
            continue
        last = answer
        samples.append(answer['ms'])
        statuses.append(answer['status'])
        if answer['status'] in endpoint['expected'] and good_body is None:
            good_body = answer['body']
    unexpected = [s for s in statuses if s not in endpoint['expected']]
    failed = len(errors) + len(unexpected)
    result = {
        'name': endpoint['name'], 'url': endpoint['url'], 'method': endpoint['method'].upper(),
        'samples': endpoint['samples'], 'responses': len(statuses), 'status_codes': statuses,
        'expected_status': endpoint['expected'], 'errors': errors,
        'error_rate': round(100.0 * failed / endpoint['samples'], 2),
        'latency_ms': None, 'phases_ms': None, 'redirects': [], 'bytes': None, 'certificate_days_left': None,
        'certificate_not_after': None,
    }
    if samples:
        result['latency_ms'] = {'p50': round(percentile(samples, 50), 1), 'p95': round(percentile(samples, 95), 1),
                                'max': round(max(samples), 1)}
        result['phases_ms'] = dict((k, round(v, 1)) for k, v in last['phases'].items())
        result['redirects'] = last['redirects']
        result['bytes'] = last['bytes']
        if last['cert_expiry'] is not None:
            result['certificate_days_left'] = T.days_left(last['cert_expiry'])
            result['certificate_not_after'] = last['cert_expiry'].isoformat()
    result['content_problems'] = content_problems(endpoint, good_body) if good_body is not None and (
        endpoint.get('body_regex') or endpoint.get('json')) else []
    return result


def findings_for(result, endpoint, thresholds):
    """The checks of one endpoint's result."""
    obj = 'endpoint=%s' % result['name']
    found = []
    if not result['responses']:
        error = result['errors'][-1] if result['errors'] else {'message': 'no answer'}
        found.append(C.finding('http_availability', C.CRITICAL, '%s is unavailable: %s' % (result['name'], error['message']),
                               value=0, unit='responses', obj=obj, phase=error.get('phase')))
        return found
    found.append(C.finding('http_availability', C.OK, '%s answered %d of %d probe(s)' % (
        result['name'], result['responses'], result['samples']), value=result['responses'], unit='responses', obj=obj))
    unexpected = [s for s in result['status_codes'] if s not in endpoint['expected']]
    expected_text = ' or '.join(str(s) for s in endpoint['expected'])
    if not unexpected:
        found.append(C.finding('http_status', C.OK, 'HTTP %s as expected' % result['status_codes'][-1], obj=obj,
                               value=result['status_codes'][-1]))
    else:
        status = C.CRITICAL if len(unexpected) * 2 > len(result['status_codes']) else C.WARNING
        found.append(C.finding('http_status', status, '%s answered HTTP %s, expected %s (%d of %d answers)' % (
            result['name'], unexpected[-1], expected_text, len(unexpected), len(result['status_codes'])),
            obj=obj, value=unexpected[-1]))
    if endpoint.get('body_regex') or endpoint.get('json'):
        if result['content_problems']:
            found.append(C.finding('http_content', C.CRITICAL, '%s: %s' % (result['name'], '; '.join(result['content_problems'])),
                                   obj=obj, value=len(result['content_problems']), unit='count'))
        elif any(s in endpoint['expected'] for s in result['status_codes']):
            found.append(C.finding('http_content', C.OK, 'content as expected', obj=obj, value=0, unit='count'))
    latency = thresholds[LATENCY]
    value = result['latency_ms']['p95'] if result['samples'] > 1 else result['latency_ms']['max']
    found.append(C.evaluate(LATENCY, value, endpoint.get('latency_warning_ms', latency['warning']),
                            endpoint.get('latency_critical_ms', latency['critical']), C.ABOVE, 'ms', obj,
                            '%s took {value} ms%s' % (result['name'], ' (p95 of %d)' % result['samples']
                                                      if result['samples'] > 1 else '')))
    if result['samples'] > 1:
        rate = thresholds[ERROR_RATE]
        found.append(C.evaluate(ERROR_RATE, result['error_rate'], rate['warning'], rate['critical'], C.ABOVE,
                                'percent', obj, '{value}%% of %d probes of %s failed' % (result['samples'],
                                                                                         result['name'])))
    if result['certificate_days_left'] is not None:
        found.append(T.expiry_finding(thresholds, result['certificate_days_left'], result['certificate_not_after'],
                                      'the certificate of %s' % result['name'], obj))
    return found


def run_all(endpoints, context, retries, max_workers):
    """Probe every endpoint concurrently; results in the order given."""
    workers = max(1, min(max_workers, len(endpoints) or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_endpoint, endpoint, context, retries) for endpoint in endpoints]
        return [future.result() for future in futures]


def _latency_defaults(defaults):
    """The module's http_latency levels: the defaults with the module's ``thresholds`` (old names included)."""
    overrides, _notices = C.renamed_thresholds(defaults.get('thresholds'), RENAMED_THRESHOLDS)
    return C.merge_thresholds(DEFAULT_THRESHOLDS, overrides)[LATENCY]


def _validate_latency(index, endpoint, latency):
    """Refuse an endpoint whose latency levels contradict each other as ``findings_for`` will use them: its own
    ``latency_warning_ms``/``latency_critical_ms``, each over the module's http_latency level of the same name."""
    levels, origins = [], []
    for level in ('warning', 'critical'):
        option = 'latency_%s_ms' % level
        if option in endpoint:
            levels.append(endpoint[option])
            origins.append('%s from its %s (%s)' % (level, option, endpoint[option]))
        else:
            levels.append(latency[level])
            origins.append('%s from thresholds.%s (%s; it sets no %s)' % (level, LATENCY, latency[level], option))
    try:
        C.validate_thresholds('endpoints[%d].latency' % index, levels[0], levels[1])
    except ThresholdError as exc:
        raise ThresholdError('%s; endpoint %s: %s' % (exc, endpoint['name'], ', '.join(origins))) from exc


def normalize(endpoints, defaults):
    """Fill each endpoint's defaults and check what cannot be checked by the argument spec.

    ``defaults`` are the module's options; its ``thresholds`` give the latency levels an endpoint's own
    ``latency_warning_ms``/``latency_critical_ms`` are checked together with."""
    names = set()
    result = []
    latency = _latency_defaults(defaults)
    for index, given in enumerate(endpoints):
        endpoint = dict((k, v) for k, v in given.items() if v is not None)
        endpoint.setdefault('name', endpoint['url'])
        if endpoint['name'] in names:
            raise ConfigurationError('endpoints[%d]: name %s is used twice; names identify findings' % (
                index, endpoint['name']))
        names.add(endpoint['name'])
        parts = urlsplit(endpoint['url'])
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise ConfigurationError('endpoints[%d] (%s): url %s is not an http:// or https:// URL'
                                     % (index, endpoint['name'], endpoint['url']))
        try:
            port = parts.port
        except ValueError:
            port = -1
        if port is not None and not 1 <= port <= 65535:
            # An explicit port 0 would otherwise read as "no port" and probe the default one.
            raise ConfigurationError('endpoints[%d] (%s): url %s has no valid port (use 1 to 65535, or leave the port '
                                     'out for the default)' % (index, endpoint['name'], endpoint['url']))
        for key in ('method', 'timeout', 'samples', 'follow_redirects', 'max_redirects'):
            endpoint.setdefault(key, defaults[key])
        if endpoint['samples'] < 1 or endpoint['timeout'] <= 0:
            raise ConfigurationError('endpoints[%d] (%s): samples must be at least 1 and timeout more than 0'
                                     % (index, endpoint['name']))
        status = endpoint.get('status', [200])
        endpoint['expected'] = [int(s) for s in (status if isinstance(status, list) else [status])]
        if endpoint.get('body_regex'):
            try:
                re.compile(endpoint['body_regex'])
            except re.error as exc:
                raise ConfigurationError('endpoints[%d] (%s): body_regex is not a regular expression: %s'
                                         % (index, endpoint['name'], exc)) from exc
        _validate_latency(index, endpoint, latency)
        headers = dict((str(k), str(v)) for k, v in (endpoint.get('headers') or {}).items())
        body = endpoint.get('body')
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers.setdefault('Content-Type', 'application/json')
        headers.setdefault('User-Agent', 'appcare.maintenance.http_health_info')
        endpoint['_headers'] = headers
        endpoint['_body'] = body.encode('utf-8') if isinstance(body, str) else body
        result.append(endpoint)
    return result


def _is_jwt(key):
    return key.count('.') == 2 and not key.startswith('sb_')


def supabase_endpoints(url, key, functions, buckets):
    """The Supabase preset: the gateway paths of each service with the headers it expects.

    - REST (PostgREST): ``GET /rest/v1/`` - the OpenAPI description of the exposed schemas.
    - Auth (GoTrue): ``GET /auth/v1/health`` - ``{"version", "name", "description"}``.
    - Storage: ``GET /storage/v1/bucket`` - the buckets the key may list (``[]`` is a healthy answer).
    - Edge Functions: ``POST /functions/v1/<name>`` (or the method given).
    - A named bucket: ``GET /storage/v1/bucket/<name>``.

    Every request carries ``apikey: <key>``; a legacy JWT key (anon / service_role) also goes in
    ``Authorization: Bearer``, as the client libraries send it. Publishable/secret keys (``sb_...``) are
    sent only as ``apikey``.
    """
    base = url.rstrip('/')
    headers = {'apikey': key}
    if _is_jwt(key):
        headers['Authorization'] = 'Bearer %s' % key
    endpoints = [
        dict(name='supabase_rest', url=base + '/rest/v1/', headers=dict(headers), status=[200]),
        dict(name='supabase_auth', url=base + '/auth/v1/health', headers=dict(headers), status=[200]),
        dict(name='supabase_storage', url=base + '/storage/v1/bucket', headers=dict(headers), status=[200]),
    ]
    for entry in functions or []:
        spec = {'name': entry} if isinstance(entry, str) else dict(entry)
        if not spec.get('name'):
            raise ConfigurationError('supabase_functions entries need a name')
        endpoints.append(dict(name='supabase_function_%s' % spec['name'], url='%s/functions/v1/%s' % (base, spec['name']),
                              method=spec.get('method', 'POST'), body=spec.get('body', {}),
                              headers=dict(headers), status=spec.get('status', [200])))
    for bucket in buckets or []:
        endpoints.append(dict(name='supabase_bucket_%s' % bucket, url='%s/storage/v1/bucket/%s' % (base, bucket),
                              headers=dict(headers), status=[200]))
    return endpoints
