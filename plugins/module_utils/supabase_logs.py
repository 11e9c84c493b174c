# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The weekly log review of a Supabase project, from its logs behind the Management API (supabase_logs_info).

The endpoint is ``GET /v1/projects/{ref}/analytics/endpoints/logs.all`` (operation ``v1-get-project-logs`` of
Supabase's published OpenAPI specification, the public ``supabase/cli`` repository,
``packages/api/src/generated/openapi.json``): query parameters ``sql``, ``iso_timestamp_start`` and
``iso_timestamp_end``; the window "must be no more than 24 hours and is rounded to the nearest minute"; the answer is
an ``AnalyticsResponse`` - ``result`` (a list of rows) and ``error`` (a text, or an object with ``code``, ``errors``,
``message`` and ``status``). So the requested window (a week by default) is read in slices of at most 24 hours,
aligned to whole minutes so that the API's rounding neither overlaps nor leaves gaps between them.

The SQL is the Logs Explorer's (a subset of BigQuery's, Supabase docs "Advanced Log Filtering",
https://supabase.com/docs/guides/telemetry/advanced-log-filtering): every table has ``id``, ``timestamp``,
``event_message`` and ``metadata``, an array unnested with ``cross join unnest(...)``. The fields used are those of
the Logs Explorer's field reference (the public ``supabase/supabase`` repository,
``packages/shared-data/logConstants.ts``) and its query templates
(``apps/studio/components/interfaces/Settings/Logs/Logs.constants.ts``, ``Logs.utils.ts``):

- ``postgres_logs``: ``metadata.parsed.error_severity``, ``sql_state_code``, ``user_name``, ``database_name``,
  ``connection_from``, ``process_id``. Rows of WARNING and worse are read one by one (bounded by ``LIMIT``) and
  grouped into patterns by the collection's one PostgreSQL log normaliser (``pglog``), as the PostgreSQL log review
  (pg_log_info) does.
- ``auth_logs``: ``metadata.remote_addr``, ``path``, ``status``, ``msg``, ``error``, ``level``. Counted by address,
  path and status on the server; failed sign-ins (4xx on a sign-in endpoint, but 429) and rate-limited requests (HTTP
  429, or a message saying ``over_request_rate_limit`` / too many requests) per client address. These never reach
  ``auth.audit_log_entries``.
- ``edge_logs``: ``metadata.request.method``/``path``, ``metadata.response.status_code``/``origin_time`` (ms).
  Counted on the server: a latency histogram (geometric buckets of about 5 %, so p50/p95/p99 are an upper bound at
  most 5 % above the exact value, and the slices add up exactly) by status class, and requests and errors per method
  and path, ordered by errors.

The row timestamps are microseconds since 1970 (as the API returns the ``timestamp`` column) or an ISO 8601 text;
every answer is checked (a row that is not an object, a count that is no count, a time that is no time or lies
outside the slice asked for is a ``MalformedAnswer``, never an ``ok``).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import math
import os
import re

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import logreview as LR
from ansible_collections.appcare.maintenance.plugins.module_utils import pglog
from ansible_collections.appcare.maintenance.plugins.module_utils import supabase_api as S
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, parse_iso, utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.files import write_json_atomic
from ansible_collections.appcare.maintenance.plugins.module_utils.store import FUTURE_TOLERANCE

STATE_FORMAT = 'appcare.supabase_logs/1'
MAX_STATE_PATTERNS = 5000  # the newest kept; bounded so a flood of patterns cannot grow the file without end
MAX_STATE_BYTES = 4 * 1024 * 1024
DEFAULT_HOURS = 168
MAX_HOURS = 90 * 24  # Supabase keeps logs up to 90 days (Enterprise)
DEFAULT_ROW_LIMIT = 1000
MAX_ROW_LIMIT = 10000
DEFAULT_MIN_REQUESTS = 20
DEFAULT_TOP = 10
SLICE = S.MAX_LOGS_WINDOW
LATENCY_STEPS = 20  # histogram buckets per factor e: each about 5 % wide
# The histogram has at most 3 status classes x (buckets up to 10 minutes, ~270, and no latency): its own limit, not
# row_limit, so a low row_limit never cuts the counts the error rate is made of.
LATENCY_ROWS = 3000
PARTS = ('postgres', 'auth', 'api')
# Auth's sign-in endpoints (the supabase/auth README, "Endpoints": /token with the password grant, /verify, /otp,
# /magiclink, /authorize, /callback; besides SSO and the MFA factors): a 4xx there is a failed sign-in.
SIGNIN_PATHS = ('/token', '/otp', '/verify', '/magiclink', '/authorize', '/callback', '/sso', '/sso/saml/acs')
_MFA_VERIFY = re.compile(r'^/factors/[^/]+/(verify|challenge)$')

