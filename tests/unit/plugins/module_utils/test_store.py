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

from ansible_collections.appcare.maintenance.plugins.module_utils import dump as D
from ansible_collections.appcare.maintenance.plugins.module_utils import files as F
from ansible_collections.appcare.maintenance.plugins.module_utils import pgclient as P
from ansible_collections.appcare.maintenance.plugins.module_utils import store as S
from ansible_collections.appcare.maintenance.plugins.module_utils.dump import _exit_reason, resolve_schemas
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import SUPABASE_SCHEMAS

UTC = datetime.timezone.utc


def entry(backup_id, when, verified=None):
    record = {'level': 'restore', 'result': verified, 'at': '2026-01-01T00:00:00.000000Z'}
    return {'id': backup_id, 'finished_at': when, 'manifest': {'verifications': [record] if verified else []}}


def days(*spec):
    """[(id, 'YYYY-MM-DD HH:MM', verified)] -> entries, newest first like scan()."""
    out = [entry(i, datetime.datetime.strptime(t, '%Y-%m-%d %H:%M').replace(tzinfo=UTC), v) for i, t, v in spec]
    return sorted(out, key=lambda e: e['finished_at'], reverse=True)


def test_daily_keeps_newest_of_each_day():
    backups = days(('a', '2026-11-20 02:00', None), ('b', '2026-11-21 02:00', None), ('c', '2026-11-21 14:00', None),
                   ('d', '2026-11-22 02:00', None))
    keep, delete = S.retention_plan(backups, keep_daily=2)
    assert set(keep) == {'d', 'c'}
    assert delete == ['b', 'a']


def test_weekly_and_monthly_buckets():
    backups = days(('w1', '2026-11-02 02:00', None), ('w2', '2026-11-09 02:00', None), ('w3', '2026-11-16 02:00', None),
                   ('oct', '2026-10-15 02:00', None), ('sep', '2026-09-15 02:00', None))
    keep, delete = S.retention_plan(backups, keep_weekly=2, keep_monthly=2)
    assert keep == {'w3': 'weekly', 'w2': 'weekly', 'oct': 'monthly'}
    assert delete == ['w1', 'sep']


def test_newest_verified_good_is_never_deleted():
    backups = days(('old-ok', '2026-01-01 00:00', 'ok'), ('older-ok', '2025-12-01 00:00', 'ok'),
                   ('new-failed', '2026-02-01 00:00', 'failed'), ('newest', '2026-03-01 00:00', None))
    keep, delete = S.retention_plan(backups, keep_daily=1)
    assert set(keep) == {'newest', 'old-ok'}
    assert keep['old-ok'] == 'newest verified-good'
    assert delete == ['new-failed', 'older-ok']


def test_zero_keeps_only_newest_and_verified():
    backups = days(('a', '2026-01-01 00:00', None), ('b', '2026-01-02 00:00', None))
    keep, delete = S.retention_plan(backups)
    assert list(keep) == ['b'] and delete == ['a']


def test_empty_and_invalid():
    assert S.retention_plan([]) == ({}, [])
    with pytest.raises(ConfigurationError):
        S.retention_plan([], keep_daily=-1)


def write_manifest(path, **fields):
    os.makedirs(path, exist_ok=True)
    data = {'format_version': 1, 'id': os.path.basename(path), 'finished_at': '2026-01-01T00:00:00.000000Z'}
    data.update(fields)
    with open(os.path.join(path, 'manifest.json'), 'w') as handle:
        json.dump(data, handle)


