# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real PostgreSQL server logs with known contents, for the log review's tests.

``generate(spawn)`` starts a server of its own (``spawn`` is the ``spawn_server`` fixture, or any callable that
takes ``settings=`` and returns a started ``pgserver.PgServer``) writing the same messages to ``stderr``,
``csvlog`` and (PostgreSQL 15+) ``jsonlog`` files through the logging collector, with a ``log_line_prefix``
pgBadger understands, ``log_lock_waits`` and ``log_temp_files = 0``. It then makes the server raise each error of
``KNOWN`` exactly ``count`` times from real sessions (division by zero, unique violation, undefined table and
column, syntax errors, two deadlocks between two sessions, statement timeouts, failed password logins, ...), two
plain lock waits and three queries that spill to a temporary file each, and stops the server so that every line is on
disk. The result says where the files are and what they must contain.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import subprocess
import threading
import time

import psycopg2

LOG_LINE_PREFIX = '%m [%p] %q%u@%d %h '
APP_USER, APP_PASSWORD, APP_DB = 'app', 'app-log-secret-7', 'appdb'
DEADLOCK_TIMEOUT_MS = 100

# What every destination holds. The settings are the ones pgBadger's documentation asks for (lc_messages C, a
# prefix with time and process, lock waits and temporary files logged), with one file per destination and no
# rotation, so that each format is one known file.
LOG_SETTINGS = {
    'logging_collector': 'on',
    'log_directory': "'log'",
    'log_filename': "'postgresql.log'",
    'log_rotation_age': '0',
    'log_rotation_size': '0',
    'log_line_prefix': "'%s'" % LOG_LINE_PREFIX,
    'log_timezone': "'UTC'",
    'lc_messages': "'C'",
    'log_lock_waits': 'on',
    'log_temp_files': '0',
    'log_connections': 'on',
    'log_checkpoints': 'on',
    'log_min_messages': 'warning',
    'log_min_error_statement': 'error',
    'deadlock_timeout': "'%dms'" % DEADLOCK_TIMEOUT_MS,
}

KnownError = collections.namedtuple('KnownError', 'key severity sqlstate count example pgbadger')
"""An error the generator raises ``count`` times. ``example`` is the message of one occurrence (the others differ
only in the parts a normaliser replaces); ``pgbadger`` is what pgBadger 12's ``normalize_error`` makes of all of them
(one string when it groups them, as the test asserts)."""

KNOWN = [
    KnownError('division_by_zero', 'ERROR', '22012', 7, 'division by zero', 'division by zero'),
    KnownError('unique_violation', 'ERROR', '23505', 5, 'duplicate key value violates unique constraint "items_pkey"',
               'duplicate key value violates unique constraint "..."'),
    KnownError('undefined_table', 'ERROR', '42P01', 4, 'relation "missing_1" does not exist',
               'relation "..." does not exist'),
    KnownError('invalid_text', 'ERROR', '22P02', 4, 'invalid input syntax for type integer: "abc1"',
               'invalid input syntax for type integer: ...'),
    KnownError('undefined_column', 'ERROR', '42703', 3, 'column "nocol_1" does not exist',
               'column "..." does not exist'),
    # RAISE with a number in the text: pgBadger keeps bare numbers, so each order number is a pattern of its own
    # there (None: no single pgBadger pattern; the test maps the three onto ours explicitly).
    KnownError('raise_exception', 'ERROR', 'P0001', 3, 'order 1001 failed', None),
    KnownError('syntax_error', 'ERROR', '42601', 2, 'syntax error at or near "SELEC"',
               'syntax error at or near "..."'),
    KnownError('deadlock', 'ERROR', '40P01', 2, 'deadlock detected', 'deadlock detected'),
    KnownError('statement_timeout', 'ERROR', '57014', 2, 'canceling statement due to statement timeout',
               'canceling statement due to statement timeout'),
    KnownError('auth_failed', 'FATAL', '28P01', 3, 'password authentication failed for user "app"',
               'password authentication failed for user "..."'),
    KnownError('no_database', 'FATAL', '3D000', 2, 'database "nodb_1" does not exist',
               'database "..." does not exist'),
    KnownError('no_transaction', 'WARNING', '25P01', 3, 'there is no transaction in progress',
               'there is no transaction in progress'),
    KnownError('raise_warning', 'WARNING', '01000', 2, 'low stock for item 1', None),
]
RAISE_NUMBERS = {'raise_exception': (1001, 1002, 1003), 'raise_warning': (1, 2)}
LOCK_WAITS = 2          # plain lock waits (one session waits 0.5 s for another's row lock)
TEMP_FILES = 3          # queries that spill one temporary file each (work_mem 64kB)