AUTH_FAILED = 'auth_failed_signins'
AUTH_RATE = 'auth_rate_limited'
API_ERRORS = 'api_error_rate'
API_LATENCY = 'api_latency'
LOG_STATE = 'log_state'
API = S.API  # supabase_api: the Management API itself
# Thresholds of the checks this module adds; the log_* ones are logreview's (the same as pg_log_info's).
DEFAULT_THRESHOLDS = {
    # The collection's failed_logins levels (pg_audit_info), per client address over the window.
    AUTH_FAILED: {'warning': 10, 'critical': 50, 'direction': C.ABOVE, 'unit': 'count'},
    # Supabase Auth answers 429 once an address passes its rate limits: a few are a client retrying too fast, many
    # are someone hammering the sign-in endpoints.
    AUTH_RATE: {'warning': 10, 'critical': 100, 'direction': C.ABOVE, 'unit': 'count'},
    # The guides' alert is "error rate > 5 %"; 1 % of answers failing on the server is already worth a look.
    API_ERRORS: {'warning': 1, 'critical': 5, 'direction': C.ABOVE, 'unit': '%'},
    # p95 of the origin's answer time: above 1 s users notice, above 3 s requests start to time out.
    API_LATENCY: {'warning': 1000, 'critical': 3000, 'direction': C.ABOVE, 'unit': 'ms'},
}

RATE_LIMIT_TEXT = 'over_request_rate_limit|too many requests|rate limit'

POSTGRES_SQL = """select
  t.timestamp,
  t.event_message,
  p.error_severity,
  p.sql_state_code,
  p.user_name,
  p.database_name,
  p.connection_from,
  p.process_id
from postgres_logs as t
  cross join unnest(t.metadata) as m
  cross join unnest(m.parsed) as p
where p.error_severity in ('WARNING', 'ERROR', 'FATAL', 'PANIC')
order by t.timestamp desc
limit %d"""

AUTH_SQL = """select
  m.remote_addr as remote_addr,
  m.path as path,
  safe_cast(m.status as int64) as status,
  count(*) as count,
  countif(regexp_contains(lower(concat(ifnull(m.msg, ''), ' ', ifnull(m.error, ''), ' ', t.event_message)),
    '""" + RATE_LIMIT_TEXT + """')) as rate_limit_messages,
  countif(regexp_contains(lower(concat(ifnull(m.msg, ''), ' ', ifnull(m.error, ''))), 'refresh')) as refresh_failures,
  min(t.timestamp) as first_seen,
  max(t.timestamp) as last_seen
from auth_logs as t
  cross join unnest(t.metadata) as m
where safe_cast(m.status as int64) >= 400
  or regexp_contains(lower(t.event_message), '""" + RATE_LIMIT_TEXT + """')
group by remote_addr, path, status
order by count desc
limit %d"""

EDGE_LATENCY_SQL = """select
  cast(floor(ln(greatest(r.origin_time, 1)) * """ + str(LATENCY_STEPS) + """) as int64) as latency_bucket,
  case when r.status_code >= 500 then '5xx' when r.status_code >= 400 then '4xx' else 'other' end as status_class,
  count(*) as requests
from edge_logs as t
  cross join unnest(t.metadata) as m
  cross join unnest(m.response) as r
group by latency_bucket, status_class
limit %d"""

EDGE_PATHS_SQL = """select
  q.method as method,
  q.path as path,
  count(*) as requests,
  countif(r.status_code >= 500) as errors_5xx,
  countif(r.status_code between 400 and 499) as errors_4xx
from edge_logs as t
  cross join unnest(t.metadata) as m
  cross join unnest(m.request) as q
  cross join unnest(m.response) as r
group by method, path
order by errors_5xx desc, errors_4xx desc, requests desc
limit %d"""


class LogsQueryError(S.ApiError):
    """The logs endpoint answered, but with an ``error`` instead of rows (a query it could not run)."""

    def __init__(self, message, status=200):
        super().__init__(message, kind='query', status=status)


# --- options -----------------------------------------------------------------------------------------------

