# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Supabase's Management API: a small client, and the project checks of supabase_project_info.

The client (``ManagementApi``) sends the access token as a bearer token, never follows a redirect (the token would
go with it), retries a rate-limited answer (HTTP 429) after the wait its ``Retry-After`` asks for as long as that
fits in ``max_retry_wait``, retries server errors and dropped connections a bounded number of times, and turns
every failure into one ``ApiError`` whose message says what to do. It reads JSON only, up to ``MAX_BODY`` bytes,
and refuses a truncated answer. Other modules (the logs endpoint, for one) use the same client.

The answers are judged as read from Supabase's published OpenAPI specification of the Management API (the public
``supabase/cli`` repository, ``packages/api/src/generated/openapi.json``):

- ``GET /v1/projects/{ref}/health?services=...`` (operation ``v1-get-services-health``): a list of
  ``V1ServiceHealthResponse`` - ``name`` (``auth``, ``db``, ``db_postgres_user``, ``pooler``, ``realtime``,
  ``rest``, ``storage``, ``pg_bouncer``), ``status`` (``COMING_UP``, ``ACTIVE_HEALTHY``, ``UNHEALTHY``), the
  deprecated ``healthy``, optional ``info`` and ``error``. The ``services`` query parameter is required (an array,
  form style, one ``services=`` per service).
- ``GET /v1/projects/{ref}/database/backups`` (operation ``v1-list-all-backups``): ``V1BackupsResponse`` -
  ``region``, ``walg_enabled``, ``pitr_enabled``, ``backups`` (``id``, ``is_physical_backup``, ``status`` one of
  ``COMPLETED``, ``FAILED``, ``PENDING``, ``REMOVED``, ``ARCHIVED``, ``CANCELLED``, ``inserted_at``) and
  ``physical_backup_data`` (``earliest_physical_backup_date_unix``, ``latest_physical_backup_date_unix``: the
  point-in-time recovery window, in seconds since 1970).
- ``GET /v1/projects/{ref}/analytics/endpoints/logs.all`` (operation ``v1-get-project-logs``, ``logs_all``): query
  parameters ``sql``, ``iso_timestamp_start``, ``iso_timestamp_end`` (at most 24 hours apart); an
  ``AnalyticsResponse`` (``result``, ``error``), read by ``supabase_logs``.

