# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_vacuum against real PostgreSQL 18 and 15 servers: planted dead tuples are cleared, stale statistics
analysed, locked tables postponed rather than waited for, and check mode changes nothing."""

from __future__ import annotations

import time
import zlib

import pytest

from conftest import wait_until

FAST = dict(lock_timeout=0.5, lock_retries=2, lock_retry_delay=0.2)


def stats(target, table):
    row = target.sql('SELECT n_live_tup, n_dead_tup, vacuum_count, analyze_count, n_mod_since_analyze '
                     'FROM pg_stat_user_tables WHERE relid = %s::regclass', (table,))[0]
    return dict(zip(('live', 'dead', 'vacuums', 'analyzes', 'modified'), row, strict=True))


def dead_table(target, table='orders', rows=10000, delete_share=0.5):
    """A table with autovacuum off and ``delete_share`` of its rows deleted: dead tuples only VACUUM clears."""
    target.sql('CREATE TABLE %s (id int PRIMARY KEY, note text) WITH (autovacuum_enabled = false)' % table)
    target.sql("INSERT INTO %s SELECT g, 'n' || g FROM generate_series(1, %d) g" % (table, rows))
    target.sql('ANALYZE %s' % table)
    target.sql('DELETE FROM %s WHERE id <= %d' % (table, int(rows * delete_share)))
    assert wait_until(lambda: stats(target, table)['dead'] >= rows * delete_share), stats(target, table)


def test_dead_tuples_are_cleared_and_second_run_does_nothing(target):
    dead_table(target)
    target.sql('CREATE TABLE quiet (id int) WITH (autovacuum_enabled = false)')
    target.sql('INSERT INTO quiet SELECT generate_series(1, 5000)')
    target.sql('ANALYZE quiet')

    plan = target.run('pg_vacuum', check_mode=True)
    assert plan.rc == 0, plan.raw
    assert [(a['table'], a['reason'], a['operation'], a['result']) for a in plan['actions']] == [
        ('public.orders', 'dead_tuples', 'vacuum', 'planned')]
    assert plan['actions'][0]['sql'] == 'VACUUM (ANALYZE, SKIP_LOCKED) "public"."orders"'
    assert plan['changed'] is False and stats(target, 'orders')['vacuums'] == 0, 'check mode vacuumed'
    assert plan.check('dead_tuples')['status'] == 'warning' and plan.check('dead_tuples')['object'] == 'public.orders'

    result = target.run('pg_vacuum')
    assert result.rc == 0, result.raw
    action = result['actions'][0]
    assert action['result'] == 'done' and action['dead_tuples_before'] >= 5000 and action['dead_tuples_after'] == 0
    assert result['changed'] is True and result['status'] == 'ok'
    after = stats(target, 'orders')
    assert after['dead'] == 0 and after['vacuums'] == 1 and after['analyzes'] == 2  # dead_table analysed once

    again = target.run('pg_vacuum')
    assert again['changed'] is False and again['actions'] == [], again['actions']
    assert stats(target, 'orders')['vacuums'] == 1


def test_few_dead_tuples_stay_below_the_threshold(target):
    dead_table(target, rows=10000, delete_share=0.1)
    result = target.run('pg_vacuum', check_mode=True)
    assert result['actions'] == [] and result.check('dead_tuples')['status'] == 'ok'
    lowered = target.run('pg_vacuum', check_mode=True, dead_tuple_percent=5)
    assert [a['table'] for a in lowered['actions']] == ['public.orders']


def test_stale_and_missing_statistics_get_analyze(target):
    target.sql('CREATE TABLE never (id int) WITH (autovacuum_enabled = false)')
    target.sql('INSERT INTO never SELECT generate_series(1, 3000)')
    target.sql('CREATE TABLE stale (id int) WITH (autovacuum_enabled = false)')
    target.sql('INSERT INTO stale SELECT generate_series(1, 10000)')
    target.sql('ANALYZE stale')
    target.sql('INSERT INTO stale SELECT generate_series(1, 4000)')
    assert wait_until(lambda: stats(target, 'stale')['modified'] >= 4000 and stats(target, 'never')['live'] >= 3000)
    result = target.run('pg_vacuum')
    assert result.rc == 0, result.raw
    got = dict((a['table'], (a['reason'], a['operation'], a['result'])) for a in result['actions'])
    assert got == {'public.never': ('never_analyzed', 'analyze', 'done'),
                   'public.stale': ('stale_statistics', 'analyze', 'done')}, got
    assert [a['sql'] for a in result['actions']][0].startswith('ANALYZE (SKIP_LOCKED)')
    assert stats(target, 'stale')['analyzes'] == 2 and stats(target, 'never')['analyzes'] == 1
    assert stats(target, 'stale')['vacuums'] == 0
    assert target.run('pg_vacuum')['changed'] is False


def test_listed_tables_are_vacuumed_and_full_needs_allow_full(target):
    dead_table(target, rows=20000, delete_share=0.9)
    size_before = target.sql("SELECT pg_table_size('orders')")[0][0]
    listed = target.run('pg_vacuum', tables=['orders'], dead_tuple_percent=99)
    assert [(a['reason'], a['operation'], a['result']) for a in listed['actions']] == [('requested', 'vacuum', 'done')]
    refused = target.run('pg_vacuum', allow_full=True)
    assert refused.failed and 'allow_full applies only to an explicit tables list' in refused['msg']
    full = target.run('pg_vacuum', tables=['public.orders'], allow_full=True)
    action = full['actions'][0]
    assert action['operation'] == 'vacuum_full' and action['sql'] == 'VACUUM (FULL, ANALYZE) "public"."orders"'
    assert action['result'] == 'done' and action['size_after'] < size_before / 4, action
    assert target.sql("SELECT pg_table_size('orders')")[0][0] == action['size_after']


def test_locked_table_is_postponed_not_waited_for(target):
    dead_table(target)
    blocker = target.conn(autocommit=False)
    with blocker.cursor() as cur:
        cur.execute('LOCK TABLE orders IN SHARE UPDATE EXCLUSIVE MODE')
    started = time.monotonic()
    result = target.run('pg_vacuum', **FAST)
    assert time.monotonic() - started < 20
    action = result['actions'][0]
    assert action['result'] == 'postponed' and action['attempts'] == 3, action
    assert 'SKIP_LOCKED passed it over' in action['message']
    assert result['changed'] is False and result.check('vacuum_postponed')['status'] == 'warning'
    assert stats(target, 'orders')['vacuums'] == 0
    blocker.rollback()
    assert target.run('pg_vacuum', **FAST)['actions'][0]['result'] == 'done'


def test_vacuum_full_does_not_queue_behind_a_long_transaction(target):
    dead_table(target)
    reader = target.conn(autocommit=False)
    with reader.cursor() as cur:
        cur.execute('SELECT count(*) FROM orders')
    time.sleep(0.7)
    result = target.run('pg_vacuum', tables=['orders'], allow_full=True, **FAST)
    action = result['actions'][0]
    assert action['result'] == 'postponed', action
    assert 'pid %d' % reader.get_backend_pid() in action['message']
    reader.rollback()


def test_dead_tuples_held_by_an_old_snapshot_are_reported_with_the_holder(target):
    target.sql('CREATE TABLE other (id int)')
    holder = target.conn(autocommit=False)
    holder.set_session(isolation_level='REPEATABLE READ')
    with holder.cursor() as cur:
        cur.execute('SELECT count(*) FROM other')  # takes the snapshot that keeps the dead rows alive
    dead_table(target)
    result = target.run('pg_vacuum')
    action = result['actions'][0]
    assert action['result'] == 'done' and action['dead_tuples_after'] >= 5000, action
    dead = result.check('dead_tuples')
    assert dead['status'] == 'warning' and 'pid %d' % holder.get_backend_pid() in dead['message'], dead
    holder.rollback()
    assert target.run('pg_vacuum').check('dead_tuples')['status'] == 'ok'


def test_role_that_may_not_vacuum_is_skipped_with_reason(target):
    dead_table(target)
    target.sql("CREATE ROLE vacuum_outsider LOGIN PASSWORD 'outsider-pw'")
    try:
        result = target.run('pg_vacuum', login_user='vacuum_outsider', login_password='outsider-pw')
        assert result.rc == 0, result.raw
        assert result['actions'] == [] and result['skipped_tables'][0]['table'] == 'public.orders'
        assert 'vacuum_outsider may not vacuum it' in result['skipped_tables'][0]['skip_reason']
        assert stats(target, 'orders')['vacuums'] == 0
    finally:
        target.sql('DROP ROLE vacuum_outsider')


def test_excluded_schema_is_left_alone_unless_listed(target):
    target.sql('CREATE SCHEMA storage')
    dead_table(target, table='storage.objects')
    assert target.run('pg_vacuum', check_mode=True)['actions'] == []
    listed = target.run('pg_vacuum', tables=['storage.objects'])
    assert [a['result'] for a in listed['actions']] == ['done']


def test_supabase_managed_schemas_are_left_alone(target):
    target.sql('CREATE SCHEMA pgmq')
    dead_table(target, table='pgmq.q_jobs')
    plan = target.run('pg_vacuum', check_mode=True)
    assert plan['actions'] == [] and plan.check('dead_tuples')['status'] == 'ok', plan['checks']
    everything = target.run('pg_vacuum', check_mode=True, exclude_schemas=[])
    assert [a['table'] for a in everything['actions']] == ['pgmq.q_jobs']
    assert everything.check('dead_tuples')['status'] == 'warning'


def test_second_concurrent_run_is_refused(target):
    dead_table(target)
    holder = target.conn()
    with holder.cursor() as cur:
        cur.execute('SELECT pg_advisory_lock(%s, %s)', (0x6170636d, zlib.crc32(b'pg_vacuum') & 0x7fffffff))
    result = target.run('pg_vacuum')
    assert result.failed and 'another pg_vacuum run is working on database' in result['msg']
    assert stats(target, 'orders')['vacuums'] == 0


@pytest.mark.parametrize('options, message', [
    (dict(dead_tuple_percent=150), 'dead_tuple_percent must be between 0 and 100'),
    (dict(min_dead_tuples=-1), 'min_dead_tuples must be 0 or more'),
    (dict(max_duration=-5), 'max_duration must be 0'),
    (dict(tables=['missing_table']), 'table missing_table does not exist'),
])
def test_bad_options_fail_clearly(target, options, message):
    result = target.run('pg_vacuum', **options)
    assert result.failed and message in result['msg'], result['msg']
