# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults the backup store survives, each named after the fault, against real PostgreSQL 18 and 15:
tampered and future-dated manifests, verdicts that a weaker check must not overwrite, a backup role
without privileges, names with dots, invalid options, wrong decryption keys.

The faults pg_backup survived before these (SIGKILL, a full disk, the server dying mid-dump, concurrent
runs) are proven in test_pg_backup.py's fault section; the scratch-database faults of pg_backup_verify in
test_pg_backup_verify.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid

import pytest
from test_pg_backup import APP_SCHEMA, backup_args, backups_in, tree_state

from modrunner import run_module
from supabase_like import seed_auth_and_storage, supabase_like, supabase_platform_tables


@pytest.fixture
def app(target):
    target.sql(APP_SCHEMA)
    return target


def manifest_path(backup):
    return os.path.join(backup, 'manifest.json')


def read(backup):
    with open(manifest_path(backup)) as handle:
        return json.load(handle)


def write(backup, manifest):
    with open(manifest_path(backup), 'w') as handle:
        json.dump(manifest, handle)


def edit(backup, **fields):
    manifest = read(backup)
    manifest.update(fields)
    write(backup, manifest)
    return manifest


def verify(app, **extra):
    return run_module('pg_backup_verify', dict(app.server.login_args('postgres'), **extra))


def plant_row_count_mismatch(backup):
    manifest = read(backup)
    original = json.loads(json.dumps(manifest['row_counts']))
    if isinstance(manifest['row_counts'], dict):  # the shape before schema and table were kept apart
        manifest['row_counts']['public.applicants'] += 1
    for entry in manifest['row_counts']:
        if isinstance(entry, dict) and entry['table'] == 'applicants':
            entry['rows'] += 1
    write(backup, manifest)
    return original


# --- defect 1 -------------------------------------------------------------------------------------

def test_fault_retention_never_deletes_a_path_a_manifest_names(app, tmp_path):
    """A manifest whose id names a directory outside dest: retention deletes the backup directory it
    judged (its identity is its name), never the directory the manifest names."""
    dest = tmp_path / 'dest'
    important = tmp_path / 'important'
    important.mkdir()
    (important / 'keep.txt').write_text('precious')
    old = run_module('pg_backup', backup_args(app, dest))
    assert old.rc == 0, old.raw
    edit(old['path'], id=str(important), finished_at='2026-01-01T00:00:00.000000Z')
    result = run_module('pg_backup', backup_args(app, dest, keep_daily=1))
    assert result.rc == 0, result.raw
    assert (important / 'keep.txt').read_text() == 'precious'
    assert result['deleted'] == [os.path.basename(old['path'])]
    assert backups_in(dest) == [os.path.basename(result['path'])]


def test_fault_retention_never_follows_a_symlink_out_of_dest(app, tmp_path):
    """A symlink in dest named like a backup, pointing at a backup-looking directory elsewhere, and a
    directory whose name is not the store's: neither is counted nor deleted."""
    dest = tmp_path / 'dest'
    elsewhere = tmp_path / 'elsewhere'
    first = run_module('pg_backup', backup_args(app, elsewhere))
    assert first.rc == 0, first.raw
    edit(first['path'], finished_at='2026-01-01T00:00:00.000000Z')
    dest.mkdir()
    os.symlink(first['path'], str(dest / os.path.basename(first['path'])))
    foreign = dest / 'my-own-files'
    os.rename(run_module('pg_backup', backup_args(app, tmp_path / 'x'))['path'], str(foreign))
    edit(str(foreign), finished_at='2026-01-01T00:00:00.000000Z')
    outside_state = tree_state(elsewhere)
    foreign_state = tree_state(foreign)
    result = run_module('pg_backup', backup_args(app, dest, keep_daily=0))
    assert result.rc == 0, result.raw
    assert result['deleted'] == []
    assert tree_state(elsewhere) == outside_state and tree_state(foreign) == foreign_state
    assert os.path.islink(dest / os.path.basename(first['path']))
    assert str(foreign) in result['ignored']


# --- defect 2 -------------------------------------------------------------------------------------