def validate_params(params):
    """Refuse options that make no sense, before any request or file."""
    ref = params.get('project_ref') or ''
    if not S.PROJECT_REF.match(ref):
        raise ConfigurationError('project_ref %r is not a project reference: the 20 lower-case letters in the '
                                 'project\'s URL (https://<project_ref>.supabase.co)' % ref)
    S.validate_token(params.get('access_token'))
    S.validate_api_url(params['api_url'])
    hours = params['window_hours']
    if hours is None or not 0 < hours <= MAX_HOURS or not math.isfinite(hours):
        raise ConfigurationError('window_hours must be more than 0 and at most %d (90 days), got %s' % (MAX_HOURS, hours))
    if hours * 60 < 1:
        raise ConfigurationError('window_hours must be at least one minute (the API rounds to minutes), got %s' % hours)
    if not params['sources']:
        raise ConfigurationError('sources is empty: nothing to read (postgres, auth, api)')
    if not 1 <= params['row_limit'] <= MAX_ROW_LIMIT:
        raise ConfigurationError('row_limit must be from 1 to %d, got %s' % (MAX_ROW_LIMIT, params['row_limit']))
    if not 1 <= params['top'] <= 1000:
        raise ConfigurationError('top must be from 1 to 1000, got %s' % params['top'])
    if params['min_requests'] < 1:
        raise ConfigurationError('min_requests must be 1 or more, got %s' % params['min_requests'])
    if not params['timeout'] or params['timeout'] <= 0:
        raise ConfigurationError('timeout must be more than 0 seconds, got %s' % params['timeout'])
    if params['retries'] < 0:
        raise ConfigurationError('retries must be 0 or more, got %s' % params['retries'])
    if params['max_retry_wait'] < 0:
        raise ConfigurationError('max_retry_wait must be 0 or more seconds, got %s' % params['max_retry_wait'])
    if params['ca_cert'] and not params['validate_certs']:
        raise ConfigurationError('ca_cert is given but validate_certs is false; nothing would be verified')
    if params['ca_cert'] and not os.path.isfile(params['ca_cert']):
        raise ConfigurationError('ca_cert %s is not a file' % params['ca_cert'])
    state = params.get('state_file')
    if state and os.path.isdir(state):
        raise ConfigurationError('state_file %s is a directory; give a file name' % state)
    return thresholds_for(params.get('thresholds'))


def thresholds_for(overrides):
    """The merged thresholds of this module's checks and every log_* check of the PostgreSQL log review
    (``logreview.DEFAULT_THRESHOLDS``), so one ``thresholds`` dict serves both modules."""
    defaults = dict(DEFAULT_THRESHOLDS)
    defaults.update(LR.DEFAULT_THRESHOLDS)
    return C.merge_thresholds(defaults, overrides)


# --- the window --------------------------------------------------------------------------------------------

def window_slices(end, hours):
    """The window of ``hours`` ending at ``end`` (floored to the minute) as (start, end) slices of at most 24 hours,
    oldest first; each slice starts where the one before ended, on a whole minute."""
    end = end.astimezone(datetime.timezone.utc).replace(second=0, microsecond=0)
    start = end - datetime.timedelta(minutes=int(round(hours * 60)))
    slices = []
    cursor = start
    while cursor < end:
        upper = min(cursor + SLICE, end)
        slices.append((cursor, upper))
        cursor = upper
    return slices


# --- reading an answer -------------------------------------------------------------------------------------

def parse_answer(document, label):
    """The rows of an AnalyticsResponse; LogsQueryError for an ``error``, MalformedAnswer for any other shape."""
    if not isinstance(document, dict):
        raise S.MalformedAnswer('%s is not an object but %s' % (label, S._kind(document)))
    error = document.get('error')
    if error not in (None, '', {}):
        raise LogsQueryError('%s: the logs query failed: %s' % (label, error_text(error)))
    if 'result' not in document:
        raise S.MalformedAnswer('%s lacks result (truncated, or not the Management API)' % label)
    rows = document['result']
    if not isinstance(rows, list):
        raise S.MalformedAnswer('%s: result is %s, not a list of rows' % (label, S._kind(rows)))
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise S.MalformedAnswer('%s: result[%d] is %s, not a row (an object)' % (label, index, S._kind(row)))
    return rows


def error_text(error):
    """The ``error`` of an AnalyticsResponse on one line: a text, or the object's message and its errors' reasons."""
    if isinstance(error, str):
        text = error
    elif isinstance(error, dict):
        text = error.get('message') if isinstance(error.get('message'), str) else S._short(error)
        reasons = [e.get('message') or e.get('reason') for e in error.get('errors') or []
                   if isinstance(e, dict) and isinstance(e.get('message') or e.get('reason'), str)]
        reasons = [r for r in reasons if r != text]
        if reasons:
            text += ' (%s)' % '; '.join(reasons[:3])
    else:
        text = S._short(error)
    text = ' '.join(text.split())
    return text[:300] + ('...' if len(text) > 300 else '')


