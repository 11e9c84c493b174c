# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daily database health check behind ``pg_health_info``.

All checks share one session and as few round trips as possible: the activity-based checks read
``pg_stat_activity`` once, the statistics checks read ``pg_stat_database`` once. A check whose query
fails (a missing privilege, an old server) becomes ``unknown`` with the reason; the others go on.
"""

from __future__ import annotations

import time

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import indexes as IX
from ansible_collections.appcare.maintenance.plugins.module_utils import statements as ST
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConnectionFailure, QueryError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import db_error_text
from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import SchemaFilter, qualified

try:
    import psycopg2
except ImportError:  # pragma: no cover - reported by postgres.require_psycopg2()
    psycopg2 = None

MB = 1024 * 1024
GB = 1024 * MB
XID_WRAP_LIMIT = 2 ** 31 - 1

# name -> default thresholds, direction and unit. Checks absent here are judged by condition only.
DEFAULT_THRESHOLDS = {
    'database_connection': {'warning': 250, 'critical': 1000, 'direction': C.ABOVE, 'unit': 'ms'},
    'connections_used': {'warning': 80, 'critical': 95, 'direction': C.ABOVE, 'unit': 'percent'},
    'long_running_queries': {'warning': 60, 'critical': 300, 'direction': C.ABOVE, 'unit': 'seconds'},
    'idle_in_transaction': {'warning': 60, 'critical': 600, 'direction': C.ABOVE, 'unit': 'seconds'},
    'blocked_sessions': {'warning': 10, 'critical': 60, 'direction': C.ABOVE, 'unit': 'seconds'},
    'cache_hit_ratio': {'warning': 95, 'critical': 90, 'direction': C.BELOW, 'unit': 'percent'},
    'database_size': {'warning': 85, 'critical': 95, 'direction': C.ABOVE, 'unit': 'percent'},
    'xid_wraparound': {'warning': 50, 'critical': 75, 'direction': C.ABOVE, 'unit': 'percent'},
    'sequence_exhaustion': {'warning': 75, 'critical': 90, 'direction': C.ABOVE, 'unit': 'percent'},
    'replication_lag': {'warning': 64 * MB, 'critical': 1 * GB, 'direction': C.ABOVE, 'unit': 'bytes'},
    'replication_slots': {'warning': 1 * GB, 'critical': 10 * GB, 'direction': C.ABOVE, 'unit': 'bytes'},
    'invalid_indexes': {'warning': 0, 'critical': None, 'direction': C.ABOVE, 'unit': 'count'},
    'data_checksum_failures': {'warning': None, 'critical': 0, 'direction': C.ABOVE, 'unit': 'count'},
    'slow_queries': {'warning': 2000, 'critical': None, 'direction': C.ABOVE, 'unit': 'ms'},
}

# Threshold names of earlier releases (the findings were renamed): accepted with a deprecation.
RENAMED_THRESHOLDS = {'connection': 'database_connection', 'checksum_failures': 'data_checksum_failures'}

ALL_CHECKS = [
    'database_connection', 'connections_used', 'long_running_queries', 'idle_in_transaction', 'blocked_sessions',
    'cache_hit_ratio', 'database_size', 'xid_wraparound', 'sequence_exhaustion', 'replication_lag',
    'replication_slots', 'wal_archiver', 'invalid_indexes', 'data_checksum_failures', 'slow_queries',
]

ACTIVITY_CHECKS = ('connections_used', 'long_running_queries', 'idle_in_transaction', 'blocked_sessions')
STATS_CHECKS = ('cache_hit_ratio', 'data_checksum_failures')

MISSING_STATS_PRIVILEGE = ('role %s cannot see other roles\' sessions: grant it pg_monitor '
                           '(or pg_read_all_stats) to check this')

TYPE_MAX = {'smallint': 2 ** 15 - 1, 'integer': 2 ** 31 - 1, 'bigint': 2 ** 63 - 1}
TYPE_MIN = {'smallint': -2 ** 15, 'integer': -2 ** 31, 'bigint': -2 ** 63}

SERVER_SQL = """
SELECT current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int AS server_version_num,
       extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime_seconds,
       pg_is_in_recovery() AS in_recovery,
       current_database() AS database,
       current_user AS role,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved_connections,
       coalesce(current_setting('reserved_connections', true), '0')::int AS reserved_connections,
       current_setting('data_checksums') = 'on' AS data_checksums,
       current_setting('archive_mode') AS archive_mode,
       r.rolsuper AS is_superuser,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats,
       pg_database_size(current_database()) AS database_size_bytes,
       (SELECT json_agg(json_build_object(
                 'name', d.datname,
                 'size_bytes', CASE WHEN has_database_privilege(d.oid, 'CONNECT')
                                      OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
                               THEN pg_database_size(d.oid) END,
                 'xid_age', age(d.datfrozenxid))
               ORDER BY d.datname)
          FROM pg_database d WHERE d.datallowconn) AS databases
  FROM pg_roles r WHERE r.rolname = current_user