Nothing read back is trusted: a structure that is not the specification's is a ``MalformedAnswer`` (never an
``ok``), a time later than now (beyond the store's clock tolerance) is reported and never counts as fresh.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import re
import socket
import ssl
import time
import urllib.error
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlencode, urlsplit

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import AppcareError, ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.store import FUTURE_TOLERANCE

DEFAULT_API_URL = 'https://api.supabase.com'
TOKENS_PAGE = 'https://supabase.com/dashboard/account/tokens'
STATUS_PAGE = 'https://status.supabase.com'
USER_AGENT = 'appcare.maintenance'
MAX_BODY = 4 * 1024 * 1024
MAX_RATE_LIMIT_RETRIES = 10  # besides max_retry_wait: a server that keeps asking for 0 s cannot loop us forever
LOOPBACK = ('localhost', '127.0.0.1', '::1')
# The specification's project reference: 20 lower-case letters (also what keeps it safe in a path).
PROJECT_REF = re.compile(r'^[a-z]{20}$')

# The specification's enum of the health endpoint's services, and the ones checked by default (the project's
# services a user sees on the dashboard; db_postgres_user and pg_bouncer are variants of db and pooler).
SERVICES = ('auth', 'db', 'db_postgres_user', 'pooler', 'realtime', 'rest', 'storage', 'pg_bouncer')
DEFAULT_SERVICES = ('auth', 'db', 'pooler', 'realtime', 'rest', 'storage')
SERVICE_STATUS = {'ACTIVE_HEALTHY': C.OK, 'COMING_UP': C.WARNING, 'UNHEALTHY': C.CRITICAL}
BACKUP_STATUSES = ('COMPLETED', 'FAILED', 'PENDING', 'REMOVED', 'ARCHIVED', 'CANCELLED')
# Finding names (README "Names": supabase_*).
SERVICE = 'supabase_service'
BACKUP_AGE = 'supabase_backup_age'
BACKUP_FAILED = 'supabase_backup_failed'
BACKUP_FUTURE = 'supabase_backup_future_dated'
PITR = 'supabase_pitr'
API = 'supabase_api'
BACKUP_FINDINGS = (BACKUP_AGE, BACKUP_FAILED, BACKUP_FUTURE, PITR)
# What a token needs for each endpoint, from the specification's security requirements (OAuth scope, and the
# permission a scoped personal access token must carry).
HEALTH_NEEDS = 'the OAuth scope projects:read, or for a scoped token the permission project_admin_read'
BACKUPS_NEEDS = 'the OAuth scope database:read, or for a scoped token the permission backups_read'
LOGS_NEEDS = 'the OAuth scope analytics:read, or for a scoped token the permission analytics_logs_read'
# The logs endpoint's longest window (v1-get-project-logs: "no more than 24 hours", else a validation error).
MAX_LOGS_WINDOW = datetime.timedelta(hours=24)
# Seconds since 1970 past this are not seconds (milliseconds, or garbage): year 5138.
MAX_UNIX_SECONDS = 10 ** 11

_TIME = re.compile(r'^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?'
                   r'(Z|z|[+-]\d{2}:?\d{2})?$')


class ApiError(AppcareError):
    """A Management API request that failed; ``kind`` is ``auth`` (401/403), ``http`` (another status), ``network``
    (no answer), ``rate_limit`` or ``malformed`` (an answer that is not what the specification says)."""

    def __init__(self, message, kind='http', status=None):
        super().__init__(message)
        self.kind = kind
        self.status = status


class MalformedAnswer(ApiError):
    """An answer that is not the specification's shape: truncated, not JSON, a field missing or of another type."""

    def __init__(self, message, status=None):
        super().__init__(message, kind='malformed', status=status)


# --- the client ---------------------------------------------------------------------------------------------

def validate_api_url(url):
    """``api_url`` without a trailing slash; https only, or http to this machine (the token travels in clear)."""
    text = (url or '').strip().rstrip('/')
    parts = urlsplit(text)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise ConfigurationError('api_url %r is not an https:// URL (the default is %s)' % (url, DEFAULT_API_URL))
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError('api_url %r must be a plain address, without a query, a fragment or a user' % url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError('api_url %r: %s (a port is a number from 1 to 65535)' % (url, exc)) from exc
    if port == 0:
        raise ConfigurationError('api_url %r: port 0 is not a port to connect to' % url)
    if parts.scheme == 'http' and parts.hostname not in LOOPBACK:
        raise ConfigurationError('api_url %r is plain http: the access token would cross the network unencrypted; '
                                 'use https:// (plain http is accepted only to this machine)' % url)
    return text


def validate_token(token):
    if not token:
        raise ConfigurationError('give access_token (a Supabase personal access token, %s) or set the environment '
                                 'variable SUPABASE_ACCESS_TOKEN' % TOKENS_PAGE)
    if not re.match(r'^[\x21-\x7e]+$', token):
        raise ConfigurationError('access_token holds spaces, line breaks or other characters no token has; paste the '
                                 'token alone')


def _header(headers, name):
    if headers is None:
        return None
    try:
        return headers.get(name)
    except AttributeError:
        return None


def retry_after_seconds(headers, now=None):
    """Seconds the answer asks to wait: ``Retry-After`` (seconds or an HTTP date), else Supabase's
    ``X-RateLimit-Reset`` (seconds until the window resets); None when neither is usable."""
    value = _header(headers, 'Retry-After')
    if value is not None:
        value = value.strip()
        if re.match(r'^\d{1,9}$', value):
            return float(value)
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.timezone.utc)
            return max(0.0, (moment - (now or utcnow())).total_seconds())
    reset = _header(headers, 'X-RateLimit-Reset')
    if reset is not None and re.match(r'^\d{1,9}$', reset.strip()):
        return float(reset.strip())
    return None


def rate_limit_of(headers):
    """Supabase's ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` of an answer, as numbers (None when absent)."""
    result = {}
    for key in ('limit', 'remaining', 'reset'):
        value = _header(headers, 'X-RateLimit-%s' % key.capitalize())
        result[key] = int(value) if value is not None and re.match(r'^\s*\d{1,9}\s*$', value) else None
    return result if any(v is not None for v in result.values()) else None


def _body_message(body):
    """The ``message`` (or ``error``) of an error answer's JSON body, or its start, on one line; '' when empty."""
    if not body:
        return ''
    text = body[:2048].decode('utf-8', errors='replace')
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict):
        for key in ('message', 'error', 'msg'):
            if isinstance(document.get(key), str):
                text = document[key]
                break
    text = ' '.join(text.split())
    return text[:200] + ('...' if len(text) > 200 else '')


def _network_cause(exc, host, port, timeout):
    reason = getattr(exc, 'reason', exc)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return ('the TLS certificate of %s was not accepted (%s): set ca_cert to the CA that signed it (a proxy), or '
                'check the clock' % (host, reason.verify_message or reason))
    if isinstance(reason, ssl.SSLError):
        return 'the TLS handshake with %s:%s failed: %s' % (host, port, reason)
    if isinstance(reason, socket.gaierror):
        return 'cannot resolve %s: %s' % (host, reason.strerror or reason)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return 'no answer from %s:%s within %s s (timeout)' % (host, port, timeout)
    if isinstance(reason, ConnectionRefusedError):
        return 'cannot connect to %s:%s: connection refused' % (host, port)
    if isinstance(reason, OSError):
        return 'cannot reach %s:%s: %s' % (host, port, reason.strerror or reason)
    text = ' '.join(str(reason).split()) or type(reason).__name__
    if 'certificate' in text.lower():
        return ('the TLS certificate of %s was not accepted (%s): set ca_cert to the CA that signed it (a proxy), or '
                'check the clock' % (host, text))
    return 'no answer from %s:%s: %s' % (host, port, text)