def row_time(value):
    """A row's time: microseconds since 1970 (the API's ``timestamp``), or an ISO 8601 text; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        seconds = value / 1e6
        if not 0 <= seconds < S.MAX_UNIX_SECONDS:
            return None
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    if isinstance(value, str) and re.match(r'^\d{13,17}$', value.strip()):
        return row_time(int(value.strip()))
    return S.parse_time(value)


def _count(row, key, where):
    value = row.get(key)
    if isinstance(value, str) and re.match(r'^\d{1,15}$', value):
        value = int(value)  # BigQuery's INT64 may travel as a JSON text
    if not S._is_int(value) or value < 0:
        raise S.MalformedAnswer('%s: %s is %s, not a count' % (where, key, S._short(value)))
    return value


def _text(row, key, where, required=False):
    value = row.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise S.MalformedAnswer('%s: %s is %s, not a text' % (where, key, S._short(value)))
    return value


def _time_in(row, key, where, start, end):
    moment = row_time(row.get(key))
    if moment is None:
        raise S.MalformedAnswer('%s: %s is %s, not a time' % (where, key, S._short(row.get(key))))
    # The API rounds the window to the minute: allow that much either side, nothing more.
    if moment < start - datetime.timedelta(minutes=1) or moment > end + datetime.timedelta(minutes=1):
        raise S.MalformedAnswer('%s: %s %s lies outside the window asked for (%s to %s)'
                                % (where, key, iso(moment), iso(start), iso(end)))
    return moment


# --- PostgreSQL ----------------------------------------------------------------------------------------------

def postgres_entries(rows, label, start, end):
    """pglog entries of one slice's postgres_logs rows."""
    entries = []
    for index, row in enumerate(rows):
        where = '%s: result[%d]' % (label, index)
        when = _time_in(row, 'timestamp', where, start, end)
        severity = (_text(row, 'error_severity', where, required=True) or '').upper()
        message = _text(row, 'event_message', where, required=True)
        pid = row.get('process_id')
        if isinstance(pid, str) and pid.isdigit():
            pid = int(pid)
        entries.append(pglog.Entry(when=when, severity=severity, message=message,
                                   sqlstate=_text(row, 'sql_state_code', where),
                                   database=_text(row, 'database_name', where), user=_text(row, 'user_name', where),
                                   client=_text(row, 'connection_from', where),
                                   pid=pid if S._is_int(pid) else None))
    return entries


# --- Auth ----------------------------------------------------------------------------------------------------

def normalise_address(value):
    """One client address as Auth logs it: the IP alone (an IPv4 port dropped), ``unknown`` when missing."""
    if not isinstance(value, str) or not value.strip():
        return 'unknown'
    text = value.strip().split(',')[0].strip()  # X-Forwarded-For's first hop
    match = re.match(r'^(\d{1,3}(?:\.\d{1,3}){3}):\d+$', text) or re.match(r'^\[([0-9a-fA-F:.]+)\]:\d+$', text)
    if match:
        text = match.group(1)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text[:100]


def signin_path(path):
    """Whether an Auth path is a sign-in endpoint (with or without the gateway's ``/auth/v1`` prefix)."""
    if not isinstance(path, str):
        return False
    path = path.split('?')[0].rstrip('/') or '/'
    if path.startswith('/auth/v1/'):
        path = path[len('/auth/v1'):]
    return path in SIGNIN_PATHS or bool(_MFA_VERIFY.match(path))


def auth_rows(rows, label, start, end):
    """Checked rows of one slice's auth query."""
    checked = []
    for index, row in enumerate(rows):
        where = '%s: result[%d]' % (label, index)
        status = row.get('status')
        if status is not None and (not S._is_int(status) or not 0 <= status < 1000):
            raise S.MalformedAnswer('%s: status is %s, not an HTTP status' % (where, S._short(status)))
        checked.append({'address': normalise_address(row.get('remote_addr')), 'path': _text(row, 'path', where),
                        'status': status, 'count': _count(row, 'count', where),
                        'rate_limit_messages': _count(row, 'rate_limit_messages', where),
                        'refresh_failures': _count(row, 'refresh_failures', where),
                        'first_seen': _time_in(row, 'first_seen', where, start, end),
                        'last_seen': _time_in(row, 'last_seen', where, start, end)})
    return checked


class AuthAddresses(object):
    """Failed sign-ins and rate-limited requests per client address, added up over the slices."""

    def __init__(self):
        self.failed = {}
        self.limited = {}

    @staticmethod
    def _add(table, row, count):
        if count <= 0:
            return
        entry = table.setdefault(row['address'], {'address': row['address'], 'count': 0, 'paths': {}, 'statuses': {},
                                                  'first_seen': row['first_seen'], 'last_seen': row['last_seen']})
        entry['count'] += count
        path = row['path'] or '?'
        entry['paths'][path] = entry['paths'].get(path, 0) + count
        status = str(row['status']) if row['status'] is not None else '?'
        entry['statuses'][status] = entry['statuses'].get(status, 0) + count
        entry['first_seen'] = min(entry['first_seen'], row['first_seen'])
        entry['last_seen'] = max(entry['last_seen'], row['last_seen'])

    def add(self, row):
        limited = row['count'] if row['status'] == 429 else min(row['count'], row['rate_limit_messages'])
        self._add(self.limited, row, limited)
        status = row['status']
        if status is not None and 400 <= status < 500 and status != 429 and signin_path(row['path']):
            self._add(self.failed, row, max(0, row['count'] - row['refresh_failures']))

    @staticmethod
    def _rows(table):
        rows = sorted(table.values(), key=lambda e: (-e['count'], e['address']))
        return [{'address': e['address'], 'count': e['count'],
                 'paths': dict(sorted(e['paths'].items(), key=lambda kv: (-kv[1], kv[0]))[:10]),
                 'statuses': dict(sorted(e['statuses'].items())),
                 'first_seen': iso(e['first_seen']), 'last_seen': iso(e['last_seen'])} for e in rows]

    def failed_rows(self):
        return self._rows(self.failed)

    def limited_rows(self):
        return self._rows(self.limited)


