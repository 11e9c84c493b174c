# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_reindex / pg_vacuum pure parts: names, sizes, retries with backoff, the budget, leftovers and the
btree size estimate."""

from __future__ import annotations

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import bloat as BL
from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import maintenance as M
from ansible_collections.appcare.maintenance.plugins.module_utils import reindex as R
from ansible_collections.appcare.maintenance.plugins.module_utils import schemas as S
from ansible_collections.appcare.maintenance.plugins.module_utils import vacuum as V
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

PARAMS = dict(lock_timeout=5, lock_retries=3, lock_retry_delay=1.0, operation_timeout=60, max_duration=0,
              parallel_workers=0)


@pytest.mark.parametrize('text, expected', [
    ('applications', (None, 'applications')),
    ('public.Applications', ('public', 'applications')),
    ('"Mixed Case"."Idx.With.Dots"', ('Mixed Case', 'Idx.With.Dots')),
    ('"quote""inside"', (None, 'quote"inside')),
])
def test_split_name(text, expected):
    assert M.split_name(text) == expected


@pytest.mark.parametrize('text', ['a.b.c', '', 'a.', '"unterminated'])
def test_split_name_rejects(text):
    with pytest.raises(ConfigurationError):
        M.split_name(text)


def test_qualified_quotes_only_where_needed():
    assert S.qualified('public', 'idx_a') == 'public.idx_a'
    assert S.qualified('Public', 'my idx') == '"Public"."my idx"'
    assert S.qualified('s', '1st') == 's."1st"'
    assert S.qualified('app', 'say "hi"') == 'app."say ""hi"""'
    assert S.qualified('app', 'na\u00efve') == 'app."na\u00efve"'  # quote_ident quotes every non-ASCII name


@pytest.mark.parametrize('text, expected', [
    ('10MB', 10 * 1024 ** 2), ('512 kB', 512 * 1024), ('1GB', 1024 ** 3), ('2048', 2048), ('1.5MiB', 1572864)])
def test_parse_size(text, expected):
    assert C.parse_size(text, 'min_index_size') == expected


def test_parse_size_rejects_words():
    with pytest.raises(ConfigurationError, match='min_index_size'):
        C.parse_size('ten megabytes', 'min_index_size')


class FakeClock(object):
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_retries_back_off_exponentially_then_give_up():
    slept, calls = [], []
    budget = M.Budget(0)

    def attempt(number):
        calls.append(number)
        raise M.LockWait('locked')

    value, attempts, last = M.run_with_retries(PARAMS, budget, attempt, sleep=slept.append)
    assert value is None and attempts == 4 and last == 'locked'
    assert calls == [1, 2, 3, 4] and slept == [1.0, 2.0, 4.0]


def test_retry_succeeds_on_second_attempt():
    slept = []

    def attempt(number):
        if number == 1:
            raise M.LockWait('locked')
        return 'ok'

    assert M.run_with_retries(PARAMS, M.Budget(0), attempt, sleep=slept.append) == ('ok', 2, None)
    assert slept == [1.0]


def test_other_errors_are_not_retried():
    def attempt(_number):
        raise ValueError('boom')

    with pytest.raises(ValueError):
        M.run_with_retries(PARAMS, M.Budget(0), attempt, sleep=lambda s: None)


def test_no_retry_sleeps_past_the_budget():
    clock = FakeClock()
    budget = M.Budget(10, clock=clock)
    clock.now += 9.5  # half a second left, the next delay is a second

    def attempt(_number):
        raise M.LockWait('locked')

    value, attempts, last = M.run_with_retries(PARAMS, budget, attempt, sleep=lambda s: None)
    assert value is None and attempts == 1 and 'time budget' in last


def test_budget():
    clock = FakeClock()
    budget = M.Budget(5, clock=clock)
    assert not budget.exhausted() and budget.remaining() == 5
    clock.now += 5
    assert budget.exhausted() and budget.remaining() == 0
    assert not M.Budget(0, clock=clock).exhausted() and M.Budget(0).remaining() is None


@pytest.mark.parametrize('change, message', [
    (dict(lock_timeout=0), 'lock_timeout'), (dict(lock_retries=-1), 'lock_retries'),
    (dict(lock_retry_delay=-1), 'lock_retry_delay'), (dict(operation_timeout=-1), 'operation_timeout'),
    (dict(max_duration=-1), 'max_duration'), (dict(parallel_workers=-1), 'parallel_workers')])
def test_maintenance_params_validated(change, message):
    with pytest.raises(ConfigurationError, match=message):
        M.validate_maintenance_params(dict(PARAMS, **change))


def index(oid, name, valid=True, definition=None):
    return dict(oid=oid, name=name, valid=valid, relkind='i',
                definition=definition or 'CREATE INDEX %s ON public.t USING btree (a)' % name)


def test_leftover_detection():
    original = index(1, 'idx_a')
    assert R.is_leftover(index(2, 'idx_a_ccnew', valid=False), [original])
    assert R.is_leftover(index(3, 'idx_a_ccold12', valid=False), [original])
    # valid and the same definition as a valid sibling: the duplicate a failure after the swap leaves
    assert R.is_leftover(index(4, 'idx_a_ccold'), [original, index(4, 'idx_a_ccold')])
    # valid with a definition of its own: someone's index with an unlucky name
    own = index(5, 'mine_ccnew', definition='CREATE UNIQUE INDEX mine_ccnew ON public.t USING btree (a)')
    assert not R.is_leftover(own, [original, own])
    assert not R.is_leftover(index(6, 'idx_ccnewer', valid=False), [original])
    assert not R.is_leftover(dict(index(7, 'p_ccnew', valid=False), relkind='I'), [])


def test_btree_estimate_of_a_fresh_index_is_close_to_zero_and_of_a_sparse_one_high():
    # 100000 int4 keys: 8-byte header + 8 aligned data + 4 line pointer = 20 bytes a tuple
    expected = BL.expected_btree_pages(100000, [(4, 0.0)], 8192, 90)
    per_page = (8192 - 40) * 0.9 / 20
    assert abs(expected - (100000 / per_page + 1)) < 5
    wasted, percent = BL.estimate(expected * 8192, 100000, [(4, 0.0)], 8192, 90)
    assert wasted == 0 and percent == 0
    wasted, percent = BL.estimate(expected * 8192 * 10, 100000, [(4, 0.0)], 8192, 90)
    assert 89 < percent < 91 and wasted == expected * 8192 * 9


def test_btree_estimate_unknown_without_widths():
    assert BL.estimate(8192 * 100, 1000, [(None, 0.0)], 8192, 90) == (None, None)
    assert BL.estimate(8192 * 100, -1, [(4, 0.0)], 8192, 90) == (None, None)
    assert BL.fillfactor_of(['fillfactor=70', 'deduplicate_items=off']) == 70
    assert BL.fillfactor_of(None) == 90


def test_dead_share_and_vacuum_option_validation():
    assert V.dead_share(800, 200) == 20.0 and V.dead_share(0, 0) == 0.0
    good = dict(dead_tuple_percent=20, analyze_percent=10, min_dead_tuples=0, min_modified_rows=0, allow_full=False,
                tables=[])
    V.validate(good)
    with pytest.raises(ConfigurationError, match='allow_full'):
        V.validate(dict(good, allow_full=True))
    with pytest.raises(ConfigurationError, match='analyze_percent'):
        V.validate(dict(good, analyze_percent=-1))
