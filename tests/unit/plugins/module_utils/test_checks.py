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


# --- info and severity overrides -------------------------------------------------------------------------

def test_info_ranks_between_ok_and_unknown():
    assert C.worst_status(['ok', 'info']) == 'info'
    assert C.worst_status(['info', 'unknown']) == 'unknown'
    assert C.worst_status(['info', 'warning']) == 'warning'
    found = C.Findings()
    found.info('no_primary_key', 'table t has no primary key', obj='table=public.t')
    assert found.status == 'info' and found[0]['object'] == 'table=public.t'


def test_severity_raises_and_lowers_only_fired_findings():
    checks = [C.finding('rls_enabled_no_policy', 'info', 'fired', obj='table=a'),
              C.finding('rls_enabled_no_policy', 'ok', 'quiet'),
              C.finding('extension_in_public', 'warning', 'fired'),
              C.finding('slow_queries', 'unknown', 'cannot read'),
              C.finding('ssl', 'warning', 'untouched')]
    changed = C.apply_severity(checks, {'rls_enabled_no_policy': 'warning', 'extension_in_public': 'info',
                                        'slow_queries': 'critical', 'not_a_check_here': 'critical'})
    assert changed == ['rls_enabled_no_policy', 'extension_in_public']
    assert [c['status'] for c in checks] == ['warning', 'ok', 'info', 'unknown', 'warning']
    assert checks[0]['default_status'] == 'info' and checks[2]['default_status'] == 'warning'
    assert 'default_status' not in checks[1] and 'default_status' not in checks[4]
    again = C.apply_severity(checks, {'rls_enabled_no_policy': 'critical'})
    assert again == ['rls_enabled_no_policy'] and checks[0]['default_status'] == 'info'  # the module's level stays


def test_no_severity_changes_nothing():
    checks = [C.finding('ssl', 'warning', 'off')]
    assert C.apply_severity(checks, {}) == [] and C.apply_severity(checks, None) == []
    assert checks[0]['status'] == 'warning' and 'default_status' not in checks[0]


@pytest.mark.parametrize('overrides, fragment', [
    ({'ssl': 'ok'}, 'severity.ssl must be one of info, warning, critical'),
    ({'ssl': 'unknown'}, 'severity.ssl must be one of'),
    ({'ssl': None}, 'severity.ssl must be one of'),
    ({'SSL check': 'warning'}, 'is not a check name'),
    (['ssl'], 'severity must be a dict'),
])
def test_bad_severity_is_refused(overrides, fragment):
    with pytest.raises(ThresholdError, match=fragment):
        C.validate_severity(overrides)
    C.validate_severity({'ssl': 'critical', 'rls_enabled_no_policy': 'warning'})