def address_findings(thresholds, name, rows, hours, what, advice, obj, truncated):
    """One finding per address past the first threshold of ``name``, else one summary finding."""
    spec = thresholds[name]
    fired = [row for row in rows if C.past_first_limit(spec, row['count'])]
    note = ' (the answer hit row_limit: counts are a lower bound)' if truncated else ''
    findings = []
    for row in fired:
        paths = ', '.join('%s %d' % kv for kv in list(row['paths'].items())[:5])
        findings.append(dict(C.judge(thresholds, name, row['count'], '{value} %s from %s in the last %s h (%s; %s to %s)%s; '
                                     '%s' % (what, row['address'], _num(hours), paths, row['first_seen'], row['last_seen'],
                                             note, advice), obj='address=%s' % row['address'], address=row['address']),
                             category='security'))
    if not fired:
        top = rows[0] if rows else None
        message = ('at most {value} %s from one address (%s) in the last %s h%s' % (what, top['address'], _num(hours), note)
                   if top else 'no %s in the last %s h%s' % (what, _num(hours), note))
        findings.append(dict(C.judge(thresholds, name, top['count'] if top else 0, message, obj=obj), category='security'))
    return findings


# --- the API edge ------------------------------------------------------------------------------------------

def latency_upper_ms(bucket):
    """The upper bound in ms of a latency bucket ``floor(ln(max(ms, 1)) * LATENCY_STEPS)``."""
    return math.exp((bucket + 1) / float(LATENCY_STEPS))


def latency_bucket(ms):
    """The bucket the edge query puts an origin_time of ``ms`` in (for the tests and the stand-in's check)."""
    return int(math.floor(math.log(max(ms, 1)) * LATENCY_STEPS))


def histogram_percentile(buckets, percent):
    """The nearest-rank ``percent`` percentile of a {bucket: count} histogram, as its bucket's upper bound in ms
    (rounded to 0.1 ms); None when empty."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank = max(1, int(math.ceil(percent / 100.0 * total)))
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return round(latency_upper_ms(bucket), 1)
    return round(latency_upper_ms(max(buckets)), 1)


def percentile(values, percent):
    """The nearest-rank ``percent`` percentile of ``values``; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(1, int(math.ceil(percent / 100.0 * len(ordered)))) - 1]


class Traffic(object):
    """The edge_logs counts added up over the slices."""

    def __init__(self):
        self.requests = 0
        self.classes = {'5xx': 0, '4xx': 0, 'other': 0}
        self.buckets = {}
        self.no_latency = 0
        self.paths = {}

    def add_latency(self, rows, label):
        for index, row in enumerate(rows):
            where = '%s: result[%d]' % (label, index)
            count = _count(row, 'requests', where)
            status_class = row.get('status_class')
            if status_class not in self.classes:
                raise S.MalformedAnswer('%s: status_class is %s, not 5xx, 4xx or other' % (where, S._short(status_class)))
            bucket = row.get('latency_bucket')
            if isinstance(bucket, str) and re.match(r'^-?\d{1,6}$', bucket):
                bucket = int(bucket)
            if bucket is not None and (not S._is_int(bucket) or not 0 <= bucket <= 40 * LATENCY_STEPS):
                raise S.MalformedAnswer('%s: latency_bucket is %s, not a bucket' % (where, S._short(bucket)))
            self.requests += count
            self.classes[status_class] += count
            if bucket is None:
                self.no_latency += count
            else:
                self.buckets[bucket] = self.buckets.get(bucket, 0) + count

    def add_paths(self, rows, label):
        for index, row in enumerate(rows):
            where = '%s: result[%d]' % (label, index)
            key = (_text(row, 'method', where) or '?', _text(row, 'path', where) or '?')
            counts = [_count(row, k, where) for k in ('requests', 'errors_5xx', 'errors_4xx')]
            if counts[1] + counts[2] > counts[0]:
                raise S.MalformedAnswer('%s: more errors (%d) than requests (%d)' % (where, counts[1] + counts[2], counts[0]))
            entry = self.paths.setdefault(key, [0, 0, 0])
            for i in range(3):
                entry[i] += counts[i]

    def summary(self, top):
        requests = self.requests
        rate = round(100.0 * self.classes['5xx'] / requests, 3) if requests else None
        rate_4xx = round(100.0 * self.classes['4xx'] / requests, 3) if requests else None
        paths = sorted(((k, v) for k, v in self.paths.items() if v[1] or v[2]),
                       key=lambda kv: (-kv[1][1], -kv[1][2], -kv[1][0], kv[0]))
        return {'requests': requests, 'errors_5xx': self.classes['5xx'], 'errors_4xx': self.classes['4xx'],
                'error_rate_percent': rate, 'error_4xx_percent': rate_4xx,
                'latency_ms': dict(('p%d' % p, histogram_percentile(self.buckets, p)) for p in (50, 95, 99)),
                'requests_without_latency': self.no_latency,
                'top_error_paths': [{'method': k[0], 'path': k[1], 'requests': v[0], 'errors_5xx': v[1],
                                     'errors_4xx': v[2],
                                     'error_rate_percent': round(100.0 * v[1] / v[0], 3) if v[0] else None}
                                    for k, v in paths[:top]]}


