# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_log_info against the logs real PostgreSQL 18 and 15 servers write: errors, a deadlock, lock waits, a
temporary file and a failed login are produced for real; the three formats the server writes side by side
(stderr, csvlog, jsonlog) give the same review; the server's own settings lead the module to its log directory;
the incremental state reads only what was appended and marks new patterns; a quiet server stays quiet."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import psycopg2
import pytest

from conftest import wait_until
from modrunner import run_module

LOGGING = {
    'logging_collector': 'on',
    'log_destination': "'stderr,csvlog,jsonlog'",
    'log_directory': "'log'",
    'log_filename': "'postgresql-%Y%m%d.log'",
    'log_line_prefix': "'%m [%p] %q%u@%d %h '",
    'log_min_messages': 'warning',
    'log_lock_waits': 'on',
    'deadlock_timeout': "'200ms'",
    'log_temp_files': '0',
    'log_checkpoints': 'on',
    'log_autovacuum_min_duration': '0',
    'log_connections': 'on',
    'lc_messages': "'C'",
}
EXPECTED = {'division by zero': 3, 'relation "..." does not exist': 2,
            'duplicate key value violates unique constraint "..."': 2, 'deadlock detected': 1}


def check(result, name):
    return [c for c in result['checks'] if c['name'] == name]


def status(result, name):
    return sorted(set(c['status'] for c in check(result, name)))


def fail(conn, sql):
    with conn.cursor() as cur:
        try:
            cur.execute(sql)
        except psycopg2.Error:
            pass


def deadlock(server, dbname):
    """Two sessions that take two rows' locks in opposite order: PostgreSQL kills one with 'deadlock detected'."""
    first, second = server.connect(dbname, autocommit=False), server.connect(dbname, autocommit=False)
    try:
        first.cursor().execute('UPDATE dl SET v = v + 1 WHERE id = 1')
        second.cursor().execute('UPDATE dl SET v = v + 1 WHERE id = 2')
        errors = []

        def cross(conn, row):
            try:
                conn.cursor().execute('UPDATE dl SET v = v + 1 WHERE id = %s', (row,))
            except psycopg2.Error as exc:
                errors.append(exc.pgcode)

        worker = threading.Thread(target=cross, args=(first, 2))
        worker.start()
        time.sleep(0.5)
        cross(second, 1)
        for conn in (first, second):
            try:
                conn.rollback()
            except psycopg2.Error:
                pass
        worker.join(10)
        assert '40P01' in errors
    finally:
        first.close()
        second.close()


@pytest.fixture(scope='module')
def logged(spawn_server):
    """A server that logged known errors and events, in three formats."""
    server = spawn_server(settings=LOGGING)
    dbname = 'l_' + uuid.uuid4().hex[:8]
    server.execute('CREATE DATABASE %s' % dbname)
    server.execute('CREATE TABLE u (id int PRIMARY KEY); INSERT INTO u VALUES (1);'
                   'CREATE TABLE dl (id int PRIMARY KEY, v int); INSERT INTO dl VALUES (1, 0), (2, 0)', dbname)
    conn = server.connect(dbname, autocommit=True)
    for _attempt in range(3):
        fail(conn, 'SELECT 1/0')
    for name in ('missing_a', 'missing_b'):
        fail(conn, 'SELECT * FROM %s' % name)
    for _attempt in range(2):
        fail(conn, 'INSERT INTO u VALUES (1)')
    with conn.cursor() as cur:
        cur.execute("SET work_mem = '64kB'; SELECT count(*) FROM (SELECT g FROM generate_series(1, 100000) g "
                    "ORDER BY g DESC) s")
    conn.close()
    deadlock(server, dbname)
    try:
        psycopg2.connect(host='127.0.0.1', port=server.port, user='postgres', password='wrong', dbname='postgres')
    except psycopg2.OperationalError:
        pass
    logdir = os.path.join(server.datadir, 'log')
    assert wait_until(lambda: any('password authentication failed' in open(os.path.join(logdir, name)).read()
                                  for name in os.listdir(logdir) if name.endswith('.log')), 15)
    return server, dbname, logdir


def run(server, dbname, **args):
    return run_module('pg_log_info', dict(server.login_args(dbname), **args))


def counts(result):
    return dict((row['pattern'], row['count']) for row in result['top_errors'] if row['pattern'] in EXPECTED)


