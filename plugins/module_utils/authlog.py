# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Authentication events: failed logins from the PostgreSQL server log, and Supabase Auth activity from
``auth.audit_log_entries``.

Server log: the ``stderr`` format with a ``log_line_prefix`` that starts with ``%m`` or ``%t`` and holds
``[%p]`` (the default, ``'%m [%p] '``), or the ``jsonlog`` format (PostgreSQL 15+). The client address of
a failure comes from ``%h`` / ``%r`` in the prefix, the jsonlog ``remote_host`` field, the "no pg_hba.conf
entry for host" message itself, or, with ``log_connections = on``, the "connection received: host=..."
line of the same process.

Supabase Auth writes successful actions only to ``auth.audit_log_entries`` (``login``, ``logout``,
``user_signedup``, ``user_repeated_signup``, ``token_refreshed``, ``token_revoked``,
``user_recovery_requested``, ... - see ``internal/models/audit_log_entry.go`` in supabase/auth); failed
sign-ins and rate-limited requests appear only in the Auth service's own logs, and the table stays empty
when ``GOTRUE_AUDIT_LOG_DISABLE_POSTGRES`` is set.
"""

from __future__ import annotations

import datetime
import json
import os
import re

try:
    from zoneinfo import ZoneInfo
except ImportError:  # pragma: no cover - Python < 3.9
    ZoneInfo = None

STDERR_LINE = re.compile(
    r'^(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)(?: (?P<tz>[A-Za-z][A-Za-z0-9/_+-]*|[+-]\d{2}(?::?\d{2})?))?'
    r'(?P<rest>.*)$')
PID = re.compile(r'\[(\d+)\]')
SEVERITY = re.compile(r'\b(LOG|FATAL|ERROR|WARNING|DETAIL|HINT|STATEMENT):\s+(.*)$')
PASSWORD_FAILED = re.compile(r'password authentication failed for user "((?:[^"]|"")*)"')
OTHER_AUTH_FAILED = re.compile(r'(?:\w+ )?authentication failed for user "((?:[^"]|"")*)"')
NO_HBA = re.compile(r'no pg_hba\.conf entry for host "([^"]*)", user "((?:[^"]|"")*)"')
CONNECTION = re.compile(r'connection received: host=(\S+)')
HOST_IN_PREFIX = re.compile(r'(?:^|[\s@(])((?:\d{1,3}\.){3}\d{1,3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]+|\[local\])'
                            r'(?:\(\d+\))?(?=\s|$|\))')


def log_files(path, since):
    """The file ``path``, or the files of directory ``path`` modified since ``since`` (oldest first)."""
    if os.path.isdir(path):
        files = []
        for name in os.listdir(path):
            full = os.path.join(path, name)
            if os.path.isfile(full) and os.path.getmtime(full) >= since.timestamp():
                files.append((os.path.getmtime(full), full))
        return [f for _m, f in sorted(files)]
    return [path]


def _zone(name):
    if ZoneInfo is None or not name:
        return datetime.timezone.utc
    try:
        return ZoneInfo(name)
    except Exception:  # pylint: disable=broad-except
        return datetime.timezone.utc


def parse_timestamp(text, tz_text, log_zone):
    """A log timestamp as an aware datetime; the abbreviation is read with the server's log_timezone."""
    fmt = '%Y-%m-%d %H:%M:%S.%f' if '.' in text else '%Y-%m-%d %H:%M:%S'
    moment = datetime.datetime.strptime(text, fmt)
    if tz_text and tz_text[0] in '+-':
        digits = tz_text.replace(':', '')
        hours, minutes = int(digits[1:3]), int(digits[3:5] or 0) if len(digits) > 3 else 0
        offset = datetime.timedelta(hours=hours, minutes=minutes)
        return moment.replace(tzinfo=datetime.timezone(offset if tz_text[0] == '+' else -offset))
    if tz_text in ('UTC', 'GMT', 'Z'):
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.replace(tzinfo=log_zone)