def api_findings(thresholds, summary, hours, min_requests, obj, truncated):
    requests = summary['requests']
    findings = []
    if requests < min_requests:
        text = ('only %d request(s) in the last %s h, fewer than min_requests (%d): too few to judge an error rate or '
                'a latency' % (requests, _num(hours), min_requests))
        findings.append(C.finding(API_ERRORS, C.OK, text, value=summary['error_rate_percent'], unit='%', obj=obj,
                                  requests=requests))
        findings.append(C.finding(API_LATENCY, C.OK, text, value=summary['latency_ms']['p95'], unit='ms', obj=obj,
                                  requests=requests))
        return findings
    worst = summary['top_error_paths'][0] if summary['top_error_paths'] and summary['top_error_paths'][0]['errors_5xx'] \
        else None
    where = ' - most on %s %s (%d of %d)' % (worst['method'], worst['path'], worst['errors_5xx'], worst['requests']) \
        if worst else ''
    findings.append(C.judge(thresholds, API_ERRORS, summary['error_rate_percent'],
                            '{value} %% of %d API requests in the last %s h were answered 5xx (%d)%s; 4xx: %d (%s %%)'
                            % (requests, _num(hours), summary['errors_5xx'], where, summary['errors_4xx'],
                               _num(summary['error_4xx_percent'])), obj=obj, requests=requests))
    latency = summary['latency_ms']
    if latency['p95'] is None:
        findings.append(C.unknown(thresholds, API_LATENCY, 'no request of the last %s h carries an origin_time'
                                  % _num(hours), obj=obj))
    else:
        findings.append(C.judge(thresholds, API_LATENCY, latency['p95'],
                                'p95 of the API\'s answer time (origin_time) over %d requests in the last %s h: {value} ms '
                                '(p50 %s ms, p99 %s ms; upper bounds, within 5 %%)%s'
                                % (requests - summary['requests_without_latency'], _num(hours), _num(latency['p50']),
                                   _num(latency['p99']), ' (the histogram answer reached its limit: a lower bound)' if truncated else ''),
                                obj=obj, requests=requests))
    return findings


# --- PostgreSQL findings -----------------------------------------------------------------------------------

ERROR_SEVERITIES = ('PANIC', 'FATAL', 'ERROR')


def log_findings(logs, thresholds, hours, obj, truncated, new_mode, top):
    """``logreview.SHARED_CHECKS`` of the postgres_logs read into a pglog Review: the very findings pg_log_info
    gives a server log."""
    found = C.Findings(thresholds, obj)
    note = (' (postgres_logs answers hit row_limit in %d slice(s): counts are a lower bound)' % truncated) \
        if truncated else ''
    new_rows = logs.patterns.new_rows(top) if new_mode == 'state' else []
    LR.error_findings(found, logs.severities, logs.fatal_other, logs.hourly_rows(), new_rows, new_mode, _num(hours),
                      len(logs.patterns.items), note, rows=logs.patterns.rows(20, ('PANIC',)))
    return list(found)


# --- the state file ----------------------------------------------------------------------------------------

def read_state(path, ref, now):
    """The pattern keys a previous run saw, as {key: last seen (datetime)}, and a problem (None when fine).
    A missing file is a first run (empty, no problem); a file that is not this module's, of another project, cut
    off, altered or dated in the future is read as empty - so no pattern passes as known - with the reason."""
    if not path or not os.path.exists(path):
        return {}, None
    try:
        if os.path.getsize(path) > MAX_STATE_BYTES:
            return {}, 'it is larger than %d bytes' % MAX_STATE_BYTES
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, 'it cannot be read as JSON (%s)' % (' '.join(str(exc).split())[:120])
    if not isinstance(data, dict) or data.get('format') != STATE_FORMAT:
        return {}, 'it is not a state file of this module (format %s)' % S._short(
            data.get('format') if isinstance(data, dict) else S._kind(data))
    if data.get('project_ref') != ref:
        return {}, 'it belongs to project %s, not %s' % (S._short(data.get('project_ref')), ref)
    limit = now + FUTURE_TOLERANCE
    try:
        saved = parse_iso(data.get('saved_at'))
    except (TypeError, ValueError):
        return {}, 'its saved_at %s is not a time' % S._short(data.get('saved_at'))
    if saved > limit:
        return {}, 'its saved_at %s is after this host\'s clock' % iso(saved)
    patterns = data.get('patterns')
    if not isinstance(patterns, dict) or len(patterns) > MAX_STATE_PATTERNS:
        return {}, 'its patterns are not a map of at most %d pattern keys' % MAX_STATE_PATTERNS
    known = {}
    for key, seen in patterns.items():
        if not isinstance(key, str) or not key or len(key) > 200:
            return {}, 'a pattern key is %s' % S._short(key)
        try:
            moment = parse_iso(seen)
        except (TypeError, ValueError):
            return {}, 'pattern %s has a last-seen time %s that is no time' % (S._short(key), S._short(seen))
        if moment > limit or moment > saved + FUTURE_TOLERANCE:
            return {}, 'pattern %s was last seen %s, after the file was saved or this host\'s clock' % (
                S._short(key), iso(moment))
        known[key] = moment
    return known, None