def test_real_log_found_through_the_server_settings(logged):
    server, dbname, logdir = logged
    result = run(server, dbname)
    assert not result.failed, result.get('msg')
    assert result['log_path'] == logdir
    # the directory holds the log in three formats: the richest one is read, the others are left out
    assert set(f['format'] for f in result['files']) == {'jsonlog'}
    assert set(os.path.splitext(item['path'])[1] for item in result['left_out']) == {'.log', '.csv'}
    assert counts(result) == EXPECTED
    assert result['severities']['ERROR'] == sum(EXPECTED.values())
    by_pattern = dict((row['pattern'], row) for row in result['top_errors'])
    assert by_pattern['division by zero']['sqlstate'] == '22012'
    assert by_pattern['division by zero']['databases'] == [dbname]
    assert by_pattern['division by zero']['statement'] == 'SELECT 1/0'
    events = result['events']
    assert events['deadlocks'] == 1 and events['lock_waits']['count'] >= 1
    assert events['temp_files']['count'] >= 1 and events['temp_files']['total_bytes'] > 0
    assert [row['address'] for row in events['auth_failures']] == ['127.0.0.1']
    assert status(result, 'log_deadlocks') == ['warning']
    assert status(result, 'log_auth_failures') == ['ok']
    assert status(result, 'log_settings') == ['ok'], check(result, 'log_settings')
    assert status(result, 'log_fatal') == ['ok']   # a failed login is not "another" FATAL
    section = result['report']['log_review']
    assert section['source'] == 'postgresql' and section['events']['deadlocks'] == 1


@pytest.mark.parametrize('fmt, pattern', [('stderr', '*.log'), ('csvlog', '*.csv'), ('jsonlog', '*.json')])
def test_three_formats_agree(logged, fmt, pattern):
    server, dbname, logdir = logged
    result = run(server, dbname, log_path=logdir, file_pattern=pattern, log_format=fmt)
    assert not result.failed, result.get('msg')
    assert counts(result) == EXPECTED
    assert result['severities']['ERROR'] == sum(EXPECTED.values())
    assert result['events']['deadlocks'] == 1
    assert result['events']['auth_failures'][0]['failures'] == 1


def test_without_a_server_the_prefix_is_needed_or_guessed(logged):
    _server, _dbname, logdir = logged
    result = run_module('pg_log_info', {'log_path': logdir, 'file_pattern': '*.log', 'read_settings': False})
    assert not result.failed and counts(result) == EXPECTED   # the loose reader, no prefix given
    # no prefix known: the review cannot say which settings are missing from the server, only what it read
    assert result['log_settings']['prefix'] is None


def test_incremental_state_and_new_patterns(logged, tmp_path):
    server, dbname, logdir = logged
    state = str(tmp_path / 'state.json')
    first = run(server, dbname, state_file=state, file_pattern='*.log', log_format='stderr')
    assert status(first, 'log_new_patterns') == ['ok'] and 'first run' in check(first, 'log_new_patterns')[0]['message']
    assert first['state_written'] is True
    conn = server.connect(dbname, autocommit=True)
    fail(conn, "SELECT 'abc'::int")
    fail(conn, 'SELECT 1/0')
    conn.close()
    name = [f['path'] for f in first['files']][-1]
    assert wait_until(lambda: 'invalid input syntax' in open(name).read(), 15)
    second = run(server, dbname, state_file=state, file_pattern='*.log', log_format='stderr')
    assert second['files'][-1]['start'] == first['files'][-1]['end'] > 0
    assert second['severities']['ERROR'] == 2
    assert [row['pattern'] for row in second['new_patterns']] == ['invalid input syntax for type integer: ...']
    assert status(second, 'log_new_patterns') == ['warning']
    third = run(server, dbname, state_file=state, file_pattern='*.log', log_format='stderr')
    assert third['severities']['ERROR'] == 0 and status(third, 'log_new_patterns') == ['ok']


def test_check_mode_leaves_the_state_alone(logged, tmp_path):
    server, dbname, logdir = logged
    state = str(tmp_path / 'state.json')
    result = run_module('pg_log_info', dict(server.login_args(dbname), state_file=state), check_mode=True)
    assert not result.failed and not os.path.exists(state) and 'state_written' not in result


def test_quiet_server_and_missing_settings(spawn_server):
    server = spawn_server(settings={'logging_collector': 'on', 'log_directory': "'log'",
                                    'log_line_prefix': "'%t '", 'log_lock_waits': 'off', 'log_temp_files': '-1'})
    result = run(server, 'postgres')
    assert not result.failed, result.get('msg')
    for name in ('log_panic', 'log_fatal', 'log_error_rate', 'log_deadlocks', 'log_lock_waits', 'log_temp_files',
                 'log_checkpoints', 'log_auth_failures'):
        assert status(result, name) == ['ok'], (name, check(result, name))
    assert result['top_errors'] == []
    missing = dict((item['setting'], item) for item in result['log_settings']['missing'])
    assert {'log_line_prefix', 'log_lock_waits', 'log_temp_files'} <= set(missing)
    assert status(result, 'log_settings') == ['warning']  # no process id in the prefix
    assert json.dumps(result).count('%p') >= 1
