# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure judgement of the performance review: section selection, and each section's findings from given catalogue
and statistics rows (a stand-in session answers the queries with plain data; no database)."""

from __future__ import annotations

import copy
import math
import re

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import bloat as BL
from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import indexes as IX
from ansible_collections.appcare.maintenance.plugins.module_utils import review as RV
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ThresholdError

BLOCK = 8192
MB = 1024 * 1024


class Session(object):
    """Answers the review's queries with the rows given, by query; fails on a query it was not given."""

    def __init__(self, tables=(), indexes=(), invalid=(), widths=(), column_stats=(), foreign_keys=(),
                 connections=(), role_limits=(), settings=None, blocks=(99, 1)):
        self.rows = {RV.TABLES_SQL: tables, RV.INDEXES_SQL: indexes, IX.INVALID_INDEXES_SQL: invalid,
                     RV.COLUMN_WIDTHS_SQL: widths, BL.COLUMN_STATS_SQL: column_stats,
                     RV.UNINDEXED_FK_SQL: foreign_keys, RV.CONNECTIONS_SQL: connections,
                     RV.ROLE_LIMITS_SQL: role_limits}
        self.settings = {'autovacuum': 'on', 'autovacuum_vacuum_threshold': '50',
                         'autovacuum_vacuum_scale_factor': '0.2', 'block_size': str(BLOCK)}
        self.settings.update(settings or {})
        self.blocks = blocks
        self.queries = []

    def query(self, query, args=None):
        self.queries.append(query)
        if query in self.rows:
            return copy.deepcopy(list(self.rows[query]))
        if 'FROM pg_settings' in query:
            return [{'name': k, 'setting': v} for k, v in self.settings.items()]
        raise AssertionError('unexpected query: %s' % query[:80])

    def one(self, query, args=None):
        self.queries.append(query)
        if 'pg_database_size' in query:
            return {'size': 42 * MB, 'reset': None}
        if "current_setting('block_size')" in query:
            return {'b': str(BLOCK)}
        if 'blks_hit' in query:
            return {'blks_hit': self.blocks[0], 'blks_read': self.blocks[1]}
        raise AssertionError('unexpected query: %s' % query[:80])


def params(**changes):
    result = {'exclude_schemas': [], 'top_n': 20, '_min_table_bytes': 0, '_min_index_bytes': 0, 'login_db': 'app',
              'min_cache_blocks': 1000}
    result.update(changes)
    return result


def inspect(section, session, thresholds=None, **changes):
    review = RV.Inspection(session, params(**changes), C.merge_thresholds(RV.DEFAULT_THRESHOLDS, thresholds or {}))
    review.run([section])
    return review


def named(review, name):
    return [f for f in review.findings if f['name'] == name]


def fired(review, name):
    return [f for f in named(review, name) if f['status'] != C.OK]


def table(name='orders', schema='public', oid=None, relkind='r', heap=100 * MB, toast=0, index_bytes=10 * MB,
          reltuples=1000.0, reloptions=None, seq_scan=0, seq_tup_read=0, idx_scan=0, dead=0, heap_hit=0, heap_read=0):
    return {'oid': oid or abs(hash(name)) % 100000, 'schema': schema, 'name': name, 'relkind': relkind,
            'reltuples': reltuples, 'reloptions': reloptions, 'heap_bytes': heap, 'index_bytes': index_bytes,
            'table_bytes': heap + toast, 'seq_scan': seq_scan, 'seq_tup_read': seq_tup_read, 'idx_scan': idx_scan,
            'live': int(max(reltuples, 0)), 'dead': dead, 'modified': 0, 'last_vacuum': None, 'last_autovacuum': None,
            'last_analyze': None, 'last_autoanalyze': None, 'vacuum_age': 7200.0, 'analyze_age': None,
            'heap_hit': heap_hit, 'heap_read': heap_read}


def index(name, table_oid=1, key='1', scans=10, size=MB, unique=False, primary=False, constraint=False, valid=True,
          pred='', exprs='', method='btree', oid=None, reltuples=1000.0):
    return {'oid': oid or abs(hash(name)) % 100000, 'schema': 'public', 'name': name, 'table_name': 't%d' % table_oid,
            'indrelid': table_oid, 'method': method, 'is_unique': unique, 'is_primary': primary, 'valid': valid,
            'backs_constraint': constraint, 'scans': scans, 'size': size, 'reltuples': reltuples,
            'table_reltuples': reltuples, 'reloptions': None, 'key': key, 'opclasses': '1978', 'exprs': exprs,
            'pred': pred}


