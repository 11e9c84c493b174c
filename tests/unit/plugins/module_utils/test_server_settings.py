# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""server_settings: two spellings of one value compare equal, and values a setting cannot hold are refused."""

from __future__ import annotations

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.server_settings import normalize, validate_settings


@pytest.mark.parametrize('value, vartype, unit, enumvals, expected', [
    ('on', 'bool', None, None, 'on'),
    ('TRUE', 'bool', None, None, 'on'),
    (True, 'bool', None, None, 'on'),
    ('0', 'bool', None, None, 'off'),
    (False, 'bool', None, None, 'off'),
    ('60', 'integer', 's', None, 60),
    (60, 'integer', 's', None, 60),
    ('1min', 'integer', 's', None, 60),
    ('60000ms', 'integer', 's', None, 60),
    ('1h', 'integer', 'min', None, 60),
    ('128MB', 'integer', '8kB', None, 16384),
    ('1GB', 'integer', 'kB', None, 1048576),
    ('0.9', 'real', None, None, 0.9),
    ('ON', 'enum', None, ['always', 'on', 'off'], 'on'),
    ('true', 'enum', None, ['always', 'on', 'off'], 'on'),
    ('Always', 'enum', None, ['always', 'on', 'off'], 'always'),
    ('pgbackrest --stanza=main archive-push %p', 'string', None, None, 'pgbackrest --stanza=main archive-push %p'),
])
def test_normalize(value, vartype, unit, enumvals, expected):
    assert normalize(value, vartype, unit, enumvals) == expected


@pytest.mark.parametrize('value, vartype, unit, enumvals', [
    ('maybe', 'bool', None, None),
    ('soon', 'integer', 's', None),
    ('5MB', 'integer', 's', None),
    ('5min', 'integer', 'kB', None),
    ('sometimes', 'enum', None, ['always', 'on', 'off']),
    ('yes', 'enum', None, ['minimal', 'replica', 'logical']),
])
def test_refused_values(value, vartype, unit, enumvals):
    with pytest.raises(ConfigurationError):
        normalize(value, vartype, unit, enumvals)


def test_validate_settings():
    assert validate_settings({'Archive_Mode': 'on', 'pg_stat_statements.max': 5000}) == {
        'archive_mode': 'on', 'pg_stat_statements.max': 5000}
    for bad in ({}, {'a b': 1}, {'x;drop': 1}, {'archive_mode': None}, {'archive_mode': ['on']}):
        with pytest.raises(ConfigurationError):
            validate_settings(bad)
