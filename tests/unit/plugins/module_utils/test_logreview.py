# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_log_info's run logic on real files: the state file (validation of what is read back, rotation, truncation,
renames), byte ranges read by several workers, format choice in a directory, and the settings advice."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import logreview as LR
from ansible_collections.appcare.maintenance.plugins.module_utils import pglog as PL
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
LINE = '2026-12-04 10:%02d:00.000 UTC [%d] app@crm ERROR:  relation "t%d" does not exist\n'


def params(path, state=None, **kw):
    base = {'log_path': str(path), 'file_pattern': '*', 'log_format': 'auto', 'log_line_prefix': '%m [%p] %q%u@%d ',
            'log_timezone': None, 'window_hours': 168, 'state_file': str(state) if state else None, 'top': 10,
            'processes': 1, 'thresholds': {}}
    base.update(kw)
    return base


def check(result, name):
    return [c for c in result['checks'] if c['name'] == name]


def write_state(path, **changes):
    data = {'version': 1, 'updated_at': iso(NOW), 'files': {}, 'patterns': {}}
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize('changes, why', [
    ({'updated_at': '2027-06-01T00:00:00.000000Z'}, 'dated in the future'),
    ({'version': 7}, 'not a version 1 state file'),
    ({'files': {'/x': {'dev': 1, 'ino': 2, 'offset': 900, 'size': 10, 'head': '0' * 64}}}, 'offsets are malformed'),
    ({'files': {'/x': {'dev': 1, 'ino': 2, 'offset': -1, 'size': 10, 'head': '0' * 64}}}, 'offsets are malformed'),
    ({'patterns': {'../../etc': {}}}, 'known patterns are malformed'),
    ({'patterns': {'0123456789abcdef': {'last_run': '2030-01-01T00:00:00.000000Z'}}}, 'dated in the future'),
])
def test_state_read_back_is_validated(tmp_path, changes, why):
    state = tmp_path / 'state.json'
    write_state(state, **changes)
    loaded, problem = LR.load_state(str(state), NOW)
    assert why in problem and loaded['files'] == {} and loaded['patterns'] == {}


def test_tampered_state_never_hides_a_pattern(tmp_path):
    log = tmp_path / 'pg.log'
    log.write_text(LINE % (1, 1, 1))
    state = tmp_path / 'state.json'
    key = PL.pattern_key('ERROR', 'relation "..." does not exist')
    write_state(state, updated_at='2030-01-01T00:00:00.000000Z', patterns={key: {'last_run': iso(NOW)}})
    result = LR.review_logs(params(log, state, read_settings=False), {}, NOW)
    assert check(result, 'log_state')[0]['status'] == 'warning'
    assert [r['new'] for r in result['new_patterns']] == [True]
    assert check(result, 'log_new_patterns')[0]['status'] == 'warning'


def test_incremental_rotation_truncation_and_rename(tmp_path):
    log = tmp_path / 'pg.log'
    state = tmp_path / 'state.json'
    log.write_text(LINE % (1, 1, 1))
    first = LR.review_logs(params(log, state), {}, NOW)
    assert first['files'][0]['start'] == 0 and check(first, 'log_new_patterns')[0]['status'] == 'ok'
    with open(str(log), 'a') as handle:
        handle.write(LINE % (2, 2, 2) + '2026-12-04 10:03:00.000 UTC [3] app@crm ERROR:  division by zero\n')
    second = LR.review_logs(params(log, state), {}, NOW)
    assert second['files'][0]['start'] == first['files'][0]['end'] and second['files'][0]['reset'] is None
    assert second['severities']['ERROR'] == 2
    assert [r['pattern'] for r in second['new_patterns']] == ['division by zero']
    # truncated (copytruncate rotation): read from the start
    log.write_text(LINE % (4, 4, 4))
    third = LR.review_logs(params(log, state), {}, NOW)
    assert third['files'][0]['reset'] == 'truncated' and third['severities']['ERROR'] == 1
    # renamed by rotation: the old inode is found under its new name and resumed; the new file is read whole
    os.rename(str(log), str(tmp_path / 'pg.log.1'))
    with open(str(tmp_path / 'pg.log.1'), 'a') as handle:
        handle.write(LINE % (5, 5, 5))
    log.write_text(LINE % (6, 6, 6))
    fourth = LR.review_logs(params(tmp_path, state, file_pattern='pg.log*'), {}, NOW)
    by_name = dict((os.path.basename(f['path']), f) for f in fourth['files'])
    assert by_name['pg.log.1']['start'] > 0 and by_name['pg.log']['start'] == 0
    assert fourth['severities']['ERROR'] == 2


