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

import re

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import pglog as PL

PASSWORD_FAILED = re.compile(r'password authentication failed for user "((?:[^"]|"")*)"')
OTHER_AUTH_FAILED = re.compile(r'(?:\w+ )?authentication failed for user "((?:[^"]|"")*)"')
NO_HBA = re.compile(r'no pg_hba\.conf entry for host "([^"]*)", user "((?:[^"]|"")*)"')
CONNECTION = re.compile(r'connection received: host=(\S+)')


def log_files(path, since):
    """The file ``path``, or the files of directory ``path`` modified since ``since`` (oldest first)."""
    return PL.list_files(path, '*', since)


class FailedLogins(object):
    """Failed authentications per client address and per user inside a time window.

    It reads the entries of ``pglog`` (the one log parser): ``feed_entry`` from a review that reads the log anyway,
    or ``feed_file`` on its own. The client address comes from the prefix (``%h``/``%r``), the jsonlog/csvlog
    field, the "no pg_hba.conf entry for host" message itself, or the "connection received" line of the same
    process (``log_connections``)."""

    def __init__(self, since, log_timezone=None, log_line_prefix=None):
        self.since = since
        self.zone = PL.zone_of(log_timezone)
        self.prefix = log_line_prefix
        self.hosts_by_pid = {}
        self.addresses = {}
        self.users = {}
        self.lines = 0
        self.undated = 0

    def feed_file(self, path):
        with PL.open_log(path) as handle:
            fmt = PL.detect_format(path, handle.peek(512)[:512] if hasattr(handle, 'peek') else b'')
            reader = PL.Reader(fmt, self.prefix if fmt == 'stderr' else None, self.zone)
            for entry in reader.read(handle):
                if entry.when is not None and entry.when < self.since:
                    continue
                self.feed_entry(entry)
            self.lines += reader.lines

    def feed_entry(self, entry):
        """One log entry (any severity; only connections and FATAL authentication failures count)."""
        message = entry.message
        if entry.severity == 'LOG':
            connection = CONNECTION.search(message)
            if connection and entry.pid:
                if len(self.hosts_by_pid) >= PL.MAX_PIDS:
                    del self.hosts_by_pid[next(iter(self.hosts_by_pid))]
                self.hosts_by_pid[entry.pid] = connection.group(1)
            return
        if entry.severity != 'FATAL':
            return
        no_hba = NO_HBA.search(message)
        if no_hba:
            self._record(entry.when, no_hba.group(2), no_hba.group(1))
            return
        failed = PASSWORD_FAILED.search(message) or OTHER_AUTH_FAILED.search(message)
        if failed:
            host = entry.client or (self.hosts_by_pid.get(entry.pid) if entry.pid else None)
            self._record(entry.when, failed.group(1), host)

    def _record(self, when, user, address):
        if when is None:
            self.undated += 1
        elif when < self.since:
            return
        user = user.replace('""', '"')
        address = address or 'unknown'
        item = self.addresses.get(address)
        if item is None:
            item = self.addresses[address] = {'address': address, 'failures': 0, 'users': set(), 'first': when,
                                              'last': when}
        item['failures'] += 1
        if len(item['users']) < 100:
            item['users'].add(user)
        if when is not None:
            item['first'] = min(item['first'] or when, when)
            item['last'] = max(item['last'] or when, when)
        self.users[user] = self.users.get(user, 0) + 1

    def merge(self, other):
        for address, theirs in other.addresses.items():
            mine = self.addresses.setdefault(address, {'address': address, 'failures': 0, 'users': set(),
                                                       'first': None, 'last': None})
            mine['failures'] += theirs['failures']
            mine['users'] |= theirs['users']
            for edge, pick in (('first', min), ('last', max)):
                values = [v for v in (mine[edge], theirs[edge]) if v is not None]
                mine[edge] = pick(values) if values else None
        for user, count in other.users.items():
            self.users[user] = self.users.get(user, 0) + count
        self.undated += other.undated

    def by_address(self):
        """[{address, failures, users, first, last}] sorted by failures, most first."""
        rows = []
        for item in self.addresses.values():
            rows.append(dict(item, users=sorted(item['users']),
                             first=item['first'].isoformat() if item['first'] else None,
                             last=item['last'].isoformat() if item['last'] else None))
        return sorted(rows, key=lambda r: (-r['failures'], r['address']))

    def by_user(self):
        return dict(sorted(self.users.items(), key=lambda kv: (-kv[1], kv[0])))


def failed_login_findings(findings, name, rows, hours, lines, unit_text='failed logins'):
    """Judge failures per address with ``findings``' thresholds of ``name``: one finding per address past the
    first limit, else one quiet finding with the worst address."""
    spec = findings.thresholds[name]
    limit = C.first_limit(spec)
    fired = [row for row in rows if limit is not None and row['failures'] > limit]
    for row in fired:
        spray = ' - %d different users tried, a sign of password guessing' % len(row['users']) \
            if len(row['users']) >= 3 else ''
        users = ', '.join(row['users'][:10])
        findings.judge(name, row['failures'], '{value} %s from %s in the last %s h (users: %s)%s; '
                       'block the address or find the misconfigured client' % (unit_text, row['address'], hours, users,
                                                                               spray),
                       obj='address=%s' % row['address'], users=row['users'])
    if not fired:
        top = rows[0] if rows else None
        findings.judge(name, top['failures'] if top else 0,
                       ('at most {value} %s from one address (%s) in the last %s h' % (unit_text, top['address'], hours))
                       if top else 'no %s in the last %s h (%d log lines read)' % (unit_text, hours, lines))


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