class ManagementApi(object):
    """GET requests to the Management API at ``api_url`` with ``token``; ``calls`` records every request (method,
    path, status, attempts, seconds waited - never a header), ``rate_limit`` the newest rate-limit headers seen."""

    def __init__(self, api_url, token, timeout=30, validate_certs=True, ca_cert=None, retries=2, max_retry_wait=60,
                 sleep=time.sleep, user_agent=USER_AGENT):
        self.api_url = validate_api_url(api_url)
        validate_token(token)
        self._token = token
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.ca_cert = ca_cert
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self.sleep = sleep
        self.user_agent = user_agent
        parts = urlsplit(self.api_url)
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == 'https' else 80)
        self.calls = []
        self.rate_limit = None

    def _open(self, url):
        return open_url(url, method='GET', headers={'Authorization': 'Bearer %s' % self._token,
                                                    'Accept': 'application/json'},
                        timeout=self.timeout, validate_certs=self.validate_certs, ca_path=self.ca_cert,
                        follow_redirects='none', http_agent=self.user_agent, use_netrc=False, decompress=True)

    def _read(self, response, label):
        try:
            data = response.read(MAX_BODY + 1)
        except http.client.IncompleteRead as exc:
            raise MalformedAnswer('%s: the answer was cut off after %d bytes (truncated)' % (label, len(exc.partial)),
                                  status=200) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise MalformedAnswer('%s: the answer broke off while being read: %s' % (label, exc or type(exc).__name__),
                                  status=200) from exc
        if len(data) > MAX_BODY:
            raise MalformedAnswer('%s: the answer is larger than %d bytes; this is not the Management API'
                                  % (label, MAX_BODY), status=200)
        length = _header(response.headers, 'Content-Length')
        if length and length.strip().isdigit() and not _header(response.headers, 'Content-Encoding') \
                and len(data) != int(length):
            raise MalformedAnswer('%s: the answer was cut off: %d of the %s bytes announced arrived (truncated)'
                                  % (label, len(data), length.strip()), status=200)
        return data

    def get(self, path, query=None, needs=None):
        """The JSON document of ``GET path?query`` (``query``: a list of (name, value) pairs); raises ApiError.

        ``needs`` says what the token must be allowed for this request (used in the message of a 403)."""
        url = self.api_url + path + ('?' + urlencode(query) if query else '')
        label = 'GET %s' % path
        record = {'method': 'GET', 'path': path, 'status': None, 'attempts': 0, 'waited_seconds': 0.0}
        self.calls.append(record)
        waited = 0.0
        failures = 0  # server errors and dropped connections, against ``retries``
        limited = 0
        while True:
            record['attempts'] += 1
            delay, error = None, None
            try:
                response = self._open(url)
                try:
                    record['status'] = response.status
                    self._note(response.headers)
                    data = self._read(response, label)
                finally:
                    response.close()
                return self._parse(data, label)
            except urllib.error.HTTPError as exc:
                record['status'] = exc.code
                self._note(exc.headers)
                try:
                    body = exc.read(4096) if exc.fp is not None else b''
                except (OSError, ValueError, http.client.HTTPException):
                    body = b''
                finally:
                    exc.close()
                error = self._http_error(exc, label, body, needs)
                asked = retry_after_seconds(exc.headers)
                if exc.code == 429:
                    limited += 1
                    delay = asked if asked is not None else min(2.0 ** (limited - 1), 30.0)
                    if limited > MAX_RATE_LIMIT_RETRIES:
                        raise ApiError('%s still rate limited (HTTP 429) after %d attempts' % (label, limited), 'rate_limit',
                                       429) from exc
                    if delay > self.max_retry_wait - waited:
                        raise ApiError(
                            '%s was rate limited (HTTP 429): the API asks to wait %s s, more than the %s s left of '
                            'max_retry_wait (%s s); the Management API limits the requests per user and minute, for '
                            'every tool using the same account - run again later or raise max_retry_wait'
                            % (label, _num(delay), _num(max(0.0, self.max_retry_wait - waited)),
                               _num(self.max_retry_wait)), 'rate_limit', 429) from exc
                elif exc.code >= 500 and failures < self.retries:
                    failures += 1
                    delay = asked if asked is not None and exc.code == 503 else float(2 ** (failures - 1))
                    if delay > self.max_retry_wait - waited:
                        raise error from exc
                else:
                    raise error from exc
            except (urllib.error.URLError, UrlsConnectionError, OSError, http.client.HTTPException) as exc:
                error = ApiError('%s: %s' % (label, _network_cause(exc, self.host, self.port, self.timeout)), 'network')
                if failures >= self.retries or isinstance(getattr(exc, 'reason', exc), (ssl.SSLError, socket.gaierror)) \
                        or 'certificate' in str(exc).lower():
                    raise error from exc
                failures += 1
                delay = float(2 ** (failures - 1))
                if delay > self.max_retry_wait - waited:
                    raise error from exc
            self.sleep(delay)
            waited += delay
            record['waited_seconds'] = round(waited, 3)

    def _note(self, headers):
        seen = rate_limit_of(headers)
        if seen:
            self.rate_limit = seen

    @staticmethod
    def _parse(data, label):
        try:
            return json.loads(data.decode('utf-8'))
        except (UnicodeDecodeError, ValueError) as exc:
            start = ' '.join(data[:80].decode('utf-8', errors='replace').split())
            raise MalformedAnswer('%s: the answer is not JSON (truncated, or not the Management API): %r'
                                  % (label, start), status=200) from exc

    def _http_error(self, exc, label, body, needs):
        code = exc.code
        said = _body_message(body)
        said = ' (the API said: %s)' % said if said else ''
        head = '%s: HTTP %s %s' % (label, code, exc.reason or http.client.responses.get(code, ''))
        if code == 401:
            return ApiError('%s%s - the access token was not accepted (expired, revoked or mistyped); create a new one '
                            'at %s and set access_token or SUPABASE_ACCESS_TOKEN' % (head, said, TOKENS_PAGE), 'auth', code)
        if code == 403:
            return ApiError('%s%s - the token may not read this; it needs %s for this project'
                            % (head, said, needs or 'a permission it lacks'), 'auth', code)
        if code == 404:
            return ApiError('%s%s - no such project for this token: check project_ref (the 20 letters in the project '
                            'URL) and api_url' % (head, said), 'http', code)
        if code == 429:
            return ApiError('%s%s - rate limited' % (head, said), 'rate_limit', code)
        if 300 <= code < 400:
            return ApiError('%s - a redirect to %s; the token is not sent on to another address: set api_url to the '
                            'address the API answers at' % (head, _header(exc.headers, 'Location') or 'nowhere'),
                            'http', code)
        if code >= 500:
            return ApiError('%s%s - the Management API failed (after %d retries); see %s'
                            % (head, said, self.retries, STATUS_PAGE), 'http', code)
        return ApiError('%s%s' % (head, said), 'http', code)

    def project_path(self, ref, *parts):
        return '/v1/projects/%s%s' % (quote(ref, safe=''), ''.join('/' + quote(p, safe='') for p in parts))

    def service_health(self, ref, services):
        """GET /v1/projects/{ref}/health for ``services`` (the answer, unchecked)."""
        return self.get(self.project_path(ref, 'health'), [('services', name) for name in services], HEALTH_NEEDS)

    def backups(self, ref):
        """GET /v1/projects/{ref}/database/backups (the answer, unchecked)."""
        return self.get(self.project_path(ref, 'database', 'backups'), None, BACKUPS_NEEDS)

    def logs_all(self, ref, sql, start, end):
        """GET /v1/projects/{ref}/analytics/endpoints/logs.all (operation ``v1-get-project-logs``): ``sql`` over the
        project's logs between ``start`` and ``end`` (aware datetimes, sent as ``iso_timestamp_start`` and
        ``iso_timestamp_end``; the API rounds them to the minute and refuses more than 24 hours). The answer, an
        ``AnalyticsResponse`` (``result``, ``error``), unchecked."""
        if not start < end or end - start > MAX_LOGS_WINDOW:
            raise ValueError('a logs window is more than 0 and at most 24 hours, got %s to %s' % (start, end))
        return self.get(self.project_path(ref, 'analytics', 'endpoints', 'logs.all'),
                        [('sql', sql), ('iso_timestamp_start', _iso_seconds(start)),
                         ('iso_timestamp_end', _iso_seconds(end))], LOGS_NEEDS)


