# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the health check: sequence range arithmetic, sizes, defaults that must stay valid."""

from __future__ import annotations

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import health
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError


def seq(last, increment=1, minimum=1, maximum=2 ** 63 - 1, column_type=None):
    return {'schemaname': 'public', 'sequencename': 's', 'last_value': last, 'min_value': minimum,
            'max_value': maximum, 'increment_by': increment, 'column_type': column_type, 'column_name': 'public.t.id'}


def test_sequence_usage_of_its_own_range():
    usage = health._sequence_usage(seq(1073741824, maximum=2 ** 31 - 1))
    assert usage['percent'] == pytest.approx(50.0, abs=0.01)
    assert usage['limit'] == 'sequence range'


def test_sequence_usage_bounded_by_owning_column_type():
    usage = health._sequence_usage(seq(2 ** 30, column_type='integer'))
    assert usage['percent'] == pytest.approx(50.0, abs=0.01)
    assert 'integer column public.t.id' in usage['limit']
    assert usage['max_value'] == 2 ** 31 - 1


def test_descending_sequence():
    usage = health._sequence_usage(seq(-50, increment=-1, minimum=-100, maximum=-1))
    assert usage['percent'] == pytest.approx(100.0 * 49 / 99, abs=0.01)


def test_default_thresholds_are_consistent():
    merged = C.merge_thresholds(health.DEFAULT_THRESHOLDS, {})
    assert set(merged) <= set(health.ALL_CHECKS)


def test_documented_defaults_match_the_code():
    import yaml

    from ansible_collections.appcare.maintenance.plugins.modules import pg_health_info
    doc = yaml.safe_load(pg_health_info.DOCUMENTATION)
    assert doc['options']['checks']['choices'] == health.ALL_CHECKS
    # exclude_schemas and its default come from the schemas doc fragment (tests/unit/plugins/module_utils/test_schemas.py)
    assert 'appcare.maintenance.schemas' in doc['extends_documentation_fragment']


@pytest.mark.parametrize('text, expected', [('8GB', 8 * 1024 ** 3), ('500 MB', 500 * 1024 ** 2), ('1048576', 1048576),
                                            (None, None), ('', None)])
def test_parse_size(text, expected):
    assert C.parse_size(text, 'size_quota', allow_zero=False) == expected


@pytest.mark.parametrize('text', ['eight gigs', '0', '-5MB'])
def test_parse_size_rejects(text):
    with pytest.raises(ConfigurationError):
        C.parse_size(text, 'size_quota', allow_zero=False)


@pytest.mark.parametrize('value, text', [(512, '512 B'), (2048, '2.0 kB'), (5 * 1024 ** 3, '5.0 GB'), (None, 'unknown')])
def test_human_bytes(value, text):
    assert C.human_bytes(value) == text