def write_state(path, ref, known, seen, now):
    """Save the known pattern keys (the old ones and those ``seen`` now, {key: last seen}), the newest first."""
    merged = dict(known)
    for key, moment in seen.items():
        if key not in merged or moment > merged[key]:
            merged[key] = min(moment, now)
    newest = sorted(merged.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:MAX_STATE_PATTERNS]
    write_json_atomic(path, {'format': STATE_FORMAT, 'project_ref': ref, 'saved_at': iso(now),
                             'patterns': dict((k, iso(v)) for k, v in newest)})
    return len(newest)


# --- the review ----------------------------------------------------------------------------------------------

def _num(value):
    if value is None:
        return 'n/a'
    if isinstance(value, float):
        return ('%.2f' % value).rstrip('0').rstrip('.')
    return str(value)


def _first_failure_stops(errors):
    return any(e.kind in ('auth', 'network', 'rate_limit') for e in errors)


def review(api, params, thresholds, now=None, check_mode=False):
    """Everything supabase_logs_info reads and judges: its result (``checks`` included) and the errors of the
    requests that failed (after an auth, network or rate-limit failure no further request is sent)."""
    now = now or utcnow()
    ref = params['project_ref']
    obj = 'project=%s' % ref
    hours = params['window_hours']
    limit = params['row_limit']
    top = params['top']
    sources = list(dict.fromkeys(params['sources']))
    slices = window_slices(now, hours)
    errors = []
    failed = {}  # part -> cause
    truncated = dict((part, []) for part in ('postgres', 'auth', 'api_latency', 'api_paths'))
    findings = []

    known, state_problem = ({}, None)
    # as pg_log_info: no state file, nothing is judged new; a first run records the baseline; a state file that
    # was not usable counts every pattern as new
    new_mode = 'none'
    if 'postgres' in sources and params.get('state_file'):
        new_mode = 'state' if os.path.exists(params['state_file']) else 'baseline'
        known, state_problem = read_state(params['state_file'], ref, now)
    # pglog's Review: the same patterns, severities and hourly error counts as the PostgreSQL log review.
    logs = pglog.Review(since=slices[0][0] - datetime.timedelta(minutes=1),
                        until=slices[-1][1] + datetime.timedelta(minutes=1), known=set(known))
    auth = AuthAddresses()
    traffic = Traffic()

    queries = []
    if 'postgres' in sources:
        queries.append(('postgres', 'postgres', POSTGRES_SQL % limit))
    if 'auth' in sources:
        queries.append(('auth', 'auth', AUTH_SQL % limit))
    if 'api' in sources:
        queries.append(('api', 'api_latency', EDGE_LATENCY_SQL % LATENCY_ROWS))
        queries.append(('api', 'api_paths', EDGE_PATHS_SQL % limit))
    label = 'GET %s' % api.project_path(ref, 'analytics', 'endpoints', 'logs.all')
    for start, end in slices:
        for part, kind, sql in queries:
            if part in failed or _first_failure_stops(errors):
                continue
            where = '%s (%s, %s to %s)' % (label, kind, iso(start), iso(end))
            try:
                rows = parse_answer(api.logs_all(ref, sql, start, end), where)
                if len(rows) >= (LATENCY_ROWS if kind == 'api_latency' else limit):
                    truncated[kind].append(iso(start))
                if kind == 'postgres':
                    for entry in postgres_entries(rows, where, start, end):
                        logs.feed(entry)
                elif kind == 'auth':
                    for row in auth_rows(rows, where, start, end):
                        auth.add(row)
                elif kind == 'api_latency':
                    traffic.add_latency(rows, where)
                else:
                    traffic.add_paths(rows, where)
            except S.ApiError as exc:
                errors.append(exc)
                failed[part] = str(exc)
    if _first_failure_stops(errors):
        for part in sources:
            failed.setdefault(part, 'not read to the end after the failure above, which it would repeat')

    result = {'changed': False, 'project_ref': ref,
              'window': {'start': iso(slices[0][0]), 'end': iso(slices[-1][1]), 'hours': hours,
                         'slices': len(slices), 'row_limit': limit},
              'truncated': dict((k, v) for k, v in truncated.items()),
              'postgres': None, 'auth': None, 'api': None}
    report = {}

    if 'postgres' in sources:
        if 'postgres' in failed:
            for name in ('log_panic', 'log_fatal', 'log_error_rate', 'log_new_patterns'):
                findings.append(C.unknown(thresholds, name, 'postgres_logs not read - %s' % failed['postgres'], obj=obj))
        else:
            hourly_rows = logs.hourly_rows()
            rows = logs.patterns.rows()
            new_rows = logs.patterns.new_rows(top) if new_mode == 'state' else []
            if new_mode != 'state':
                for row in rows:
                    row['new'] = False
            severities = dict(logs.severities)
            findings.extend(log_findings(logs, thresholds, hours, obj, len(truncated['postgres']), new_mode, top))
            result['postgres'] = {'severities': severities, 'top_errors': _jsonable(rows[:top]),
                                  'new_patterns': _jsonable(new_rows), 'hourly': hourly_rows,
                                  'patterns': len(rows), 'patterns_dropped': logs.patterns.dropped,
                                  'events': logs.events()}
            if params.get('state_file'):
                if state_problem:
                    findings.append(C.finding(LOG_STATE, C.WARNING, 'state_file %s was not used: %s; read as empty, so '
                                              'every pattern counts as new%s' % (
                                                  params['state_file'], state_problem,
                                                  '' if check_mode else ', and rewritten'), obj=obj))
                else:
                    findings.append(C.finding(LOG_STATE, C.OK, 'state_file %s: %d pattern(s) known from earlier runs'
                                              % (params['state_file'], len(known)), value=len(known), unit='count',
                                              obj=obj))
                if not check_mode:
                    seen = dict((row['key'], _as_time(row['last_seen'], now)) for row in rows)
                    write_state(params['state_file'], ref, known, seen, now)
            report['log_review'] = {
                'source': 'supabase', 'project_ref': ref, 'finished_at': iso(now), 'window_hours': hours,
                'severities': severities, 'top_errors': _jsonable(rows[:top]), 'new_patterns': _jsonable(new_rows),
                'truncated': bool(truncated['postgres'])}

    if 'auth' in sources:
        if 'auth' in failed:
            for name in (AUTH_FAILED, AUTH_RATE):
                findings.append(dict(C.unknown(thresholds, name, 'auth_logs not read - %s' % failed['auth'], obj=obj),
                                     category='security'))
        else:
            failed_rows, limited_rows = auth.failed_rows(), auth.limited_rows()
            cut = bool(truncated['auth'])
            findings.extend(address_findings(thresholds, AUTH_FAILED, failed_rows, hours, 'failed sign-ins',
                                             'block the address or find the client with the wrong credentials', obj, cut))
            findings.extend(address_findings(thresholds, AUTH_RATE, limited_rows, hours, 'rate-limited Auth requests',
                                             'a client retries too fast, or someone is hammering Auth; see Auth\'s '
                                             'rate limits', obj, cut))
            result['auth'] = {'failed_signins_by_address': failed_rows[:top],
                              'rate_limited_by_address': limited_rows[:top]}
            report.setdefault('log_review', {'source': 'supabase', 'project_ref': ref, 'finished_at': iso(now),
                                             'window_hours': hours})
            report['log_review'].update({'failed_signins': failed_rows[:top], 'rate_limited': limited_rows[:top]})

    if 'api' in sources:
        if 'api' in failed:
            for name in (API_ERRORS, API_LATENCY):
                findings.append(C.unknown(thresholds, name, 'edge_logs not read - %s' % failed['api'], obj=obj))
        else:
            summary = traffic.summary(top)
            findings.extend(api_findings(thresholds, summary, hours, params['min_requests'], obj,
                                         bool(truncated['api_latency'])))
            summary['top_paths_truncated'] = bool(truncated['api_paths'])
            result['api'] = summary
            report['api_traffic'] = dict(summary, source='supabase', project_ref=ref, finished_at=iso(now),
                                         window_hours=hours)

    answered = len([c for c in api.calls if c['status'] is not None and 200 <= c['status'] < 300])
    if errors:
        findings.append(C.finding(API, C.CRITICAL, 'the Management API at %s: %s' % (
            api.api_url, '; '.join(str(e) for e in errors)), value=len(errors), unit='count', obj=obj))
    else:
        findings.append(C.finding(API, C.OK, 'the Management API at %s answered %d logs request(s) over %d slice(s) of '
                                  'at most 24 h' % (api.api_url, answered, len(slices)), value=0, unit='count', obj=obj))
    result['checks'] = findings
    result['management_api'] = {'url': api.api_url, 'requests': api.calls, 'rate_limit': api.rate_limit}
    result['report'] = report
    return result, errors


def _as_time(value, now):
    """A pattern's last-seen time (pglog writes ``2026-11-23T07:28:00Z``); ``now`` when it has none."""
    if isinstance(value, datetime.datetime):
        return value
    return S.parse_time(value) or now


def _jsonable(rows):
    """pglog rows with their times as the collection's ISO text."""
    result = []
    for row in rows:
        item = {}
        for key, value in row.items():
            if isinstance(value, datetime.datetime):
                value = iso(value)
            elif isinstance(value, (set, frozenset, tuple)):
                value = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
            item[key] = value
        result.append(item)
    return result