# -- sections and thresholds ----------------------------------------------------------------------------------------

def test_every_section_has_its_method():
    assert len(set(RV.SECTIONS)) == len(RV.SECTIONS)
    for section in RV.SECTIONS:
        assert callable(getattr(RV.Inspection, 'section_' + section))


@pytest.mark.parametrize('selected, data_keys', [
    (['sizes'], {'stats_reset', 'sizes'}),
    (['foreign_keys', 'connections'], {'stats_reset', 'foreign_keys', 'connections'}),
    ([], {'stats_reset'}),
])
def test_only_the_selected_sections_run(selected, data_keys):
    session = Session(tables=[table()])
    review = RV.Inspection(session, params(), C.merge_thresholds(RV.DEFAULT_THRESHOLDS, {}))
    findings = review.run(selected)
    assert set(review.data) == data_keys
    assert review.metrics['database_size'] == 42 * MB
    assert RV.INDEXES_SQL not in session.queries  # no section here reads the indexes
    assert findings is review.findings


def test_default_thresholds_are_valid_and_refuse_unknown_checks():
    merged = C.merge_thresholds(RV.DEFAULT_THRESHOLDS, {'table_bloat': {'warning': 20}})
    assert merged['table_bloat']['warning'] == 20 and merged['table_bloat']['critical'] == 60
    with pytest.raises(ThresholdError, match="'bloat' is not a check with thresholds"):
        C.merge_thresholds(RV.DEFAULT_THRESHOLDS, {'bloat': {'warning': 20}})
    with pytest.raises(ThresholdError, match='warning threshold 95 is above the critical threshold 90'):
        C.merge_thresholds(RV.DEFAULT_THRESHOLDS, {'role_connections': {'warning': 95, 'critical': 90}})


# -- index usage ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('changes, unused', [
    ({}, True),
    ({'scans': 1}, False),
    ({'unique': True}, False),
    ({'primary': True}, False),
    ({'constraint': True}, False),
    ({'valid': False}, False),  # an invalid index is its own finding
])
def test_unused_index(changes, unused):
    given = dict({'scans': 0}, **changes)
    review = inspect('index_usage', Session(indexes=[index('orders_note_idx', size=8 * MB, **given)]))
    assert bool(fired(review, 'unused_index')) is unused
    assert len(named(review, 'unused_index')) == 1
    if unused:
        check = fired(review, 'unused_index')[0]
        assert (check['status'], check['object'], check['value']) == (C.WARNING, 'index=public.orders_note_idx', 8 * MB)
        assert 'DROP INDEX CONCURRENTLY public.orders_note_idx' in check['message']
        assert review.data['index_usage']['unused'] == [{'index': 'public.orders_note_idx', 'table': 'public.t1',
                                                         'scans': 0, 'bytes': 8 * MB}]


@pytest.mark.parametrize('min_bytes, unused', [(0, True), (MB, True), (MB + 1, False)])
def test_unused_index_minimum_size(min_bytes, unused):
    review = inspect('index_usage', Session(indexes=[index('small_idx', scans=0, size=MB)]), _min_index_bytes=min_bytes)
    assert bool(fired(review, 'unused_index')) is unused


def test_unused_indexes_are_listed_largest_first_and_cut_to_top_n():
    indexes = [index('i%d' % n, scans=0, size=n * MB, key=str(n)) for n in range(1, 6)]
    review = inspect('index_usage', Session(indexes=indexes), top_n=2)
    assert [r['index'] for r in review.data['index_usage']['unused']] == ['public.i5', 'public.i4']
    assert len(fired(review, 'unused_index')) == 5  # every one is a finding


@pytest.mark.parametrize('other, duplicate', [
    ({}, True),
    ({'key': '1 2'}, False),
    ({'table_oid': 2}, False),
    ({'pred': '(archived = false)'}, False),
    ({'exprs': 'lower(email)'}, False),
    ({'method': 'hash'}, False),
])
def test_duplicate_index(other, duplicate):
    review = inspect('index_usage', Session(indexes=[index('a_idx'), index('b_idx', **other)]))
    assert bool(fired(review, 'duplicate_index')) is duplicate
    assert bool(review.data['index_usage']['duplicates']) is duplicate


