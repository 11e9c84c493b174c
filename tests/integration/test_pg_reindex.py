# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_reindex against real PostgreSQL 18 and 15 servers: bloated indexes shrink, failed rebuilds leave
nothing behind, leftovers are cleaned, locks are never waited on for long, check mode changes nothing."""

from __future__ import annotations

import time
import zlib

import psycopg2
import pytest

from conftest import wait_until
from modrunner import start_module

FAST = dict(lock_timeout=0.5, lock_retries=2, lock_retry_delay=0.2)


def bloat(target, table='bloaty', rows=60000):
    """A table whose two indexes keep their size while 90% of their entries are gone."""
    target.sql('CREATE TABLE %s (id int PRIMARY KEY, code text) WITH (autovacuum_enabled = false)' % table)
    target.sql("INSERT INTO %s SELECT g, md5(g::text) FROM generate_series(1, %d) g" % (table, rows))
    target.sql('CREATE INDEX %s_code ON %s (code)' % (table, table))
    target.sql('DELETE FROM %s WHERE id %% 10 <> 0' % table)
    target.sql('VACUUM ANALYZE %s' % table)


def indexes(target, table):
    """{name: (oid, relfilenode, valid, size)} of the table's indexes."""
    rows = target.sql("SELECT c.relname, c.oid, c.relfilenode, i.indisvalid, pg_relation_size(c.oid) FROM pg_index i "
                      "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass", (table,))
    return dict((r[0], tuple(r[1:])) for r in rows)


def make_invalid(target, statement):
    """Run a CREATE UNIQUE INDEX CONCURRENTLY that fails on duplicates, leaving an invalid index."""
    with pytest.raises(psycopg2.Error, match='could not create unique index'):
        target.sql(statement)


def test_bloated_indexes_are_rebuilt_and_shrink_then_nothing_to_do(target):
    bloat(target)
    before = indexes(target, 'bloaty')
    plan = target.run('pg_reindex', check_mode=True, min_index_size='1MB')
    assert plan.rc == 0, plan.raw
    assert plan['changed'] is False
    planned = dict((a['index'], a) for a in plan['actions'])
    assert set(planned) == {'public.bloaty_code', 'public.bloaty_pkey'}, plan['actions']
    assert all(a['result'] == 'planned' and a['reason'] == 'bloat' for a in planned.values())
    assert planned['public.bloaty_code']['sql'] == 'REINDEX INDEX CONCURRENTLY "public"."bloaty_code"'
    assert planned['public.bloaty_code']['bloat_percent'] > 80
    assert indexes(target, 'bloaty') == before, 'check mode changed the indexes'

    result = target.run('pg_reindex', min_index_size='1MB')
    assert result.rc == 0, result.raw
    assert result['changed'] is True
    done = dict((a['index'], a) for a in result['actions'])
    after = indexes(target, 'bloaty')
    for name in ('bloaty_code', 'bloaty_pkey'):
        action = done['public.' + name]
        assert action['result'] == 'done', action
        assert action['size_after'] < action['size_before'] / 3, action
        assert after[name][3] == action['size_after'] and after[name][2] is True
        assert after[name][1] != before[name][1], 'index was not rebuilt'
    assert result['status'] == 'ok' and result.check('reindex_failures')['value'] == 0

    again = target.run('pg_reindex', min_index_size='1MB')
    assert again.rc == 0 and again['changed'] is False and again['actions'] == [], again['actions']
    assert indexes(target, 'bloaty') == after


def test_small_or_healthy_indexes_are_left_alone(target):
    target.sql('CREATE TABLE fresh (id int PRIMARY KEY, code text)')
    target.sql("INSERT INTO fresh SELECT g, md5(g::text) FROM generate_series(1, 60000) g")
    target.sql('CREATE INDEX fresh_code ON fresh (code)')
    target.sql('ANALYZE fresh')
    result = target.run('pg_reindex', min_index_size='1MB')
    assert result.rc == 0 and result['actions'] == [] and result['changed'] is False, result['actions']
    bloat(target)
    small = target.run('pg_reindex', min_index_size='100MB', check_mode=True)
    assert small['actions'] == [], 'min_index_size did not keep small indexes out'


