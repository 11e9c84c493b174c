# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The threshold helper: both directions, boundaries, contradictions, merging and the worst status."""

from __future__ import annotations

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ThresholdError


@pytest.mark.parametrize('value, expected', [
    (0, 'ok'), (80, 'ok'), (80.01, 'warning'), (95, 'warning'), (95.5, 'critical'), (None, 'unknown'),
])
def test_above_is_bad(value, expected):
    assert C.status_for(value, 80, 95, C.ABOVE) == expected


@pytest.mark.parametrize('value, expected', [
    (100, 'ok'), (95, 'ok'), (94.9, 'warning'), (90, 'warning'), (89.99, 'critical'), (None, 'unknown'),
])
def test_below_is_bad(value, expected):
    assert C.status_for(value, 95, 90, C.BELOW) == expected


@pytest.mark.parametrize('warning, critical, value, expected', [
    (None, 0, 1, 'critical'), (None, 0, 0, 'ok'), (0, None, 1, 'warning'), (None, None, 10 ** 9, 'ok'),
])
def test_a_level_can_be_disabled(warning, critical, value, expected):
    assert C.status_for(value, warning, critical) == expected


@pytest.mark.parametrize('warning, critical, direction, fragment', [
    (95, 80, C.ABOVE, 'warning threshold 95 is above the critical threshold 80'),
    (80, 90, C.BELOW, 'warning threshold 80 is below the critical threshold 90'),
    ('high', 90, C.ABOVE, 'warning threshold must be a number'),
    (True, 90, C.ABOVE, 'warning threshold must be a number'),
    (1, 2, 'sideways', 'direction must be'),
])
def test_contradictory_or_malformed_thresholds(warning, critical, direction, fragment):
    with pytest.raises(ThresholdError, match=fragment):
        C.validate_thresholds('x', warning, critical, direction)


def test_equal_thresholds_are_allowed():
    C.validate_thresholds('x', 90, 90, C.ABOVE)
    C.validate_thresholds('x', 90, 90, C.BELOW)


def test_evaluate_builds_a_finding_and_names_the_crossed_threshold():
    found = C.evaluate('connections_used', 83.5, 80, 95, unit='percent', obj='server',
                       message='{value}% in use {curly}', in_use=167)
    assert found == {
        'name': 'connections_used', 'status': 'warning', 'value': 83.5, 'unit': 'percent', 'warning': 80,
        'critical': 95, 'object': 'server', 'in_use': 167,
        'message': '83.5% in use {curly} (warning threshold: above 80)',
    }
    assert C.evaluate('c', 1.0, 0.5, 2)['message'] == '1 (warning threshold: above 0.5)'
    assert 'critical threshold: below 90' in C.evaluate('hit', 80.0, 95, 90, C.BELOW)['message']
    assert '(' not in C.evaluate('hit', 99.0, 95, 90, C.BELOW)['message']


def test_evaluate_refuses_contradictory_thresholds():
    with pytest.raises(ThresholdError):
        C.evaluate('x', 1, 10, 5)


@pytest.mark.parametrize('statuses, worst', [
    ([], 'ok'), (['ok', 'ok'], 'ok'), (['ok', 'unknown'], 'unknown'), (['unknown', 'warning'], 'warning'),
    (['critical', 'warning', 'unknown', 'ok'], 'critical'),
])
def test_worst_status(statuses, worst):
    assert C.worst_status(statuses) == worst
    assert C.worst_status([{'status': s} for s in statuses]) == worst


def test_finding_refuses_an_unknown_status():
    with pytest.raises(ValueError):
        C.finding('x', 'fine', 'msg')


DEFAULTS = {'a': {'warning': 80, 'critical': 95, 'direction': C.ABOVE},
            'b': {'warning': 95, 'critical': 90, 'direction': C.BELOW}}


def test_merge_overrides_one_level_and_keeps_the_other():
    merged = C.merge_thresholds(DEFAULTS, {'a': {'warning': '70'}, 'b': {'critical': None}})
    assert merged['a'] == {'warning': 70, 'critical': 95, 'direction': C.ABOVE}
    assert merged['b']['critical'] is None and merged['b']['warning'] == 95
    assert DEFAULTS['a']['warning'] == 80  # defaults are not modified


@pytest.mark.parametrize('overrides, fragment', [
    ({'c': {'warning': 1}}, "'c' is not a check with thresholds"),
    ({'a': 5}, 'must be a dict'),
    ({'a': {'warn': 5}}, 'unknown key'),
    ({'a': {'warning': 'lots'}}, 'must be a number'),
    ({'a': {'warning': 'nan'}}, 'must be a number'),
    ({'a': {'critical': float('inf')}}, 'must be a number'),
    ({'a': {'warning': 99}}, 'above the critical threshold 95'),
    ({'b': {'warning': 85}}, 'below the critical threshold 90'),
])
def test_merge_rejects_bad_overrides(overrides, fragment):
    with pytest.raises(ThresholdError, match=fragment):
        C.merge_thresholds(DEFAULTS, overrides)