def severity_totals():
    """{'PANIC': 0, 'FATAL': n, 'ERROR': n, 'WARNING': n}: what the generator raises."""
    totals = dict.fromkeys(('PANIC', 'FATAL', 'ERROR', 'WARNING'), 0)
    for known in KNOWN:
        totals[known.severity] += known.count
    return totals


class GeneratedLogs(object):
    """Where the generated files are, and what they contain."""

    def __init__(self, server, log_dir, formats):
        self.server = server
        self.log_dir = log_dir
        self.version = int(server.version.split('.')[0])
        self.files = formats                      # {'stderr': path, 'csvlog': path, 'jsonlog': path}
        self.prefix = LOG_LINE_PREFIX
        self.known = dict((k.key, k) for k in KNOWN)
        self.severities = severity_totals()
        # Lock-related LOG lines: each deadlock makes its first session log "still waiting" and, once the other
        # is cancelled, "acquired"; the cancelled one logs "detected deadlock while waiting".
        self.events = {
            'deadlocks': self.known['deadlock'].count,
            'lock_waits': LOCK_WAITS + self.known['deadlock'].count,
            'lock_acquired': LOCK_WAITS + self.known['deadlock'].count,
            'temp_files': TEMP_FILES,
            'failed_logins': self.known['auth_failed'].count,
        }


def _connect(server, dbname=APP_DB, user=APP_USER, password=APP_PASSWORD, autocommit=True):
    conn = psycopg2.connect(**dict(server.dsn(dbname), user=user, password=password))
    conn.autocommit = autocommit
    return conn


def _expect_error(cur, statement, sqlstate):
    try:
        cur.execute(statement)
    except psycopg2.Error as exc:
        if exc.pgcode != sqlstate:
            raise AssertionError('%s raised %s (%s), expected %s' % (statement, exc.pgcode, exc, sqlstate)) from exc
        return
    raise AssertionError('%s raised no error, expected %s' % (statement, sqlstate))


def _stderr_log(server):
    return os.path.join(server.datadir, 'log', 'postgresql.log')


def _lock_wait_lines(server):
    try:
        with open(_stderr_log(server), 'rb') as handle:
            return handle.read().count(b' still waiting for ')
    except OSError:
        return 0