def test_pgstattuple_measures_bloat_and_falls_back_without_the_extension(target):
    bloat(target)
    fallback = target.run('pg_reindex', check_mode=True, min_index_size='1MB', bloat_method='pgstattuple')
    assert fallback.rc == 0
    assert any('pgstattuple extension is not installed' in n for n in fallback['notes'])
    assert 'estimated' in fallback['actions'][0]['detail']
    target.sql('CREATE EXTENSION pgstattuple')
    measured = target.run('pg_reindex', check_mode=True, min_index_size='1MB', bloat_method='pgstattuple')
    assert measured['notes'] == []
    code = [a for a in measured['actions'] if a['index'] == 'public.bloaty_code'][0]
    assert 'measured' in code['detail'] and code['bloat_percent'] > 80


def test_failed_rebuild_of_invalid_unique_index_is_cleaned_reported_and_run_goes_on(target):
    target.sql('CREATE TABLE people (id int, email text)')
    target.sql("INSERT INTO people SELECT g, 'same@example.org' FROM generate_series(1, 50) g")
    make_invalid(target, 'CREATE UNIQUE INDEX CONCURRENTLY people_email_key ON people (email)')
    bloat(target)
    result = target.run('pg_reindex', min_index_size='1MB')
    assert result.rc == 0, result.raw
    first = result['actions'][0]
    assert first['index'] == 'public.people_email_key' and first['reason'] == 'invalid'
    assert first['result'] == 'failed'
    assert 'could not create unique index' in first['message'], first['message']
    assert 'Key (email)=(same@example.org) is duplicated' in first['message'], first['message']
    assert first['leftovers_dropped'] == ['public.people_email_key_ccnew']
    left = indexes(target, 'people')
    assert set(left) == {'people_email_key'}, 'the failed rebuild left an index behind: %s' % left
    assert left['people_email_key'][2] is False  # still invalid, as before: the data has duplicates
    rest = result['actions'][1:]
    assert rest and all(a['result'] == 'done' for a in rest), 'the run did not go on after the failure'
    assert result['changed'] is True
    assert result.check('reindex_failures')['status'] == 'critical'
    assert 'people_email_key' in result.check('reindex_failures')['message']
    assert result.check('invalid_indexes')['status'] == 'warning'
    assert result['status'] == 'critical'
    assert 'failed public.people_email_key' in result.raw  # also a warning in the task output


def test_invalid_index_rebuilt_once_data_is_fixed(target):
    target.sql('CREATE TABLE people (id int, email text)')
    target.sql("INSERT INTO people SELECT g, 'same@example.org' FROM generate_series(1, 50) g")
    make_invalid(target, 'CREATE UNIQUE INDEX CONCURRENTLY people_email_key ON people (email)')
    target.sql("UPDATE people SET email = id || '@example.org'")
    result = target.run('pg_reindex')
    assert [a['result'] for a in result['actions']] == ['done'], result['actions']
    assert indexes(target, 'people')['people_email_key'][2] is True
    assert result.check('invalid_indexes')['status'] == 'ok'
    assert target.run('pg_reindex')['changed'] is False


def test_leftovers_of_failed_concurrent_rebuilds_are_dropped(target):
    target.sql('CREATE TABLE docs (id int, ref text)')
    target.sql("INSERT INTO docs SELECT g, 'x' FROM generate_series(1, 20) g")
    make_invalid(target, 'CREATE UNIQUE INDEX CONCURRENTLY docs_ref_key_ccnew ON docs (ref)')
    make_invalid(target, 'CREATE UNIQUE INDEX CONCURRENTLY docs_ref_key_ccold1 ON docs (ref)')
    target.sql('CREATE INDEX docs_id_idx ON docs (id)')
    target.sql('CREATE INDEX docs_id_idx_ccold ON docs (id)')       # valid duplicate left after a swap
    target.sql('CREATE UNIQUE INDEX mine_ccnew ON docs (id, ref)')  # a user's own index with an unlucky name
    plan = target.run('pg_reindex', check_mode=True)
    assert sorted(a['index'] for a in plan['actions']) == [
        'public.docs_id_idx_ccold', 'public.docs_ref_key_ccnew', 'public.docs_ref_key_ccold1']
    assert all(a['operation'] == 'drop' and a['sql'].startswith('DROP INDEX CONCURRENTLY') for a in plan['actions'])
    assert len(indexes(target, 'docs')) == 5
    result = target.run('pg_reindex')
    assert result['changed'] is True and all(a['result'] == 'done' for a in result['actions']), result['actions']
    assert set(indexes(target, 'docs')) == {'docs_id_idx', 'mine_ccnew'}
    assert target.run('pg_reindex')['changed'] is False


