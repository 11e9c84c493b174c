# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypted backups against real PostgreSQL 18 and 15 with a real gpg: the round trip (back up, verify
at every level, restore with the standard command and compare every table), nothing readable on disk,
and the backup_encryption finding. Wrong keys and damaged archives are in faults/test_fault_backup.py."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from test_pg_backup import APP_SCHEMA, backup_args, table_fingerprints

from modrunner import run_module
from pgserver import SUPERUSER_PASSWORD


@pytest.fixture
def app(target):
    target.sql(APP_SCHEMA)
    return target


def verify(app, **extra):
    return run_module('pg_backup_verify', dict(app.server.login_args('postgres'), **extra))


def gpg_restore(app, result, secret_key=None, passphrase_file=None):
    """What a person does during an outage: gpg --decrypt ... | pg_restore -d new_db. Returns the database."""
    dbname = 'r_' + uuid.uuid4().hex[:10]
    app.server.execute('CREATE DATABASE %s' % dbname)
    home = os.path.join(os.path.dirname(result['path']), '.gnupg-person')
    os.makedirs(home, mode=0o700, exist_ok=True)
    archive = os.path.join(result['path'], result['manifest']['dump'])
    gpg = ['gpg', '--homedir', home, '--batch', '--pinentry-mode', 'loopback']
    try:
        if secret_key:
            subprocess.run(gpg + ['--import', secret_key], check=True, capture_output=True)
        options = ['--passphrase-file', passphrase_file] if passphrase_file else []
        decrypt = subprocess.Popen(gpg + options + ['--decrypt', archive], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
        restore = subprocess.run([os.path.join(result['client']['bin_dir'], 'pg_restore'), '-h', '127.0.0.1',
                                  '-p', str(app.server.port), '-U', 'postgres', '-d', dbname, '--exit-on-error',
                                  '--no-owner'], stdin=decrypt.stdout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, env=dict(os.environ, PGPASSWORD=SUPERUSER_PASSWORD), check=False)
        decrypt.stdout.close()
        assert decrypt.wait() == 0 and restore.returncode == 0, restore.stdout
    finally:
        subprocess.run(['gpgconf', '--homedir', home, '--kill', 'all'], check=False, capture_output=True)
    return dbname


def assert_restores_identically(app, result, source, **key):
    restored = gpg_restore(app, result, **key)
    try:
        assert table_fingerprints(app.server, restored) == source
    finally:
        app.server.execute('DROP DATABASE %s WITH (FORCE)' % restored)


def assert_no_secret(gpg_keys, *results):
    for secret in gpg_keys.secrets():
        assert not any(secret in result.raw for result in results)


def test_public_key_round_trip(app, tmp_path, gpg_keys):
    source = table_fingerprints(app.server, app.dbname)
    result = run_module('pg_backup', backup_args(app, tmp_path, encryption_recipients=[gpg_keys.public],
                                                 globals=True))
    assert result.rc == 0, result.raw
    manifest = result['manifest']
    assert manifest['dump'] == 'database.dump.gpg' and manifest['globals'] == 'globals.sql.gpg'
    assert manifest['encryption']['format'] == 'OpenPGP' and manifest['encryption']['mode'] == 'public-key'
    assert manifest['encryption']['cipher'] == 'AES256'
    assert manifest['encryption']['recipients'][0]['fingerprint'] == gpg_keys.recipient_fingerprint
    # Nothing in the backup directory is a readable pg_dump archive.
    assert sorted(os.listdir(result['path'])) == ['database.dump.gpg', 'globals.sql.gpg', 'manifest.json']
    with open(os.path.join(result['path'], 'globals.sql.gpg'), 'rb') as handle:
        assert b'CREATE ROLE' not in handle.read()  # role password hashes are encrypted too
    archive = os.path.join(result['path'], 'database.dump.gpg')
    with open(archive, 'rb') as handle:
        assert handle.read(5) != b'PGDMP'
    listing = subprocess.run([os.path.join(result['client']['bin_dir'], 'pg_restore'), '--list', archive],
                             capture_output=True, text=True, check=False)
    assert listing.returncode != 0
    # Checksums need no key; catalog and restore decrypt with the secret key.
    checksum = verify(app, backup=result['path'], level='checksum')
    assert checksum['result'] == 'ok', checksum['checks']
    for level in ('catalog', 'restore'):
        verified = verify(app, backup=result['path'], level=level, decryption_key_file=gpg_keys.secret)
        assert verified.rc == 0, verified.raw
        assert verified['result'] == 'ok', verified['checks']
    assert verified['mismatches'] == {} and verified['restore_seconds'] > 0
    assert verified['verdict']['result'] == 'ok' and verified['verdict']['level'] == 'restore'
    # Every table comes back identical through the standard command.
    assert_restores_identically(app, result, source, secret_key=gpg_keys.secret)
    assert_no_secret(gpg_keys, result, verified)


def test_passphrase_round_trip(app, tmp_path, gpg_keys):
    source = table_fingerprints(app.server, app.dbname)
    result = run_module('pg_backup', backup_args(app, tmp_path, encryption_passphrase_file=gpg_keys.passphrase))
    assert result.rc == 0, result.raw
    assert result['manifest']['encryption']['mode'] == 'passphrase'
    assert result['manifest']['encryption']['recipients'] == []
    verified = verify(app, backup=result['path'], level='restore', decryption_passphrase_file=gpg_keys.passphrase)
    assert verified['result'] == 'ok', verified['checks']
    assert_restores_identically(app, result, source, passphrase_file=gpg_keys.passphrase)
    assert_no_secret(gpg_keys, result, verified)


def test_backup_encryption_finding(app, tmp_path, gpg_keys):
    encrypted = run_module('pg_backup', backup_args(app, tmp_path, encryption_recipients=[gpg_keys.public]))
    assert encrypted.rc == 0, encrypted.raw
    quiet = verify(app, dest=str(tmp_path), level='checksum', require_encryption=True)
    finding = quiet.check('backup_encryption')
    assert finding['status'] == 'ok' and finding['value'] == 0, finding
    plain = run_module('pg_backup', backup_args(app, tmp_path))
    assert plain.rc == 0, plain.raw
    fires = verify(app, dest=str(tmp_path), level='checksum', require_encryption=True)
    finding = fires.check('backup_encryption')
    assert finding['status'] == 'critical' and finding['value'] == 1
    assert os.path.basename(plain['path']) in finding['message']
    assert fires['result'] == 'ok'  # an objective, not the integrity of the backup
    not_required = verify(app, dest=str(tmp_path), level='checksum')
    assert not_required.check('backup_encryption')['status'] == 'ok'
    # A manifest that claims encryption does not make a plain dump pass: the file is judged.
    manifest_file = os.path.join(plain['path'], 'manifest.json')
    with open(manifest_file) as handle:
        text = handle.read()
    with open(manifest_file, 'w') as handle:
        handle.write(text.replace('"encryption": null', '"encryption": {"format": "OpenPGP"}'))
    still = verify(app, dest=str(tmp_path), level='checksum', require_encryption=True)
    assert still.check('backup_encryption')['status'] == 'critical'


def test_encrypted_restore_refuses_parallel_jobs(app, tmp_path, gpg_keys):
    result = run_module('pg_backup', backup_args(app, tmp_path, encryption_recipients=[gpg_keys.public]))
    refused = verify(app, backup=result['path'], level='restore', jobs=2, decryption_key_file=gpg_keys.secret)
    assert refused.failed and 'jobs > 1 cannot restore an encrypted backup' in refused['msg']