def test_scan_orders_by_manifest_time_not_mtime_and_never_counts_broken_ones(tmp_path):
    write_manifest(str(tmp_path / 'zzz-20250101T000000Z'), finished_at='2025-01-01T00:00:00.000000Z')
    write_manifest(str(tmp_path / 'aaa-20260601T000000Z'), finished_at='2026-06-01T00:00:00.000000Z')
    os.utime(tmp_path / 'zzz-20250101T000000Z', (time.time(), time.time()))
    os.utime(tmp_path / 'aaa-20260601T000000Z', (0, 0))
    write_manifest(str(tmp_path / 'db-20260101T000000Z'), finished_at=None)
    write_manifest(str(tmp_path / 'db-20260102T000000Z'), format_version=99)
    write_manifest(str(tmp_path / 'db-20260103T000000Z'), row_counts={'a.b': 'many'})
    write_manifest(str(tmp_path / 'not-a-backup-name'))
    (tmp_path / 'db-20260104T000000Z').mkdir()
    (tmp_path / 'db-20260104T000000Z' / 'manifest.json').write_text('{not json')
    (tmp_path / 'empty').mkdir()
    write_manifest(str(tmp_path / (S.PARTIAL_PREFIX + 'x')))
    (tmp_path / 'a-file').write_text('x')
    found = S.scan(str(tmp_path))
    backups, partials, others = found.backups, found.partials, found.others
    assert [b['id'] for b in backups] == ['aaa-20260601T000000Z', 'zzz-20250101T000000Z']
    assert partials == [str(tmp_path / (S.PARTIAL_PREFIX + 'x'))]
    assert sorted(os.path.basename(o) for o in others) == [
        'db-20260101T000000Z', 'db-20260102T000000Z', 'db-20260103T000000Z', 'db-20260104T000000Z', 'empty',
        'not-a-backup-name']


def test_scan_takes_identity_from_the_directory_and_sets_future_ones_apart(tmp_path):
    write_manifest(str(tmp_path / 'db-20260101T000000Z'), id='/srv/important')
    write_manifest(str(tmp_path / 'db-20990101T000000Z'), finished_at='2099-01-01T00:00:00.000000Z')
    found = S.scan(str(tmp_path))
    assert [b['id'] for b in found.backups] == ['db-20260101T000000Z']
    assert [b['id'] for b in found.future] == ['db-20990101T000000Z']
    assert S.future_check(found)['status'] == 'warning'
    assert S.future_check(S.scan(str(tmp_path / 'missing')))['status'] == 'ok'


def test_scan_of_missing_dest(tmp_path):
    found = S.scan(str(tmp_path / 'missing'))
    assert (found.backups, found.partials, found.others, found.future) == ([], [], [], [])


@pytest.mark.parametrize('name, ok', [
    ('ims-20261123T020000Z', True), ('ims-20261123T020000Z-2', True), ('my.db-20261123T020000Z', True),
    ('.partial-ims-20261123T020000Z', False), ('..', False), ('/srv/important', False), ('ims', False),
    ('../ims-20261123T020000Z', False), ('ims-20261123T020000Z/..', False),
])
def test_backup_names(name, ok):
    assert bool(S.BACKUP_NAME.match(name)) is ok


FORMAT1 = {'format_version': 1, 'id': 'x', 'finished_at': '2026-01-01T00:00:00.000000Z',
           'row_counts': {'public.t': 3, 'dot.schema.x.y': 5},
           'verification': {'level': 'restore', 'result': 'ok', 'at': '2026-01-02T00:00:00.000000Z'}}


def test_format_1_manifests_are_migrated(tmp_path):
    write_manifest(str(tmp_path / 'b'), **FORMAT1)
    manifest = S.read_manifest(str(tmp_path / 'b'))
    assert manifest['format_version'] == 2
    assert manifest['row_counts'] == [{'schema': 'dot', 'table': 'schema.x.y', 'rows': 5, 'legacy_key': 'dot.schema.x.y'},
                                      {'schema': 'public', 'table': 't', 'rows': 3}]
    assert D.table_candidates(manifest['row_counts'][0]) == [('dot', 'schema.x.y'), ('dot.schema', 'x.y'),
                                                             ('dot.schema.x', 'y')]
    assert S.verdict(manifest)['result'] == 'ok'


def rec(level, result, at='2026-01-01T00:00:00.000000Z'):
    return {'level': level, 'result': result, 'at': at}