"""

# {lock_wait}: how long a session has waited for its lock; pg_locks.waitstart exists from PostgreSQL 14.
ACTIVITY_SQL = """
SELECT a.pid, a.usename, a.datname, a.state, a.backend_type, a.application_name,
       host(a.client_addr) AS client_addr,
       extract(epoch FROM now() - a.query_start)::float8 AS query_seconds,
       extract(epoch FROM now() - a.state_change)::float8 AS state_seconds,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END AS blocking_pids,
       CASE WHEN a.wait_event_type = 'Lock' THEN {lock_wait} END AS wait_seconds,
       left(a.query, 200) AS query
  FROM pg_stat_activity a
 WHERE a.pid <> pg_backend_pid()
"""
LOCK_WAIT_14 = ('(SELECT extract(epoch FROM now() - min(l.waitstart))::float8 FROM pg_locks l '
                'WHERE l.pid = a.pid AND NOT l.granted)')
LOCK_WAIT_13 = 'extract(epoch FROM now() - a.state_change)::float8'

STATS_SQL = """
SELECT sum(blks_hit) FILTER (WHERE datname = current_database())::float8 AS blks_hit,
       sum(blks_read) FILTER (WHERE datname = current_database())::float8 AS blks_read,
       sum(checksum_failures)::bigint AS checksum_failures,
       max(checksum_last_failure) AS checksum_last_failure,
       (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS stats_reset
  FROM pg_stat_database
"""

SEQUENCES_SQL = """
SELECT s.schemaname, s.sequencename, s.last_value, s.min_value, s.max_value, s.increment_by, s.cycle,
       has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable,
       col.column_type, col.column_name
  FROM pg_sequences s
  JOIN pg_namespace n ON n.nspname = s.schemaname
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
  LEFT JOIN LATERAL (
        SELECT format_type(a.atttypid, NULL) AS column_type,
               format('%%I.%%I.%%I', tn.nspname, t.relname, a.attname) AS column_name
          FROM pg_depend d
          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
          JOIN pg_class t ON t.oid = a.attrelid
          JOIN pg_namespace tn ON tn.oid = t.relnamespace
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
           AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
         LIMIT 1) col ON true
 WHERE s.schemaname !~ ALL(%s)
"""

REPLICATION_PRIMARY_SQL = """
SELECT application_name, client_addr::text AS client_addr, state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS lag_bytes,
       extract(epoch FROM replay_lag)::float8 AS replay_lag_seconds
  FROM pg_stat_replication
"""

REPLICATION_STANDBY_SQL = """
SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 AS lag_bytes,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS replay_age_seconds,
       (SELECT status FROM pg_stat_wal_receiver) AS receiver_status
"""

SLOTS_SQL = """
SELECT slot_name, slot_type, active, wal_status,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                            ELSE pg_current_wal_lsn() END, restart_lsn)::float8 AS retained_bytes
  FROM pg_replication_slots
"""

ARCHIVER_SQL = """
SELECT archived_count, failed_count, last_archived_wal, last_archived_time::text AS last_archived_time,
       last_failed_wal, last_failed_time::text AS last_failed_time,
       (last_failed_time IS NOT NULL
        AND (last_archived_time IS NULL OR last_failed_time > last_archived_time)) AS failing
  FROM pg_stat_archiver
