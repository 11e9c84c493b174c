# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_vacuum: VACUUM (ANALYZE, SKIP_LOCKED) the tables whose dead tuples pass a threshold, ANALYZE those
whose statistics are stale, one table at a time.

Figures come from the cumulative statistics (pg_stat_all_tables), which a backend publishes when it
goes idle (at most about a second late). Whether VACUUM or ANALYZE really ran is read from their
counters, so a table that SKIP_LOCKED passed over is reported as postponed, never as done.
"""

from __future__ import annotations

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import maintenance as M
from ansible_collections.appcare.maintenance.plugins.module_utils import schemas as S
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by require_psycopg2()
    sql = None

VACUUM = 'vacuum'
ANALYZE = 'analyze'
VACUUM_FULL = 'vacuum_full'
ORDER = {'requested': 0, 'dead_tuples': 1, 'never_analyzed': 2, 'stale_statistics': 3}

TABLES_SQL = """
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind, c.reltuples::float AS reltuples,
       coalesce(s.n_live_tup, 0) AS live, coalesce(s.n_dead_tup, 0) AS dead,
       coalesce(s.n_mod_since_analyze, 0) AS modified,
       coalesce(s.vacuum_count, 0) AS vacuum_count, coalesce(s.analyze_count, 0) AS analyze_count,
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
       pg_table_size(c.oid) AS size, {privilege} AS can_maintain
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'm', 'p')
  AND (c.oid = ANY(%(explicit)s) OR (n.nspname !~ ALL(%(exclude)s) AND c.relkind <> 'p'))
"""

STATS_SQL = """
SELECT c.oid, coalesce(s.n_live_tup, 0) AS live, coalesce(s.n_dead_tup, 0) AS dead,
       coalesce(s.vacuum_count, 0) AS vacuum_count, coalesce(s.analyze_count, 0) AS analyze_count,
       pg_table_size(c.oid) AS size
FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = %s
"""

OLDEST_XMIN_SQL = """
SELECT pid, application_name, usename, state,
       round(extract(epoch FROM now() - xact_start)::numeric, 1)::float AS seconds