def _iso_seconds(moment):
    """``2025-03-01T00:00:00Z``, the specification's example form of a logs window's ends."""
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _num(value):
    return ('%.1f' % value).rstrip('0').rstrip('.') if isinstance(value, float) else str(value)


# --- reading the answers ------------------------------------------------------------------------------------

def parse_time(text):
    """``inserted_at`` as an aware UTC datetime: RFC 3339 with Z or an offset, or without a zone (read as UTC, as
    the Supabase CLI shows it); None when it is no date and time."""
    if not isinstance(text, str):
        return None
    match = _TIME.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                                   int((fraction or '0')[:6].ljust(6, '0')), tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    if zone and zone not in ('Z', 'z'):
        sign = -1 if zone[0] == '-' else 1
        digits = zone[1:].replace(':', '')
        offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if offset > datetime.timedelta(hours=18):
            return None
        moment -= sign * offset
    return moment


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def parse_health(document, label='the health answer'):
    """``{service name: entry}`` of the health answer; MalformedAnswer when it is not a list of named entries."""
    if not isinstance(document, list):
        raise MalformedAnswer('%s is not a list of services but %s' % (label, _kind(document)))
    entries = {}
    for index, item in enumerate(document):
        if not isinstance(item, dict) or not isinstance(item.get('name'), str) or not item['name']:
            raise MalformedAnswer('%s: entry %d has no service name: %s' % (label, index, _short(item)))
        if item['name'] in entries:
            entries[item['name']] = dict(entries[item['name']], _duplicate=True)
            continue
        entries[item['name']] = item
    return entries