@pytest.mark.parametrize('first, second, keep', [
    (dict(name='z_plain'), dict(name='a_plain'), 'public.a_plain'),  # by name when nothing else differs
    (dict(name='a_plain'), dict(name='z_unique', unique=True), 'public.z_unique'),
    (dict(name='a_unique', unique=True), dict(name='z_pkey', unique=True, primary=True, constraint=True), 'public.z_pkey'),
])
def test_duplicate_keeps_the_one_a_constraint_or_uniqueness_needs(first, second, keep):
    review = inspect('index_usage', Session(indexes=[index(size=2 * MB, **first), index(size=2 * MB, **second)]))
    (group,) = review.data['index_usage']['duplicates']
    assert group['keep'] == keep and len(group['redundant']) == 1 and group['bytes'] == 2 * MB
    (check,) = fired(review, 'duplicate_index')
    assert check['message'].startswith('index %s duplicates %s' % (group['redundant'][0], keep))


def test_invalid_index():
    invalid = [{'schema': 'public', 'name': 'orders_ref_idx_ccnew', 'table_name': 'orders', 'oid': 9, 'table_oid': 1}]
    review = inspect('index_usage', Session(invalid=invalid))
    (check,) = named(review, 'invalid_indexes')
    assert check['status'] == C.WARNING and 'a copy left by a failed REINDEX CONCURRENTLY' in check['message']
    assert review.data['index_usage']['invalid'] == ['public.orders_ref_idx_ccnew']
    quiet = inspect('index_usage', Session())
    assert [f['status'] for f in quiet.findings] == [C.OK, C.OK, C.OK]


# -- sequential scans -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('seq, idx, status', [
    (90, 10, C.WARNING),
    (51, 49, C.WARNING),
    (50, 50, C.OK),  # crossed only when passed
    (1, 99, C.OK),
])
def test_seq_scans(seq, idx, status):
    review = inspect('seq_scans', Session(tables=[table(seq_scan=seq, idx_scan=idx, seq_tup_read=seq * 1000)]))
    (check,) = named(review, 'seq_scans')
    assert check['status'] == status
    assert review.data['seq_scans'][0]['seq_percent'] == round(100.0 * seq / (seq + idx), 1)
    if status != C.OK:
        assert check['object'] == 'table=public.orders'


@pytest.mark.parametrize('changes, min_bytes', [
    ({'relkind': 'p'}, 0),  # a partitioned table has no storage of its own
    ({'seq_scan': 0, 'idx_scan': 0}, 0),  # never scanned
    ({}, 200 * MB),  # smaller than min_table_size
])
def test_seq_scans_leave_out(changes, min_bytes):
    given = dict({'seq_scan': 100, 'idx_scan': 0}, **changes)
    review = inspect('seq_scans', Session(tables=[table(**given)]), _min_table_bytes=min_bytes)
    assert review.data['seq_scans'] == []
    assert [f['status'] for f in named(review, 'seq_scans')] == [C.OK]


def test_seq_scans_sorted_by_rows_read():
    tables = [table('a', seq_scan=9, idx_scan=1, seq_tup_read=10), table('b', seq_scan=9, idx_scan=1, seq_tup_read=500)]
    review = inspect('seq_scans', Session(tables=tables), top_n=1)
    assert [r['table'] for r in review.data['seq_scans']] == ['public.b']
    assert len(fired(review, 'seq_scans')) == 2


# -- sizes ----------------------------------------------------------------------------------------------------------

def test_sizes():
    tables = [table('small', heap=MB, index_bytes=0), table('big', heap=50 * MB, toast=5 * MB, index_bytes=20 * MB)]
    review = inspect('sizes', Session(tables=tables))
    rows = review.data['sizes']['tables']
    assert rows[0] == {'table': 'public.big', 'heap_bytes': 50 * MB, 'index_bytes': 20 * MB, 'toast_bytes': 5 * MB,
                       'total_bytes': 75 * MB}
    assert [r['table'] for r in rows] == ['public.big', 'public.small']
    (check,) = named(review, 'database_size')
    assert check['status'] == C.OK and check['value'] == 42 * MB
    assert 'the largest is public.big (75.0 MB)' in check['message']
    assert review.metrics['table_count'] == 2