FROM pg_stat_activity WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
ORDER BY age(backend_xmin) DESC LIMIT 1
"""


def dead_share(live, dead):
    total = (live or 0) + (dead or 0)
    return round(100.0 * dead / total, 1) if total and dead else 0.0


def validate(params):
    for name in ('dead_tuple_percent', 'analyze_percent'):
        value = params[name]
        if value is None or not 0 <= value <= 100:
            raise ConfigurationError('%s must be between 0 and 100, got %s' % (name, value))
    for name in ('min_dead_tuples', 'min_modified_rows'):
        if params[name] < 0:
            raise ConfigurationError('%s must be 0 or more, got %s' % (name, params[name]))
    if params['allow_full'] and not params['tables']:
        raise ConfigurationError('allow_full applies only to an explicit tables list (VACUUM FULL locks the '
                                 'table against reads and writes); give tables')


class Vacuumer(M.Worker):
    """Plans (read-only) and then executes VACUUM / ANALYZE for one database."""

    kind = 'pg_vacuum'
    skipped_key = 'skipped_tables'
    object_key = 'table'

    def catalogue(self, explicit):
        query = TABLES_SQL.replace('{privilege}', M.maintain_privilege_sql(self.version, 'c.oid'))
        return self.session.query(query, {'explicit': list(explicit), 'exclude': self.exclude.regexes})

    def plan(self):
        explicit = M.resolve(self.session, self.params['tables'], ('r', 'm', 'p'), 'table')
        rows = self.catalogue(explicit)
        actions, skipped = [], []
        p = self.params
        for row in rows:
            row['dead_percent'] = dead_share(row['live'], row['dead'])
            rows_now = max(row['reltuples'] or 0, row['live'] or 0)
            if row['oid'] in explicit:
                reason, operation = 'requested', VACUUM_FULL if p['allow_full'] else VACUUM
                detail = 'listed in tables'
            elif row['dead'] >= p['min_dead_tuples'] and row['dead_percent'] > p['dead_tuple_percent']:
                reason, operation = 'dead_tuples', VACUUM
                detail = '%s dead tuples, %s%% of the table' % (row['dead'], row['dead_percent'])
            elif row['last_analyze'] is None and row['live'] > 0:
                reason, operation = 'never_analyzed', ANALYZE
                detail = 'never analysed, %s live rows' % row['live']
            elif row['modified'] >= p['min_modified_rows'] and \
                    row['modified'] > rows_now * p['analyze_percent'] / 100.0:
                reason, operation = 'stale_statistics', ANALYZE
                detail = '%s rows modified since the last ANALYZE (%s live rows)' % (row['modified'], row['live'])
            else:
                continue
            why_not = self._why_skip(row)
            if why_not:
                skipped.append({'table': S.qualified(row['schema'], row['name']), 'reason': reason,
                                'skip_reason': why_not})
                continue
            actions.append(self._action(row, reason, operation, detail))
        actions.sort(key=lambda a: (ORDER[a['reason']], -a['dead_tuples_before'], a['table']))
        return actions, skipped

    def _why_skip(self, row):
        if S.is_system(row['schema']):
            return 'system catalog'
        if not row['can_maintain']:
            return ('login role %s may not vacuum it (it needs to own the table%s)'
                    % (self.params['login_user'], ', or have MAINTAIN on it' if self.version >= 170000 else ''))
        return None

    def _action(self, row, reason, operation, detail):
        name = M.identifier(row['schema'], row['name'])
        statement = {
            VACUUM: sql.SQL('VACUUM (ANALYZE, SKIP_LOCKED) {}'),
            ANALYZE: sql.SQL('ANALYZE (SKIP_LOCKED) {}'),
            VACUUM_FULL: sql.SQL('VACUUM (FULL, ANALYZE) {}'),
        }[operation].format(name)
        return {
            'table': S.qualified(row['schema'], row['name']), 'reason': reason, 'detail': detail,
            'operation': operation, 'sql': M.render(self.session, statement),
            'dead_tuples_before': row['dead'], 'dead_tuples_after': None, 'dead_percent_before': row['dead_percent'],
            'size_before': row['size'], 'size_after': None,
            'seconds': None, 'attempts': 0, 'result': M.PLANNED, 'message': '', '_row': row,
        }

    # -- execution --------------------------------------------------------------------------------
    def _stats(self, oid):
        return self.session.one(STATS_SQL, (oid,))

    def run_one(self, action, budget):
        row = action['_row']
        operation = action['operation']

        def attempt(_attempt):
            before = self._stats(row['oid'])
            if operation == VACUUM_FULL:
                rows = M.blockers(self.session, row['oid'], self.params['lock_timeout'], self.our_pids())
                if rows:
                    raise M.LockWait('%s and would make VACUUM FULL wait' % M.describe_blockers(rows))
            self.run_or_wait(action['sql'])
            if operation != VACUUM_FULL and row['relkind'] != 'p':
                after = self._stats(row['oid'])
                counter = 'analyze_count' if operation == ANALYZE else 'vacuum_count'
                if after[counter] <= before[counter]:
                    raise M.LockWait('another session holds a conflicting lock on the table, so SKIP_LOCKED '
                                     'passed it over')
            return True

        outcome = self.retry(action, budget, attempt)
        if outcome is None:
            return
        done, waited = outcome
        after = self._stats(row['oid'])
        action.update(dead_tuples_after=after['dead'], size_after=after['size'])
        if not done:
            action.update(result=M.POSTPONED, message='not done after %d attempt(s): %s' % (action['attempts'], waited))
            return
        verb = {VACUUM: 'vacuumed and analysed', ANALYZE: 'analysed', VACUUM_FULL: 'rewritten (VACUUM FULL)'}[operation]
        message = verb
        if operation != ANALYZE:
            message += ': dead tuples %s -> %s' % (action['dead_tuples_before'], after['dead'])
        if operation == VACUUM_FULL:
            message += ', size %s -> %s' % (C.human_bytes(action['size_before']), C.human_bytes(after['size']))
        action.update(result=M.DONE, message=message)

    def findings(self, actions):
        return final_checks(self.session, actions, self.params, self.exclude)


def final_checks(session, actions, params, exclude):
    """Findings of the run: failures, postponed work, and the highest dead-tuple share left."""
    findings = M.run_findings(actions, 'vacuum_failures', 'vacuum_postponed', 'table action(s)', 'table')
    rows = session.query(
        "SELECT schemaname AS schema, relname AS name, n_live_tup AS live, n_dead_tup AS dead "
        "FROM pg_stat_user_tables WHERE n_dead_tup >= %s AND schemaname !~ ALL(%s)",
        (max(1, params['min_dead_tuples']), exclude.regexes))
    worst, worst_row = 0.0, None
    for row in rows:
        share = dead_share(row['live'], row['dead'])
        if share > worst:
            worst, worst_row = share, row
    if worst_row is None:
        message = 'no table has %s or more dead tuples' % params['min_dead_tuples']
        obj = 'db=%s' % params['login_db']
    else:
        obj = S.qualified(worst_row['schema'], worst_row['name'])
        message = '{value}%% of the rows of %s are dead (%s dead tuples)' % (obj, worst_row['dead'])
        if worst > params['dead_tuple_percent']:
            holder = session.one(OLDEST_XMIN_SQL)
            if holder:
                message += ('; the oldest open transaction (pid %s, application %r, user %s, %s, open %s s) keeps '
                            'VACUUM from removing them' % (holder['pid'], holder['application_name'],
                                                           holder['usename'], holder['state'], holder['seconds']))
    findings.append(C.evaluate('dead_tuples', worst, warning=params['dead_tuple_percent'], unit='percent',
                               obj=obj, message=message))
    return findings
