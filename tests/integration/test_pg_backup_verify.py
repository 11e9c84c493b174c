# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup_verify against real PostgreSQL 18 and 15 servers: good backups verify at every level,
damaged ones are caught at the right level, and the scratch database never outlives the run."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from test_pg_backup import APP_SCHEMA, backup_args

from conftest import wait_until
from modrunner import run_module, start_module

SMOKE = [{'name': 'applicants', 'query': 'SELECT count(*) FROM applicants', 'expect': 3000},
         {'name': 'approved', 'query': "SELECT id FROM applications WHERE state = 'approved'", 'min_rows': 100}]


# The findings about the store under dest, after every level's own.
STORE = ['backup_future_dated', 'backup_age', 'backup_encryption']


@pytest.fixture
def backed_up(target, tmp_path):
    target.sql(APP_SCHEMA)
    result = run_module('pg_backup', backup_args(target, tmp_path))
    assert result.rc == 0, result.raw
    return target, tmp_path, result


def verify(target, **extra):
    args = target.server.login_args('postgres')
    args.update(extra)
    return run_module('pg_backup_verify', args)


def databases(server):
    return {r[0] for r in server.execute('SELECT datname FROM pg_database')}


def manifest_of(path):
    with open(os.path.join(path, 'manifest.json')) as handle:
        return json.load(handle)


@pytest.mark.parametrize('level, names', [
    ('checksum', ['backup_checksum'] + STORE),
    ('catalog', ['backup_checksum', 'backup_catalog'] + STORE),
    ('restore', ['backup_checksum', 'backup_catalog', 'backup_restore', 'backup_row_counts', 'backup_smoke_queries',
                 'backup_restore_time'] + STORE),
])
def test_good_backup_verifies_at_every_level(backed_up, level, names):
    target, dest, backup = backed_up
    before = databases(target.server)
    result = verify(target, dest=str(dest), level=level, smoke_queries=SMOKE)
    assert result.rc == 0, result.raw
    assert [c['name'] for c in result['checks']] == names
    assert {c['status'] for c in result['checks']} == {'ok'}, result['checks']
    assert result['result'] == 'ok' and result['backup'] == backup['path']
    recorded = manifest_of(backup['path'])['verifications'][-1]
    assert recorded['level'] == level and recorded['result'] == 'ok'
    assert manifest_of(backup['path'])['verification'] == {'level': level, 'result': 'ok', 'at': recorded['at']}
    assert databases(target.server) == before  # the scratch database is gone
    if level == 'restore':
        assert result['restore_seconds'] > 0 and recorded['restore_seconds'] == result['restore_seconds']
        assert result['mismatches'] == {}


def test_parallel_directory_backup_restores_with_jobs(target, tmp_path):
    target.sql(APP_SCHEMA)
    backup = run_module('pg_backup', backup_args(target, tmp_path, format='directory', jobs=2))
    assert backup.rc == 0, backup.raw
    result = verify(target, backup=backup['path'], level='restore', jobs=2)
    assert result.rc == 0, result.raw
    assert result['result'] == 'ok', result['checks']


def test_check_mode_restores_nothing_and_writes_nothing(backed_up):
    target, dest, backup = backed_up
    before = databases(target.server)
    args = dict(target.server.login_args('postgres'), dest=str(dest), level='restore')
    result = run_module('pg_backup_verify', args, check_mode=True)
    assert result.rc == 0, result.raw
    assert result['changed'] is False
    assert [c['name'] for c in result['checks']] == ['backup_checksum', 'backup_catalog'] + STORE
    assert manifest_of(backup['path'])['verification'] is None
    assert databases(target.server) == before