def service_finding(name, entry, obj):
    """The ``supabase_service`` finding of one service from its health entry (None: not in the answer)."""
    if entry is None:
        return C.finding(SERVICE, C.UNKNOWN, '%s is not in the API\'s health answer (truncated, or a service the API '
                         'does not know)' % name, obj=obj)
    if entry.get('_duplicate'):
        return C.finding(SERVICE, C.UNKNOWN, '%s is in the health answer twice; its health is not clear' % name, obj=obj)
    status = entry.get('status')
    healthy = entry.get('healthy')
    error = entry.get('error') if isinstance(entry.get('error'), str) and entry.get('error').strip() else None
    if not isinstance(status, str) or status not in SERVICE_STATUS:
        return C.finding(SERVICE, C.UNKNOWN, '%s answered status %s, which is none of %s' % (
            name, json.dumps(status), ', '.join(SERVICE_STATUS)), obj=obj,
            service_status=status if isinstance(status, str) else None)
    level = SERVICE_STATUS[status]
    detail = ''
    info = entry.get('info')
    if isinstance(info, dict) and isinstance(info.get('version'), str):
        detail = ' (%s %s)' % (info.get('name') or name, info['version'])
    message = '%s is %s%s' % (name, status, detail)
    if status == 'COMING_UP':
        message += ': starting or restarting'
    if error:
        message += ': %s' % ' '.join(error.split())[:300]
    if healthy is not None and not isinstance(healthy, bool):
        level = C.worst_status([level, C.UNKNOWN])
        message += '; healthy is %s, not true or false' % json.dumps(healthy)
    elif isinstance(healthy, bool) and healthy != (status == 'ACTIVE_HEALTHY') and status != 'COMING_UP':
        level = C.worst_status([level, C.WARNING])
        message += '; yet the deprecated field healthy says %s' % str(healthy).lower()
    return C.finding(SERVICE, level, message, obj=obj, service_status=status)


def service_result(name, entry):
    """What the module returns about one service."""
    entry = entry or {}
    return {'name': name, 'status': entry.get('status') if isinstance(entry.get('status'), str) else None,
            'healthy': entry.get('healthy') if isinstance(entry.get('healthy'), bool) else None,
            'error': entry.get('error') if isinstance(entry.get('error'), str) else None,
            'info': entry.get('info') if isinstance(entry.get('info'), dict) else None}


def parse_backups(document, label='the backups answer'):
    """The backups answer checked against V1BackupsResponse: ``{region, walg_enabled, pitr_enabled, backups
    (each with ``at``, its time), earliest, latest}``. MalformedAnswer for anything else."""
    if not isinstance(document, dict):
        raise MalformedAnswer('%s is not an object but %s' % (label, _kind(document)))
    missing = [k for k in ('region', 'walg_enabled', 'pitr_enabled', 'backups', 'physical_backup_data')
               if k not in document]
    if missing:
        raise MalformedAnswer('%s lacks %s (truncated, or not the Management API)' % (label, ', '.join(missing)))
    for key in ('walg_enabled', 'pitr_enabled'):
        if not isinstance(document[key], bool):
            raise MalformedAnswer('%s: %s is %s, not true or false' % (label, key, _short(document[key])))
    if not isinstance(document['region'], str):
        raise MalformedAnswer('%s: region is %s, not a text' % (label, _short(document['region'])))
    items = document['backups'] if document['backups'] is not None else []
    if not isinstance(items, list):
        raise MalformedAnswer('%s: backups is %s, not a list' % (label, _kind(items)))
    physical = document['physical_backup_data'] if document['physical_backup_data'] is not None else {}
    if not isinstance(physical, dict):
        raise MalformedAnswer('%s: physical_backup_data is %s, not an object' % (label, _kind(physical)))
    backups = []
    for index, item in enumerate(items):
        where = '%s: backups[%d]' % (label, index)
        if not isinstance(item, dict):
            raise MalformedAnswer('%s is %s, not an object' % (where, _kind(item)))
        for key in ('id', 'is_physical_backup', 'status', 'inserted_at'):
            if key not in item:
                raise MalformedAnswer('%s lacks %s' % (where, key))
        if not _is_int(item['id']):
            raise MalformedAnswer('%s.id is %s, not an integer' % (where, _short(item['id'])))
        if not isinstance(item['is_physical_backup'], bool):
            raise MalformedAnswer('%s.is_physical_backup is %s, not true or false' % (where, _short(item['is_physical_backup'])))
        if not isinstance(item['status'], str) or not item['status']:
            raise MalformedAnswer('%s.status is %s, not a text' % (where, _short(item['status'])))
        moment = parse_time(item['inserted_at'])
        if moment is None:
            raise MalformedAnswer('%s.inserted_at is %s, not a date and time' % (where, _short(item['inserted_at'])))
        backups.append({'id': item['id'], 'status': item['status'], 'is_physical_backup': item['is_physical_backup'],
                        'inserted_at': item['inserted_at'], 'at': moment})
    window = {}
    for key in ('earliest', 'latest'):
        value = physical.get('%s_physical_backup_date_unix' % key)
        if value is None:
            window[key] = None
            continue
        if not _is_int(value) or value < 0:
            raise MalformedAnswer('%s: physical_backup_data.%s_physical_backup_date_unix is %s, not seconds since 1970'
                                  % (label, key, _short(value)))
        if value >= MAX_UNIX_SECONDS:
            raise MalformedAnswer('%s: physical_backup_data.%s_physical_backup_date_unix is %s: too large for seconds '
                                  'since 1970 (milliseconds?)' % (label, key, value))
        window[key] = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    return {'region': document['region'], 'walg_enabled': document['walg_enabled'],
            'pitr_enabled': document['pitr_enabled'], 'backups': backups,
            'earliest': window['earliest'], 'latest': window['latest']}