def test_exclusion_constraint_partitioned_and_excluded_schema_are_skipped_with_reasons(target):
    target.sql('CREATE TABLE bookings (room int, during int4range, EXCLUDE USING gist (during WITH &&))')
    target.sql('CREATE TABLE events (id int, at date) PARTITION BY RANGE (at)')
    target.sql("CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')")
    target.sql("CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')")
    target.sql('CREATE INDEX events_id ON events (id)')
    target.sql('CREATE SCHEMA auth')
    target.sql('CREATE TABLE auth.users (id int, email text)')
    target.sql("INSERT INTO auth.users SELECT g, 'a' FROM generate_series(1, 20) g")
    make_invalid(target, 'CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON auth.users (email)')
    result = target.run('pg_reindex', indexes=['bookings_during_excl', 'events_id', 'pg_class_oid_index'])
    assert result.rc == 0, result.raw
    skipped = dict((s['index'], s['skip_reason']) for s in result['skipped_indexes'])
    assert 'exclusion-constraint' in skipped['public.bookings_during_excl']
    assert 'partitioned index' in skipped['public.events_id']
    assert 'system catalog' in skipped['pg_catalog.pg_class_oid_index']
    assert 'excluded' in skipped['auth.users_email_key']
    done = sorted(a['index'] for a in result['actions'])
    assert done == ['public.events_2026_id_idx', 'public.events_2027_id_idx'], result['actions']
    assert all(a['result'] == 'done' and a['detail'].startswith('requested (partition of') for a in result['actions'])


def test_indexes_of_supabase_managed_schemas_are_not_picked_for_bloat(target):
    # pgmq and _supavisor were missing from the modules' list: their bloated indexes were planned for REINDEX
    for schema in ('pgmq', '_supavisor', 'timescaledb_information'):
        target.sql('CREATE SCHEMA %s' % schema)
        target.sql('CREATE TABLE %s.q (id int PRIMARY KEY, code text) WITH (autovacuum_enabled = false)' % schema)
        target.sql("INSERT INTO %s.q SELECT g, md5(g::text) FROM generate_series(1, 60000) g" % schema)
        target.sql('DELETE FROM %s.q WHERE id %% 10 <> 0' % schema)
        target.sql('VACUUM ANALYZE %s.q' % schema)
    plan = target.run('pg_reindex', check_mode=True, min_index_size='1MB')
    assert plan.rc == 0 and plan['actions'] == [], plan['actions']
    patterned = target.run('pg_reindex', check_mode=True, min_index_size='1MB', exclude_schemas=['timescaledb_*', 'pg?q'])
    assert [a['index'] for a in patterned['actions']] == ['_supavisor.q_pkey'], patterned['actions']


def test_role_that_may_not_reindex_is_skipped_with_reason(target):
    bloat(target)
    target.sql("CREATE ROLE reindex_outsider LOGIN PASSWORD 'outsider-pw'")
    try:
        result = target.run('pg_reindex', login_user='reindex_outsider', login_password='outsider-pw',
                            indexes=['bloaty_code'])
        assert result.rc == 0, result.raw
        assert result['actions'] == []
        reason = result['skipped_indexes'][0]['skip_reason']
        assert 'reindex_outsider may not rebuild it' in reason and 'public.bloaty' in reason
    finally:
        target.sql("DROP OWNED BY reindex_outsider")
        target.sql('DROP ROLE reindex_outsider')


