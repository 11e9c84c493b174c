# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What pg_reindex and pg_vacuum share: the run lock, the time budget, lock-timeout retries with
backoff, the check for long transactions that would make maintenance wait, name resolution and the
privilege test.

Maintenance statements run on a *work* session of their own (``lock_timeout`` and an operation
``statement_timeout`` set in its startup packet); catalogue reads run on the module's read-only session,
which also holds the run's advisory lock.
"""

from __future__ import annotations

import time
import zlib

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import AppcareError, ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    Session,
    connect_kwargs,
    connection_argument_spec,
    db_error_text,
    failure_message,
    make_interruptible,
    target_label,
)
from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import SchemaFilter, exclude_schemas_spec

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by require_psycopg2()
    psycopg2 = None
    sql = None

LOCK_CLASS = 0x6170636d & 0x7fffffff  # 'apcm'
LOCK_NOT_AVAILABLE = '55P03'
# The option that sets the work session's statement_timeout: the name a cancelled maintenance statement gives.
OPERATION_TIMEOUT = 'operation_timeout'

# Results of one action.
PLANNED = 'planned'
DONE = 'done'
FAILED = 'failed'
POSTPONED = 'postponed'


class RunLocked(AppcareError):
    """Another run of the same maintenance module holds the database's run lock."""


def maintenance_argument_spec(default_lock_timeout=5):
    """Options shared by pg_reindex and pg_vacuum (documented in both modules)."""
    return dict(
        lock_timeout=dict(type='float', default=default_lock_timeout),
        lock_retries=dict(type='int', default=3),
        lock_retry_delay=dict(type='float', default=5),
        operation_timeout=dict(type='int', default=3600),
        max_duration=dict(type='int', default=3600),
        parallel_workers=dict(type='int', default=0),
    )


def validate_maintenance_params(params):
    if params['lock_timeout'] is None or not params['lock_timeout'] > 0:
        raise ConfigurationError('lock_timeout must be more than 0 seconds, got %s' % params['lock_timeout'])
    if params['lock_retries'] < 0:
        raise ConfigurationError('lock_retries must be 0 or more, got %s' % params['lock_retries'])
    if params['lock_retry_delay'] < 0:
        raise ConfigurationError('lock_retry_delay must be 0 or more seconds, got %s' % params['lock_retry_delay'])
    if params['operation_timeout'] < 0:
        raise ConfigurationError('operation_timeout must be 0 (no limit) or more seconds, got %s'
                                 % params['operation_timeout'])
    if params['parallel_workers'] < 0:
        raise ConfigurationError('parallel_workers must be 0 or more, got %s' % params['parallel_workers'])
    if params['max_duration'] < 0:
        raise ConfigurationError('max_duration must be 0 (no limit) or more seconds, got %s' % params['max_duration'])


def split_name(text):
    """'schema.name' or 'name' (double quotes allowed) -> (schema or None, name)."""
    parts, current, quoted, i = [], '', False, 0
    text = (text or '').strip()
    while i < len(text):
        char = text[i]
        if char == '"':
            if quoted and i + 1 < len(text) and text[i + 1] == '"':
                current += '"'
                i += 1
            else:
                quoted = not quoted
        elif char == '.' and not quoted:
            parts.append(current)
            current = ''
        else:
            current += char if quoted else char.lower()
        i += 1
    parts.append(current)
    if quoted or len(parts) > 2 or not all(parts):
        raise ConfigurationError('%r is not a valid name; use name or schema.name' % text)
    return (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def resolve(session, names, relkinds, what):
    """Resolve names to ``{oid: requested name}``; unqualified names are looked up in every schema
    except the system ones and must be unambiguous. A name that does not exist is an error: an explicit
    list names work the user expects to be done."""
    resolved = {}
    for text in names or []:
        schema, name = split_name(text)
        rows = session.query(
            "SELECT c.oid, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND c.relkind = ANY(%s) AND (n.nspname = %s OR (%s IS NULL AND n.nspname !~ ALL(%s)))",
            (name, list(relkinds), schema, schema, SchemaFilter([]).regexes))
        if not rows and schema is None:
            rows = session.query("SELECT c.oid, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                 "WHERE c.relname = %s AND c.relkind = ANY(%s) AND n.nspname = 'pg_catalog'",
                                 (name, list(relkinds)))
        if not rows:
            raise ConfigurationError('%s %s does not exist in database %s' % (what, text, session.params['login_db']))
        if len(rows) > 1:
            raise ConfigurationError('%s %s is ambiguous (in schemas %s); qualify it as schema.name'
                                     % (what, text, ', '.join(sorted(r['nspname'] for r in rows))))
        resolved[rows[0]['oid']] = text
    return resolved


def maintain_privilege_sql(server_version_num, table_expr):
    """SQL (boolean) telling whether the current role may VACUUM/REINDEX the table ``table_expr`` (an
    OID expression): MAINTAIN on PostgreSQL 17+, otherwise ownership (or superuser)."""
    if server_version_num >= 170000:
        return "has_table_privilege(%s, 'MAINTAIN')" % table_expr
    return ("(pg_has_role((SELECT relowner FROM pg_class WHERE oid = %s), 'USAGE') OR "
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user))" % table_expr)