def test_fault_future_dated_manifest_never_costs_this_runs_backup(app, tmp_path):
    skewed = run_module('pg_backup', backup_args(app, tmp_path))
    assert skewed.rc == 0, skewed.raw
    edit(skewed['path'], finished_at='2099-01-01T00:00:00.000000Z')
    result = run_module('pg_backup', backup_args(app, tmp_path, keep_daily=1))
    assert result.rc == 0, result.raw
    assert os.path.isdir(result['path']), 'the backup of this run was deleted'
    assert result['deleted'] == []
    assert os.path.isdir(skewed['path'])  # set apart, not deleted either
    assert result['future'] == [skewed['path']]
    finding = result.check('backup_future_dated')
    assert finding['status'] == 'warning' and os.path.basename(skewed['path']) in finding['message']
    assert result['status'] == 'warning'
    verified = verify(app, dest=str(tmp_path), level='checksum')
    assert verified['backup'] == result['path'], 'latest must not be the 2099 backup'
    assert verified.check('backup_future_dated')['status'] == 'warning'
    assert verified.check('backup_age')['status'] == 'ok'
    assert os.path.basename(result['path']) in verified.check('backup_age')['message']


def test_fault_future_dated_finding_stays_quiet_without_skew(app, tmp_path):
    result = run_module('pg_backup', backup_args(app, tmp_path, keep_daily=1))
    assert result.check('backup_future_dated')['status'] == 'ok' and result['future'] == []


# --- defect 3 and 4 -------------------------------------------------------------------------------

def test_fault_weaker_pass_never_clears_a_failed_restore(app, tmp_path):
    failed = run_module('pg_backup', backup_args(app, tmp_path))
    plant_row_count_mismatch(failed['path'])
    restore = verify(app, backup=failed['path'], level='restore')
    assert restore['result'] == 'failed'
    cheap = verify(app, backup=failed['path'], level='checksum')
    assert cheap['result'] == 'ok'  # this run's own checks passed ...
    manifest = read(failed['path'])
    assert manifest['verification']['result'] == 'failed' and manifest['verification']['level'] == 'restore'
    assert cheap['verdict']['result'] == 'failed'  # ... but the backup stays failed
    assert [(r['level'], r['result']) for r in manifest['verifications']] == [('restore', 'failed'), ('checksum', 'ok')]
    # Retention does not keep it as verified-good: with two newer backups and keep_daily=1 it goes.
    run_module('pg_backup', backup_args(app, tmp_path))
    newest = run_module('pg_backup', backup_args(app, tmp_path, keep_daily=1))
    assert os.path.basename(failed['path']) in newest['deleted']


def test_fault_backup_age_is_judged_after_this_runs_verdict(app, tmp_path):
    backup = run_module('pg_backup', backup_args(app, tmp_path))
    original = plant_row_count_mismatch(backup['path'])
    failed = verify(app, dest=str(tmp_path), level='restore')
    assert failed['result'] == 'failed'
    age = failed.check('backup_age')
    assert age['status'] == 'critical' and 'no good backup' in age['message'], age
    edit(backup['path'], row_counts=original)
    good = verify(app, dest=str(tmp_path), level='restore')
    assert good['result'] == 'ok'
    age = good.check('backup_age')
    assert age['status'] == 'ok' and os.path.basename(backup['path']) in age['message'], age


# --- defect 5 -------------------------------------------------------------------------------------