def _wait_for_lock_wait_line(server, before, timeout=30.0):
    """Until the server has logged one more "still waiting for" line than ``before``: the waiter passed
    deadlock_timeout and ran its deadlock check (finding none) - whatever happens next, that line is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _lock_wait_lines(server) > before:
            return
        time.sleep(0.02)
    raise AssertionError('the server logged no lock wait within %d s' % timeout)


def _in_thread(target):
    outcome = {}

    def run():
        try:
            target()
        except BaseException as exc:  # pylint: disable=broad-except  # handed to the caller
            outcome['error'] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _deadlock(server):
    """Session A updates row 1 then row 2, session B row 2 then row 1; B starts waiting only after A has logged its
    lock wait (so A's one deadlock check is behind it), so B's check is the one that finds the cycle: B is cancelled
    with ERROR 40P01 ("detected deadlock while waiting") and A goes on ("acquired")."""
    first, second = _connect(server, autocommit=False), _connect(server, autocommit=False)
    try:
        a, b = first.cursor(), second.cursor()
        a.execute('UPDATE dl SET v = v + 1 WHERE id = 1')
        b.execute('UPDATE dl SET v = v + 1 WHERE id = 2')
        before = _lock_wait_lines(server)
        thread, outcome = _in_thread(lambda: a.execute('UPDATE dl SET v = v + 1 WHERE id = 2'))
        _wait_for_lock_wait_line(server, before)
        _expect_error(b, 'UPDATE dl SET v = v + 1 WHERE id = 1', '40P01')
        second.rollback()
        thread.join(30)
        if 'error' in outcome:
            raise outcome['error']
        first.commit()
    finally:
        first.close()
        second.close()


def _lock_wait(server):
    holder, waiter = _connect(server, autocommit=False), _connect(server, autocommit=False)
    try:
        holder.cursor().execute('UPDATE dl SET v = v + 1 WHERE id = 3')
        before = _lock_wait_lines(server)
        thread, outcome = _in_thread(lambda: waiter.cursor().execute('UPDATE dl SET v = v + 1 WHERE id = 3'))
        _wait_for_lock_wait_line(server, before)
        holder.commit()
        thread.join(30)
        if 'error' in outcome:
            raise outcome['error']
        waiter.commit()
    finally:
        holder.close()
        waiter.close()


def _failed_logins(server):
    for user, dbname, sqlstate in ((APP_USER, APP_DB, '28P01'), (APP_USER, 'postgres', '28P01'),
                                   ('ghost', APP_DB, '28P01')):
        try:
            psycopg2.connect(**dict(server.dsn(dbname), user=user, password='wrong-password')).close()
        except psycopg2.OperationalError as exc:
            if 'password authentication failed' not in str(exc):
                raise AssertionError('login as %s failed otherwise: %s (%s expected)' % (user, exc, sqlstate)) from exc
        else:
            raise AssertionError('login as %s with a wrong password succeeded' % user)
    for number in (1, 2):
        try:
            _connect(server, dbname='nodb_%d' % number).close()
        except psycopg2.OperationalError as exc:
            if 'does not exist' not in str(exc):
                raise
        else:
            raise AssertionError('connected to a database that does not exist')


def _session_errors(server):
    conn = _connect(server)
    try:
        cur = conn.cursor()
        for number in range(7):
            _expect_error(cur, 'SELECT %d / 0' % (number + 1), '22012')
        for number in range(5):
            _expect_error(cur, 'INSERT INTO items VALUES (%d)' % (number + 1), '23505')
        for number in range(4):
            _expect_error(cur, 'SELECT * FROM missing_%d' % (number + 1), '42P01')
            _expect_error(cur, "SELECT 'abc%d'::integer" % (number + 1), '22P02')
        for number in range(3):
            _expect_error(cur, 'SELECT nocol_%d FROM items' % (number + 1), '42703')
        for number in RAISE_NUMBERS['raise_exception']:
            _expect_error(cur, "DO $$ BEGIN RAISE EXCEPTION 'order %% failed', %d; END $$" % number, 'P0001')
        for statement in ('SELEC 1', 'SELECT * FORM items'):
            _expect_error(cur, statement, '42601')
        for _number in range(2):
            cur.execute("SET statement_timeout = '50ms'")
            _expect_error(cur, 'SELECT pg_sleep(2)', '57014')
            cur.execute('RESET statement_timeout')
        for _number in range(3):
            cur.execute('COMMIT')  # outside a transaction: WARNING 25P01
        for number in RAISE_NUMBERS['raise_warning']:
            cur.execute("DO $$ BEGIN RAISE WARNING 'low stock for item %%', %d; END $$" % number)
        cur.execute("SET work_mem = '64kB'")
        for number in range(TEMP_FILES):
            # generate_series keeps its result in a tuplestore, which spills to exactly one file past work_mem
            cur.execute('SELECT count(*) FROM generate_series(1, %d)' % (60000 + number))
    finally:
        conn.close()


def log_files(log_dir):
    """{'stderr': path, 'csvlog': path, 'jsonlog': path} of the files the collector wrote (jsonlog: PostgreSQL 15+)."""
    found = {}
    for fmt, suffix in (('stderr', '.log'), ('csvlog', '.csv'), ('jsonlog', '.json')):
        paths = glob.glob(os.path.join(log_dir, '*' + suffix))
        if len(paths) == 1:
            found[fmt] = paths[0]
        elif paths:
            raise AssertionError('expected one %s file in %s, found %s' % (fmt, log_dir, paths))
    return found


def generate(spawn, destinations=('stderr', 'csvlog', 'jsonlog')):
    """Start a server with ``spawn(settings=...)``, make it log every known error and event, stop it; returns a
    ``GeneratedLogs``. The files stay where the server wrote them until the server's directory is removed."""
    settings = dict(LOG_SETTINGS, log_destination="'%s'" % ','.join(destinations))
    server = spawn(settings=settings)
    server.execute("CREATE ROLE %s LOGIN PASSWORD '%s'" % (APP_USER, APP_PASSWORD))
    server.execute('CREATE DATABASE %s OWNER %s' % (APP_DB, APP_USER))
    setup = _connect(server)
    try:
        setup.cursor().execute('CREATE TABLE items (id integer PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 10);'
                               'CREATE TABLE dl (id integer PRIMARY KEY, v integer); INSERT INTO dl VALUES (1, 0), (2, 0), (3, 0)')
    finally:
        setup.close()
    _session_errors(server)
    for _number in range(server_deadlocks()):
        _deadlock(server)
    for _number in range(LOCK_WAITS):
        _lock_wait(server)
    _failed_logins(server)
    server.stop('fast')  # every line reaches the files; nothing is left open to be terminated with a FATAL
    log_dir = os.path.join(server.datadir, 'log')
    return GeneratedLogs(server, log_dir, log_files(log_dir))


# -- pgBadger on the same files ---------------------------------------------------------------------------------
SEVERITIES = ('PANIC', 'FATAL', 'ERROR', 'WARNING')
PGBADGER_FORMATS = {'stderr': 'stderr', 'csvlog': 'csv', 'jsonlog': 'jsonlog'}
# LOG messages pgBadger files in its error report as if they were errors (its change_log_level: "We change temporary
# log level from LOG to ERROR to store these messages into the error report"); its text and HTML reports turn them
# back into LOG, its JSON output does not. They are events, not errors, on both sides.
PGBADGER_EVENTS = ('parameter "', 'database system was', 'recovery has paused', 'ending cancel to blocking autovacuum',
                   'skipping analyze of', 'using stale statistics', 'replication command:', 'still waiting for',
                   'was terminated by signal', 'data from client', 'data to client')


def pgbadger_options(fmt, out_file, prefix=LOG_LINE_PREFIX, jobs=1):
    """pgBadger's options for a JSON report. Its pid file (which refuses a second pgBadger while one runs:
    /tmp/pgbadger.pid by default) goes next to the report, so that parallel tests and a benchmark do not stop each
    other; ``--pid-file`` is a path of its own (``--pid-dir`` does not apply to it)."""
    return ['-j', str(jobs), '-f', PGBADGER_FORMATS[fmt], '-x', 'json', '-o', out_file, '--no-progressbar', '-q',
            '--pid-file', os.path.abspath(out_file) + '.pid'] + (['--prefix', prefix] if fmt == 'stderr' else [])


def run_pgbadger(path, fmt, out_file, prefix=LOG_LINE_PREFIX, jobs=1, extra=()):
    """``pgbadger -x json`` over one file; returns its report (a dict)."""
    argv = ['pgbadger'] + pgbadger_options(fmt, out_file, prefix, jobs) + list(extra) + [path]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError('pgbadger failed (%d): %s' % (proc.returncode, proc.stdout))
    with open(out_file) as handle:
        return json.load(handle)


def pgbadger_patterns(report):
    """{(severity, normalised message): count} of pgBadger's error report, without the LOG events it files there."""
    found = {}
    for per_db in report.get('error_info', {}).values():
        for pattern, item in per_db.items():
            severity, _sep, text = pattern.partition(':  ')
            if severity in SEVERITIES and not any(event in text for event in PGBADGER_EVENTS):
                found[(severity, text)] = found.get((severity, text), 0) + item['count']
    return found


def pgbadger_severities(report):
    """{'PANIC': n, 'FATAL': n, 'ERROR': n, 'WARNING': n} from pgBadger's error report (its events left out)."""
    totals = dict.fromkeys(SEVERITIES, 0)
    for (severity, _text), count in pgbadger_patterns(report).items():
        totals[severity] += count
    return totals


def server_deadlocks():
    return [k for k in KNOWN if k.key == 'deadlock'][0].count