def _kind(value):
    return {dict: 'an object', list: 'a list', str: 'a text', bool: 'true or false', type(None): 'null'}.get(
        type(value), 'a number' if isinstance(value, (int, float)) else type(value).__name__)


def _short(value):
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + '...'


def _hours(now, moment):
    return round((now - moment).total_seconds() / 3600.0, 2)


# --- judging ------------------------------------------------------------------------------------------------

def backup_findings(parsed, params, obj, now):
    """``supabase_backup_age``, ``supabase_backup_failed``, ``supabase_backup_future_dated`` and ``supabase_pitr``
    of a parsed backups answer, and what the module returns about it."""
    limit = now + FUTURE_TOLERANCE
    backups = sorted(parsed['backups'], key=lambda b: (b['at'], b['id']), reverse=True)
    future = [b for b in backups if b['at'] > limit]
    believable = [b for b in backups if b['at'] <= limit]
    completed = [b for b in believable if b['status'] == 'COMPLETED']
    failed = [b for b in backups if b['status'] == 'FAILED']
    outcomes = [b for b in believable if b['status'] in ('COMPLETED', 'FAILED')]
    findings = []

    # The point-in-time window: only with PITR on, and only when its ends make sense.
    pitr = {'enabled': parsed['pitr_enabled'], 'walg_enabled': parsed['walg_enabled'],
            'earliest': iso(parsed['earliest']) if parsed['earliest'] else None,
            'latest': iso(parsed['latest']) if parsed['latest'] else None, 'window_days': None, 'latest_age_hours': None}
    pitr_point = None
    future_notes = ['backup %s (%s, inserted_at %s)' % (b['id'], b['status'], b['inserted_at']) for b in future[:5]]
    wal = 'WAL-G %s' % ('on' if parsed['walg_enabled'] else 'off')
    if not parsed['pitr_enabled']:
        if params['require_pitr']:
            findings.append(C.finding(PITR, C.CRITICAL, 'point-in-time recovery is off (%s), but require_pitr is set: '
                                      'the project can only go back to its daily backups' % wal, value=0, unit='days',
                                      obj=obj))
        else:
            findings.append(C.finding(PITR, C.OK, 'point-in-time recovery is off (%s): restores go back to the daily '
                                      'backups' % wal, value=0, unit='days', obj=obj))
    elif parsed['earliest'] is None or parsed['latest'] is None:
        findings.append(C.finding(PITR, C.WARNING, 'point-in-time recovery is on, but the API reports no recoverable '
                                  'window (physical_backup_data has no earliest and latest point): a point-in-time '
                                  'restore may not be possible yet', unit='days', obj=obj))
    elif parsed['earliest'] > parsed['latest']:
        findings.append(C.finding(PITR, C.UNKNOWN, 'the recoverable window makes no sense: its earliest point %s is '
                                  'after its latest %s' % (pitr['earliest'], pitr['latest']), unit='days', obj=obj))
    elif parsed['latest'] > limit:
        future_notes.append('the latest point-in-time restore point (%s)' % pitr['latest'])
        findings.append(C.finding(PITR, C.WARNING, 'point-in-time recovery is on, but its latest restore point %s is '
                                  'after this host\'s clock (%s): not counted as a restore point - check the clocks'
                                  % (pitr['latest'], iso(now)), unit='days', obj=obj))
    else:
        pitr_point = parsed['latest']
        days = round((parsed['latest'] - parsed['earliest']).total_seconds() / 86400.0, 2)
        pitr.update(window_days=days, latest_age_hours=max(0.0, _hours(now, parsed['latest'])))
        message = ('point-in-time recovery is on (%s): any moment from %s to %s can be restored, {value} days'
                   % (wal, pitr['earliest'], pitr['latest']))
        findings.append(C.evaluate(PITR, days, params['min_pitr_window_days'] or None, None, C.BELOW, 'days', obj,
                                   message))

    # The newest restore point: the newest completed backup, or PITR's latest point when newer.
    newest = completed[0] if completed else None
    point, source = None, None
    if newest is not None:
        point, source = newest['at'], 'backup %s (%s, completed %s)' % (
            newest['id'], 'physical' if newest['is_physical_backup'] else 'logical', iso(newest['at']))
    if pitr_point is not None and (point is None or pitr_point > point):
        point, source = pitr_point, 'the latest point-in-time restore point (%s)' % iso(pitr_point)
    rpo = params['rpo_hours']
    if point is None:
        ignored = ' (%d dated in the future not counted)' % len(future) if future else ''
        findings.append(C.finding(BACKUP_AGE, C.CRITICAL, 'no completed backup and no point-in-time restore point%s: '
                                  'the project cannot be restored from Supabase\'s backups' % ignored, unit='hours',
                                  warning=params['backup_age_warning_hours'], critical=rpo, obj=obj))
    else:
        findings.append(C.evaluate(BACKUP_AGE, max(0.0, _hours(now, point)), params['backup_age_warning_hours'], rpo,
                                   C.ABOVE, 'hours', obj, 'newest restore point: %s, {value} h ago (RPO %s h)'
                                   % (source, _num(float(rpo)))))

    # Failed backups: critical while the newest outcome is a failure, a warning while older failures are listed.
    if not failed:
        findings.append(C.finding(BACKUP_FAILED, C.OK, 'no failed backup among the %d listed' % len(backups),
                                  value=0, unit='count', obj=obj))
    else:
        listing = ', '.join('%s (%s)' % (b['id'], b['inserted_at']) for b in failed[:5])
        if outcomes and outcomes[0]['status'] == 'FAILED':
            findings.append(C.finding(BACKUP_FAILED, C.CRITICAL, 'the newest backup failed; %d failed backup(s): %s'
                                      % (len(failed), listing), value=len(failed), unit='count', obj=obj))
        else:
            findings.append(C.finding(BACKUP_FAILED, C.WARNING, '%d failed backup(s) (a later one completed): %s'
                                      % (len(failed), listing), value=len(failed), unit='count', obj=obj))

    if future_notes:
        findings.append(C.finding(BACKUP_FUTURE, C.WARNING, '%d time(s) after this host\'s clock (%s) by more than %d '
                                  'min, not counted as fresh: %s - check the clocks' % (
                                      len(future_notes), iso(now), FUTURE_TOLERANCE.seconds // 60,
                                      '; '.join(future_notes)), value=len(future_notes), unit='count', obj=obj))
    else:
        findings.append(C.finding(BACKUP_FUTURE, C.OK, 'no backup time is after this host\'s clock', value=0,
                                  unit='count', obj=obj))

    listed = [{'id': b['id'], 'status': b['status'], 'is_physical_backup': b['is_physical_backup'],
               'inserted_at': iso(b['at']), 'age_hours': _hours(now, b['at']), 'future_dated': b['at'] > limit}
              for b in backups]
    restore_point = None if point is None else {'at': iso(point), 'age_hours': max(0.0, _hours(now, point)),
                                                'source': 'pitr' if point is pitr_point else 'backup'}
    data = {'region': parsed['region'], 'walg_enabled': parsed['walg_enabled'], 'backups': listed, 'pitr': pitr,
            'restore_point': restore_point}
    return findings, data