class RunLock(object):
    """Session advisory lock on the read session: one run of a module per database at a time."""

    def __init__(self, session, kind):
        self.session = session
        self.kind = kind
        self.key = zlib.crc32(kind.encode('utf-8')) & 0x7fffffff
        self.held = False

    def acquire(self):
        row = self.session.one('SELECT pg_try_advisory_lock(%s, %s) AS got', (LOCK_CLASS, self.key))
        if row['got']:
            self.held = True
            return
        holder = self.session.one(
            "SELECT a.pid, a.application_name, a.usename, "
            "round(extract(epoch FROM now() - a.backend_start)::numeric, 0) AS seconds "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 2 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.granted",
            (LOCK_CLASS, self.key))
        who = ''
        if holder and holder.get('pid'):
            who = ' (pid %s, application %r, user %s, connected %s s ago)' % (
                holder['pid'], holder['application_name'], holder['usename'], holder['seconds'])
        raise RunLocked('another %s run is working on database %s%s; refusing to run two at once'
                        % (self.kind, self.session.params['login_db'], who))

    def release(self):
        if self.held:
            try:
                self.session.one('SELECT pg_advisory_unlock(%s, %s) AS ok', (LOCK_CLASS, self.key))
            except Exception:  # pylint: disable=broad-except
                pass  # the lock ends with the session anyway
            self.held = False


