# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A local HTTPS stand-in for Supabase's Management API, for the tests (the real API is not reachable from them).

It answers with the shapes of Supabase's published OpenAPI specification of the Management API - the public
``supabase/cli`` repository, ``packages/api/src/generated/openapi.json``:

- ``GET /v1/projects/{ref}/health`` (operation ``v1-get-services-health``): the query parameter ``services`` is
  required (an array, form style: ``services=auth&services=db``); the answer is a list of
  ``V1ServiceHealthResponse`` objects - ``name``, ``healthy`` (deprecated), ``status`` (``COMING_UP``,
  ``ACTIVE_HEALTHY``, ``UNHEALTHY``), ``info`` (GoTrue's name/version/description for auth, the realtime
  connection flags, PostgREST's ``db_schema``) and ``error``.
- ``GET /v1/projects/{ref}/database/backups`` (operation ``v1-list-all-backups``): a ``V1BackupsResponse`` -
  ``region``, ``walg_enabled``, ``pitr_enabled``, ``backups`` (``id``, ``is_physical_backup``, ``status``,
  ``inserted_at``) and ``physical_backup_data`` (``earliest_physical_backup_date_unix``,
  ``latest_physical_backup_date_unix``).
- ``GET /v1/projects/{ref}/analytics/endpoints/logs.all`` (operation ``v1-get-project-logs``): query parameters
  ``sql``, ``iso_timestamp_start`` and ``iso_timestamp_end`` (date-time; without them the last minute); the window
  "must be no more than 24 hours and is rounded to the nearest minute. If the range is more than 24 hours, a
  validation error will be thrown"; the answer is an ``AnalyticsResponse`` - ``result`` (a list of rows) and
  ``error`` (a text, or an object ``code``, ``errors`` (``domain``, ``location``, ``locationType``, ``message``,
  ``reason``), ``message``, ``status``). The stand-in cannot run the SQL: it keeps log events of the shapes the Logs
  Explorer documents (the public ``supabase/supabase`` repository, ``packages/shared-data/logConstants.ts``: every
  table has ``id``, ``timestamp`` - microseconds since 1970, as the API returns it - ``event_message`` and
  ``metadata``; ``postgres_logs`` ``metadata.parsed.error_severity``/``sql_state_code``/``user_name``/
  ``database_name``/``connection_from``/``process_id``, ``auth_logs`` ``metadata.level``/``msg``/``status``/
  ``path``/``remote_addr``/``error``, ``edge_logs`` ``metadata.request.method``/``path`` and
  ``metadata.response.status_code``/``origin_time``), picks the table the query's ``FROM`` names, keeps the events
  inside the (rounded) window, and answers what BigQuery would for the three queries supabase_logs_info sends: the
  PostgreSQL warnings and errors row by row (newest first), Auth's failures counted by address, path and status, and
  the edge requests counted by latency bucket and status class or by method and path - each up to the query's
  ``LIMIT``. Every window asked for is recorded in ``log_windows``; a window over 24 hours gets the validation error
  in the ``AnalyticsResponse`` error shape.
- Errors as the specification lists them (401 Unauthorized, 403, 429 Rate limit exceeded, 500), with the rate-limit
  headers the Supabase CLI's recorded answers carry (``x-ratelimit-limit: 120``, ``x-ratelimit-remaining``,
  ``x-ratelimit-reset: 60``) and a ``Retry-After`` on 429 as the CLI's replay server sends it.