def test_fault_missing_privilege_is_named_not_blamed_on_the_snapshot(app, tmp_path):
    role = 'bk_' + uuid.uuid4().hex[:8]
    password = uuid.uuid4().hex
    app.sql("CREATE ROLE %s LOGIN PASSWORD '%s'; GRANT CONNECT ON DATABASE %s TO %s; "
            "GRANT USAGE ON SCHEMA public, reporting TO %s; GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s; "
            "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO %s; REVOKE SELECT ON documents FROM %s"
            % (role, password, app.dbname, role, role, role, role, role))
    try:
        args = backup_args(app, tmp_path / 'b', login_user=role, login_password=password, exclude_schemas=['auth'])
        result = run_module('pg_backup', args)
        assert result.failed
        message = result['msg']
        assert 'snapshot' not in message, message
        assert 'role %s cannot read' % role in message
        assert 'table public.documents (no SELECT)' in message
        assert 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s' % role in message
        assert 'table reporting.daily (no SELECT)' in message
        assert password not in result.raw
        assert backups_in(tmp_path / 'b') == []
        # Granted, the same role backs up.
        app.sql('GRANT SELECT ON ALL TABLES IN SCHEMA public, reporting TO %s' % role)
        assert run_module('pg_backup', args).rc == 0
    finally:
        app.sql('DROP OWNED BY %s; DROP ROLE %s' % (role, role))


def test_fault_row_level_security_is_named(app, tmp_path):
    role = 'bk_' + uuid.uuid4().hex[:8]
    app.sql("CREATE ROLE %s LOGIN PASSWORD 'x%s'; GRANT CONNECT ON DATABASE %s TO %s; "
            "GRANT USAGE ON SCHEMA public TO %s; GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s; "
            "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO %s; ALTER TABLE applicants ENABLE ROW LEVEL SECURITY"
            % (role, role, app.dbname, role, role, role, role))
    try:
        result = run_module('pg_backup', backup_args(app, tmp_path, login_user=role, login_password='x' + role,
                                                     include_schemas=['public']))
        assert result.failed and 'subject to row-level security on 1 table(s) (public.applicants)' in result['msg']
        assert 'BYPASSRLS' in result['msg']
    finally:
        app.sql('ALTER TABLE applicants DISABLE ROW LEVEL SECURITY; DROP OWNED BY %s; DROP ROLE %s' % (role, role))


# --- defect 6 -------------------------------------------------------------------------------------

DOTTED = """
CREATE SCHEMA "dot.schema";
CREATE TABLE "dot.schema"."x.y" (id int);
INSERT INTO "dot.schema"."x.y" SELECT generate_series(1, 17);
CREATE TABLE "dot.schema"."Mixed Case" (id int);
INSERT INTO "dot.schema"."Mixed Case" SELECT generate_series(1, 3);
"""


def test_fault_dots_in_schema_and_table_names_verify(app, tmp_path):
    app.sql(DOTTED)
    backup = run_module('pg_backup', backup_args(app, tmp_path))
    assert backup.rc == 0, backup.raw
    result = verify(app, backup=backup['path'], level='restore')
    assert result['result'] == 'ok', result['checks']
    assert {'schema': 'dot.schema', 'table': 'x.y', 'rows': 17} in backup['manifest']['row_counts']
    # A manifest written before schema and table were kept apart is still read, and still verifies.
    manifest = read(backup['path'])
    legacy = dict(manifest, format_version=1, verification=None,
                  row_counts={'%s.%s' % (e['schema'], e['table']): e['rows'] for e in manifest['row_counts']})
    del legacy['verifications']
    write(backup['path'], legacy)
    result = verify(app, backup=backup['path'], level='restore')
    assert result['result'] == 'ok', result['checks']
    migrated = read(backup['path'])
    assert migrated['format_version'] == 2 and migrated['verification']['result'] == 'ok'


# --- defect 8 -------------------------------------------------------------------------------------

@pytest.mark.parametrize('port', [0, 70000, -1])
def test_fault_invalid_port_is_refused_before_touching_disk(app, tmp_path, port):
    dest = tmp_path / 'never'
    result = run_module('pg_backup', backup_args(app, dest, login_port=port))
    assert result.failed and 'login_port must be between 1 and 65535, got %d' % port in result['msg']
    assert not dest.exists()
    verified = verify(app, dest=str(dest), login_port=port, level='restore')
    assert verified.failed and 'login_port must be between 1 and 65535' in verified['msg']
    assert not dest.exists()


# --- encryption -----------------------------------------------------------------------------------