@pytest.mark.parametrize('records, result, level', [
    ([], None, None),
    ([rec('checksum', 'ok')], 'ok', 'checksum'),
    ([rec('restore', 'failed'), rec('checksum', 'ok')], 'failed', 'restore'),  # a weaker pass never clears
    ([rec('restore', 'failed'), rec('catalog', 'ok'), rec('checksum', 'ok')], 'failed', 'restore'),
    ([rec('restore', 'ok'), rec('checksum', 'failed')], 'failed', 'restore'),  # a later failure at any level
    ([rec('restore', 'ok'), rec('checksum', 'failed'), rec('catalog', 'ok')], 'failed', 'restore'),
    ([rec('restore', 'failed'), rec('restore', 'ok')], 'ok', 'restore'),  # the same strength, passed again
    ([rec('restore', 'ok'), rec('catalog', 'ok')], 'ok', 'restore'),
    ([rec('catalog', 'failed'), rec('restore', 'ok')], 'ok', 'restore'),
    ([rec('restore', 'ok', at='2099-01-01T00:00:00.000000Z')], 'failed', 'restore'),  # dated in the future
    ([rec('restore', 'maybe')], 'failed', 'restore'),
    (['garbage', rec('checksum', 'ok')], 'failed', 'restore'),
    ([rec('restore', 'ok', at='yesterday')], 'failed', 'restore'),
])
def test_verdict_only_gets_stronger(records, result, level):
    verdict = S.verdict({'verifications': records})
    assert (verdict['result'], verdict['level']) == (result, level)
    assert S.is_verified_good({'verifications': records}) is (result == 'ok')


def test_delete_backup_refuses_anything_but_a_backup_of_the_store(tmp_path):
    dest = tmp_path / 'dest'
    outside = tmp_path / 'important'
    write_manifest(str(outside / 'db-20260101T000000Z'))
    write_manifest(str(dest / 'db-20260101T000000Z'))
    os.symlink(str(outside / 'db-20260101T000000Z'), str(dest / 'db-20260102T000000Z'))
    write_manifest(str(dest / 'other'))
    (dest / 'db-20260103T000000Z').mkdir()
    for name, reason in (('../important/db-20260101T000000Z', 'not a backup name'), ('/srv/important', 'not a backup'),
                         ('db-20260102T000000Z', 'symlink'), ('other', 'not a backup name'),
                         ('db-20260103T000000Z', 'no valid manifest'), ('db-20260104T000000Z', 'No such file')):
        with pytest.raises(S.BackupError, match=reason):
            S.delete_backup(str(dest), name)
    assert os.path.isdir(outside / 'db-20260101T000000Z') and os.path.islink(dest / 'db-20260102T000000Z')
    assert S.delete_backup(str(dest), 'db-20260101T000000Z') == str(dest / 'db-20260101T000000Z')
    assert not os.path.exists(dest / 'db-20260101T000000Z')


def test_retention_never_deletes_the_backup_of_this_run():
    backups = days(('future', '2099-01-01 00:00', None), ('this', '2026-11-21 02:00', None))
    _keep, delete = S.retention_plan(backups, keep_daily=1)
    assert delete == ['this']
    keep, delete = S.retention_plan(backups, keep_daily=1, protect=['this'])
    assert keep['this'] == 'this run' and delete == []


def test_lock_is_exclusive(tmp_path):
    with S.DestinationLock(str(tmp_path)):
        with pytest.raises(S.LockBusy, match='another backup run holds the lock .* \\(pid %d\\)' % os.getpid()):
            S.DestinationLock(str(tmp_path)).acquire()
    S.DestinationLock(str(tmp_path)).acquire().release()


def test_write_json_atomic_replaces_whole(tmp_path):
    path = str(tmp_path / 'm.json')
    F.write_json_atomic(path, {'a': 1})
    F.write_json_atomic(path, {'a': 2})
    assert json.load(open(path)) == {'a': 2}
    assert os.listdir(str(tmp_path)) == ['m.json']


SCHEMAS = ['auth', 'public', 'reporting', 'scratch', 'storage', 'timescaledb_x']