def test_same_length_rewrite_is_a_rotation(tmp_path):
    log = tmp_path / 'pg.log'
    state = tmp_path / 'state.json'
    log.write_text(LINE % (1, 1, 1))
    LR.review_logs(params(log, state), {}, NOW)
    text = LINE % (1, 1, 1)
    os.truncate(str(log), 0)
    log.write_text(text.replace('t1', 'x1') + LINE % (2, 2, 2))  # same inode, other first bytes
    result = LR.review_logs(params(log, state), {}, NOW)
    assert result['files'][0]['reset'] == 'rotated' and result['severities']['ERROR'] == 2


def test_byte_ranges_read_by_workers_add_up(tmp_path):
    log = tmp_path / 'pg.log'
    lines = []
    for i in range(3000):
        lines.append(LINE % (i % 60, i, i % 7))
        lines.append('2026-12-04 10:00:00.000 UTC [%d] app@crm DETAIL:  detail %d\n\tcontinued\n' % (i, i))
    log.write_text(''.join(lines))
    size = os.path.getsize(str(log))
    since = NOW - datetime.timedelta(days=7)
    job = (str(log), 'stderr', '%m [%p] %q%u@%d ', None, since, NOW, set())
    whole, _stats = LR.read_range(job + (0, None))
    cuts = [0, size // 3 + 5, 2 * size // 3 - 11, None]
    merged = None
    for start, end in zip(cuts[:-1], cuts[1:], strict=True):
        part, _stats = LR.read_range(job + (start, end))
        if merged is None:
            merged = part
        else:
            merged.merge(part)
    assert merged.severities == whole.severities == {'PANIC': 0, 'FATAL': 0, 'ERROR': 3000, 'WARNING': 0}
    assert [(r['pattern'], r['count']) for r in merged.patterns.rows()] == \
        [(r['pattern'], r['count']) for r in whole.patterns.rows()]


def test_directory_with_several_formats_reads_one(tmp_path):
    (tmp_path / 'postgresql.log').write_text(LINE % (1, 1, 1))
    (tmp_path / 'postgresql.json').write_text(json.dumps({
        'timestamp': '2026-12-04 10:01:00.000 UTC', 'pid': 1, 'error_severity': 'ERROR',
        'message': 'relation "t1" does not exist'}) + '\n')
    result = LR.review_logs(params(tmp_path), {}, NOW)
    assert [f['format'] for f in result['files']] == ['jsonlog']
    assert result['left_out'][0]['path'].endswith('postgresql.log') and result['severities']['ERROR'] == 1


def test_settings_advice():
    advice = LR.settings_advice({'log_lock_waits': 'off', 'log_temp_files': '-1', 'log_min_messages': 'fatal',
                                 'lc_messages': 'de_DE.UTF-8', 'log_connections': 'off'}, '%t ', {'stderr'})
    by_setting = dict((a['setting'], a) for a in advice)
    assert set(by_setting) == {'log_line_prefix', 'log_lock_waits', 'log_temp_files', 'log_min_messages',
                               'lc_messages', 'log_connections'}
    assert by_setting['log_min_messages']['level'] == 'warning'
    good = {'log_lock_waits': 'on', 'log_temp_files': '0', 'log_checkpoints': 'on', 'log_autovacuum_min_duration':
            '0', 'log_connections': 'on', 'log_min_messages': 'warning', 'lc_messages': 'C'}
    assert LR.settings_advice(good, '%m [%p] %q%u@%d %h ', {'stderr'}) == []
    assert LR.settings_advice(good, None, {'jsonlog'}) == []