def test_fault_missing_or_wrong_key_is_a_key_error_not_a_corrupt_archive(app, tmp_path, gpg_keys):
    backup = run_module('pg_backup', backup_args(app, tmp_path, encryption_recipients=[gpg_keys.public]))
    assert backup.rc == 0, backup.raw
    before = read(backup['path'])
    missing = verify(app, backup=backup['path'], level='catalog')
    assert missing.failed
    assert 'give the secret key in decryption_key_file' in missing['msg']
    assert gpg_keys.recipient_fingerprint in missing['msg']
    wrong = verify(app, backup=backup['path'], level='restore', decryption_key_file=gpg_keys.other_secret)
    assert wrong.failed
    assert 'is not one the backup was encrypted to' in wrong['msg']
    for result in (missing, wrong):
        assert 'corrupt' not in result['msg'] and 'damaged' not in result['msg']
        assert not any(secret in result.raw for secret in gpg_keys.secrets())
    assert read(backup['path']) == before  # a key error records no verification


def test_fault_wrong_passphrase_is_named(app, tmp_path, gpg_keys):
    backup = run_module('pg_backup', backup_args(app, tmp_path, encryption_passphrase_file=gpg_keys.passphrase))
    assert backup.rc == 0, backup.raw
    wrong = verify(app, backup=backup['path'], level='catalog', decryption_passphrase_file=gpg_keys.wrong_passphrase)
    assert wrong.failed and 'does not decrypt the backup' in wrong['msg'] and 'passphrase' in wrong['msg']
    none = verify(app, backup=backup['path'], level='catalog')
    assert none.failed and 'decryption_passphrase_file' in none['msg']


