# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore drill's pure parts: target times, option checks, which backup a target needs, the version of a
backup, and what counts as a scratch child of the drill."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import pitrdrill as D
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

UTC = datetime.timezone.utc


@pytest.mark.parametrize('text,expected', [
    ('2026-12-04T13:00:00Z', datetime.datetime(2026, 12, 4, 13, 0, tzinfo=UTC)),
    ('2026-12-04 14:00:00.5+01:00', datetime.datetime(2026, 12, 4, 13, 0, 0, 500000, tzinfo=UTC)),
    ('2026-12-04T13:00:00', datetime.datetime(2026, 12, 4, 13, 0, tzinfo=UTC)),
])
def test_parse_target(text, expected):
    assert D.parse_target(text) == expected


def test_parse_target_refuses_other_text():
    with pytest.raises(ConfigurationError, match='ISO 8601'):
        D.parse_target('yesterday')


def test_pgbackrest_target_is_utc_with_microseconds():
    moment = datetime.datetime(2026, 12, 4, 13, 0, 0, 5, tzinfo=UTC)
    assert D.pgbackrest_target(moment) == '2026-12-04 13:00:00.000005+00'


def test_row_count_entries():
    assert D.row_count_entries({'orders': 3, 'audit.log': '7'}) == [
        {'schema': 'audit', 'table': 'log', 'rows': 7}, {'schema': 'public', 'table': 'orders', 'rows': 3}]
    for bad in ({'t': -1}, {'t': True}, {'t': 'many'}):
        with pytest.raises(ConfigurationError, match='whole number'):
            D.row_count_entries(bad)


def test_query_items():
    assert D._query_items('present_queries', ['SELECT 1', {'name': 'm', 'query': 'SELECT 2'}]) == [
        {'name': 'SELECT 1', 'query': 'SELECT 1'}, {'name': 'm', 'query': 'SELECT 2'}]
    with pytest.raises(ConfigurationError, match='unknown key'):
        D._query_items('absent_queries', [{'query': 'SELECT 1', 'expect': 1}])
    with pytest.raises(ConfigurationError, match='query string'):
        D._query_items('absent_queries', [''])


def params(**overrides):
    base = dict(stanza='main', repo=None, timeout=60, options={}, os_user=None, scratch_dir='/var/tmp/drill',
                target_time=None, port=None, rto_minutes=60.0, rpo_minutes=60.0, free_space_factor=1.2,
                min_free_bytes=0, present_queries=[], absent_queries=[], expect_rows={}, smoke_queries=[],
                settings={})
    base.update(overrides)
    return base


@pytest.mark.parametrize('overrides,message', [
    ({'scratch_dir': 'relative'}, 'absolute directory'),
    ({'scratch_dir': '/'}, 'absolute directory'),
    ({'scratch_dir': '/var/tmp/' + 'x' * 80}, 'too long'),
    ({'target_time': 'soon'}, 'ISO 8601'),
    ({'port': 70000}, 'port must be'),
    ({'rto_minutes': 0}, 'rto_minutes must be larger'),
    ({'free_space_factor': 0.5}, 'free_space_factor'),
    ({'min_free_bytes': -1}, 'min_free_bytes'),
    ({'settings': {'archive_mode': 'on'}}, 'sets archive_mode itself'),
    ({'settings': {'shared buffers': '1GB'}}, 'not a PostgreSQL setting'),
    ({'smoke_queries': [{'query': 'SELECT 1', 'expect': 1, 'min_rows': 1}]}, 'expect or min_rows'),
])
def test_validate_refuses(overrides, message, monkeypatch):
    monkeypatch.setattr(os, 'geteuid', lambda: 1000)
    with pytest.raises(ConfigurationError, match=message):
        D.validate(params(**overrides))


def test_validate_as_root_needs_os_user(monkeypatch):
    monkeypatch.setattr(os, 'geteuid', lambda: 0)
    with pytest.raises(ConfigurationError, match='os_user'):
        D.validate(params())


def backup(label, stop, db_id=1):
    return {'label': label, 'type': 'full', 'timestamp': {'start': stop - 10, 'stop': stop},
            'info': {'size': 100, 'repository': {}}, 'database': {'id': db_id, 'repo-key': 1}}


def test_pick_backup_for_a_target():
    usable = [backup('a', 1000), backup('b', 2000)]
    assert D.pick_backup(usable, None)['label'] == 'b'
    assert D.pick_backup(usable, datetime.datetime.fromtimestamp(1500, UTC))['label'] == 'a'
    assert D.pick_backup(usable, datetime.datetime.fromtimestamp(2000, UTC))['label'] == 'b'
    with pytest.raises(D.DrillError, match='before the end of the oldest usable backup'):
        D.pick_backup(usable, datetime.datetime.fromtimestamp(999, UTC))


def test_pg_major_of_a_backup():
    entry = {'db': [{'id': 1, 'repo-key': 1, 'version': '14'}, {'id': 2, 'repo-key': 1, 'version': '15'}]}
    assert D.pg_major(entry, backup('a', 1, db_id=2)) == 15
    with pytest.raises(D.DrillError, match='set pg_bin_dir'):
        D.pg_major(entry, backup('a', 1, db_id=3))


def marked(tmp_path, name, tool=D.TOOL):
    child = tmp_path / name
    child.mkdir()
    (child / D.MARKER_FILE).write_text(json.dumps({'tool': tool}))
    return child


def test_read_marker_only_for_our_children(tmp_path):
    assert D.read_marker(str(marked(tmp_path, 'pitr-drill-0123456789ab'))) == {'tool': D.TOOL}
    assert D.read_marker(str(marked(tmp_path, 'pitr-drill-other'))) is None
    assert D.read_marker(str(marked(tmp_path, 'pitr-drill-0123456789ac', tool='x'))) is None
    os.symlink(str(tmp_path / 'pitr-drill-0123456789ab'), str(tmp_path / 'pitr-drill-0123456789ad'))
    assert D.read_marker(str(tmp_path / 'pitr-drill-0123456789ad')) is None
    (tmp_path / 'pitr-drill-0123456789ae').mkdir()
    assert D.read_marker(str(tmp_path / 'pitr-drill-0123456789ae')) is None


def test_clean_leftovers_check_mode_removes_nothing(tmp_path):
    child = marked(tmp_path, 'pitr-drill-0123456789ab')
    cleaned, busy = D.clean_leftovers(str(tmp_path), check_mode=True)
    assert [c['path'] for c in cleaned] == [str(child)] and busy == [] and child.exists()
    cleaned, busy = D.clean_leftovers(str(tmp_path), check_mode=False)
    assert not child.exists()
    assert D.clean_leftovers(str(tmp_path / 'missing'), check_mode=False) == ([], [])


def test_remove_child_refuses_unmarked(tmp_path):
    child = tmp_path / 'pitr-drill-0123456789ab'
    child.mkdir()
    with pytest.raises(D.DrillError, match='no marker'):
        D.remove_child(str(child))
    assert child.exists()


def test_settings_file_quotes_values():
    assert D._quote("it's") == "'it''s'"
    assert D._quote(True) == "'on'"