def test_resolve_schemas_records_every_exclusion():
    included, excluded = resolve_schemas(SCHEMAS, None, ['scr*'], SUPABASE_SCHEMAS)
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
    assert P.compression_args(major, method, level) == expected


def test_plaintext_files_judges_bytes_and_leaves_the_manifest_alone(tmp_path):
    backup = tmp_path / 'db-20260101T000000Z'
    backup.mkdir()
    (backup / 'manifest.json').write_text('{}')
    (backup / '.manifest.json.abc123.tmp').write_text('{}')  # what an interrupted manifest write leaves
    (backup / 'database.dump.gpg').write_bytes(b'\x85\x01\x8c\x03')
    assert S.plaintext_files(str(backup)) == []
    (backup / 'globals.sql').write_text('CREATE ROLE x;')
    assert S.plaintext_files(str(backup)) == ['globals.sql']


ROLES_DUMP = '''\\restrict abc
SET default_transaction_read_only = off;
CREATE ROLE "anon";
ALTER ROLE "anon" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "supabase_auth_admin";
CREATE ROLE "app_writer";
ALTER ROLE "app_writer" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "it's ""odd""";
ALTER ROLE "authenticator" SET "statement_timeout" TO '8s';
ALTER ROLE "authenticator" SET "search_path" TO 'x';
GRANT "anon" TO "authenticator" WITH INHERIT FALSE GRANTED BY "postgres";
GRANT "authenticated" TO "app_writer" GRANTED BY "postgres";
CREATE ROLE "anonymous";
\\unrestrict abc
'''


def test_supabase_roles_script_leaves_reserved_roles_alone():
    lines = D.supabase_roles_script(ROLES_DUMP).splitlines()
    assert lines[0] == '\\restrict abc' and lines[-1] == '\\unrestrict abc'
    assert '-- CREATE ROLE "anon";' in lines and '-- CREATE ROLE "supabase_auth_admin";' in lines
    assert lines[3].startswith('-- ALTER ROLE "anon" WITH NOSUPERUSER')  # reserved: commented out, as it was
    # A custom role is created only when missing; attributes that need a superuser are dropped.
    assert ("DO $appcare$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_writer') THEN "
            'CREATE ROLE "app_writer"; END IF; END $appcare$;') in lines
    assert 'ALTER ROLE "app_writer" WITH INHERIT NOCREATEROLE NOCREATEDB LOGIN NOBYPASSRLS;' in lines
    assert ("DO $appcare$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it''s \"odd\"') THEN "
            'CREATE ROLE "it\'s ""odd"""; END IF; END $appcare$;') in lines
    # Settings Supabase allows on its roles stay; others go, as the CLI's dump_role.sh does.
    assert 'ALTER ROLE "authenticator" SET "statement_timeout" TO \'8s\';' in lines
    assert '-- ALTER ROLE "authenticator" SET "search_path" TO \'x\';' in lines
    assert '-- GRANT "anon" TO "authenticator" WITH INHERIT FALSE GRANTED BY "postgres";' in lines
    assert 'GRANT "authenticated" TO "app_writer" GRANTED BY "postgres";' in lines
    # "anonymous" is not "anon": a reserved name matches whole.
    assert any(line.startswith('DO $appcare$') and '"anonymous"' in line for line in lines)


def test_platform_schemas_only_what_the_preset_left_out():
    excluded = [{'schema': 'auth', 'reason': 'preset supabase (auth)'},
                {'schema': 'storage', 'reason': 'exclude_schemas (stor*)'},
                {'schema': 'realtime', 'reason': 'preset supabase (realtime)'}]
    assert D.platform_schemas({'preset': 'supabase'}, excluded) == ['auth']
    assert D.platform_schemas({'preset': 'none'}, excluded) == []
    included, excluded = resolve_schemas(SCHEMAS, ['public'], [], SUPABASE_SCHEMAS)
    assert D.platform_schemas({'preset': 'supabase'}, excluded) == []  # include_schemas leaves them out altogether
