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
  be dropped.
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