class Budget(object):
    """``max_duration`` seconds from the start of the run; 0 means no limit."""

    def __init__(self, seconds, clock=time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.started = clock()

    def elapsed(self):
        return self.clock() - self.started

    def exhausted(self):
        return bool(self.seconds) and self.elapsed() >= self.seconds

    def remaining(self):
        return None if not self.seconds else max(0.0, self.seconds - self.elapsed())


def open_work_session(params, application_name):
    """The session maintenance statements run on: read-write, ``lock_timeout`` from the options, the operation
    timeout as its ``statement_timeout``, and ``max_parallel_maintenance_workers`` from ``parallel_workers`` (0 by
    default: an index build or VACUUM does not take extra cores from the application)."""
    work_params = dict(params, statement_timeout=params['operation_timeout'])
    session = Session(work_params, application_name, read_only=False, lock_timeout=params['lock_timeout'])
    workers = str(int(params['parallel_workers']))
    session.query('SELECT set_config(%s, %s, false)', ('max_parallel_maintenance_workers', workers))
    return session


def blockers(session, table_oid, older_than, exclude_pids):
    """Transactions open for more than ``older_than`` seconds that would make a concurrent maintenance
    statement on the table wait: those holding a lock on the table, and those holding a snapshot in the
    database (REINDEX CONCURRENTLY waits for both). Empty when the role cannot see other sessions."""
    return session.query(
        "SELECT a.pid, a.application_name, a.usename, a.state, "
        "round(extract(epoch FROM now() - a.xact_start)::numeric, 1)::float AS seconds, "
        "EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'relation' "
        "        AND l.relation = %(table)s AND l.database = (SELECT oid FROM pg_database "
        "        WHERE datname = current_database())) AS holds_table_lock "
        "FROM pg_stat_activity a "
        "WHERE a.datname = current_database() AND a.backend_type = 'client backend' "
        "AND a.pid <> ALL(%(exclude)s) AND a.xact_start < now() - make_interval(secs => %(age)s) "
        "AND (a.backend_xmin IS NOT NULL OR EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid "
        "     AND l.locktype = 'relation' AND l.relation = %(table)s)) "
        "ORDER BY a.xact_start",
        {'table': table_oid, 'exclude': list(exclude_pids), 'age': float(older_than)})


def describe_blockers(rows):
    first = rows[0]
    what = 'holds a lock on the table' if first['holds_table_lock'] else 'holds a snapshot'
    more = ' (and %d more)' % (len(rows) - 1) if len(rows) > 1 else ''
    return ('a transaction open for %s s (pid %s, application %r, user %s, %s) %s%s'
            % (first['seconds'], first['pid'], first['application_name'], first['usename'], first['state'], what, more))


class LockWait(Exception):
    """One attempt could not get its locks in time (a lock_timeout, or a precheck saw a blocker)."""


def run_with_retries(params, budget, attempt_fn, sleep=time.sleep):
    """Call ``attempt_fn(attempt)`` until it returns, retrying ``LockWait`` up to ``lock_retries`` times
    with exponential backoff (``lock_retry_delay``, doubled each time, never past the budget).

    Returns ``(value, attempts, None)`` on success, or ``(None, attempts, last LockWait message)`` when
    every attempt waited in vain. Other exceptions propagate.
    """
    attempts = 0
    delay = params['lock_retry_delay']
    while True:
        attempts += 1
        try:
            return attempt_fn(attempts), attempts, None
        except LockWait as exc:
            last = str(exc)
        if attempts > params['lock_retries']:
            return None, attempts, last
        remaining = budget.remaining()
        if remaining is not None and remaining <= delay:
            return None, attempts, last + '; the time budget leaves no room for another attempt'
        sleep(delay)
        delay *= 2


def is_lock_timeout(exc):
    return getattr(exc, 'pgcode', None) == LOCK_NOT_AVAILABLE


def run_findings(actions, failed_name, postponed_name, what, key):
    """The ``<module>_failures`` (critical) and ``<module>_postponed`` (warning) findings of a run;
    ``key`` names the action field that identifies its object (``index``, ``table``)."""
    failed = [a for a in actions if a['result'] == FAILED]
    postponed = [a for a in actions if a['result'] == POSTPONED]

    def listing(items):
        return '; '.join('%s: %s' % (a[key], a['message']) for a in items)

    findings = [
        C.evaluate(failed_name, len(failed), critical=0, unit='count',
                   message=('{value} %s failed: %s' % (what, listing(failed))) if failed else 'no %s failed' % what),
        C.evaluate(postponed_name, len(postponed), warning=0, unit='count',
                   message=('{value} %s postponed: %s' % (what, listing(postponed))) if postponed
                   else 'nothing postponed'),
    ]
    return findings


def abort(actions, current, exc):
    """The run stops (connection lost): the current action failed, the ones after it never started."""
    current.update(result=FAILED, message=str(exc))
    for action in actions[actions.index(current) + 1:]:
        action.update(result=POSTPONED, message='not started: the run stopped (%s)' % exc)


def identifier(schema, name):
    return sql.SQL('{}.{}').format(sql.Identifier(schema), sql.Identifier(name))


def render(session, composed):
    return composed.as_string(session.conn)


class Worker(object):
    """What the pg_reindex and pg_vacuum workers share: the work session and the loop over the planned actions.

    Subclasses set ``kind`` (the module name), ``skipped_key``/``object_key`` (the result key of what was left
    alone, and the action field naming its object) and implement ``plan()``, ``run_one(action, budget)`` and
    ``findings(actions)``.
    """

    kind = None
    skipped_key = None
    object_key = None

    def __init__(self, session, params, server_version_num):
        self.session = session
        self.params = params
        self.version = server_version_num
        self.exclude = SchemaFilter(params['exclude_schemas'])
        self.notes = []
        self.work = None
        self.work_pid = None

    def our_pids(self):
        return [self.session.conn.get_backend_pid(), self.work_pid]

    def run_statement(self, statement):
        """Run one maintenance statement on the work session; a lost connection stops the run."""
        if not isinstance(statement, str):
            statement = render(self.session, statement)
        try:
            self.work.query(statement)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            if self.work.conn.closed or getattr(exc, 'pgcode', None) is None:
                raise AppcareError('lost the connection to %s while running "%s": %s'
                                   % (target_label(self.params), statement, db_error_text(exc, OPERATION_TIMEOUT))) from exc
            raise

    def run_or_wait(self, statement):
        """``run_statement``; a lock timeout becomes ``LockWait`` (the attempt is retried), other errors propagate."""
        try:
            self.run_statement(statement)
        except psycopg2.Error as exc:
            if is_lock_timeout(exc):
                raise LockWait('lock timeout: %s' % db_error_text(exc, OPERATION_TIMEOUT)) from exc
            raise

    def retry(self, action, budget, attempt):
        """``run_with_retries(attempt)`` for ``action``: ``(done, what it waited for)`` with ``action['attempts']`` set,
        or None when a database error failed the action (then its message is PostgreSQL's)."""
        try:
            done, attempts, waited = run_with_retries(self.params, budget, attempt)
        except psycopg2.Error as exc:
            action.update(result=FAILED, message=db_error_text(exc, OPERATION_TIMEOUT))
            return None
        action['attempts'] = attempts
        return done, waited

    def execute(self, actions, budget):
        """Run the planned actions in order; every action ends done, failed or postponed."""
        for action in actions:
            if budget.exhausted():
                action.update(result=POSTPONED, message='not started: the time budget (max_duration %s s) '
                              'was used up' % self.params['max_duration'])
                continue
            started = time.monotonic()
            try:
                if self.work is None or self.work.conn.closed:
                    self.work = open_work_session(self.params, 'appcare.maintenance.%s' % self.kind)
                    self.work_pid = self.work.conn.get_backend_pid()
                self.run_one(action, budget)
            except AppcareError as exc:
                abort(actions, action, exc)
                raise
            finally:
                action['seconds'] = round(time.monotonic() - started, 3)

    def close(self):
        if self.work is not None:
            self.work.close()


REPORT_ACTION_KEYS = ('index', 'table', 'operation', 'result', 'message', 'seconds')


def report_sections(actions):
    """A maintenance module's ``report`` result (what the maintenance_report callback shows): its actions with
    the keys the run report keeps, None where an operation has none (a VACUUM has no index)."""
    return {'actions': [dict((key, action.get(key)) for key in REPORT_ACTION_KEYS) for action in actions]}


def run_module(module, worker_class, result):
    """The whole run of a maintenance module: run lock, plan, execution (not in check mode), findings; ends
    the module with exit_json or fail_json. ``result`` holds the module's initial result keys."""
    params = module.params
    kind = worker_class.kind

    def tidy():
        for action in result['actions']:
            action.pop('_row', None)
        result['changed'] = any(a['result'] == DONE for a in result['actions'])
        result['report'] = report_sections(result['actions'])

    try:
        with Session(params, 'appcare.maintenance.%s' % kind, read_only=True) as session:
            budget = Budget(params['max_duration'])
            lock = RunLock(session, kind)
            if not module.check_mode:
                lock.acquire()
            worker = worker_class(session, params, session.conn.server_version)
            try:
                actions, skipped = worker.plan()
                result.update(actions=actions)
                result[worker_class.skipped_key] = skipped
                if 'notes' in result:
                    result['notes'] = worker.notes
                if not module.check_mode:
                    worker.execute(actions, budget)
                tidy()
                result['checks'] = worker.findings(actions)
            finally:
                worker.close()
                lock.release()
    except HANDLED_ERRORS as exc:
        tidy()
        module.fail_json(msg=failure_message(kind, exc), **result)
    for note in result.get('notes', []):
        module.warn(note)
    for action in result['actions']:
        if action['result'] in (FAILED, POSTPONED):
            module.warn('%s %s: %s' % (action['result'], action[worker_class.object_key], action['message']))
    C.finish(module, result)


def module_main(worker_class, options, validate, result):
    """The whole ``main()`` of a maintenance module (pg_reindex, pg_vacuum): its argument spec is the
    connection, the maintenance options (doc fragment ``maintenance``), ``exclude_schemas`` (Supabase's by
    default) and ``options``; ``validate(params)`` checks the module's own options before anything connects;
    ``result`` holds its initial result keys."""
    argument_spec = connection_argument_spec()
    argument_spec.update(maintenance_argument_spec())
    argument_spec.update(exclude_schemas_spec())
    argument_spec.update(options)
    argument_spec.update(C.severity_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    make_interruptible()
    try:
        validate_maintenance_params(module.params)
        validate(module.params)
        C.validate_severity(module.params['severity'])
        connect_kwargs(module.params, 'validation only')
    except ConfigurationError as exc:
        module.fail_json(msg=failure_message(worker_class.kind, exc))
    run_module(module, worker_class, result)