# -- bloat ----------------------------------------------------------------------------------------------------------

def width(oid, columns=4, avg=100.0, nulls=False, unknown=0):
    return {'oid': oid, 'width': avg, 'has_nulls': nulls, 'columns': columns, 'unknown': unknown}


def expected_table_pages(tuples, avg, columns=4, nulls=False, fillfactor=100):
    header = RV.HEAP_TUPLE_HEADER + (int(math.ceil(columns / 8.0)) if nulls else 0)
    per_tuple = BL.maxalign(header) + BL.maxalign(avg) + RV.LINE_POINTER
    return int(math.ceil(tuples * per_tuple / ((BLOCK - RV.HEAP_PAGE_HEADER) * fillfactor / 100.0)))


def test_table_bloat_estimate():
    pages = expected_table_pages(10000, 100.0)
    assert pages == 162  # 24 + 104 + 4 bytes a tuple, 8168 bytes a page
    review = inspect('bloat', Session())
    assert review._table_bloat(table(heap=pages * BLOCK, reltuples=10000), width(1), BLOCK) == (0, 0.0)
    assert review._table_bloat(table(heap=pages * BLOCK * 4, reltuples=10000), width(1), BLOCK) == (
        pages * BLOCK * 3, 75.0)
    # Nulls add the bitmap to the header; a lower fillfactor expects more pages.
    assert review._table_bloat(table(heap=pages * BLOCK * 2, reltuples=10000), width(1, columns=9, nulls=True),
                               BLOCK)[1] == round(100.0 * (1 - expected_table_pages(10000, 100.0, 9, True) / (2 * pages)), 1)
    packed = review._table_bloat(table(heap=pages * BLOCK * 2, reltuples=10000, reloptions=['fillfactor=50']),
                                 width(1), BLOCK)
    assert packed == (0, 0.0)


@pytest.mark.parametrize('given', [None, width(1, unknown=1), dict(width(1), width=None)])
def test_table_bloat_unknown_without_statistics(given):
    review = inspect('bloat', Session())
    assert review._table_bloat(table(reltuples=10), given, BLOCK) == (None, None)
    assert review._table_bloat(table(reltuples=-1), width(1), BLOCK) == (None, None)  # never analysed


@pytest.mark.parametrize('factor, status', [(1, C.OK), (1.4, C.OK), (2, C.WARNING), (4, C.CRITICAL)])
def test_table_bloat_findings(factor, status):
    heap = int(expected_table_pages(10000, 100.0) * BLOCK * factor)
    session = Session(tables=[table(oid=1, heap=heap, reltuples=10000)], widths=[width(1)])
    review = inspect('bloat', session)
    (check,) = named(review, 'table_bloat')
    assert check['status'] == status
    assert review.data['bloat']['tables'][0]['table'] == 'public.orders'
    if status != C.OK:
        assert check['object'] == 'table=public.orders' and 'VACUUM FULL or pg_repack' in check['message']


def test_table_bloat_leaves_out_small_and_partitioned_tables():
    tables = [table(oid=1, heap=MB, reltuples=10000), table('parent', oid=2, relkind='p', heap=0)]
    session = Session(tables=tables, widths=[width(1)])
    review = inspect('bloat', session, _min_table_bytes=10 * MB)
    assert review.data['bloat']['tables'] == []
    assert RV.COLUMN_WIDTHS_SQL not in session.queries


@pytest.mark.parametrize('factor, status', [(1, C.OK), (2, C.WARNING), (3, C.CRITICAL)])
def test_index_bloat_findings(factor, status):
    pages = BL.expected_btree_pages(100000, [(4, 0.0)], BLOCK, BL.DEFAULT_BTREE_FILLFACTOR)
    ix = index('orders_pkey', oid=7, size=int(pages * BLOCK * factor), reltuples=100000.0)
    hash_ix = index('orders_hash', oid=8, method='hash', size=100 * MB)
    session = Session(indexes=[ix, hash_ix], column_stats=[{'oid': 7, 'avg_width': 4, 'null_frac': 0.0}])
    review = inspect('bloat', session)
    (check,) = named(review, 'index_bloat')
    assert check['status'] == status
    assert [r['index'] for r in review.data['bloat']['indexes']] == ['public.orders_pkey']  # btree only
    if status != C.OK:
        assert check['object'] == 'index=public.orders_pkey' and 'pg_reindex rebuilds it' in check['message']


