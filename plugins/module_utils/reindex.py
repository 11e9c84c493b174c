# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_reindex: find the indexes worth rebuilding and rebuild them one at a time with
REINDEX INDEX CONCURRENTLY, cleaning what a failed rebuild leaves behind.

A failed REINDEX CONCURRENTLY leaves an invalid ``<name>_ccnew[N]`` index (before the swap) or a
``<name>_ccold[N]`` one (after it) that PostgreSQL still maintains on every write; they are dropped. The drop
waits for the same lockers as the rebuild, so a copy whose drop times out is retried within the run's budget
(``cleanup_window``); one still there after that is named in the result and dropped by the next run.
"""

from __future__ import annotations

import time

from ansible_collections.appcare.maintenance.plugins.module_utils import bloat as BL
from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import indexes as IX
from ansible_collections.appcare.maintenance.plugins.module_utils import maintenance as M
from ansible_collections.appcare.maintenance.plugins.module_utils import schemas as S
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import db_error_text

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by require_psycopg2()
    psycopg2 = None
    sql = None

BLOAT_METHODS = ('estimate', 'pgstattuple')
ORDER = {'leftover': 0, 'invalid': 1, 'requested': 2, 'bloat': 3}
BACKOFF_CEILING = 60.0  # seconds: the longest pause between two tries to drop a failed rebuild's copy
EARLIER = 'leftover of an earlier failed REINDEX CONCURRENTLY run'

INDEXES_SQL = """
SELECT i.indexrelid AS oid, n.nspname AS schema, ic.relname AS name, i.indrelid AS table_oid,
       t.relname AS table_name, ic.relkind, am.amname AS method, i.indisvalid AS valid,
       pg_relation_size(i.indexrelid) AS size, ic.reltuples::float AS reltuples,
       t.reltuples::float AS table_reltuples, ic.reloptions, pg_get_indexdef(i.indexrelid) AS definition,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype = 'x') AS exclusion,
       EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.relid = i.indrelid
               AND p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())) AS building,
       {privilege} AS can_maintain,
       (pg_has_role(ic.relowner, 'USAGE') OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)) AS can_drop
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_am am ON am.oid = ic.relam
WHERE i.indexrelid = ANY(%(explicit)s) OR n.nspname !~ ALL(%(system)s)
"""

LEAF_PARTITIONS_SQL = "SELECT relid::oid AS oid FROM pg_partition_tree(%s::oid::regclass) WHERE isleaf"


def _shape(definition):
    # "CREATE [UNIQUE] INDEX name ON tbl USING ..." -> what the index is, without its name.
    head, _sep, tail = definition.partition(' ON ')
    return ('UNIQUE' in head.split(' INDEX ', 1)[0], tail)


def is_leftover(ix, siblings):
    """A ``_ccnew``/``_ccold`` index REINDEX CONCURRENTLY left behind: invalid, or a valid exact
    duplicate of another valid index of the table (a failure between the swap and the drop)."""
    if ix['relkind'] != 'i' or not IX.is_copy_name(ix['name']):
        return False
    if not ix['valid']:
        return True
    shape = _shape(ix['definition'])
    return any(other['oid'] != ix['oid'] and other['valid'] and not IX.is_copy_name(other['name'])
               and _shape(other['definition']) == shape for other in siblings)


def cleanup_window(params, budget):
    """Seconds a failed rebuild may go on trying to drop the copy it left: what is left of the time budget
    (``max_duration``), at most ``operation_timeout``; None when neither is limited (then the drop is retried
    ``lock_retries`` times, like the rebuild)."""
    limits = [s for s in (budget.remaining(), params['operation_timeout'] or None) if s is not None]
    return min(limits) if limits else None


def validate(params):
    """pg_reindex's own options, before anything connects."""
    C.parse_size(params['min_index_size'], 'min_index_size')
    if not 0 <= params['min_bloat_percent'] <= 100:
        raise ConfigurationError('min_bloat_percent must be between 0 and 100, got %s' % params['min_bloat_percent'])


class CopyLeft(Exception):
    """A failed rebuild left a copy that could not be dropped: no further attempt (it would leave another)."""

    def __init__(self, failure):
        super().__init__(str(failure))
        self.failure = failure


