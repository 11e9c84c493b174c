# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults of pg_inspect_info's index advice it survives, each named after the fault, against real PostgreSQL 18
and 15 servers - one recommendation per index:

- two identical indexes, A never scanned and B scanned: ``duplicate_index`` said "keep A, drop B" while
  ``unused_index`` said "drop A", so following both dropped every copy. The copy kept is now the one that backs a
  constraint, else the most scanned, else the first by name; ``unused_index`` knows the duplicate group and never
  tells to drop the copy ``duplicate_index`` keeps;
- a plain index duplicating a UNIQUE constraint's index: the advice names the constraint's index as the one to
  keep (it said only "drop one") and nothing tells to drop it;
- duplicates that are all unused: the advice never covers every copy, while a lone unused index is still told to
  be dropped;
- a UNIQUE ... NULLS NOT DISTINCT index, or a deferrable unique constraint, was called a duplicate of a plain
  unique one on the same key, and dropping it lost what only it enforces; the same guard covers indexes on the same
  columns that differ in sort order, collation, operator class, predicate, expressions or INCLUDE columns (each
  serves queries the other cannot);
- a foreign key counted as indexed by a partial index, by an index holding its columns in another order or only as
  INCLUDE columns: deletes in the referenced table still scan the referencing one.
"""

from __future__ import annotations

import re

from conftest import wait_until


def by_object(result, name):
    return dict((c['object'], c) for c in result['checks'] if c['name'] == name)


def drop_advice(result):
    """Every index some finding tells to drop: an index a ``duplicate_index`` finding is about (that is the copy it
    drops, unless it is told to drop a constraint instead), an unused duplicate sent to that advice, and every
    ``DROP INDEX`` statement in any message."""
    dropped = set()
    for check in result['checks']:
        if check['status'] == 'ok':
            continue
        if check['name'] == 'duplicate_index' and 'drop that constraint' not in check['message']:
            dropped.add(check['object'][len('index='):])
        if 'drop it (see duplicate_index)' in check['message']:
            dropped.add(check['object'][len('index='):])
        dropped.update(re.findall(r'DROP INDEX CONCURRENTLY (\S+)', check['message']))
    return dropped


def scan(target, index, query, times):
    """Scan ``index`` ``times`` times, each on its own session, and wait until the statistics show it."""
    for _round in range(times):
        target.sql('SET enable_seqscan = off; SET enable_bitmapscan = off; %s' % query)
    assert wait_until(lambda: target.sql('SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s',
                                         (index,))[0][0] >= times)


def test_fault_unused_copy_of_a_used_duplicate_does_not_drop_every_copy(target):
    target.sql('CREATE TABLE items (id int PRIMARY KEY, a int)')
    target.sql('INSERT INTO items SELECT g, g % 50 FROM generate_series(1, 2000) g')
    target.sql('CREATE INDEX items_b ON items (a)')
    target.sql('ANALYZE items')
    scan(target, 'items_b', 'SELECT * FROM items WHERE a = 3', 10)
    target.sql('CREATE INDEX items_a ON items (a)')  # the same index again, never scanned, first by name
    result = target.run('pg_inspect_info', sections=['index_usage'])
    assert result.rc == 0, result.raw
    duplicates = by_object(result, 'duplicate_index')
    assert list(duplicates) == ['index=public.items_a'], duplicates
    assert 'keep public.items_b' in duplicates['index=public.items_a']['message']
    assert result['sections']['index_usage']['duplicates'][0]['keep'] == 'public.items_b'
    unused = by_object(result, 'unused_index')
    assert list(unused) == ['index=public.items_a'], unused  # one advice for it, the same as duplicate_index's
    assert 'duplicate of public.items_b' in unused['index=public.items_a']['message']
    assert drop_advice(result) == {'public.items_a'}


def test_fault_duplicate_of_a_unique_constraint_index_keeps_the_constraint_index(target):
    target.sql('CREATE TABLE users (id int PRIMARY KEY, email text CONSTRAINT users_email_key UNIQUE)')
    target.sql("INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 2000) g")
    target.sql('CREATE INDEX users_a_email ON users (email)')  # a plain copy, first by name
    result = target.run('pg_inspect_info', sections=['index_usage'])
    assert result.rc == 0, result.raw
    duplicates = by_object(result, 'duplicate_index')
    assert list(duplicates) == ['index=public.users_a_email'], duplicates
    message = duplicates['index=public.users_a_email']['message']
    assert 'keep public.users_email_key (it backs a constraint)' in message, message
    assert 'public.users_email_key' not in drop_advice(result)
    assert result['sections']['index_usage']['duplicates'] == [
        {'keep': 'public.users_email_key', 'redundant': ['public.users_a_email'],
         'bytes': result['sections']['index_usage']['duplicates'][0]['bytes']}]


def test_fault_unused_duplicates_are_never_all_advised_dropped(target):
    target.sql('CREATE TABLE orders (id int PRIMARY KEY, ref int, note text)')
    target.sql("INSERT INTO orders SELECT g, g % 90, 'n' || g FROM generate_series(1, 2000) g")
    target.sql('CREATE INDEX orders_ref ON orders (ref)')
    target.sql('CREATE INDEX orders_ref_again ON orders (ref)')
    target.sql('CREATE INDEX orders_note ON orders (note)')  # alone and unused: still told to be dropped
    result = target.run('pg_inspect_info', sections=['index_usage'])
    assert result.rc == 0, result.raw
    unused = by_object(result, 'unused_index')
    assert set(unused) == {'index=public.orders_ref', 'index=public.orders_ref_again', 'index=public.orders_note'}
    assert 'DROP INDEX CONCURRENTLY public.orders_note' in unused['index=public.orders_note']['message']
    assert list(by_object(result, 'duplicate_index')) == ['index=public.orders_ref_again']
    assert drop_advice(result) == {'public.orders_ref_again', 'public.orders_note'}
    assert 'not this one' in unused['index=public.orders_ref']['message']


def assert_no_duplicates_among(target, indexes):
    """The review calls none of ``indexes`` a duplicate: duplicate_index found nothing, and each unused one gets
    unused_index's own advice, not a duplicate's (unique indexes are never called unused)."""
    result = target.run('pg_inspect_info', sections=['index_usage'])
    assert result.rc == 0, result.raw
    duplicates = [c for c in result['checks'] if c['name'] == 'duplicate_index']
    assert [c['status'] for c in duplicates] == ['ok'], duplicates
    assert result['sections']['index_usage']['duplicates'] == []
    unused = by_object(result, 'unused_index')
    for ix in indexes:
        if 'index=public.%s' % ix not in unused:
            continue
        message = unused['index=public.%s' % ix]['message']
        assert 'duplicate' not in message and 'DROP INDEX CONCURRENTLY public.%s ' % ix in message, message
    return result


def assert_duplicates(target, keep, redundant):
    result = target.run('pg_inspect_info', sections=['index_usage'])
    assert result['sections']['index_usage']['duplicates'] == [
        {'keep': 'public.' + keep, 'redundant': ['public.' + redundant],
         'bytes': result['sections']['index_usage']['duplicates'][0]['bytes']}], result['checks']


def test_fault_indexes_differing_in_sort_order_are_not_duplicates(target):
    target.sql('CREATE TABLE events (id int PRIMARY KEY, at timestamptz, kind text)')
    target.sql('CREATE INDEX events_at ON events (at)')
    target.sql('CREATE INDEX events_at_desc ON events (at DESC)')
    target.sql('CREATE INDEX events_at_nulls_first ON events (at NULLS FIRST)')
    target.sql('CREATE INDEX events_kind_at ON events (kind, at)')
    target.sql('CREATE INDEX events_kind_at_desc ON events (kind, at DESC)')  # ORDER BY kind, at DESC needs it
    assert_no_duplicates_among(target, ['events_at', 'events_at_desc', 'events_at_nulls_first',
                                        'events_kind_at', 'events_kind_at_desc'])
    target.sql('CREATE INDEX events_at_desc_copy ON events (at DESC)')  # the same sort order: a duplicate
    assert_duplicates(target, 'events_at_desc', 'events_at_desc_copy')


def test_fault_indexes_differing_in_collation_opclass_or_expression_are_not_duplicates(target):
    target.sql('CREATE TABLE people (id int PRIMARY KEY, name text)')
    target.sql('CREATE INDEX people_name ON people (name)')
    target.sql('CREATE INDEX people_name_c ON people (name COLLATE "POSIX")')
    target.sql('CREATE INDEX people_name_pattern ON people (name text_pattern_ops)')  # LIKE 'abc%' needs it
    target.sql('CREATE INDEX people_lower ON people (lower(name))')
    target.sql('CREATE INDEX people_upper ON people (upper(name))')
    assert_no_duplicates_among(target, ['people_name', 'people_name_c', 'people_name_pattern',
                                        'people_lower', 'people_upper'])
    target.sql('CREATE INDEX people_lower_again ON people (lower(name))')
    assert_duplicates(target, 'people_lower', 'people_lower_again')


def test_fault_indexes_differing_in_predicate_or_include_columns_are_not_duplicates(target):
    target.sql('CREATE TABLE jobs (id int PRIMARY KEY, state text, queue int)')
    target.sql('CREATE INDEX jobs_queue ON jobs (queue)')
    target.sql("CREATE INDEX jobs_queue_pending ON jobs (queue) WHERE state = 'pending'")
    target.sql('CREATE INDEX jobs_queue_state ON jobs (queue, state)')
    target.sql('CREATE INDEX jobs_queue_incl_state ON jobs (queue) INCLUDE (state)')
    assert_no_duplicates_among(target, ['jobs_queue', 'jobs_queue_pending', 'jobs_queue_state',
                                        'jobs_queue_incl_state'])
    target.sql("CREATE INDEX jobs_queue_pending_2 ON jobs (queue) WHERE state = 'pending'")
    assert_duplicates(target, 'jobs_queue_pending', 'jobs_queue_pending_2')


def test_fault_nulls_not_distinct_unique_is_not_a_duplicate(target):
    target.sql('CREATE TABLE accounts (id int PRIMARY KEY, email text, team int)')
    target.sql('CREATE UNIQUE INDEX accounts_email ON accounts (email)')
    target.sql('CREATE UNIQUE INDEX accounts_email_nnd ON accounts (email) NULLS NOT DISTINCT')  # one NULL at most
    target.sql('ALTER TABLE accounts ADD CONSTRAINT accounts_team_key UNIQUE (team)')
    target.sql('ALTER TABLE accounts ADD CONSTRAINT accounts_team_deferred UNIQUE (team) DEFERRABLE INITIALLY DEFERRED')
    assert_no_duplicates_among(target, ['accounts_email', 'accounts_email_nnd', 'accounts_team_key',
                                        'accounts_team_deferred'])
    target.sql('CREATE INDEX accounts_email_plain ON accounts (email)')  # a plain index beside a unique one: redundant
    assert_duplicates(target, 'accounts_email', 'accounts_email_plain')


def unindexed(target):
    result = target.run('pg_inspect_info', sections=['foreign_keys'])
    assert result.rc == 0, result.raw
    return set(c['object'] for c in result['checks'] if c['name'] == 'unindexed_foreign_key' and c['status'] != 'ok')


def test_fault_partial_index_is_not_fk_support(target):
    target.sql('CREATE TABLE customers (id int PRIMARY KEY)')
    target.sql('CREATE TABLE invoices (id int PRIMARY KEY, customer_id int REFERENCES customers, paid boolean)')
    target.sql('CREATE INDEX invoices_unpaid_customer ON invoices (customer_id) WHERE NOT paid')
    assert unindexed(target) == {'constraint=public.invoices.invoices_customer_id_fkey'}
    target.sql('CREATE INDEX invoices_customer ON invoices (customer_id)')
    assert unindexed(target) == set()


def test_fault_fk_index_with_columns_out_of_order_is_not_support(target):
    target.sql('CREATE TABLE stores (region int, id int, PRIMARY KEY (region, id))')
    target.sql('CREATE TABLE sales (id int PRIMARY KEY, region int, store_id int, '
               'CONSTRAINT sales_store_fkey FOREIGN KEY (region, store_id) REFERENCES stores)')
    target.sql('CREATE INDEX sales_store_region ON sales (store_id, region)')
    assert unindexed(target) == {'constraint=public.sales.sales_store_fkey'}
    target.sql('CREATE INDEX sales_region_store ON sales (region, store_id)')
    assert unindexed(target) == set()


def test_fault_fk_columns_only_in_include_are_not_support(target):
    target.sql('CREATE TABLE stores (region int, id int, PRIMARY KEY (region, id))')
    target.sql('CREATE TABLE sales (id int PRIMARY KEY, region int, store_id int, '
               'CONSTRAINT sales_store_fkey FOREIGN KEY (region, store_id) REFERENCES stores)')
    target.sql('CREATE INDEX sales_region_incl ON sales (region) INCLUDE (store_id)')
    assert unindexed(target) == {'constraint=public.sales.sales_store_fkey'}
    target.sql('CREATE INDEX sales_region_store_day ON sales (region, store_id, id)')
    assert unindexed(target) == set()