def test_table_lock_held_by_long_transaction_postpones_without_leftovers(target):
    bloat(target)
    blocker = target.conn(autocommit=False)
    with blocker.cursor() as cur:
        cur.execute('LOCK TABLE bloaty IN SHARE UPDATE EXCLUSIVE MODE')
    started = time.monotonic()
    result = target.run('pg_reindex', indexes=['bloaty_code'], min_index_size='100MB', **FAST)
    assert result.rc == 0, result.raw
    action = result['actions'][0]
    assert action['result'] == 'postponed' and action['attempts'] == 3, action
    assert 'lock' in action['message'] and 'the index is valid' in action['message'], action['message']
    assert time.monotonic() - started < 30
    assert result.check('reindex_postponed')['status'] == 'warning'
    assert result['changed'] is False
    state = indexes(target, 'bloaty')
    assert set(state) == {'bloaty_code', 'bloaty_pkey'} and all(v[2] for v in state.values()), state
    blocker.rollback()
    assert target.run('pg_reindex', indexes=['bloaty_code'], min_index_size='100MB', **FAST)['actions'][0]['result'] == 'done'


def test_idle_writer_transaction_is_noticed_before_starting(target):
    bloat(target)
    writer = target.conn(autocommit=False)
    with writer.cursor() as cur:
        cur.execute('UPDATE bloaty SET code = code WHERE id = 10')
    time.sleep(1.0)
    result = target.run('pg_reindex', indexes=['bloaty_code'], min_index_size='100MB', **FAST)
    action = result['actions'][0]
    assert action['result'] == 'postponed', action
    assert 'pid %d' % writer.get_backend_pid() in action['message'] and 'holds a lock on the table' in action['message']
    assert set(indexes(target, 'bloaty')) == {'bloaty_code', 'bloaty_pkey'}
    writer.rollback()


def test_second_concurrent_run_is_refused(target):
    bloat(target)
    holder = target.conn()
    key = zlib.crc32(b'pg_reindex') & 0x7fffffff
    with holder.cursor() as cur:
        cur.execute('SELECT pg_advisory_lock(%s, %s)', (0x6170636d, key))
    result = target.run('pg_reindex', min_index_size='1MB')
    assert result.failed
    assert 'another pg_reindex run is working on database %s' % target.dbname in result['msg']
    assert 'pid %d' % holder.get_backend_pid() in result['msg']
    assert target.run('pg_reindex', min_index_size='1MB', check_mode=True).rc == 0  # check mode takes no lock
    holder.close()
    assert target.run('pg_reindex', min_index_size='1MB')['changed'] is True


def test_two_real_runs_at_once_one_refuses(target):
    bloat(target, rows=200000)
    first = start_module('pg_reindex', target.args(min_index_size='1MB'))
    time.sleep(0.6)
    second = target.run('pg_reindex', min_index_size='1MB')
    done = first.finish()
    assert done.rc == 0 and done['changed'] is True, done.raw
    if second.failed:  # the first run was still working
        assert 'another pg_reindex run' in second['msg']
    else:  # the first had already finished: nothing left to do
        assert second['changed'] is False


def test_time_budget_postpones_what_was_not_started(target):
    bloat(target)
    blocker = target.conn(autocommit=False)
    with blocker.cursor() as cur:
        cur.execute('LOCK TABLE bloaty IN SHARE UPDATE EXCLUSIVE MODE')
    # The listed index comes first and waits 3 s for its lock; by then the 2 s budget is used up.
    result = target.run('pg_reindex', indexes=['bloaty_code'], min_index_size='1MB', max_duration=2, lock_timeout=3,
                        lock_retries=3, lock_retry_delay=0.1)
    blocker.rollback()
    first, rest = result['actions'][0], result['actions'][1:]
    assert first['index'] == 'public.bloaty_code' and first['result'] == 'postponed', first
    assert first['attempts'] == 1 and 'time budget' in first['message'], first['message']
    assert [a['index'] for a in rest] == ['public.bloaty_pkey']
    assert rest[0]['result'] == 'postponed' and 'time budget (max_duration 2 s) was used up' in rest[0]['message']
    assert result['changed'] is False and result.check('reindex_postponed')['value'] == 2