class Reindexer(M.Worker):
    """Plans (read-only) and then executes the rebuilds of one database."""

    kind = 'pg_reindex'
    skipped_key = 'skipped_indexes'
    object_key = 'index'

    def __init__(self, session, params, server_version_num):
        super().__init__(session, params, server_version_num)
        self.min_index_size = C.parse_size(params['min_index_size'], 'min_index_size') or 0
        self.fates = {}  # copies this run could not drop: {name: (index rebuilt, who drops it)}

    # -- planning ---------------------------------------------------------------------------------
    def catalogue(self, explicit):
        query = INDEXES_SQL.replace('{privilege}', M.maintain_privilege_sql(self.version, 'i.indrelid'))
        return self.session.query(query, {'explicit': list(explicit), 'system': S.SchemaFilter([]).regexes})

    def plan(self):
        """Return ``(actions, skipped)``: actions in execution order, each with its SQL."""
        explicit = M.resolve(self.session, self.params['indexes'], ('i', 'I'), 'index')
        rows = self.catalogue(explicit)
        by_oid = dict((row['oid'], row) for row in rows)
        by_table = {}
        for row in rows:
            by_table.setdefault(row['table_oid'], []).append(row)
        skipped = []
        requested = {}
        for oid, text in explicit.items():
            row = by_oid[oid]
            if row['relkind'] == 'I':
                leaves = [r['oid'] for r in self.session.query(LEAF_PARTITIONS_SQL, (oid,))]
                skipped.append(self._skip(row, 'requested', 'partitioned index: its %d partition index(es) are '
                                          'rebuilt one by one' % len(leaves)))
                extra = [leaf for leaf in leaves if leaf not in by_oid]
                if extra:
                    for leaf_row in self.catalogue(extra):
                        by_oid[leaf_row['oid']] = leaf_row
                for leaf in leaves:
                    requested.setdefault(leaf, 'requested (partition of %s)' % text)
            else:
                requested[oid] = 'requested'

        candidates = []
        for row in by_oid.values():
            reason = None
            if is_leftover(row, by_table.get(row['table_oid'], [])):
                reason = 'leftover'
            elif not row['valid']:
                reason = 'invalid'
            elif row['oid'] in requested:
                reason = 'requested'
            if reason:
                candidates.append((row, reason))

        bloat_rows = [row for row in by_oid.values()
                      if row['valid'] and row['relkind'] == 'i' and row['method'] == 'btree'
                      and row['size'] >= self.min_index_size and not self.exclude.excludes(row['schema'])
                      and not is_leftover(row, by_table.get(row['table_oid'], []))]
        self._measure_bloat(bloat_rows + [row for row, reason in candidates if reason == 'requested'
                                          and row not in bloat_rows and row['method'] == 'btree'])
        chosen = set(row['oid'] for row, _reason in candidates)
        for row in bloat_rows:
            if row['oid'] not in chosen and row.get('bloat_percent') is not None \
                    and row['bloat_percent'] > self.params['min_bloat_percent']:
                candidates.append((row, 'bloat'))

        actions = []
        for row, reason in candidates:
            why_not = self._why_skip(row, reason, row['oid'] in requested)
            if why_not:
                skipped.append(self._skip(row, reason, why_not))
                continue
            actions.append(self._action(row, reason, requested.get(row['oid'])))
        actions.sort(key=lambda a: (ORDER[a['reason']], -(a.get('bloat_bytes') or 0), a['index']))
        return actions, skipped

    def _measure_bloat(self, rows):
        if not rows:
            return
        method = self.params['bloat_method']
        if method == 'pgstattuple':
            schema = BL.pgstattuple_schema(self.session)
            if schema is None:
                self.notes.append('bloat_method=pgstattuple: the pgstattuple extension is not installed in '
                                  'database %s; bloat was estimated from statistics instead' % self.params['login_db'])
            else:
                try:
                    BL.measure_indexes(self.session, rows, schema)
                    return
                except psycopg2.Error as exc:
                    self.notes.append('bloat_method=pgstattuple failed (%s); bloat was estimated from statistics '
                                      'instead' % db_error_text(exc, 'statement_timeout'))
        BL.estimate_indexes(self.session, rows)

    def _why_skip(self, row, reason, explicit):
        if S.is_system(row['schema']):
            return 'system catalog index'
        if self.exclude.excludes(row['schema']) and not explicit:
            return 'schema %s is excluded (exclude_schemas)' % row['schema']
        if row['relkind'] == 'I':
            return ('partitioned index: REINDEX cannot make it valid; attach a valid index of every partition '
                    '(ALTER INDEX ... ATTACH PARTITION)' if not row['valid'] else
                    'partitioned index: its partitions are rebuilt one by one')
        if row['exclusion'] and reason != 'leftover':
            return 'exclusion-constraint index: REINDEX CONCURRENTLY does not support it (a plain REINDEX would ' \
                   'block writes)'
        if row['building']:
            return 'an index is being built on table %s right now' % S.qualified(row['schema'], row['table_name'])
        if reason == 'leftover' and not row['can_drop']:
            return ('login role %s may not drop it: only the owner of table %s (or a superuser) can drop an index'
                    % (self.params['login_user'], S.qualified(row['schema'], row['table_name'])))
        if not row['can_maintain']:
            return ('login role %s may not rebuild it (it needs to own table %s%s)'
                    % (self.params['login_user'], S.qualified(row['schema'], row['table_name']),
                       ', or have MAINTAIN on it' if self.version >= 170000 else ''))
        if reason == 'invalid' and not row['can_drop']:
            # MAINTAIN allows REINDEX but not DROP INDEX: a failed rebuild of an invalid index (a unique index
            # over duplicate rows fails again) would leave an invalid _ccnew copy this role cannot remove.
            return ('login role %s may rebuild but not drop indexes of table %s: rebuilding an invalid index can fail '
                    'again and leave a copy only the owner can drop; rebuild it logged in as the owner'
                    % (self.params['login_user'], S.qualified(row['schema'], row['table_name'])))
        return None

    def _skip(self, row, reason, why):
        return {'index': S.qualified(row['schema'], row['name']),
                'table': S.qualified(row['schema'], row['table_name']), 'reason': reason, 'skip_reason': why}

    def _action(self, row, reason, requested_as):
        name = M.identifier(row['schema'], row['name'])
        if reason == 'leftover':
            statement = sql.SQL('DROP INDEX CONCURRENTLY IF EXISTS {}').format(name)
            state = 'invalid' if not row['valid'] else 'duplicate of a valid index'
            detail = 'left behind by an earlier failed REINDEX CONCURRENTLY (%s)' % state
        else:
            statement = sql.SQL('REINDEX INDEX CONCURRENTLY {}').format(name)
            if reason == 'invalid':
                detail = 'invalid index (a failed CREATE INDEX CONCURRENTLY or REINDEX)'
            elif reason == 'requested':
                detail = requested_as
            else:
                detail = '%s%% %s bloat (%s of %s)' % (
                    row['bloat_percent'], 'estimated' if row['bloat_method'] == 'estimate' else 'measured',
                    C.human_bytes(row['bloat_bytes']), C.human_bytes(row['size']))
        return {
            'index': S.qualified(row['schema'], row['name']),
            'table': S.qualified(row['schema'], row['table_name']),
            'reason': reason, 'detail': detail,
            'operation': 'drop' if reason == 'leftover' else 'reindex',
            'sql': M.render(self.session, statement),
            'size_before': row['size'], 'size_after': None,
            'bloat_percent': row.get('bloat_percent'), 'bloat_bytes': row.get('bloat_bytes'),
            'seconds': None, 'attempts': 0, 'result': M.PLANNED, 'message': '',
            '_row': row,
        }

    # -- execution --------------------------------------------------------------------------------
    def run_one(self, action, budget):
        if action['operation'] == 'drop':
            self._drop(action, budget)
        else:
            self._reindex(action, budget)

    def _check_blockers(self, row):
        rows = M.blockers(self.session, row['table_oid'], self.params['lock_timeout'], self.our_pids())
        if rows:
            raise M.LockWait('%s and would make the statement wait' % M.describe_blockers(rows))

    def _drop(self, action, budget):
        row = action['_row']

        def attempt(_attempt):
            self._check_blockers(row)
            self.run_or_wait(action['sql'])
            return True

        outcome = self.retry(action, budget, attempt)
        if outcome is None:
            return
        done, waited = outcome
        if done:
            action.update(result=M.DONE, size_after=0, message='dropped the %s' % EARLIER)
        else:
            action.update(result=M.POSTPONED, message='not dropped after %d attempt(s): %s; the next run tries again'
                          % (action['attempts'], waited))

    def _leftovers(self, row):
        """The _ccnew/_ccold leftovers (see :func:`is_leftover`) on the table of ``row``, as {oid: (schema, name)}."""
        found = self.session.query(
            "SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind, i.indisvalid AS valid, "
            "pg_get_indexdef(c.oid) AS definition FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.indrelid = %s", (row['table_oid'],))
        return dict((r['oid'], (r['schema'], r['name'])) for r in found if is_leftover(r, found))

    def _new_leftovers(self, row, before):
        """The leftovers of the table that were not there before the rebuild started: ``{oid: (schema, name)}``."""
        return dict((oid, names) for oid, names in self._leftovers(row).items() if oid not in before)

    def _drop_copies(self, row, before, budget=None):
        """Drop the copies a failed rebuild left (the _ccnew/_ccold leftovers of the table that were not there
        before it started). Returns ``(dropped names, {name: why it is still there})``.

        The drop of a copy waits for the transactions holding a lock on the table, like the rebuild did: when it
        times out (``lock_timeout``) it is tried again after ``lock_retry_delay`` (doubled each time, at most
        ``BACKOFF_CEILING`` s) for as long as :func:`cleanup_window` allows. Without ``budget`` (the run is being
        interrupted) each copy gets one try."""
        params = self.params
        started = time.monotonic()
        window, limit = None, 'the run was interrupted'
        if budget is not None:
            window = cleanup_window(params, budget)
            if window is None:
                limit = 'lock_retries (%d) was used up' % params['lock_retries']
            elif not params['operation_timeout'] or window < params['operation_timeout']:
                limit = 'the time budget (max_duration %s s) was used up' % params['max_duration']
            else:
                limit = 'operation_timeout (%s s) was reached' % params['operation_timeout']
        delay = params['lock_retry_delay']
        dropped, refused, tries = [], {}, 0
        while True:
            tries += 1
            blocked = {}
            for _oid, (schema, name) in sorted(self._new_leftovers(row, before).items()):
                label = S.qualified(schema, name)
                if label in refused:
                    continue
                try:
                    self.run_statement(sql.SQL('DROP INDEX CONCURRENTLY IF EXISTS {}').format(M.identifier(schema, name)))
                    dropped.append(label)
                except psycopg2.Error as exc:
                    if M.is_lock_timeout(exc):
                        blocked[label] = db_error_text(exc, M.OPERATION_TIMEOUT)
                    else:
                        refused[label] = db_error_text(exc, M.OPERATION_TIMEOUT)
            if not blocked:
                return dropped, refused
            if budget is None:
                return dropped, dict(list(refused.items()) + list(blocked.items()))
            spent = time.monotonic() - started
            if window is None:
                if tries > params['lock_retries']:
                    break
                pause = delay
            else:
                if spent >= window:
                    break
                pause = min(delay, window - spent)
            time.sleep(pause)
            delay = min(delay * 2, max(params['lock_retry_delay'], BACKOFF_CEILING))
        holders = [b for b in M.blockers(self.session, row['table_oid'], 0, self.our_pids()) if b['holds_table_lock']]
        who = M.describe_blockers(holders) if holders else 'a transaction holds a lock on the table'
        left = dict(refused)
        for label, error in blocked.items():
            left[label] = ('%s; still blocked after %d tr%s in %.1f s, when %s: %s'
                           % (who, tries, 'y' if tries == 1 else 'ies', time.monotonic() - started, limit, error))
        return dropped, left

    def leftover_fate(self, row):
        """What becomes of a copy left on the table of ``row``: who drops it."""
        if not row['can_drop']:
            return ('login role %s may not drop it: the owner of table %s (or a superuser) must'
                    % (self.params['login_user'], S.qualified(row['schema'], row['table_name'])))
        if self.exclude.excludes(row['schema']):
            return ('schema %s is excluded (exclude_schemas): the next run that lists it in indexes drops it'
                    % row['schema'])
        return 'the next run drops it'

    def _index_state(self, row):
        return self.session.one(
            "SELECT i.indisvalid AS valid, pg_relation_size(c.oid) AS size FROM pg_class c "
            "JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s", (row['schema'], row['name']))

    def _interrupted(self, row, before):
        """Interrupted (SIGTERM, Ctrl-C): stop the server-side work, then try once to remove what it left."""
        try:
            self.work.conn.cancel()
            self._drop_copies(row, before)
        except Exception:  # pylint: disable=broad-except
            pass

    def _reindex(self, action, budget):
        row = action['_row']
        before = self._leftovers(row)
        cleanup = {'dropped': [], 'left': {}, 'attempts': 0}

        def attempt(number):
            cleanup['attempts'] = number
            self._check_blockers(row)
            try:
                self.run_statement(action['sql'])
                return True
            except psycopg2.Error as exc:
                failure = exc
            except BaseException:
                self._interrupted(row, before)
                raise
            # The failure may have left a _ccnew/_ccold copy; its drop waits for the same lockers the rebuild
            # timed out on, so it is retried within the run's budget.
            try:
                dropped, left = self._drop_copies(row, before, budget)
            except BaseException:
                self._interrupted(row, before)
                raise
            cleanup['dropped'] += dropped
            cleanup['left'] = left
            if left:
                raise CopyLeft(failure)  # another attempt would leave one more copy behind
            if M.is_lock_timeout(failure):
                raise M.LockWait('lock timeout: %s' % db_error_text(failure, M.OPERATION_TIMEOUT)) from failure
            raise failure

        error = None
        try:
            done, attempts, waited = M.run_with_retries(self.params, budget, attempt)
        except CopyLeft as stop:
            done, attempts, waited = None, cleanup['attempts'], None
            if M.is_lock_timeout(stop.failure):
                waited = 'lock timeout: %s' % db_error_text(stop.failure, M.OPERATION_TIMEOUT)
            else:
                error = db_error_text(stop.failure, M.OPERATION_TIMEOUT)
        except psycopg2.Error as exc:
            done, attempts, error = None, None, db_error_text(exc, M.OPERATION_TIMEOUT)
        state = self._index_state(row)
        # What is on the table now, whatever the attempts reported.
        left = sorted(S.qualified(schema, name) for schema, name in self._new_leftovers(row, before).values())
        action['attempts'] = attempts or action['attempts']
        action['leftovers_dropped'] = cleanup['dropped']
        action['leftovers_left'] = left
        original = ('the index is %s' % ('valid' if state and state['valid'] else 'still invalid')) if state \
            else 'the index no longer exists'
        tail = ''
        if cleanup['dropped']:
            tail += '; dropped the leftover %s' % ', '.join(cleanup['dropped'])
        if left:
            tail += '; could not drop the leftover %s (%s); %s' % (
                ', '.join(left), '; '.join(cleanup['left'].get(name, 'not dropped') for name in left),
                self.leftover_fate(row))
            self.fates.update((name, (action['index'], self.leftover_fate(row))) for name in left)
        if done:
            if state and state['valid']:
                action.update(result=M.DONE, size_after=state['size'],
                              message='rebuilt: %s -> %s' % (C.human_bytes(action['size_before']),
                                                             C.human_bytes(state['size'])) + tail)
            else:
                action.update(result=M.FAILED, message='REINDEX finished but %s' % original + tail)
        elif error:
            action.update(result=M.FAILED, message='%s; %s%s' % (error, original, tail))
        else:
            action.update(result=M.POSTPONED, message='not rebuilt after %d attempt(s): %s; %s%s'
                          % (attempts, waited, original, tail))

    def findings(self, actions):
        """Findings of the run: failures (critical), postponed work (warning) and invalid indexes left."""
        return final_checks(self.session, actions, self.exclude, self.fates)


def final_checks(session, actions, exclude, fates=None):
    """Findings of the run: failures (critical), postponed work (warning) and invalid indexes left.

    ``fates`` names the copies of this run's failed rebuilds it could not drop ({name: (index, who drops it)});
    the ``invalid_indexes`` message says so for each, and names the leftovers of earlier runs it dropped."""
    findings = M.run_findings(actions, 'reindex_failures', 'reindex_postponed', 'index action(s)', 'index')
    rows = IX.invalid_indexes(session, exclude.regexes)
    fates = fates or {}
    names = [r['index'] for r in rows]
    listed = ['%s (copy left by the failed rebuild of %s; %s)' % ((name,) + fates[name]) if name in fates else name
              for name in names]
    message = ('{value} invalid index(es) left: %s' % ', '.join(listed)) if names else 'no invalid indexes'
    earlier = [a['index'] for a in actions if a['operation'] == 'drop' and a['result'] == M.DONE]
    if earlier:
        what = EARLIER if len(earlier) == 1 else 'leftovers of earlier failed REINDEX CONCURRENTLY runs'
        message += '; dropped %s (%s)' % (', '.join(earlier), what)
    findings.append(C.evaluate('invalid_indexes', len(names), warning=0, unit='count', message=message))
    return findings