def validate_params(params):
    """Refuse options that make no sense, before any request."""
    ref = params.get('project_ref') or ''
    if not PROJECT_REF.match(ref):
        raise ConfigurationError('project_ref %r is not a project reference: the 20 lower-case letters in the '
                                 'project\'s URL (https://<project_ref>.supabase.co)' % ref)
    validate_token(params.get('access_token'))
    validate_api_url(params['api_url'])
    if not params['services'] and not params['check_backups']:
        raise ConfigurationError('nothing to check: services is empty and check_backups is false')
    if not params['timeout'] or params['timeout'] <= 0:
        raise ConfigurationError('timeout must be more than 0 seconds, got %s' % params['timeout'])
    if params['retries'] < 0:
        raise ConfigurationError('retries must be 0 or more, got %s' % params['retries'])
    if params['max_retry_wait'] < 0:
        raise ConfigurationError('max_retry_wait must be 0 or more seconds, got %s' % params['max_retry_wait'])
    if params['rpo_hours'] is None or not params['rpo_hours'] > 0:
        raise ConfigurationError('rpo_hours must be more than 0, got %s' % params['rpo_hours'])
    warning = params['backup_age_warning_hours']
    if warning is not None and not warning > 0:
        raise ConfigurationError('backup_age_warning_hours must be more than 0, got %s' % warning)
    C.validate_thresholds(BACKUP_AGE, warning, params['rpo_hours'], C.ABOVE)
    if params['min_pitr_window_days'] is not None and params['min_pitr_window_days'] < 0:
        raise ConfigurationError('min_pitr_window_days must be 0 or more, got %s' % params['min_pitr_window_days'])
    if params['ca_cert'] and not params['validate_certs']:
        raise ConfigurationError('ca_cert is given but validate_certs is false; nothing would be verified')
    if params['ca_cert'] and not os.path.isfile(params['ca_cert']):
        raise ConfigurationError('ca_cert %s is not a file' % params['ca_cert'])


