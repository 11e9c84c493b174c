# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The first limit that applies to a check (its warning level, or its critical level when warning is disabled),
in both directions, and that a value past it is exactly a value ``evaluate`` does not judge ok."""

from __future__ import annotations

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C


def spec(warning, critical, direction=C.ABOVE):
    return {'warning': warning, 'critical': critical, 'direction': direction}


@pytest.mark.parametrize('given, limit', [
    (spec(50, 80), 50),
    (spec(None, 80), 80),  # only a critical level: it is the first that applies
    (spec(50, None), 50),
    (spec(None, None), None),
    (spec(90, 50, C.BELOW), 90),
    (spec(None, 50, C.BELOW), 50),
    ({'critical': 7}, 7),  # a level left out is disabled
])
def test_first_limit(given, limit):
    assert C.first_limit(given) == limit


@pytest.mark.parametrize('given, value, fires', [
    (spec(None, 80), 80.5, True),
    (spec(None, 80), 80, False),  # passed strictly, as status_for
    (spec(None, 80), 60, False),
    (spec(50, 80), 60, True),
    (spec(None, None), 10 ** 9, False),
    (spec(None, 50, C.BELOW), 40, True),  # below is bad: a cache hit ratio under the critical level
    (spec(None, 50, C.BELOW), 60, False),
    (spec(90, 50, C.BELOW), 85, True),
    (spec(90, 50, C.BELOW), 95, False),
    ({'warning': None, 'critical': 50}, 60, True),  # no direction: above is bad
    (spec(None, 80), None, False),  # not measured: never "fired"
])
def test_past_first_limit(given, value, fires):
    assert C.past_first_limit(given, value) is fires


@pytest.mark.parametrize('direction', [C.ABOVE, C.BELOW])
@pytest.mark.parametrize('warning, critical', [(None, 50), (50, None), (None, None), (40, 60), (60, 40)])
def test_past_first_limit_is_what_evaluate_does_not_judge_ok(direction, warning, critical):
    if warning is not None and critical is not None and (warning > critical) is (direction == C.ABOVE):
        warning, critical = critical, warning
    for value in (0, 39.9, 40, 45, 50, 55, 60, 60.1, 100):
        status = C.evaluate('check', value, warning, critical, direction)['status']
        assert C.past_first_limit(spec(warning, critical, direction), value) is (status != C.OK), (value, status)
