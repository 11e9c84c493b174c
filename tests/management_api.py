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
- Errors as the specification lists them (401 Unauthorized, 403, 429 Rate limit exceeded, 500), with the rate-limit
  headers the Supabase CLI's recorded answers carry (``x-ratelimit-limit: 120``, ``x-ratelimit-remaining``,
  ``x-ratelimit-reset: 60``) and a ``Retry-After`` on 429 as the CLI's replay server sends it.
"""

from __future__ import annotations

import datetime
import http.server
import json
import ssl
import threading
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
        if path.startswith('/v1/projects/'):
            return Reply(404, {'message': 'Project not found'})
        return Reply(404, {'message': 'Cannot GET %s' % path})

    def reset(self):
        self.health = dict((name, 'ACTIVE_HEALTHY') for name in SERVICES)
        self.backups = backups_answer(daily_backups())
        self.queue = {}
        self.requests = []

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