"""

from __future__ import annotations

import datetime
import http.server
import json
import math
import re
import ssl
import threading
import uuid
from urllib.parse import parse_qs, urlsplit

PROJECT_REF = 'abcdefghijklmnopqrst'
TOKEN = 'sbp_0123456789abcdef0123456789abcdef01234567'  # the shape of a personal access token, not a real one
SERVICES = ('auth', 'db', 'pooler', 'realtime', 'rest', 'storage')
INFO = {
    'auth': {'name': 'GoTrue', 'version': 'v2.170.0',
             'description': 'GoTrue is a user registration and authentication API'},
    'realtime': {'healthy': True, 'db_connected': True, 'replication_connected': True, 'connected_cluster': 1},
    'rest': {'db_schema': 'public,graphql_public'},
}


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def stamp(hours_ago):
    """An ``inserted_at`` ``hours_ago`` hours before now, as the API writes it (RFC 3339, UTC)."""
    return (now() - datetime.timedelta(hours=hours_ago)).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


def unix(hours_ago):
    return int((now() - datetime.timedelta(hours=hours_ago)).timestamp())


def backup(backup_id, hours_ago, status='COMPLETED', physical=True):
    return {'id': backup_id, 'is_physical_backup': physical, 'status': status, 'inserted_at': stamp(hours_ago)}


def backups_answer(backups=None, pitr=False, walg=True, earliest=None, latest=None, region='eu-central-1'):
    """A V1BackupsResponse; ``earliest``/``latest`` in hours ago (the PITR window), None to leave them out."""
    physical = {}
    if earliest is not None:
        physical['earliest_physical_backup_date_unix'] = unix(earliest)
    if latest is not None:
        physical['latest_physical_backup_date_unix'] = unix(latest)
    return {'region': region, 'walg_enabled': walg, 'pitr_enabled': pitr,
            'backups': list(backups if backups is not None else [backup(41, 5.5)]), 'physical_backup_data': physical}


def daily_backups():
    """A week of daily physical backups, the newest 5.5 hours old (a Pro project without PITR)."""
    return [backup(41 - day, 5.5 + 24 * day) for day in range(7)]


def micros(hours_ago, base=None):
    """A log event's ``timestamp`` ``hours_ago`` hours before ``base`` (now): microseconds since 1970."""
    return int(((base or now()) - datetime.timedelta(hours=hours_ago)).timestamp() * 1000000)


def pg_log(hours_ago, severity, message, sqlstate=None, user='authenticator', database='postgres', client=None,
           pid=4711, base=None):
    """A postgres_logs event (metadata.parsed as the field reference lists it)."""
    parsed = {'error_severity': severity, 'sql_state_code': sqlstate, 'user_name': user, 'database_name': database,
              'connection_from': client, 'process_id': pid, 'backend_type': 'client backend',
              'command_tag': 'SELECT', 'session_id': '65f1c2a0.1267'}
    return {'id': str(uuid.uuid4()), 'timestamp': micros(hours_ago, base), 'event_message': message,
            'metadata': [{'host': 'db-%s' % PROJECT_REF, 'parsed': [parsed]}]}


def auth_log(hours_ago, status, path='/token', remote_addr='203.0.113.7', msg=None, error=None, level=None, base=None):
    """An auth_logs event: GoTrue's request log line (its JSON as event_message) and its fields in metadata."""
    fields = {'component': 'api', 'level': level or ('error' if status >= 500 else 'info'), 'method': 'POST',
              'msg': msg or 'request completed', 'path': path, 'referer': 'https://example.org',
              'remote_addr': remote_addr, 'status': status, 'duration': 51234}
    if error:
        fields['error'] = error
    return {'id': str(uuid.uuid4()), 'timestamp': micros(hours_ago, base), 'event_message': json.dumps(fields),
            'metadata': [fields]}


def edge_log(hours_ago, status_code=200, path='/rest/v1/items', method='GET', origin_time=35, base=None):
    """An edge_logs event: the request and response of one API call through the gateway."""
    return {'id': str(uuid.uuid4()), 'timestamp': micros(hours_ago, base),
            'event_message': '%s | %d | 198.51.100.4 | 8e3c1f | https://%s.supabase.co%s | supabase-js/2' % (
                method, status_code, PROJECT_REF, path),
            'metadata': [{'request': [{'method': method, 'path': path, 'host': '%s.supabase.co' % PROJECT_REF,
                                       'search': None, 'headers': [{'x_real_ip': '198.51.100.4'}]}],
                          'response': [{'status_code': status_code, 'origin_time': origin_time,
                                        'headers': [{'cf_cache_status': 'DYNAMIC'}]}]}]}


def _round_minute(moment):
    return (moment + datetime.timedelta(seconds=30)).replace(second=0, microsecond=0)


def _window_time(text):
    try:
        return datetime.datetime.strptime(text.replace('Z', '+00:00'), '%Y-%m-%dT%H:%M:%S%z')
    except ValueError:
        return None


class Reply(object):
    """A forced answer: status, body (bytes, or JSON from a dict/list), headers; ``length`` announces another
    Content-Length than the body's (a truncated answer)."""

    def __init__(self, status=200, body=b'', headers=None, length=None):
        self.status = status
        self.headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            self.headers.setdefault('Content-Type', 'application/json; charset=utf-8')
        self.body = body.encode() if isinstance(body, str) else body
        self.length = length