class FailedLogins(object):
    """Counts failed authentications per client address and per user inside a time window."""

    def __init__(self, since, log_timezone=None):
        self.since = since
        self.zone = _zone(log_timezone)
        self.hosts_by_pid = {}
        self.events = []   # (when, user, address)
        self.lines = 0
        self.undated = 0

    def feed_file(self, path):
        with open(path, 'r', encoding='utf-8', errors='replace') as handle:
            for line in handle:
                self.lines += 1
                if line.startswith('{'):
                    self._json(line)
                else:
                    self._stderr(line.rstrip('\n'))

    def _record(self, when, user, address):
        if when is None:
            self.undated += 1
        elif when < self.since:
            return
        self.events.append((when, user.replace('""', '"'), address or 'unknown'))

    def _stderr(self, line):
        match = STDERR_LINE.match(line)
        when, rest = None, line
        if match:
            try:
                when = parse_timestamp(match.group('ts'), match.group('tz'), self.zone)
            except ValueError:
                when = None
            rest = match.group('rest')
        severity = SEVERITY.search(rest)
        if not severity:
            return
        prefix = rest[:severity.start()]
        pid_match = PID.search(prefix)
        pid = pid_match.group(1) if pid_match else None
        level, message = severity.group(1), severity.group(2)
        connection = CONNECTION.search(message)
        if level == 'LOG' and connection and pid:
            self.hosts_by_pid[pid] = connection.group(1)
            return
        if level != 'FATAL':
            return
        host = None
        prefix_host = HOST_IN_PREFIX.search(prefix.replace('[%s]' % pid, '') if pid else prefix)
        if prefix_host and prefix_host.group(1) != '[local]':
            host = prefix_host.group(1)
        self._failure(when, message, host or (self.hosts_by_pid.get(pid) if pid else None))

    def _failure(self, when, message, host):
        no_hba = NO_HBA.search(message)
        if no_hba:
            self._record(when, no_hba.group(2), no_hba.group(1))
            return
        failed = PASSWORD_FAILED.search(message) or OTHER_AUTH_FAILED.search(message)
        if failed:
            self._record(when, failed.group(1), host)

    def _json(self, line):
        try:
            entry = json.loads(line)
        except ValueError:
            return
        when = None
        stamp = entry.get('timestamp') or ''
        match = STDERR_LINE.match(stamp)
        if match:
            try:
                when = parse_timestamp(match.group('ts'), (match.group('rest') or '').strip() or match.group('tz'),
                                       self.zone)
            except ValueError:
                when = None
        message = entry.get('message') or ''
        host = entry.get('remote_host')
        if entry.get('error_severity') == 'LOG':
            connection = CONNECTION.search(message)
            if connection and entry.get('pid') is not None:
                self.hosts_by_pid[str(entry['pid'])] = connection.group(1)
            return
        if entry.get('error_severity') == 'FATAL':
            self._failure(when, message, host or self.hosts_by_pid.get(str(entry.get('pid'))))

    def by_address(self):
        """[{address, failures, users, first, last}] sorted by failures, most first."""
        grouped = {}
        for when, user, address in self.events:
            item = grouped.setdefault(address, {'address': address, 'failures': 0, 'users': set(), 'first': when,
                                                'last': when})
            item['failures'] += 1
            item['users'].add(user)
            if when is not None:
                item['first'] = min(item['first'] or when, when)
                item['last'] = max(item['last'] or when, when)
        rows = []
        for item in grouped.values():
            rows.append(dict(item, users=sorted(item['users']),
                             first=item['first'].isoformat() if item['first'] else None,
                             last=item['last'].isoformat() if item['last'] else None))
        return sorted(rows, key=lambda r: (-r['failures'], r['address']))

    def by_user(self):
        counts = {}
        for _when, user, _address in self.events:
            counts[user] = counts.get(user, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


AUTH_SQL = {
    'sign_ins': """
        SELECT ip_address AS address, count(*) AS sign_ins, max(created_at) AS last
        FROM auth.audit_log_entries
        WHERE payload->>'action' IN ('login', 'mfa_code_login') AND created_at >= now() - %(window)s::interval
        GROUP BY 1 ORDER BY 2 DESC""",
    'new_addresses': """
        SELECT DISTINCT w.ip_address AS address
        FROM auth.audit_log_entries w
        WHERE w.payload->>'action' IN ('login', 'mfa_code_login') AND w.created_at >= now() - %(window)s::interval
          AND w.ip_address <> ''
          AND NOT EXISTS (SELECT 1 FROM auth.audit_log_entries b
                          WHERE b.ip_address = w.ip_address
                            AND b.created_at < now() - %(window)s::interval
                            AND b.created_at >= now() - %(window)s::interval - %(lookback)s::interval)
        ORDER BY 1""",
    'history': """
        SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) AS seconds,
               extract(epoch FROM %(window)s::interval + %(lookback)s::interval) AS needed
        FROM auth.audit_log_entries""",
    'counts': """
        SELECT payload->>'action' AS action, count(*) AS n FROM auth.audit_log_entries
        WHERE created_at >= now() - %(window)s::interval GROUP BY 1 ORDER BY 1""",
    'hourly': """
        SELECT date_trunc('hour', created_at) AS hour,
               count(*) FILTER (WHERE payload->>'action' = 'user_signedup') AS signups,
               count(*) FILTER (WHERE payload->>'action' = 'token_revoked') AS revoked,
               count(*) FILTER (WHERE payload->>'action' = 'token_refreshed') AS refreshed
        FROM auth.audit_log_entries WHERE created_at >= now() - %(window)s::interval
        GROUP BY 1 ORDER BY 1""",
    'recent_sign_ins': """
        SELECT count(*) AS n FROM auth.users WHERE last_sign_in_at >= now() - %(window)s::interval""",
}