def test_flipped_byte_is_a_checksum_failure(backed_up):
    target, dest, backup = backed_up
    dump = os.path.join(backup['path'], 'database.dump')
    with open(dump, 'r+b') as handle:
        handle.seek(os.path.getsize(dump) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    result = verify(target, dest=str(dest), level='checksum')
    assert result.rc == 0
    finding = result.check('backup_checksum')
    assert finding['status'] == 'critical' and 'database.dump: sha256 differs' in finding['message']
    assert result['result'] == 'failed' and result['status'] == 'critical'
    assert manifest_of(backup['path'])['verification']['result'] == 'failed'


def test_truncated_archive_fails_catalog_and_restore(backed_up):
    target, dest, backup = backed_up
    dump = os.path.join(backup['path'], 'database.dump')
    with open(dump, 'r+b') as handle:
        handle.truncate(os.path.getsize(dump) // 3)
    before = databases(target.server)
    result = verify(target, dest=str(dest), level='restore')
    assert result.rc == 0, result.raw
    assert result.check('backup_checksum')['status'] == 'critical'
    assert 'size' in result.check('backup_checksum')['message']
    restore = result.check('backup_restore')
    assert restore['status'] == 'critical' and 'pg_restore failed' in restore['message']
    assert result['result'] == 'failed'
    assert databases(target.server) == before


def test_missing_manifest_is_a_clear_error(backed_up):
    target, dest, backup = backed_up
    os.unlink(os.path.join(backup['path'], 'manifest.json'))
    result = verify(target, backup=backup['path'])
    assert result.failed
    assert 'has no valid manifest.json: it is not a complete pg_backup backup' in result['msg']
    latest = verify(target, dest=str(dest))
    assert latest.failed and 'no complete backup under %s' % dest in latest['msg']


def test_restore_failing_on_a_missing_role_is_reported_and_cleaned(target, tmp_path):
    role = 'owner_' + target.dbname
    target.sql('CREATE ROLE %s' % role)
    target.sql('CREATE TABLE owned (id int); ALTER TABLE owned OWNER TO %s; INSERT INTO owned VALUES (1)' % role)
    backup = run_module('pg_backup', backup_args(target, tmp_path))
    assert backup.rc == 0, backup.raw
    target.sql('REASSIGN OWNED BY %s TO postgres; DROP OWNED BY %s' % (role, role))
    target.sql('DROP ROLE %s' % role)
    before = databases(target.server)
    result = verify(target, backup=backup['path'], level='restore')
    assert result.rc == 0, result.raw
    finding = result.check('backup_restore')
    assert finding['status'] == 'critical'
    assert 'role "%s" does not exist' % role in finding['message']
    assert databases(target.server) == before
    without_owner = verify(target, backup=backup['path'], level='restore', no_owner=True)
    assert without_owner['result'] == 'ok', without_owner['checks']


def test_planted_row_count_mismatch_is_reported_per_table(backed_up):
    target, dest, backup = backed_up
    manifest = manifest_of(backup['path'])
    for entry in manifest['row_counts']:
        if entry['table'] == 'applicants':
            entry['rows'] += 5
        if entry['table'] == 'events_2026':
            entry['rows'] = 1
    with open(os.path.join(backup['path'], 'manifest.json'), 'w') as handle:
        json.dump(manifest, handle)
    result = verify(target, backup=backup['path'], level='restore')
    finding = result.check('backup_row_counts')
    assert finding['status'] == 'critical'
    assert 'public.applicants expected 3005, restored 3000' in finding['message']
    assert set(result['mismatches']) == {'public.applicants', 'public.events_2026'}
    assert result['result'] == 'failed'


def test_smoke_query_failures(backed_up):
    target, dest, _backup = backed_up
    result = verify(target, dest=str(dest), level='restore',
                    smoke_queries=[{'name': 'wrong', 'query': 'SELECT count(*) FROM applicants', 'expect': 1},
                                   {'name': 'broken', 'query': 'SELECT * FROM no_such_table'},
                                   {'name': 'ok', 'query': 'SELECT 1', 'min_rows': 1}])
    finding = result.check('backup_smoke_queries')
    assert finding['status'] == 'critical' and finding['value'] == 2
    assert "wrong: returned 3000, expected 1" in finding['message']
    assert 'broken: query failed' in finding['message']


def test_objectives_fire_without_failing_the_backup(backed_up):
    target, dest, _backup = backed_up
    time.sleep(1.0)
    result = verify(target, dest=str(dest), level='restore', rto_minutes=0.0001, rpo_hours=0.0001)
    assert result.check('backup_restore_time')['status'] == 'critical'
    assert result.check('backup_age')['status'] == 'critical'
    assert result['result'] == 'ok'  # integrity is fine; the objectives are missed
    quiet = verify(target, dest=str(dest), level='checksum')
    assert quiet.check('backup_age')['status'] == 'ok'


def test_scratch_name_collisions_are_refused(backed_up):
    target, dest, _backup = backed_up
    target.server.execute('CREATE DATABASE appcare_verify_precious')
    try:
        result = verify(target, dest=str(dest), level='restore', scratch_db='appcare_verify_precious')
        assert result.failed and 'already exists and was not left by a dead verification run' in result['msg']
        assert 'appcare_verify_precious' in databases(target.server)
    finally:
        target.server.execute('DROP DATABASE appcare_verify_precious')
    same = verify(target, dest=str(dest), level='restore', scratch_db=target.dbname)
    assert same.failed and 'is the source or admin database' in same['msg']
    assert target.dbname in databases(target.server)
    bad = verify(target, dest=str(dest), level='restore', scratch_db='x; DROP DATABASE y')
    assert bad.failed and 'must be a plain identifier' in bad['msg']


def _wait_for_smoke_sleep(server):
    return wait_until(lambda: server.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%%' "
        "AND datname LIKE 'appcare_verify_%%'")[0][0] == 1, timeout=60)


def test_killed_run_leaves_scratch_that_the_next_run_cleans(backed_up):
    target, dest, _backup = backed_up
    args = dict(target.server.login_args('postgres'), dest=str(dest), level='restore',
                smoke_queries=[{'query': 'SELECT pg_sleep(60)'}], statement_timeout=0)
    running = start_module('pg_backup_verify', args)
    assert _wait_for_smoke_sleep(target.server)
    running.proc.kill()
    running.proc.wait()
    scratch = 'appcare_verify_' + target.dbname
    assert scratch in databases(target.server)  # what a killed run leaves
    # The killed run's sessions go away once the server notices (the sleeping one at the latest when dropped).
    assert wait_until(lambda: target.server.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'appcare.maintenance.pg_backup_verify' "
        "AND datname = 'postgres'")[0][0] == 0)
    result = verify(target, dest=str(dest), level='restore')
    assert result.rc == 0, result.raw
    assert result['cleaned'] == [scratch]
    assert scratch not in databases(target.server)