# -- vacuum ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('dead, reloptions, overdue', [
    (251, None, True),
    (250, None, False),  # threshold 50 + 0.2 * 1000 = 250: crossed only when passed
    (100, ['autovacuum_vacuum_scale_factor=0.01', 'autovacuum_vacuum_threshold=10'], True),
    (5, ['autovacuum_vacuum_scale_factor=0.01', 'autovacuum_vacuum_threshold=10'], False),
])
def test_vacuum_overdue(dead, reloptions, overdue):
    review = inspect('vacuum', Session(tables=[table(dead=dead, reloptions=reloptions)]))
    assert bool(fired(review, 'vacuum_overdue')) is overdue
    row = review.data['vacuum']['tables'][0]
    assert row['autovacuum_threshold'] == (250 if reloptions is None else 20)
    assert row['last_vacuum_hours'] == 2.0 and row['last_analyze_hours'] is None


@pytest.mark.parametrize('reloptions, server, statuses', [
    (None, 'on', [C.OK]),
    (['autovacuum_enabled=false'], 'on', [C.WARNING]),
    (['autovacuum_enabled=off'], 'on', [C.WARNING]),
    (['autovacuum_enabled=true'], 'on', [C.OK]),
    (None, 'off', [C.CRITICAL]),
    (['autovacuum_enabled=false'], 'off', [C.WARNING, C.CRITICAL]),
])
def test_autovacuum_disabled(reloptions, server, statuses):
    review = inspect('vacuum', Session(tables=[table(reloptions=reloptions)], settings={'autovacuum': server}))
    assert [f['status'] for f in named(review, 'autovacuum_disabled')] == statuses


def test_vacuum_skips_partitioned_parents_and_sums_dead_tuples():
    tables = [table('a', dead=10), table('b', dead=5), table('parent', relkind='p', dead=99)]
    review = inspect('vacuum', Session(tables=tables))
    assert [r['table'] for r in review.data['vacuum']['tables']] == ['public.a', 'public.b']
    assert review.metrics['dead_tuples'] == 15


# -- foreign keys ---------------------------------------------------------------------------------------------------

def fk(name, indexed):
    return {'conname': name, 'schema': 'public', 'table_name': 'order_lines', 'references': 'orders',
            'columns': ['order_id', 'tenant_id'], 'table_bytes': MB, 'indexed': indexed}


@pytest.mark.parametrize('rows, missing', [
    ([fk('lines_order_fk', False), fk('lines_item_fk', True)], ['lines_order_fk']),
    ([fk('lines_item_fk', True)], []),
    ([], []),
])
def test_unindexed_foreign_keys(rows, missing):
    review = inspect('foreign_keys', Session(foreign_keys=rows))
    assert [r['constraint'] for r in review.data['foreign_keys']] == missing
    checks = named(review, 'unindexed_foreign_key')
    if missing:
        assert [c['status'] for c in checks] == [C.WARNING]
        assert 'CREATE INDEX CONCURRENTLY ON public.order_lines (order_id, tenant_id)' in checks[0]['message']
        assert checks[0]['object'] == 'constraint=public.order_lines.lines_order_fk'
    else:
        assert [c['status'] for c in checks] == [C.OK]
        assert checks[0]['message'] == 'all %d foreign key(s) have a supporting index' % len(rows)


# -- cache ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('hit, read, status', [
    (990, 10, C.OK),
    (900, 100, C.OK),  # 90 %: crossed only when passed
    (899, 101, C.WARNING),
    (10, 990, C.WARNING),  # no critical level by default
])
def test_table_cache_hit(hit, read, status):
    review = inspect('cache', Session(tables=[table(heap_hit=hit, heap_read=read)]))
    (check,) = named(review, 'table_cache_hit')
    assert check['status'] == status
    assert review.data['cache'] == [{'table': 'public.orders', 'hit_percent': round(100.0 * hit / (hit + read), 2),
                                     'blocks_read': hit + read}]


def test_cache_leaves_out_tables_with_few_reads_and_reports_the_database_ratio():
    review = inspect('cache', Session(tables=[table(heap_hit=1, heap_read=998)], blocks=(3, 1)))
    assert review.data['cache'] == []
    assert [f['status'] for f in named(review, 'table_cache_hit')] == [C.OK]
    assert review.metrics['cache_hit_ratio'] == 75.0
    assert inspect('cache', Session(blocks=(0, 0))).metrics['cache_hit_ratio'] is None


