# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention, the backup directory scan, schema selection and exit reasons of pg_backup."""

from __future__ import annotations

import datetime
import json
import os
import signal
import time

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import backup as B
from ansible_collections.appcare.maintenance.plugins.module_utils.dump import _exit_reason, resolve_schemas
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

UTC = datetime.timezone.utc


def entry(backup_id, when, verified=None):
    return {'id': backup_id, 'finished_at': when,
            'manifest': {'verification': {'result': verified} if verified else None}}


def days(*spec):
    """[(id, 'YYYY-MM-DD HH:MM', verified)] -> entries, newest first like scan()."""
    out = [entry(i, datetime.datetime.strptime(t, '%Y-%m-%d %H:%M').replace(tzinfo=UTC), v) for i, t, v in spec]
    return sorted(out, key=lambda e: e['finished_at'], reverse=True)


def test_daily_keeps_newest_of_each_day():
    backups = days(('a', '2026-11-20 02:00', None), ('b', '2026-11-21 02:00', None), ('c', '2026-11-21 14:00', None),
                   ('d', '2026-11-22 02:00', None))
    keep, delete = B.retention_plan(backups, keep_daily=2)
    assert set(keep) == {'d', 'c'}
    assert delete == ['b', 'a']


def test_weekly_and_monthly_buckets():
    backups = days(('w1', '2026-11-02 02:00', None), ('w2', '2026-11-09 02:00', None), ('w3', '2026-11-16 02:00', None),
                   ('oct', '2026-10-15 02:00', None), ('sep', '2026-09-15 02:00', None))
    keep, delete = B.retention_plan(backups, keep_weekly=2, keep_monthly=2)
    assert keep == {'w3': 'weekly', 'w2': 'weekly', 'oct': 'monthly'}
    assert delete == ['w1', 'sep']


def test_newest_verified_good_is_never_deleted():
    backups = days(('old-ok', '2026-01-01 00:00', 'ok'), ('older-ok', '2025-12-01 00:00', 'ok'),
                   ('new-failed', '2026-02-01 00:00', 'failed'), ('newest', '2026-03-01 00:00', None))
    keep, delete = B.retention_plan(backups, keep_daily=1)
    assert set(keep) == {'newest', 'old-ok'}
    assert keep['old-ok'] == 'newest verified-good'
    assert delete == ['new-failed', 'older-ok']


def test_zero_keeps_only_newest_and_verified():
    backups = days(('a', '2026-01-01 00:00', None), ('b', '2026-01-02 00:00', None))
    keep, delete = B.retention_plan(backups)
    assert list(keep) == ['b'] and delete == ['a']


def test_empty_and_invalid():
    assert B.retention_plan([]) == ({}, [])
    with pytest.raises(ConfigurationError):
        B.retention_plan([], keep_daily=-1)


def write_manifest(path, **fields):
    os.makedirs(path, exist_ok=True)
    data = {'format_version': 1, 'id': os.path.basename(path), 'finished_at': '2026-01-01T00:00:00.000000Z'}
    data.update(fields)
    with open(os.path.join(path, 'manifest.json'), 'w') as handle:
        json.dump(data, handle)


def test_scan_orders_by_manifest_time_not_mtime_and_never_counts_broken_ones(tmp_path):
    write_manifest(str(tmp_path / 'zzz-oldest'), finished_at='2025-01-01T00:00:00.000000Z')
    write_manifest(str(tmp_path / 'aaa-newest'), finished_at='2026-06-01T00:00:00.000000Z')
    os.utime(tmp_path / 'zzz-oldest', (time.time(), time.time()))
    os.utime(tmp_path / 'aaa-newest', (0, 0))
    write_manifest(str(tmp_path / 'unfinished'), finished_at=None)
    write_manifest(str(tmp_path / 'future-format'), format_version=99)
    (tmp_path / 'garbage').mkdir()
    (tmp_path / 'garbage' / 'manifest.json').write_text('{not json')
    (tmp_path / 'empty').mkdir()
    write_manifest(str(tmp_path / (B.PARTIAL_PREFIX + 'x')))
    (tmp_path / 'a-file').write_text('x')
    backups, partials, others = B.scan(str(tmp_path))
    assert [b['id'] for b in backups] == ['aaa-newest', 'zzz-oldest']
    assert partials == [str(tmp_path / (B.PARTIAL_PREFIX + 'x'))]
    assert sorted(os.path.basename(o) for o in others) == ['empty', 'future-format', 'garbage', 'unfinished']


def test_scan_of_missing_dest(tmp_path):
    assert B.scan(str(tmp_path / 'missing')) == ([], [], [])


def test_lock_is_exclusive(tmp_path):
    with B.DestinationLock(str(tmp_path)):
        with pytest.raises(B.LockBusy, match='another backup run holds the lock .* \\(pid %d\\)' % os.getpid()):
            B.DestinationLock(str(tmp_path)).acquire()
    B.DestinationLock(str(tmp_path)).acquire().release()


def test_write_json_atomic_replaces_whole(tmp_path):
    path = str(tmp_path / 'm.json')
    B.write_json_atomic(path, {'a': 1})
    B.write_json_atomic(path, {'a': 2})
    assert json.load(open(path)) == {'a': 2}
    assert os.listdir(str(tmp_path)) == ['m.json']


SCHEMAS = ['auth', 'public', 'reporting', 'scratch', 'storage', 'timescaledb_x']


def test_resolve_schemas_records_every_exclusion():
    included, excluded = resolve_schemas(SCHEMAS, None, ['scr*'], B.SUPABASE_EXCLUDED_SCHEMAS)
    assert included == ['public', 'reporting']
    assert excluded == [{'schema': 'auth', 'reason': 'preset supabase (auth)'},
                        {'schema': 'scratch', 'reason': 'exclude_schemas (scr*)'},
                        {'schema': 'storage', 'reason': 'preset supabase (storage)'},
                        {'schema': 'timescaledb_x', 'reason': 'preset supabase (timescaledb_*)'}]


def test_resolve_include():
    included, excluded = resolve_schemas(SCHEMAS, ['rep*'], [], [])
    assert included == ['reporting']
    assert {'schema': 'public', 'reason': 'not in include_schemas'} in excluded
    with pytest.raises(ConfigurationError, match="no schema matches 'nope'"):
        resolve_schemas(SCHEMAS, ['nope'], [], [])


@pytest.mark.parametrize('code, stderr, expected', [
    (1, 'pg_dump: error: x\n  y', 'exit code 1: pg_dump: error: x y'),
    (-signal.SIGKILL, '', 'killed by SIGKILL (it was killed (out of memory, or by an operator))'),
    (-signal.SIGXFSZ, '', 'killed by SIGXFSZ (the file size limit was exceeded)'),
    (2, '', 'exit code 2: no message'),
])
def test_exit_reason(code, stderr, expected):
    assert _exit_reason(code, stderr) == expected


@pytest.mark.parametrize('major, method, level, expected', [
    (18, 'gzip', None, ['--compress=gzip']), (18, 'zstd', 3, ['--compress=zstd:3']), (18, 'none', 5, ['--compress=none']),
    (15, 'gzip', None, ['--compress=6']), (15, 'gzip', 9, ['--compress=9']), (15, 'none', None, ['--compress=0']),
])
def test_compression_args(major, method, level, expected):
    assert B.compression_args(major, method, level) == expected