def test_interrupted_run_drops_its_scratch_database(backed_up):
    target, dest, _backup = backed_up
    args = dict(target.server.login_args('postgres'), dest=str(dest), level='restore',
                smoke_queries=[{'query': 'SELECT pg_sleep(60)'}], statement_timeout=0)
    running = start_module('pg_backup_verify', args)
    assert _wait_for_smoke_sleep(target.server)
    running.proc.send_signal(signal.SIGTERM)
    running.proc.wait(timeout=60)
    assert 'appcare_verify_' + target.dbname not in databases(target.server)


def test_retention_keeps_the_verified_backup(target, tmp_path):
    target.sql(APP_SCHEMA)
    first = run_module('pg_backup', backup_args(target, tmp_path))
    assert verify(target, backup=first['path'], level='restore')['result'] == 'ok'
    second = run_module('pg_backup', backup_args(target, tmp_path))
    third = run_module('pg_backup', backup_args(target, tmp_path, keep_daily=1))
    assert third['deleted'] == [os.path.basename(second['path'])]
    assert os.path.isdir(first['path']) and os.path.isdir(third['path'])


def test_concurrent_restores_from_different_databases_do_not_clean_each_other(backed_up, server, tmp_path):
    """Runs for different source databases log in to different databases, where advisory locks do not meet:
    one run must still see the other's scratch database as in use."""
    target, dest, _backup = backed_up
    other = 'o_' + os.urandom(4).hex()
    server.execute('CREATE DATABASE %s' % other)
    try:
        server.execute(APP_SCHEMA, other)
        other_dest = tmp_path / 'other-backups'
        args = dict(server.login_args(other), dest=str(other_dest))
        assert run_module('pg_backup', args).rc == 0
        first_args = dict(server.login_args(target.dbname), dest=str(dest), level='restore',
                          smoke_queries=[{'query': 'SELECT pg_sleep(4)'}])
        first = start_module('pg_backup_verify', first_args)
        # The second run starts its clean-up while the first one's scratch database exists.
        assert wait_until(lambda: 'appcare_verify_%s' % target.dbname in databases(server), timeout=60)
        second = start_module('pg_backup_verify', dict(server.login_args(other), dest=str(other_dest), level='restore'))
        results = [first.finish(), second.finish()]
        for result in results:
            assert result.rc == 0 and result['result'] == 'ok', result.raw
    finally:
        server.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % other)