# -- connections ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('sessions, limit, statuses', [
    (8, 10, [C.OK]),
    (80, 100, [C.OK]),  # 80 %: crossed only when passed
    (9, 10, [C.WARNING]),
    (96, 100, [C.CRITICAL]),
    (5, 0, [C.OK]),  # a role that may not log in is not near a limit
])
def test_role_connections(sessions, limit, statuses):
    session = Session(role_limits=[{'role': 'app', 'limit': limit, 'sessions': sessions}],
                      connections=[{'role': 'app', 'state': 'active', 'sessions': sessions},
                                   {'role': '(background)', 'state': 'background', 'sessions': 4}])
    review = inspect('connections', session)
    checks = named(review, 'role_connections')
    assert [c['status'] for c in checks] == statuses
    if statuses != [C.OK]:
        assert checks[0]['object'] == 'role=app'
        assert '(%d of %d)' % (sessions, limit) in checks[0]['message']
    assert review.metrics['connections'] == sessions  # background workers are not connections


# -- slow queries (the pg_stat_statements reads replaced) -----------------------------------------------------------

def statement(queryid, mean_ms):
    return {'queryid': queryid, 'mean_ms': mean_ms, 'calls': 3, 'max_ms': mean_ms * 2, 'query': 'SELECT %d' % queryid}


@pytest.fixture
def statements(monkeypatch):
    found = {'ext': {'schema': 'public', 'exec_columns': True, 'has_info': True}, 'rows': []}
    monkeypatch.setattr(RV.ST, 'locate', lambda session: found['ext'])
    monkeypatch.setattr(RV.ST, 'top', lambda session, ext, order, limit: list(found['rows'])[:limit])
    monkeypatch.setattr(RV.ST, 'stats_reset', lambda session, ext: '2026-01-01T00:00:00+00:00')
    return found


@pytest.mark.parametrize('means, fired_ids', [
    ([5000.0, 2500.0, 100.0], [1, 2]),
    ([2000.0, 10.0], []),  # 2000 ms is the limit, not past it
    ([], []),
])
def test_slow_queries(statements, means, fired_ids):
    statements['rows'] = [statement(n + 1, mean) for n, mean in enumerate(means)]
    review = inspect('slow_queries', Session())
    checks = named(review, 'slow_queries')
    assert [c['object'] for c in checks if c['status'] != C.OK] == ['queryid=%d' % n for n in fired_ids]
    assert review.metrics['slow_queries'] == len(fired_ids)
    if not fired_ids:
        assert [c['status'] for c in checks] == [C.OK]
        assert '(statistics since 2026-01-01T00:00:00+00:00)' in checks[0]['message']


def test_slow_queries_with_only_a_critical_level(statements):
    statements['rows'] = [statement(1, 5000.0), statement(2, 1500.0)]
    review = inspect('slow_queries', Session(), thresholds={'slow_queries': {'warning': None, 'critical': 3000}})
    assert [(c['object'], c['status']) for c in fired(review, 'slow_queries')] == [('queryid=1', C.CRITICAL)]


def test_slow_queries_without_the_extension(statements):
    statements['ext'] = None
    review = inspect('slow_queries', Session())
    (check,) = named(review, 'slow_queries')
    assert check['status'] == C.UNKNOWN and 'pg_stat_statements is not installed in database app' in check['message']
    assert review.data['slow_queries'] is None


# -- one recommendation per index: duplicate_index and unused_index agree -----------------------------------------------

@pytest.mark.parametrize('members, keep', [
    ([dict(name='a_idx', scans=0), dict(name='b_idx', scans=10)], 'b_idx'),  # the used one, not the first by name
    ([dict(name='a_idx', scans=5), dict(name='b_idx', scans=500, unique=True, constraint=True)], 'b_idx'),
    ([dict(name='a_idx', scans=500), dict(name='b_idx', scans=0, unique=True, constraint=True)], 'b_idx'),
    ([dict(name='a_idx', scans=500), dict(name='z_idx', scans=0, unique=True)], 'z_idx'),  # enforces uniqueness
    ([dict(name='b_idx', scans=3), dict(name='a_idx', scans=3)], 'a_idx'),
    ([dict(name='c_idx', scans=1), dict(name='a_idx', scans=0), dict(name='b_idx', scans=7)], 'b_idx'),
])
def test_duplicate_groups_keep_the_constraint_else_most_scanned_else_first_by_name(members, keep):
    (group,) = RV.duplicate_groups([index(**m) for m in members])
    assert group[0]['name'] == keep and len(group) == len(members)