@pytest.mark.parametrize('options, message', [
    (dict(min_index_size='ten megabytes'), 'min_index_size'),
    (dict(lock_timeout=0), 'lock_timeout must be more than 0'),
    (dict(min_bloat_percent=120), 'min_bloat_percent'),
    (dict(indexes=['no_such_index']), 'index no_such_index does not exist'),
    (dict(indexes=['a.b.c']), 'not a valid name'),
])
def test_bad_options_fail_clearly(target, options, message):
    result = target.run('pg_reindex', **options)
    assert result.failed and message in result['msg'], result['msg']


def test_unreachable_server_fails_without_the_password(target):
    result = target.run('pg_reindex', login_port=1, login_password='secret-do-not-print')
    assert result.failed and 'cannot connect to 127.0.0.1:1' in result['msg']
    assert 'secret-do-not-print' not in result.raw


def test_server_dying_mid_rebuild_is_a_clear_failure(spawn_server):
    srv = spawn_server()
    srv.execute('CREATE DATABASE shop')
    srv.execute('CREATE TABLE items (id int PRIMARY KEY, code text)', 'shop')
    srv.execute("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g", 'shop')
    srv.execute('CREATE INDEX items_code ON items (code)', 'shop')
    holder = srv.connect('shop', autocommit=False)
    with holder.cursor() as cur:
        cur.execute('LOCK TABLE items IN SHARE UPDATE EXCLUSIVE MODE')
    running = start_module('pg_reindex', dict(srv.login_args('shop'), indexes=['items_code', 'items_pkey'],
                                              lock_timeout=120))
    waiting = wait_until(lambda: srv.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'appcare.maintenance.pg_reindex' "
        "AND wait_event_type = 'Lock'")[0][0] == 1)
    srv.stop('immediate')
    result = running.finish(timeout=120)
    assert waiting, 'the rebuild never reached the lock'
    assert result.failed and 'lost the connection to 127.0.0.1:%d' % srv.port in result['msg'], result['msg']
    assert 'REINDEX INDEX CONCURRENTLY' in result['msg']
    first, second = result['actions']
    assert first['result'] == 'failed' and second['result'] == 'postponed'
    assert 'the run stopped' in second['message'] and result['changed'] is False


def test_maintain_role_may_rebuild_but_not_drop(target, pg_version):
    if int(pg_version) < 17:
        pytest.skip('pg_maintain exists from PostgreSQL 17 on')
    target.sql('CREATE TABLE people (id int, email text)')
    target.sql("INSERT INTO people SELECT g, 'same@example.org' FROM generate_series(1, 50) g")
    make_invalid(target, 'CREATE UNIQUE INDEX CONCURRENTLY people_email_key ON people (email)')
    make_invalid(target, 'CREATE UNIQUE INDEX CONCURRENTLY people_email_key_ccnew ON people (email)')
    bloat(target)
    target.sql("CREATE ROLE maintainer LOGIN PASSWORD 'maintainer-pw' IN ROLE pg_maintain")
    try:
        result = target.run('pg_reindex', login_user='maintainer', login_password='maintainer-pw', min_index_size='1MB')
        assert result.rc == 0, result.raw
        skipped = dict((s['index'], s['skip_reason']) for s in result['skipped_indexes'])
        assert 'may rebuild but not drop' in skipped['public.people_email_key']
        assert 'may not drop it' in skipped['public.people_email_key_ccnew']
        done = [a['index'] for a in result['actions'] if a['result'] == 'done']
        # MAINTAIN is enough to rebuild; without SELECT the role cannot read pg_stats of the text column, so only
        # the fixed-width primary key has a bloat estimate.
        assert done == ['public.bloaty_pkey'], result['actions']
    finally:
        target.sql('DROP ROLE maintainer')


def test_parallel_workers_option(target):
    bloat(target)
    result = target.run('pg_reindex', min_index_size='1MB', parallel_workers=2)
    assert result.rc == 0 and result['changed'] is True, result.raw
    refused = target.run('pg_reindex', parallel_workers=-1)
    assert refused.failed and 'parallel_workers must be 0 or more' in refused['msg']
