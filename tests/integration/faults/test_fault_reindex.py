# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_reindex's fault cases against real PostgreSQL 18 and 15 servers: what a failed REINDEX CONCURRENTLY
leaves behind when a writer transaction holds a lock on the table, and how a run (or the next one) cleans it."""

from __future__ import annotations

import time

from conftest import wait_until

# lock_timeout leaves room for the module's start: the writer must still be younger than it when the
# pre-check looks, so that REINDEX CONCURRENTLY starts, builds its _ccnew copy and then waits for the writer.
OPTIONS = dict(indexes=['orders_code'], min_index_size='100MB', lock_timeout=3, lock_retries=1, lock_retry_delay=0.2)


def orders(target):
    target.sql('CREATE TABLE orders (id int PRIMARY KEY, code text)')
    target.sql("INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 2000) g")
    target.sql('CREATE INDEX orders_code ON orders (code)')


def copies(target):
    """{name: valid} of the _ccnew/_ccold indexes of the table, read from pg_index/pg_class."""
    rows = target.sql("SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                      "WHERE i.indrelid = 'orders'::regclass AND c.relname ~ '_cc(new|old)[0-9]*$'")
    return dict((r[0], r[1]) for r in rows)


def invalid_indexes(target):
    return [r[0] for r in target.sql("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                     "WHERE NOT i.indisvalid")]


def holds_writer_lock(target, pid):
    return target.sql("SELECT count(*) FROM pg_locks WHERE pid = %s AND relation = 'orders'::regclass "
                      "AND mode = 'RowExclusiveLock' AND granted", (pid,))[0][0] == 1


def start_writer(target, seconds):
    """A writer transaction that starts now, holds ROW EXCLUSIVE on orders and commits ``seconds`` later."""
    conn = target.start_async("BEGIN; INSERT INTO orders VALUES (100000, 'late'); SELECT pg_sleep(%s); COMMIT"
                              % seconds)
    assert wait_until(lambda: holds_writer_lock(target, conn.get_backend_pid()), timeout=10)
    return conn


def test_fault_reindex_blocked_drop_leaves_no_ccnew(target):
    """A writer younger than lock_timeout makes REINDEX CONCURRENTLY time out after it created its _ccnew copy,
    and the drop of that copy waits for the same writer: the run waits for it within its budget and drops it."""
    orders(target)
    start_writer(target, 6)
    started = time.monotonic()
    result = target.run('pg_reindex', max_duration=30, **OPTIONS)
    assert result.rc == 0, result.raw
    action = result['actions'][0]
    assert action['index'] == 'public.orders_code', action
    assert copies(target) == {}, 'the failed rebuild left %s (%s)' % (copies(target), action)
    assert invalid_indexes(target) == [], action
    assert action['leftovers_dropped'] == ['public.orders_code_ccnew'], action
    assert action['leftovers_left'] == [], action
    assert 'dropped the leftover public.orders_code_ccnew' in action['message'], action['message']
    # The wait for the writer happened inside the first attempt; the second one rebuilt the index.
    assert action['result'] == 'done' and action['attempts'] == 2, action
    assert result.check('invalid_indexes')['status'] == 'ok', result['checks']
    assert time.monotonic() - started < 15, 'waited for more than the writer'
    assert wait_until(lambda: target.sql("SELECT count(*) FROM orders WHERE id = 100000")[0][0] == 1, timeout=10)
    again = target.run('pg_reindex', max_duration=30, **OPTIONS)
    assert [a['result'] for a in again['actions']] == ['done'], again['actions']
    assert copies(target) == {} and invalid_indexes(target) == []


def test_fault_reindex_blocker_outlives_budget_names_leftover_next_run_drops_it(target):
    """The writer outlives the run's budget: the copy cannot be dropped, so the result and the findings name it
    and say the next run drops it; the next run (the writer gone) drops it as a leftover of an earlier run."""
    orders(target)
    writer = target.conn(autocommit=False)
    with writer.cursor() as cur:
        cur.execute("INSERT INTO orders VALUES (100000, 'late')")
    started = time.monotonic()
    result = target.run('pg_reindex', max_duration=6, **OPTIONS)
    took = time.monotonic() - started
    assert result.rc == 0, result.raw
    action = result['actions'][0]
    assert copies(target) == {'orders_code_ccnew': False}, action
    assert action['result'] == 'postponed', action
    assert action['leftovers_dropped'] == [] and action['leftovers_left'] == ['public.orders_code_ccnew'], action
    assert 'could not drop the leftover public.orders_code_ccnew' in action['message'], action['message']
    assert 'the next run drops it' in action['message'], action['message']
    assert 'the time budget (max_duration 6 s) was used up' in action['message'], action['message']
    assert 'pid %d' % writer.get_backend_pid() in action['message'], action['message']
    assert 6 <= took < 6 + 3 * OPTIONS['lock_timeout'] + 5, 'did not wait within the budget: %.1f s' % took
    postponed = result.check('reindex_postponed')
    assert postponed['status'] == 'warning'
    assert 'public.orders_code_ccnew' in postponed['message'] and 'the next run drops it' in postponed['message']
    invalid = result.check('invalid_indexes')
    assert invalid['status'] == 'warning' and 'public.orders_code_ccnew' in invalid['message'], invalid
    assert 'the next run drops it' in invalid['message'], invalid

    writer.rollback()
    again = target.run('pg_reindex', max_duration=30, **OPTIONS)
    assert again.rc == 0, again.raw
    first = again['actions'][0]
    assert first['index'] == 'public.orders_code_ccnew' and first['reason'] == 'leftover', again['actions']
    assert first['result'] == 'done', first
    assert 'dropped the leftover of an earlier failed REINDEX CONCURRENTLY run' in first['message'], first['message']
    assert [a['result'] for a in again['actions'][1:]] == ['done'], again['actions']
    assert copies(target) == {} and invalid_indexes(target) == []
    invalid = again.check('invalid_indexes')
    assert invalid['status'] == 'ok' and 'public.orders_code_ccnew' in invalid['message'], invalid
    assert 'leftover of an earlier failed REINDEX CONCURRENTLY run' in invalid['message'], invalid