def management_api_argument_spec(**extra):
    """The options every Management API module takes (documented by the ``management_api`` doc fragment, the
    project and token in each module), plus ``extra``."""
    spec = dict(
        project_ref=dict(type='str', required=True),
        access_token=dict(type='str', no_log=True, fallback=(env_fallback, ['SUPABASE_ACCESS_TOKEN'])),
        api_url=dict(type='str', default=DEFAULT_API_URL),
        validate_certs=dict(type='bool', default=True),
        ca_cert=dict(type='path'),
        timeout=dict(type='float', default=30),
        retries=dict(type='int', default=2),
        max_retry_wait=dict(type='float', default=60),
        fail_on_error=dict(type='bool', default=True),
    )
    spec.update(extra)
    return spec


def client_for(params, sleep=time.sleep):
    """The ManagementApi the options describe."""
    return ManagementApi(params['api_url'], params['access_token'], timeout=params['timeout'],
                         validate_certs=params['validate_certs'], ca_cert=params['ca_cert'], retries=params['retries'],
                         max_retry_wait=params['max_retry_wait'], sleep=sleep)


def project_info(api, params, now=None):
    """Everything supabase_project_info reads and judges, as its result (``checks`` included) and the errors of the
    requests that failed (ApiError; a later request is not tried after an auth or network failure, which would only
    fail the same way)."""
    ref = params['project_ref']
    obj = 'project=%s' % ref
    services = list(dict.fromkeys(params['services']))
    result = {'changed': False, 'project_ref': ref, 'services': [], 'backups': [], 'pitr': None,
              'restore_point': None, 'region': None, 'walg_enabled': None}
    findings, errors = [], []

    if services:
        try:
            entries = parse_health(api.service_health(ref, services), 'GET %s' % api.project_path(ref, 'health'))
        except ApiError as exc:
            errors.append(exc)
            for name in services:
                findings.append(C.finding(SERVICE, C.UNKNOWN, '%s: not read - %s' % (name, exc), obj='service=%s' % name,
                                          category='health'))
                result['services'].append(service_result(name, None))
        else:
            for name in services:
                findings.append(dict(service_finding(name, entries.get(name), 'service=%s' % name), category='health'))
                result['services'].append(service_result(name, entries.get(name)))
    if params['check_backups']:
        parsed, cause = None, None
        if any(e.kind in ('auth', 'network') for e in errors):
            cause = 'not tried after the failure above, which it would repeat'
        else:
            try:
                parsed = parse_backups(api.backups(ref), 'GET %s' % api.project_path(ref, 'database', 'backups'))
            except ApiError as exc:
                errors.append(exc)
                cause = str(exc)
        if parsed is None:
            for name in BACKUP_FINDINGS:
                findings.append(C.finding(name, C.UNKNOWN, 'not read - %s' % cause, obj=obj))
        else:
            judged, data = backup_findings(parsed, params, obj, now or utcnow())
            findings.extend(judged)
            result.update(data)
    answered = len([c for c in api.calls if c['status'] is not None and 200 <= c['status'] < 300])
    limit = api.rate_limit
    left = ' (rate limit: %s of %s requests left)' % (limit['remaining'], limit['limit']) if limit and \
        limit.get('remaining') is not None and limit.get('limit') is not None else ''
    if errors:
        findings.append(C.finding(API, C.CRITICAL, 'the Management API at %s: %s' % (
            api.api_url, '; '.join(str(e) for e in errors)), value=len(errors), unit='count', obj=obj))
    else:
        findings.append(C.finding(API, C.OK, 'the Management API at %s answered %d request(s)%s' % (
            api.api_url, answered, left), value=0, unit='count', obj=obj))
    result['checks'] = findings
    result['api'] = {'url': api.api_url, 'requests': api.calls, 'rate_limit': limit}
    result['report'] = {'supabase': {
        'project_ref': ref,
        'services': dict((s['name'], s['status']) for s in result['services']),
        'pitr_enabled': (result['pitr'] or {}).get('enabled'),
        'pitr_window_days': (result['pitr'] or {}).get('window_days'),
        'finished_at': (result['restore_point'] or {}).get('at'),
    }}
    return result, errors