def test_duplicate_groups_leave_out_invalid_indexes_and_single_ones():
    assert RV.duplicate_groups([index('a_idx', valid=False, scans=0), index('b_idx', scans=0)]) == []
    assert RV.duplicate_groups([index('a_idx'), index('b_idx', key='2')]) == []


def test_duplicate_key_compares_collation_sort_order_expressions_and_predicate():
    plain = dict(index('a_idx'), collations='0', key_options='0')
    for field, value in (('collations', '950'), ('key_options', '3'), ('exprs', 'lower(email)'), ('pred', '(x > 1)')):
        assert RV.duplicate_key(plain) != RV.duplicate_key(dict(plain, **{field: value})), field
    assert RV.duplicate_key(plain) == RV.duplicate_key(dict(plain, name='b_idx', oid=2, scans=0))


def drop_advice(review):
    """The indexes some finding tells to drop."""
    return {obj for f in review.findings if f['status'] != C.OK
            for obj in re.findall(r'DROP INDEX CONCURRENTLY (\S+)', f['message'])} | {
        f['object'][len('index='):] for f in review.findings if 'drop it (see duplicate_index)' in f['message']}


def test_unused_copy_of_a_used_duplicate_gets_one_advice_and_the_used_copy_none():
    review = inspect('index_usage', Session(indexes=[index('a_idx', scans=0), index('b_idx', scans=10)]))
    (dup,) = fired(review, 'duplicate_index')
    assert dup['object'] == 'index=public.a_idx' and 'keep public.b_idx' in dup['message']
    assert 'DROP INDEX CONCURRENTLY public.a_idx' in dup['message']
    (unused,) = fired(review, 'unused_index')
    assert unused['object'] == 'index=public.a_idx'
    assert 'duplicate of public.b_idx' in unused['message'] and 'public.b_idx' not in drop_advice(review)
    assert drop_advice(review) == {'public.a_idx'}
    assert review.data['index_usage']['duplicates'] == [{'keep': 'public.b_idx', 'redundant': ['public.a_idx'],
                                                         'bytes': MB}]


def test_unused_duplicates_never_all_advised_dropped():
    review = inspect('index_usage', Session(indexes=[index('a_idx', scans=0), index('b_idx', scans=0),
                                                     index('c_idx', scans=0)]))
    assert drop_advice(review) == {'public.b_idx', 'public.c_idx'}
    kept = [f for f in fired(review, 'unused_index') if f['object'] == 'index=public.a_idx']
    assert len(kept) == 1 and 'not this one' in kept[0]['message'] and 'DROP INDEX' not in kept[0]['message']


def test_duplicate_of_a_constraint_index_keeps_it_and_no_advice_drops_it():
    review = inspect('index_usage', Session(indexes=[index('a_idx', scans=0),
                                                     index('t_key', scans=0, unique=True, constraint=True)]))
    (dup,) = fired(review, 'duplicate_index')
    assert dup['object'] == 'index=public.a_idx' and 'keep public.t_key (it backs a constraint)' in dup['message']
    assert drop_advice(review) == {'public.a_idx'}


def test_redundant_copy_backing_a_constraint_is_not_told_drop_index():
    review = inspect('index_usage', Session(indexes=[index('a_pkey', primary=True, unique=True, constraint=True),
                                                     index('b_key', unique=True, constraint=True)]))
    (dup,) = fired(review, 'duplicate_index')
    assert dup['object'] == 'index=public.b_key' and 'drop that constraint' in dup['message']
    assert drop_advice(review) == set()


def test_single_unused_index_still_told_to_drop():
    review = inspect('index_usage', Session(indexes=[index('a_idx', scans=0), index('b_idx', scans=0, key='2')]))
    assert drop_advice(review) == {'public.a_idx', 'public.b_idx'}
    assert [f['status'] for f in named(review, 'duplicate_index')] == [C.OK]