"""


def _one_line(text):
    return ' '.join((text or '').split())


def _seconds(value):
    return round(value, 1) if value is not None else None


class HealthCheck(object):
    """Runs the selected checks on an open ``Session``."""

    def __init__(self, session, thresholds, exclude_schemas, size_quota=None):
        self.session = session
        self.thresholds = thresholds
        self.exclude = SchemaFilter(exclude_schemas)
        self.size_quota = size_quota
        self.server = None
        self._activity = None
        self._stats = None

    # -- helpers ---------------------------------------------------------------------------------
    def _judge(self, name, value, message, obj=None, **extra):
        return C.judge(self.thresholds, name, value, message, obj, **extra)

    def _unknown(self, name, message, obj=None):
        return C.unknown(self.thresholds, name, message, obj)

    def _obj(self):
        return 'db=%s' % self.server['database']

    @property
    def can_see_all_sessions(self):
        return bool(self.server['is_superuser'] or self.server['read_all_stats'])

    # -- entry point -----------------------------------------------------------------------------
    def run(self, selected):
        """Return the findings of the selected checks, in the order of ``ALL_CHECKS``."""
        try:
            started = time.monotonic()
            self.session.one('SELECT 1')
            latency_ms = (time.monotonic() - started) * 1000.0
            self.server = self.session.one(SERVER_SQL)
        except psycopg2.Error as exc:
            raise QueryError('cannot read the server state: %s' % db_error_text(exc)) from exc
        results = []
        for name in ALL_CHECKS:
            if name not in selected:
                continue
            if name == 'database_connection':
                results.append(self.check_database_connection(latency_ms))
                continue
            try:
                results.append(getattr(self, 'check_' + name)())
            except psycopg2.Error as exc:
                if self.session.conn.closed:
                    # The server went away mid-run: the remaining findings would all be noise.
                    raise ConnectionFailure('connection lost during the %s check: %s' % (name, db_error_text(exc))) from exc
                results.append(self._unknown(name, 'could not check %s as role %s: %s'
                                             % (name, self.server['role'], db_error_text(exc)), self._obj()))
            except Exception as exc:  # pylint: disable=broad-except
                # A surprise in one check (an odd catalog value) must not cost the user the others.
                results.append(self._unknown(name, 'could not check %s: %s: %s'
                                             % (name, type(exc).__name__, exc), self._obj()))
        return results

    def facts(self):
        s = self.server
        return {
            'version': s['server_version'],
            'version_num': s['server_version_num'],
            'uptime_seconds': _seconds(s['uptime_seconds']),
            'in_recovery': s['in_recovery'],
            'data_checksums': s['data_checksums'],
            'database': s['database'],
            'role': s['role'],
            'max_connections': s['max_connections'],
        }

    def databases(self):
        return self.server['databases'] or []

    # -- shared reads ----------------------------------------------------------------------------
    def activity(self):
        if self._activity is None:
            lock_wait = LOCK_WAIT_14 if self.server['server_version_num'] >= 140000 else LOCK_WAIT_13
            self._activity = self.session.query(ACTIVITY_SQL.format(lock_wait=lock_wait))
        return self._activity

    def stats(self):
        if self._stats is None:
            self._stats = self.session.one(STATS_SQL)
        return self._stats

    def _client_sessions(self):
        # Without pg_read_all_stats, other roles' sessions show with most columns NULL (backend_type too);
        # a row with a role name but no backend type is such a hidden client session.
        return [row for row in self.activity() if row['backend_type'] == 'client backend'
                or (row['backend_type'] is None and row['usename'] is not None)]

    # -- the checks ------------------------------------------------------------------------------
    def check_database_connection(self, latency_ms):
        return self._judge('database_connection', round(latency_ms, 2),
                           'connected in %.0f ms; round trip {value} ms' % (self.session.connect_seconds * 1000.0),
                           obj=self._obj())

    def check_connections_used(self):
        s = self.server
        usable = s['max_connections'] - s['superuser_reserved_connections'] - s['reserved_connections']
        in_use = len(self._client_sessions()) + 1  # this session counts too
        pct = round(100.0 * in_use / max(usable, 1), 1)
        return self._judge('connections_used', pct,
                           '{value}%% of usable connections in use (%d of %d; max_connections %d minus %d reserved)'
                           % (in_use, usable, s['max_connections'], s['max_connections'] - usable),
                           obj='server', in_use=in_use, usable=usable)

    def _session_check(self, name, state, what):
        if not self.can_see_all_sessions:
            return self._unknown(name, MISSING_STATS_PRIVILEGE % self.server['role'], obj='server')
        rows = [r for r in self._client_sessions() if (r['state'] or '').startswith(state)]
        seconds_key = 'query_seconds' if state == 'active' else 'state_seconds'
        rows.sort(key=lambda r: r[seconds_key] or 0, reverse=True)
        if not rows:
            return self._judge(name, 0.0, 'no %s sessions' % what, obj='server')
        top = rows[0]
        spec = self.thresholds[name]
        limit = spec.get('warning') if spec.get('warning') is not None else spec.get('critical')
        over = [r for r in rows if limit is not None and (r[seconds_key] or 0) > limit]
        sessions = [dict(_who(r), seconds=_seconds(r[seconds_key]), query=_one_line(r['query'])) for r in rows[:10]]
        return self._judge(
            name, _seconds(top[seconds_key]),
            'longest %s session: pid %s (user %s, db %s) for {value} s; %d session(s) over the warning threshold'
            % (what, top['pid'], top['usename'], top['datname'], len(over)),
            obj='pid=%s' % top['pid'], sessions=sessions)

    def check_long_running_queries(self):
        return self._session_check('long_running_queries', 'active', 'active')

    def check_idle_in_transaction(self):
        return self._session_check('idle_in_transaction', 'idle in transaction', 'idle-in-transaction')

    def check_blocked_sessions(self):
        if not self.can_see_all_sessions:
            return self._unknown('blocked_sessions', MISSING_STATS_PRIVILEGE % self.server['role'], obj='server')
        blocked = [r for r in self.activity() if r['blocking_pids']]
        if not blocked:
            return self._judge('blocked_sessions', 0.0, 'no session is waiting on a lock held by another',
                               obj='server')
        blocked.sort(key=lambda r: r['wait_seconds'] or 0, reverse=True)
        top = blocked[0]
        sessions = [dict(_who(r), blocked_by=list(r['blocking_pids']), seconds=_seconds(r['wait_seconds']),
                         query=_one_line(r['query'])) for r in blocked[:10]]
        by_pid = dict((r['pid'], r) for r in self.activity())
        # Who holds the locks: the blocking sessions as pg_stat_activity shows them (no query text of theirs).
        blockers = [dict(_who(by_pid[p]), state=by_pid[p]['state']) if p in by_pid else {'pid': p}
                    for p in sorted({p for r in blocked[:10] for p in r['blocking_pids']})]
        return self._judge(
            'blocked_sessions', _seconds(top['wait_seconds'] or 0.0),
            '%d session(s) waiting on locks; pid %s (db %s) blocked by pid %s for {value} s'
            % (len(blocked), top['pid'], top['datname'], ', '.join(str(p) for p in top['blocking_pids'])),
            obj='pid=%s' % top['pid'], sessions=sessions, blockers=blockers,
            blocking_pids=sorted({p for r in blocked for p in r['blocking_pids']}))

    def check_cache_hit_ratio(self):
        st = self.stats()
        hit, read = st['blks_hit'] or 0.0, st['blks_read'] or 0.0
        if hit + read == 0:
            return C.finding('cache_hit_ratio', C.OK, 'no block reads yet in this database', unit='percent',
                             warning=self.thresholds['cache_hit_ratio']['warning'],
                             critical=self.thresholds['cache_hit_ratio']['critical'], obj=self._obj())
        ratio = round(100.0 * hit / (hit + read), 2)
        return self._judge('cache_hit_ratio', ratio,
                           'cache hit ratio {value}%% (%d of %d block reads served from shared buffers)'
                           % (hit, hit + read), obj=self._obj())

    def check_database_size(self):
        size = self.server['database_size_bytes']
        if not self.size_quota:
            return C.finding('database_size', C.OK, 'database size %s (no size_quota set)' % C.human_bytes(size),
                             value=size, unit='bytes', obj=self._obj())
        pct = round(100.0 * size / self.size_quota, 1)
        return self._judge('database_size', pct, 'database uses {value}%% of its quota (%s of %s)'
                           % (C.human_bytes(size), C.human_bytes(self.size_quota)), obj=self._obj(), size_bytes=size,
                           quota_bytes=self.size_quota)

    def check_xid_wraparound(self):
        dbs = [d for d in self.databases() if d.get('xid_age') is not None]
        top = max(dbs, key=lambda d: d['xid_age'])
        pct = round(100.0 * top['xid_age'] / XID_WRAP_LIMIT, 6)
        return self._judge('xid_wraparound', pct,
                           'oldest unfrozen transaction ID is %d transactions old in database %s: {value}%% of the '
                           'way to wraparound' % (top['xid_age'], top['name']), obj='db=%s' % top['name'])

    def check_sequence_exhaustion(self):
        rows = self.session.query(SEQUENCES_SQL, (self.exclude.regexes,))
        measured, unreadable = [], []
        for row in rows:
            if not row['readable']:
                unreadable.append(qualified(row['schemaname'], row['sequencename']))
                continue
            if row['cycle'] or row['last_value'] is None:
                continue  # cycling sequences never run out; unused ones have used nothing
            measured.append(_sequence_usage(row))
        note = ''
        if unreadable:
            note = '; %d sequence(s) not readable by role %s (grant SELECT or USAGE on them): %s' % (
                len(unreadable), self.server['role'], ', '.join(unreadable[:5]))
        if not measured:
            if unreadable:
                return self._unknown('sequence_exhaustion', 'no sequence could be measured' + note, self._obj())
            return self._judge('sequence_exhaustion', 0.0, 'no used sequences', obj=self._obj())
        measured.sort(key=lambda m: m['percent'], reverse=True)
        top = measured[0]
        return self._judge('sequence_exhaustion', top['percent'],
                           'sequence %s has used {value}%% of its range%s%s'
                           % (top['sequence'], '' if top['limit'] == 'sequence range' else ' (%s)' % top['limit'], note),
                           obj='sequence=%s' % top['sequence'], sequences=measured[:5])

    def check_replication_lag(self):
        if self.server['in_recovery']:
            row = self.session.one(REPLICATION_STANDBY_SQL)
            lag = row['lag_bytes']
            if row['receiver_status'] != 'streaming':
                spec = self.thresholds['replication_lag']
                return C.finding('replication_lag', C.CRITICAL, 'this standby is not streaming from its primary '
                                 '(WAL receiver: %s); it falls further behind until it reconnects'
                                 % (row['receiver_status'] or 'not running'), value=lag, unit='bytes',
                                 warning=spec['warning'], critical=spec['critical'], obj='standby')
            if lag is None:
                return self._unknown('replication_lag', 'standby is not receiving WAL by streaming', 'standby')
            return self._judge('replication_lag', lag, 'this standby has {value} bytes of received WAL not yet '
                               'replayed (last replayed transaction %s s ago)' % _seconds(row['replay_age_seconds']),
                               obj='standby')
        rows = self.session.query(REPLICATION_PRIMARY_SQL)
        if not rows:
            return C.finding('replication_lag', C.OK, 'no streaming standbys connected', unit='bytes',
                             warning=self.thresholds['replication_lag']['warning'],
                             critical=self.thresholds['replication_lag']['critical'], obj='server')
        if any(r['lag_bytes'] is None for r in rows) and not self.can_see_all_sessions:
            return self._unknown('replication_lag', 'role %s cannot read standby positions in pg_stat_replication: '
                                 'grant it pg_monitor' % self.server['role'], 'server')
        rows.sort(key=lambda r: r['lag_bytes'] or 0, reverse=True)
        top = rows[0]
        return self._judge('replication_lag', top['lag_bytes'] or 0.0,
                           'standby %s (%s, %s) replays {value} bytes behind (replay lag %s s)'
                           % (top['application_name'], top['client_addr'], top['state'],
                              _seconds(top['replay_lag_seconds'])),
                           obj='standby=%s' % top['application_name'],
                           standbys=rows)

    def check_replication_slots(self):
        rows = self.session.query(SLOTS_SQL)
        lost = [r['slot_name'] for r in rows if r['wal_status'] == 'lost']
        inactive = [r for r in rows if not r['active']]
        spec = self.thresholds['replication_slots']
        if lost:
            return C.finding('replication_slots', C.CRITICAL,
                             'replication slot(s) %s lost required WAL: their consumers must be re-synchronised'
                             % ', '.join(lost), unit='bytes', warning=spec['warning'], critical=spec['critical'],
                             obj='slot=%s' % lost[0], slots=rows)
        if not inactive:
            return C.finding('replication_slots', C.OK, '%d replication slot(s), none inactive' % len(rows),
                             value=0.0, unit='bytes', warning=spec['warning'], critical=spec['critical'],
                             obj='server', slots=rows)
        inactive.sort(key=lambda r: r['retained_bytes'] or 0, reverse=True)
        top = inactive[0]
        return self._judge('replication_slots', top['retained_bytes'] or 0.0,
                           'inactive %s slot %s retains {value} bytes of WAL (%s); %d inactive slot(s) in all'
                           % (top['slot_type'], top['slot_name'], C.human_bytes(top['retained_bytes']), len(inactive)),
                           obj='slot=%s' % top['slot_name'], slots=rows)

    def check_wal_archiver(self):
        if self.server['archive_mode'] == 'off':
            return C.finding('wal_archiver', C.OK, 'WAL archiving is off', obj='server')
        row = self.session.one(ARCHIVER_SQL)
        if row['failing']:
            return C.finding('wal_archiver', C.CRITICAL,
                             'WAL archiving is failing: last failure on %s at %s, last success %s (%d failures since '
                             'statistics reset); check archive_command and the archive destination'
                             % (row['last_failed_wal'], row['last_failed_time'], row['last_archived_time'] or 'never',
                                row['failed_count']),
                             value=row['failed_count'], unit='count', obj='server', archiver=row)
        return C.finding('wal_archiver', C.OK, 'WAL archiving works: %d segments archived, last %s at %s'
                         % (row['archived_count'], row['last_archived_wal'], row['last_archived_time']),
                         value=row['failed_count'], unit='count', obj='server', archiver=row)

    def check_invalid_indexes(self):
        rows = IX.invalid_indexes(self.session, self.exclude.regexes)
        if not rows:
            return self._judge('invalid_indexes', 0, 'no invalid indexes', obj=self._obj())
        return self._judge('invalid_indexes', len(rows),
                           '{value} invalid index(es), still maintained on every write but never used: %s; rebuild '
                           'with REINDEX INDEX CONCURRENTLY or drop them' % ', '.join(r['index'] for r in rows[:10]),
                           obj='index=%s' % rows[0]['index'],
                           indexes=[dict((k, r[k]) for k in ('index', 'table', 'cause')) for r in rows])

    def check_data_checksum_failures(self):
        if not self.server['data_checksums']:
            # Off is the default before PostgreSQL 18: reporting "unknown" would mask real unknowns forever.
            spec = self.thresholds['data_checksum_failures']
            return C.finding('data_checksum_failures', C.OK, 'data checksums are disabled on this cluster, so page '
                             'corruption cannot be detected (enable them with pg_checksums while it is stopped)',
                             unit='count', warning=spec['warning'], critical=spec['critical'], obj='server',
                             data_checksums=False)
        st = self.stats()
        failures = st['checksum_failures'] or 0
        return self._judge('data_checksum_failures', failures,
                           '{value} data checksum failure(s) since statistics reset%s' % (
                               ', last at %s' % st['checksum_last_failure'] if failures else ''),
                           obj='server')

    def check_slow_queries(self):
        ext = ST.locate(self.session)
        if ext is None:
            return self._unknown('slow_queries', 'pg_stat_statements is not installed in database %s: add it to '
                                 'shared_preload_libraries and run CREATE EXTENSION pg_stat_statements'
                                 % self.server['database'], self._obj())
        rows = ST.top(self.session, ext, 'mean', 5)
        if not rows:
            return self._judge('slow_queries', 0.0, 'no statements recorded yet', obj=self._obj())
        spec = self.thresholds['slow_queries']
        limit = spec['warning'] if spec['warning'] is not None else spec['critical']
        slow = [r for r in rows if limit is not None and r['mean_ms'] > limit]
        top = rows[0]
        return self._judge('slow_queries', top['mean_ms'],
                           'slowest statement averages {value} ms over %d call(s); %d of the top %d over the warning '
                           'threshold: %s' % (top['calls'], len(slow), len(rows), top['query'][:200]),
                           obj='queryid=%s' % top['queryid'], statements=rows)


def _who(row):
    """Who a session is, for the person on call: pid, role, database, application_name and client address (None for
    a Unix socket or a session the role may not see)."""
    return {'pid': row['pid'], 'user': row['usename'], 'database': row['datname'],
            'application_name': row['application_name'] or None, 'client_addr': row.get('client_addr')}


def _sequence_usage(row):
    """Share of a sequence's usable range already consumed, bounded by the owning column's type."""
    maximum, minimum = row['max_value'], row['min_value']
    column_type = row.get('column_type')
    limit = 'sequence range'
    if column_type in TYPE_MAX:
        if TYPE_MAX[column_type] < maximum:
            maximum, limit = TYPE_MAX[column_type], 'bounded by %s column %s' % (column_type, row['column_name'])
        if TYPE_MIN[column_type] > minimum:
            minimum = TYPE_MIN[column_type]
    span = float(maximum - minimum) or 1.0
    if row['increment_by'] > 0:
        used = (row['last_value'] - minimum) / span
    else:
        used = (maximum - row['last_value']) / span
    name = qualified(row['schemaname'], row['sequencename'])
    return {'sequence': name, 'percent': round(100.0 * used, 2), 'last_value': row['last_value'],
            'max_value': maximum if row['increment_by'] > 0 else minimum, 'limit': limit}