def test_fault_damaged_encrypted_archive_fails_verification(app, tmp_path, gpg_keys):
    backup = run_module('pg_backup', backup_args(app, tmp_path, encryption_recipients=[gpg_keys.public]))
    archive = os.path.join(backup['path'], backup['manifest']['dump'])
    size = os.path.getsize(archive)
    with open(archive, 'r+b') as handle:
        handle.seek(size // 2)
        byte = handle.read(1)
        handle.seek(size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    # Recompute the checksum, as an attacker with write access would: only decryption can tell.
    manifest = read(backup['path'])
    with open(archive, 'rb') as handle:
        manifest['files'][0]['sha256'] = hashlib.sha256(handle.read()).hexdigest()
    write(backup['path'], manifest)
    result = verify(app, backup=backup['path'], level='catalog', decryption_key_file=gpg_keys.secret)
    assert result.rc == 0, result.raw
    assert result.check('backup_checksum')['status'] == 'ok'
    catalog = result.check('backup_catalog')
    assert catalog['status'] == 'critical' and 'does not decrypt' in catalog['message'], catalog
    assert result['result'] == 'failed'


def test_fault_bad_encryption_options_are_refused_before_touching_disk(app, tmp_path, gpg_keys):
    dest = tmp_path / 'never'
    cases = [
        (dict(encryption_recipients=[gpg_keys.public], encryption_passphrase_file=gpg_keys.passphrase), 'exclude each other'),
        (dict(encryption_recipients=[str(tmp_path / 'nope.asc')]), 'does not exist'),
        (dict(encryption_recipients=[gpg_keys.passphrase]), 'holds no OpenPGP key'),
        (dict(encryption_recipients=[gpg_keys.secret]), 'is a secret key'),
        (dict(encryption_recipients=[gpg_keys.public], format='directory'), 'encryption needs format: custom'),
    ]
    for extra, fragment in cases:
        result = run_module('pg_backup', backup_args(app, dest, **extra))
        assert result.failed and fragment in result['msg'], (extra, result.get('msg'))
        assert not dest.exists()


# --- preset supabase: the platform part (auth and storage) ------------------------------------------

@pytest.fixture
def supabase_project(target):
    supabase_like(target)
    supabase_platform_tables(target)
    seed_auth_and_storage(target)
    return target


def supabase_backup(db, dest):
    result = run_module('pg_backup', backup_args(db, dest, preset='supabase'))
    assert result.rc == 0, result.raw
    return result


def test_fault_missing_platform_part_fails_verification(supabase_project, tmp_path):
    """A backup whose users and object rows are gone (platform.dump deleted) is a failed verification at every
    level, never a pass that restores an application nobody can log in to."""
    backup = supabase_backup(supabase_project, tmp_path)
    os.unlink(os.path.join(backup['path'], 'platform.dump'))
    result = verify(supabase_project, backup=backup['path'], level='restore')
    assert result.rc == 0, result.raw
    assert 'platform.dump: unreadable' in result.check('backup_checksum')['message']
    catalog = result.check('backup_catalog')
    assert catalog['status'] == 'critical' and 'pg_restore --list of platform.dump failed' in catalog['message']
    restore = result.check('backup_restore')
    assert restore['status'] == 'critical' and 'pg_restore failed on platform.dump' in restore['message'], restore
    assert result['result'] == 'failed' and result['verdict']['result'] == 'failed'


def test_fault_platform_part_from_another_backup_is_caught(supabase_project, tmp_path):
    """platform.dump replaced by the one of a later backup - after eleven users changed their password and the
    avatars were deleted - its checksum recomputed (as someone with write access would): the restore runs, and the
    proofs and row counts say what differs from the backup."""
    backup = supabase_backup(supabase_project, tmp_path / 'a')
    supabase_project.sql("UPDATE auth.users SET encrypted_password = '$2a$10$reset' WHERE email LIKE 'user1%';"
                         "DELETE FROM storage.objects WHERE bucket_id = 'avatars'")
    later = supabase_backup(supabase_project, tmp_path / 'b')
    shutil.copyfile(os.path.join(later['path'], 'platform.dump'), os.path.join(backup['path'], 'platform.dump'))
    manifest = read(backup['path'])
    for entry in manifest['files']:
        if entry['path'] == 'platform.dump':
            with open(os.path.join(backup['path'], 'platform.dump'), 'rb') as handle:
                data = handle.read()
            entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    write(backup['path'], manifest)
    result = verify(supabase_project, backup=backup['path'], level='restore')
    assert result.check('backup_checksum')['status'] == 'ok'
    assert result.check('backup_restore')['status'] == 'ok'
    users = result.check('backup_auth_users')
    assert users['status'] == 'critical' and users['message'] == (
        "auth.users: 25 rows restored, but their id, email, encrypted_password differ from the backup's (digest of "
        "every row)")
    objects = result.check('backup_storage_objects')
    assert objects['status'] == 'critical' and objects['message'] == 'storage.objects: 25 rows restored, the backup holds 50'
    assert result.check('backup_storage_buckets')['status'] == 'ok'
    assert result.check('backup_auth_identities')['status'] == 'ok'
    assert 'storage.objects expected 50, restored 25' in result.check('backup_row_counts')['message']
    assert result['result'] == 'failed'


def test_fault_malformed_parts_never_leave_the_backup_directory(supabase_project, tmp_path):
    backup = supabase_backup(supabase_project, tmp_path)
    manifest = read(backup['path'])
    manifest['parts'][1]['file'] = '../../elsewhere.dump'
    write(backup['path'], manifest)
    result = verify(supabase_project, backup=backup['path'], level='restore')
    catalog = result.check('backup_catalog')
    assert catalog['status'] == 'critical' and 'the platform part names no plain file name' in catalog['message']
    assert result.check('backup_restore')['status'] == 'critical'
    assert result['result'] == 'failed'


def test_fault_manifest_without_parts_still_verifies(app, tmp_path):
    """A manifest as pg_backup wrote it before the platform part existed (no ``parts``, one archive) verifies and
    restores as it did."""
    backup = run_module('pg_backup', backup_args(app, tmp_path, preset='supabase'))
    assert backup.rc == 0, backup.raw
    manifest = read(backup['path'])
    del manifest['parts']
    manifest['files'] = [f for f in manifest['files'] if f['path'] == 'database.dump']
    write(backup['path'], manifest)
    os.unlink(os.path.join(backup['path'], 'platform.dump'))
    result = verify(app, backup=backup['path'], level='restore')
    assert result['result'] == 'ok', result['checks']
    assert not [c for c in result['checks'] if c['name'].startswith(('backup_auth', 'backup_storage'))]
    assert 'parts' not in result
