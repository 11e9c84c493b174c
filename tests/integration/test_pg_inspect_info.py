# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_inspect_info against real PostgreSQL 18 and 15 servers: every section against a planted condition and
its clean counterpart."""

from __future__ import annotations

import psycopg2
import pytest

from conftest import wait_until

SMALL = dict(min_table_size='1MB', min_cache_blocks=100)


def by_object(result, name):
    return dict((c['object'], c) for c in result['checks'] if c['name'] == name)


def quiet(result, name):
    found = [c for c in result['checks'] if c['name'] == name]
    assert len(found) == 1 and found[0]['status'] == 'ok', found
    return found[0]


def test_clean_database_is_quiet(target):
    target.sql('CREATE TABLE parents (id int PRIMARY KEY)')
    target.sql('CREATE TABLE children (id int PRIMARY KEY, parent_id int REFERENCES parents)')
    target.sql('CREATE INDEX children_parent ON children (parent_id)')
    target.sql('INSERT INTO parents SELECT generate_series(1, 100)')
    target.sql('INSERT INTO children SELECT g, 1 + g % 100 FROM generate_series(1, 1000) g')
    target.sql('ANALYZE')
    target.sql('SET enable_seqscan = off; SELECT * FROM children WHERE parent_id = 3')
    assert wait_until(lambda: target.sql("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = "
                                         "'children_parent'")[0][0] > 0)
    result = target.run('pg_inspect_info', **SMALL)
    assert result.rc == 0, result.raw
    for name in ('slow_queries', 'duplicate_index', 'invalid_indexes', 'seq_scans', 'table_bloat', 'index_bloat',
                 'vacuum_overdue', 'autovacuum_disabled', 'unindexed_foreign_key', 'table_cache_hit',
                 'role_connections', 'database_size', 'no_primary_key', 'auth_rls_initplan',
                 'multiple_permissive_policies', 'table_bloat_excessive'):
        quiet(result, name)
    unused = by_object(result, 'unused_index')
    assert 'index=public.children_parent' not in unused
    sizes = result['sections']['sizes']
    assert sizes['table_count'] == 2 and sizes['database_bytes'] == result['metrics']['database_size'] > 0
    assert {t['table'] for t in sizes['tables']} == {'public.parents', 'public.children'}
    assert result['metrics']['table_count'] == 2 and 'connections' in result['metrics']
    assert result['status'] == 'ok'  # nothing fired, not even advice


def test_slow_statement_from_pg_stat_statements(target):
    target.sql('SELECT pg_sleep(2.1)')
    result = target.run('pg_inspect_info', sections=['slow_queries'])
    slow = [c for c in result['checks'] if c['name'] == 'slow_queries' and c['status'] == 'warning']
    assert len(slow) == 1 and slow[0]['value'] >= 2100 and 'pg_sleep' in slow[0]['message'], result['checks']
    top = result['sections']['slow_queries']['by_mean_time'][0]
    assert 'pg_sleep' in top['query'] and top['calls'] == 1
    assert result['metrics']['slow_queries'] == 1


def test_slow_queries_unknown_without_the_extension(target):
    target.sql('DROP EXTENSION pg_stat_statements')
    result = target.run('pg_inspect_info', sections=['slow_queries'])
    check = result.check('slow_queries')
    assert check['status'] == 'unknown' and 'pg_stat_statements is not installed' in check['message']


def test_unused_duplicate_and_invalid_indexes(target):
    target.sql('CREATE TABLE items (id int PRIMARY KEY, a int, b int, email text)')
    target.sql("INSERT INTO items SELECT g, g % 50, g % 7, 'x' FROM generate_series(1, 2000) g")
    target.sql('CREATE INDEX items_a ON items (a)')
    target.sql('CREATE INDEX items_b ON items (b)')
    target.sql('CREATE INDEX items_b_again ON items (b)')
    with pytest.raises(psycopg2.Error):
        target.sql('CREATE UNIQUE INDEX CONCURRENTLY items_email_key ON items (email)')
    target.sql('ANALYZE items')
    target.sql('SET enable_seqscan = off; SELECT * FROM items WHERE a = 3')
    assert wait_until(lambda: target.sql("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'items_a'")[0][0])
    result = target.run('pg_inspect_info', sections=['index_usage'])
    unused = by_object(result, 'unused_index')
    assert 'index=public.items_b' in unused and 'index=public.items_b_again' in unused
    assert 'index=public.items_a' not in unused and 'index=public.items_pkey' not in unused
    assert unused['index=public.items_b']['status'] == 'warning'
    duplicates = by_object(result, 'duplicate_index')
    assert list(duplicates) == ['index=public.items_b_again'], duplicates
    assert result['sections']['index_usage']['duplicates'][0]['keep'] == 'public.items_b'
    assert list(by_object(result, 'invalid_indexes')) == ['index=public.items_email_key']
    assert 'failed CREATE INDEX CONCURRENTLY' in by_object(result, 'invalid_indexes')['index=public.items_email_key']['message']


def test_supabase_managed_schemas_are_left_out(target):
    for schema in ('pgmq', '_supavisor', '_timescaledb_catalog'):
        target.sql('CREATE SCHEMA %s' % schema)
        target.sql('CREATE TABLE %s.queue (id int PRIMARY KEY)' % schema)
    target.sql('CREATE TABLE public.jobs (id int PRIMARY KEY)')
    result = target.run('pg_inspect_info', sections=['sizes'])
    assert [t['table'] for t in result['sections']['sizes']['tables']] == ['public.jobs']
    everything = target.run('pg_inspect_info', sections=['sizes'], exclude_schemas=[])
    assert {t['table'] for t in everything['sections']['sizes']['tables']} == {
        'public.jobs', 'pgmq.queue', '_supavisor.queue', '_timescaledb_catalog.queue'}
    patterned = target.run('pg_inspect_info', sections=['sizes'], exclude_schemas=['_*'])
    assert {t['table'] for t in patterned['sections']['sizes']['tables']} == {'public.jobs', 'pgmq.queue'}


def test_foreign_key_without_index(target):
    target.sql('CREATE TABLE parents (id int PRIMARY KEY)')
    target.sql('CREATE TABLE orphans (id int PRIMARY KEY, parent_id int REFERENCES parents)')
    target.sql('CREATE TABLE kids (id int PRIMARY KEY, parent_id int REFERENCES parents, other int)')
    target.sql('CREATE INDEX kids_parent_other ON kids (parent_id, other)')  # leading column: supports the FK
    result = target.run('pg_inspect_info', sections=['foreign_keys'])
    found = by_object(result, 'unindexed_foreign_key')
    assert list(found) == ['constraint=public.orphans.orphans_parent_id_fkey'], found
    assert 'CREATE INDEX CONCURRENTLY ON public.orphans (parent_id)' in found[list(found)[0]]['message']


def test_bloated_table_autovacuum_off_and_overdue(target):
    target.sql('CREATE TABLE churn (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false)')
    target.sql("INSERT INTO churn SELECT g, repeat('x', 100) FROM generate_series(1, 80000) g")
    target.sql('DELETE FROM churn WHERE id % 5 <> 0')
    target.sql('VACUUM ANALYZE churn')   # dead space stays in the pages: the table keeps its size
    target.sql('CREATE TABLE pending (id int) WITH (autovacuum_enabled = false)')
    target.sql('INSERT INTO pending SELECT generate_series(1, 5000)')
    target.sql('ANALYZE pending')
    target.sql('DELETE FROM pending')
    assert wait_until(lambda: target.sql("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'pending'")[0][0]
                      >= 5000)
    result = target.run('pg_inspect_info', sections=['bloat', 'vacuum'], **SMALL)
    bloat = by_object(result, 'table_bloat')['table=public.churn']
    assert bloat['status'] == 'critical' and bloat['value'] > 60, bloat
    assert by_object(result, 'index_bloat')['index=public.churn_pkey']['status'] in ('warning', 'critical')
    overdue = by_object(result, 'vacuum_overdue')
    assert 'table=public.pending' in overdue and 'autovacuum is disabled for it' in overdue['table=public.pending']['message']
    disabled = by_object(result, 'autovacuum_disabled')
    assert set(disabled) == {'table=public.churn', 'table=public.pending'}
    target.sql('VACUUM FULL churn')
    target.sql('ANALYZE churn')
    after = target.run('pg_inspect_info', sections=['bloat'], **SMALL)
    assert 'table=public.churn' not in by_object(after, 'table_bloat') or \
        by_object(after, 'table_bloat')['table=public.churn']['status'] == 'ok'


def test_sequential_scans_and_cache_misses_on_a_large_table(spawn_server):
    from modrunner import run_module  # noqa: PLC0415
    srv = spawn_server(settings={'shared_buffers': "'1MB'"})  # the table cannot stay in shared buffers
    srv.execute('CREATE TABLE big (id int, payload text)')
    srv.execute('CREATE TABLE small (id int PRIMARY KEY)')
    srv.execute("INSERT INTO big SELECT g, md5(g::text) || md5(g::text) FROM generate_series(1, 100000) g")
    srv.execute('INSERT INTO small SELECT generate_series(1, 1000)')
    srv.execute('ANALYZE')
    srv.execute('SELECT pg_stat_reset()')
    for _scan in range(3):
        srv.execute("SELECT count(*) FROM big WHERE payload LIKE 'abc%'")
    assert wait_until(lambda: srv.execute("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'big'")[0][0] >= 3)
    result = run_module('pg_inspect_info', dict(srv.login_args(), sections=['seq_scans', 'cache', 'sizes'], **SMALL))
    seq = by_object(result, 'seq_scans')['table=public.big']
    assert seq['status'] == 'warning' and seq['value'] == 100.0
    cache = by_object(result, 'table_cache_hit')['table=public.big']
    assert cache['status'] == 'warning' and cache['value'] < 50, cache
    assert result['sections']['sizes']['tables'][0]['table'] == 'public.big'
    assert 'table=public.small' not in by_object(result, 'seq_scans')  # below min_table_size


def test_role_connection_limit(target):
    target.sql("CREATE ROLE limited LOGIN PASSWORD 'limited-pw' CONNECTION LIMIT 2")
    try:
        sessions = [target.conn(user='limited', password='limited-pw') for _n in range(2)]
        result = target.run('pg_inspect_info', sections=['connections'])
        limited = by_object(result, 'role_connections')['role=limited']
        assert limited['status'] == 'critical' and limited['value'] == 100.0
        for conn in sessions:
            conn.close()
        assert wait_until(lambda: target.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'limited'")[0][0] == 0)
        quiet(target.run('pg_inspect_info', sections=['connections']), 'role_connections')
    finally:
        target.sql('DROP ROLE limited')


@pytest.mark.parametrize('options, message', [
    (dict(min_table_size='big'), 'min_table_size'),
    (dict(top_n=0), 'top_n must be at least 1'),
    (dict(thresholds={'seq_scans': {'warning': 'half'}}), 'must be a number'),
])
def test_bad_options_fail_clearly(target, options, message):
    result = target.run('pg_inspect_info', **options)
    assert result.failed and message in result['msg'], result['msg']