class ManagementApiStandIn(object):
    """The stand-in server: ``health`` maps a service to its status (or to a whole entry dict), ``backups`` is the
    backups answer, ``queue`` maps a path to forced Replies served first (then the normal answer); ``requests``
    records every request (method, path, query, headers)."""

    def __init__(self, cert, key, token=TOKEN, ref=PROJECT_REF):
        self.token = token
        self.ref = ref
        self.health = dict((name, 'ACTIVE_HEALTHY') for name in SERVICES)
        self.backups = backups_answer(daily_backups())
        self.queue = {}
        self.requests = []
        self.logs = {'postgres_logs': [], 'auth_logs': [], 'edge_logs': []}
        self.log_queue = {}  # table -> forced AnalyticsResponse documents (or Replies), served first
        self.log_windows = []
        self.remaining = 120
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                with owner.lock:
                    owner.requests.append({'method': 'GET', 'path': parts.path, 'query': parse_qs(parts.query),
                                           'raw': self.path, 'headers': dict(self.headers.items())})
                    reply = owner.answer(parts.path, parse_qs(parts.query), self.headers.get('Authorization'))
                self.send_response(reply.status)
                headers = {'x-ratelimit-limit': '120', 'x-ratelimit-remaining': str(max(0, owner.remaining)),
                           'x-ratelimit-reset': '60'}
                headers.update(reply.headers)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header('Content-Length', str(reply.length if reply.length is not None else len(reply.body)))
                if reply.length is not None:
                    self.send_header('Connection', 'close')
                self.end_headers()
                self.wfile.write(reply.body)
                if reply.length is not None:
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return 'https://127.0.0.1:%d' % self.httpd.server_address[1]

    def answer(self, path, query, authorization):
        self.remaining -= 1
        forced = self.queue.get(path)
        if forced:
            return forced.pop(0)
        if authorization != 'Bearer %s' % self.token:
            return Reply(401, {'message': 'Unauthorized'})
        if path == '/v1/projects/%s/health' % self.ref:
            names = query.get('services')
            if not names:
                return Reply(400, {'message': 'services must be an array'})
            entries = []
            for name in names:
                state = self.health.get(name)
                if state is None:
                    continue
                if isinstance(state, dict):
                    entries.append(dict(state, name=name))
                    continue
                entry = {'name': name, 'healthy': state == 'ACTIVE_HEALTHY', 'status': state}
                if name in INFO:
                    entry['info'] = INFO[name]
                if state == 'UNHEALTHY':
                    entry['error'] = 'connection to %s timed out' % name
                entries.append(entry)
            return Reply(200, entries)
        if path == '/v1/projects/%s/database/backups' % self.ref:
            return Reply(200, self.backups)
        if path == '/v1/projects/%s/analytics/endpoints/logs.all' % self.ref:
            return self.logs_answer(query)
        if path.startswith('/v1/projects/'):
            return Reply(404, {'message': 'Project not found'})
        return Reply(404, {'message': 'Cannot GET %s' % path})

    def reset(self):
        self.health = dict((name, 'ACTIVE_HEALTHY') for name in SERVICES)
        self.backups = backups_answer(daily_backups())
        self.queue = {}
        self.requests = []
        self.logs = {'postgres_logs': [], 'auth_logs': [], 'edge_logs': []}
        self.log_queue = {}
        self.log_windows = []

    # --- logs.all ---------------------------------------------------------------------------------------------

    @staticmethod
    def query_error(code, message, reason='invalidQuery', location='sql'):
        """An AnalyticsResponse whose ``error`` is the specification's object form."""
        return {'result': None, 'error': {'code': code, 'message': message, 'status': 'INVALID_ARGUMENT',
                                          'errors': [{'domain': 'global', 'location': location,
                                                      'locationType': 'parameter', 'message': message,
                                                      'reason': reason}]}}

    def logs_answer(self, query):
        sql = (query.get('sql') or [''])[0]
        end = _window_time((query.get('iso_timestamp_end') or [''])[0]) if query.get('iso_timestamp_end') else now()
        start = _window_time((query.get('iso_timestamp_start') or [''])[0]) if query.get('iso_timestamp_start') \
            else end - datetime.timedelta(minutes=1)
        match = re.search(r'\bfrom\s+([a-z_]+)', sql, re.I)
        table = match.group(1).lower() if match else 'edge_logs'  # without sql, edge_logs (the specification)
        self.log_windows.append({'table': table, 'start': start, 'end': end,
                                 'raw_start': (query.get('iso_timestamp_start') or [None])[0],
                                 'raw_end': (query.get('iso_timestamp_end') or [None])[0], 'sql': sql})
        if start is None or end is None:
            return Reply(200, self.query_error(400, 'iso_timestamp_start and iso_timestamp_end must be ISO 8601 '
                                                    'timestamps', 'invalid', 'iso_timestamp_start'))
        start, end = _round_minute(start), _round_minute(end)
        if end - start > datetime.timedelta(hours=24):
            return Reply(200, self.query_error(400, 'The timestamp range must be no more than 24 hours', 'invalid',
                                               'iso_timestamp_start'))
        forced = self.log_queue.get(table)
        if forced:
            item = forced.pop(0)
            return item if isinstance(item, Reply) else Reply(200, item)
        if table not in self.logs:
            return Reply(200, self.query_error(400, 'Table %s not found' % table))
        limit = re.search(r'\blimit\s+(\d+)', sql, re.I)
        limit = int(limit.group(1)) if limit else 100
        low, high = int(start.timestamp() * 1000000), int(end.timestamp() * 1000000)
        events = [e for e in self.logs[table] if low <= e['timestamp'] <= high]
        if table == 'postgres_logs':
            rows = self.postgres_rows(events, sql)
        elif table == 'auth_logs':
            rows = self.auth_rows(events)
        elif 'latency_bucket' in sql:
            rows = self.edge_latency_rows(events)
        else:
            rows = self.edge_path_rows(events)
        return Reply(200, {'result': rows[:limit], 'error': None})

    @staticmethod
    def postgres_rows(events, sql):
        wanted = re.search(r'error_severity in \(([^)]*)\)', sql)
        severities = re.findall(r"'([A-Z]+)'", wanted.group(1)) if wanted else None
        rows = []
        for event in sorted(events, key=lambda e: -e['timestamp']):
            parsed = event['metadata'][0]['parsed'][0]
            if severities is not None and parsed['error_severity'] not in severities:
                continue
            rows.append({'timestamp': event['timestamp'], 'event_message': event['event_message'],
                         'error_severity': parsed['error_severity'], 'sql_state_code': parsed['sql_state_code'],
                         'user_name': parsed['user_name'], 'database_name': parsed['database_name'],
                         'connection_from': parsed['connection_from'], 'process_id': parsed['process_id']})
        return rows

    @staticmethod
    def auth_rows(events):
        limited = re.compile('over_request_rate_limit|too many requests|rate limit')
        groups = {}
        for event in events:
            meta = event['metadata'][0]
            status = meta.get('status')
            if not ((status is not None and status >= 400) or limited.search(event['event_message'].lower())):
                continue
            key = (meta.get('remote_addr'), meta.get('path'), status)
            group = groups.setdefault(key, {'remote_addr': key[0], 'path': key[1], 'status': status, 'count': 0,
                                            'rate_limit_messages': 0, 'refresh_failures': 0,
                                            'first_seen': event['timestamp'], 'last_seen': event['timestamp']})
            said = ' '.join((meta.get('msg') or '', meta.get('error') or '')).lower()
            group['count'] += 1
            group['rate_limit_messages'] += 1 if limited.search(said + ' ' + event['event_message'].lower()) else 0
            group['refresh_failures'] += 1 if 'refresh' in said else 0
            group['first_seen'] = min(group['first_seen'], event['timestamp'])
            group['last_seen'] = max(group['last_seen'], event['timestamp'])
        return sorted(groups.values(), key=lambda g: -g['count'])

    @staticmethod
    def edge_latency_rows(events):
        groups = {}
        for event in events:
            response = event['metadata'][0]['response'][0]
            code, origin = response['status_code'], response.get('origin_time')
            bucket = None if origin is None else int(math.floor(math.log(max(origin, 1)) * 20))
            status_class = '5xx' if code >= 500 else '4xx' if code >= 400 else 'other'
            groups[(bucket, status_class)] = groups.get((bucket, status_class), 0) + 1
        return [{'latency_bucket': k[0], 'status_class': k[1], 'requests': v} for k, v in groups.items()]

    @staticmethod
    def edge_path_rows(events):
        groups = {}
        for event in events:
            request, response = event['metadata'][0]['request'][0], event['metadata'][0]['response'][0]
            group = groups.setdefault((request['method'], request['path']), {
                'method': request['method'], 'path': request['path'], 'requests': 0, 'errors_5xx': 0, 'errors_4xx': 0})
            group['requests'] += 1
            group['errors_5xx'] += 1 if response['status_code'] >= 500 else 0
            group['errors_4xx'] += 1 if 400 <= response['status_code'] < 500 else 0
        return sorted(groups.values(), key=lambda g: (-g['errors_5xx'], -g['errors_4xx'], -g['requests']))

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
