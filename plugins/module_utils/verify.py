# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification of a pg_backup backup: checksums, catalogue, and a timed test restore into a scratch
database that is always dropped afterwards.

Scratch databases carry a marker comment and are guarded by a session advisory lock while in use, so
a later run can tell an abandoned one (its run was killed) from one in use, and never touches a
database it did not create.
"""

from __future__ import annotations

import os
import subprocess
import time
import zlib

from ansible_collections.appcare.maintenance.plugins.module_utils import backup as B
from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import encryption as E
from ansible_collections.appcare.maintenance.plugins.module_utils.dump import _exit_reason
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import AppcareError, ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import db_error_text

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by postgres.require_psycopg2()
    psycopg2 = None
    sql = None

LEVELS = ['checksum', 'catalog', 'restore']
SCRATCH_MARKER = 'appcare.maintenance.pg_backup_verify scratch database'
SCRATCH_PREFIX = 'appcare_verify_'


class VerifyError(AppcareError):
    """The verification itself could not run (as opposed to a backup that failed verification)."""


def pick_backup(backup, dest, database=None):
    """The backup directory to verify: an explicit path, or the newest complete one under ``dest`` (never
    one dated in the future)."""
    if backup and backup != 'latest':
        path = os.path.abspath(backup)
        if not os.path.isdir(path):
            raise VerifyError('backup %s does not exist or is not a directory' % path)
        manifest = B.read_manifest(path)
        if manifest is None:
            raise VerifyError('backup %s has no valid manifest.json: it is not a complete pg_backup backup '
                              '(a failed or partial run, or not made by pg_backup)' % path)
        return path, manifest
    if not dest:
        raise ConfigurationError('backup: latest needs dest, the directory that holds the backups')
    backups = B.scan(dest).backups
    if database:
        backups = [b for b in backups if b['manifest'].get('database') == database]
    if not backups:
        raise VerifyError('no complete backup%s under %s' % (' of database %s' % database if database else '', dest))
    return backups[0]['path'], backups[0]['manifest']


def newest_good(backups, database):
    """The newest of ``backups`` (as from ``backup.scan``) of ``database`` whose verdict is not ``failed``."""
    for entry in backups:
        manifest = entry['manifest']
        if manifest.get('database') != database:
            continue
        if B.verdict(manifest)['result'] == 'failed':
            continue
        return entry
    return None


def plaintext_files(path):
    """The files of a backup directory that are not OpenPGP-encrypted (judged by their bytes, not by the
    manifest; the manifest itself is metadata and stays readable)."""
    plain = []
    for current, _dirs, files in os.walk(path):
        for name in sorted(files):
            full = os.path.join(current, name)
            if full != os.path.join(path, B.MANIFEST) and not E.looks_encrypted(full):
                plain.append(os.path.relpath(full, path))
    return plain


def encryption_check(backups, dest, database, required):
    """The ``backup_encryption`` finding: whether every backup of ``database`` among ``backups`` (of ``dest``)
    is encrypted, dump and globals alike. Critical when encryption is required and one is not; ok otherwise."""
    backups = [b for b in backups if b['manifest'].get('database') == database]
    plain = [b['id'] for b in backups if plaintext_files(b['path'])]
    where = 'backup(s) of %s under %s' % (database, dest)
    if not plain:
        return C.finding('backup_encryption', C.OK, 'all %d %s are encrypted' % (len(backups), where),
                         value=0, unit='count', obj='db=%s' % database)
    if required:
        return C.finding('backup_encryption', C.CRITICAL, '%d of %d %s are not encrypted, and encryption is '
                         'required: %s' % (len(plain), len(backups), where, ', '.join(plain[:10])),
                         value=len(plain), unit='count', obj='db=%s' % database)
    return C.finding('backup_encryption', C.OK, '%d of %d %s are not encrypted (encryption is not required)'
                     % (len(plain), len(backups), where), value=len(plain), unit='count', obj='db=%s' % database)


def verify_checksums(path, manifest):
    """[(file, problem)] for every file that is missing, resized or whose sha256 differs."""
    problems = []
    for entry in manifest.get('files') or []:
        full = os.path.join(path, entry['path'])
        try:
            size, digest = B.sha256_file(full)
        except OSError as exc:
            problems.append((entry['path'], 'unreadable: %s' % exc.strerror))
            continue
        if size != entry['bytes']:
            problems.append((entry['path'], 'size %d, manifest says %d' % (size, entry['bytes'])))
        elif digest != entry['sha256']:
            problems.append((entry['path'], 'sha256 differs from the manifest'))
    if not manifest.get('files'):
        problems.append(('manifest.json', 'lists no files'))
    return problems


def archive_path(path, manifest):
    """The dump file of a backup. Only a plain file name is taken from the manifest: it never points
    elsewhere."""
    name = manifest.get('dump')
    if not isinstance(name, str) or name in ('', '.', '..') or '/' in name or os.sep in name:
        name = B.DUMP_FILE.get(manifest.get('format'), 'database.dump')
    return os.path.join(path, name)


def is_encrypted(path, manifest):
    """Decided by the file itself, so an edited manifest can neither hide nor invent encryption."""
    return E.looks_encrypted(archive_path(path, manifest))


def list_archive(pg_restore, path, manifest, decryptor, env=None):
    """(returncode, stdout, stderr) of ``pg_restore --list`` over the archive, decrypting it in the
    stream when it is encrypted (the whole file is decrypted, so its integrity is proven too)."""
    if is_encrypted(path, manifest):
        return decryptor.stream(archive_path(path, manifest), [pg_restore, '--list'], env, manifest.get('encryption'))
    proc = subprocess.run([pg_restore, '--list', archive_path(path, manifest)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def verify_catalog(pg_restore, path, manifest, decryptor=None):
    """(ok, message, tables): pg_restore --list succeeds and lists data for every counted table. ``tables``
    maps each row-count entry's index to the (schema, table) the archive holds it as."""
    try:
        returncode, listing, stderr = list_archive(pg_restore, path, manifest, decryptor or E.Decryptor())
    except E.ArchiveUndecryptable as exc:
        return False, str(exc), {}
    if returncode != 0:
        return False, 'pg_restore --list failed: %s' % _exit_reason(returncode, stderr), {}
    data = set()
    for line in listing.splitlines():
        if not line.startswith(';') and ' TABLE DATA ' in line:
            data.add(line.split(' TABLE DATA ', 1)[1])
    missing, resolved = [], {}
    entries = manifest.get('row_counts') or []
    for index, entry in enumerate(entries):
        for schema, name in B.table_candidates(entry):
            if any(line.startswith('%s %s ' % (schema, name)) for line in data):
                resolved[index] = (schema, name)
                break
        else:
            missing.append(entry.get('legacy_key') or B.table_label(entry))
    if missing:
        return False, 'the archive has no data for %d table(s) the manifest lists: %s' % (
            len(missing), ', '.join(missing[:10])), resolved
    return True, 'pg_restore lists data for all %d tables of the manifest' % len(entries), resolved


def scratch_lock_key(name):
    # A stable 32-bit key per scratch database name for pg_try_advisory_lock(int, int).
    return zlib.crc32(name.encode('utf-8')) & 0x7fffffff


LOCK_CLASS = 0x61706376 & 0x7fffffff  # 'apcv'


class Scratch(object):
    """Creates, guards and always drops the scratch database on the admin session's server."""

    def __init__(self, session, name):
        self.session = session
        self.name = name
        self.created = False
        self.cleaned = []

    def _marked_databases(self):
        return [r['datname'] for r in self.session.query(
            "SELECT d.datname FROM pg_database d "
            "WHERE shobj_description(d.oid, 'pg_database') LIKE %s", (SCRATCH_MARKER + '%',))]

    def _in_use(self, name):
        key = scratch_lock_key(name)
        """A live run holds the scratch database's lock - looked for in every database, since advisory locks are per
        database and runs for different source databases log in to different ones. (Sessions still connected to
        the scratch database do not count: a killed run's last query can linger there until the server notices.)"""
        row = self.session.one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s "
            "AND objsubid = 2 AND granted AND pid <> pg_backend_pid()) AS busy", (LOCK_CLASS, key))
        return row['busy']

    def clean_abandoned(self):
        """Drop scratch databases of earlier runs that died (marked, and nobody holds their lock anywhere)."""
        for name in self._marked_databases():
            key = scratch_lock_key(name)
            if self._in_use(name):
                continue  # a live run is using it
            row = self.session.one('SELECT pg_try_advisory_lock(%s, %s) AS free', (LOCK_CLASS, key))
            if not row['free']:
                continue  # a live run is using it
            try:
                self._drop(name)
                self.cleaned.append(name)
            finally:
                self.session.one('SELECT pg_advisory_unlock(%s, %s) AS ok', (LOCK_CLASS, key))
        return self.cleaned

    def create(self, forbidden):
        if self.name in forbidden:
            raise ConfigurationError('scratch_db %s is the source or admin database; choose another name' % self.name)
        exists = self.session.one("SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database "
                                  "WHERE datname = %s", (self.name,))
        if exists is not None:
            if (exists['comment'] or '').startswith(SCRATCH_MARKER):
                raise VerifyError('another verification run is using scratch database %s' % self.name)
            raise VerifyError('scratch database %s already exists and was not left by a dead verification run '
                              '(pg_backup_verify never drops a database it did not create); choose another '
                              'scratch_db' % self.name)
        row = self.session.one('SELECT pg_try_advisory_lock(%s, %s) AS got', (LOCK_CLASS, scratch_lock_key(self.name)))
        if not row['got']:
            raise VerifyError('another verification is using scratch database %s' % self.name)
        self.session.query(sql.SQL('CREATE DATABASE {} TEMPLATE template0').format(sql.Identifier(self.name)))
        self.created = True
        self.session.query(sql.SQL('COMMENT ON DATABASE {} IS {}').format(
            sql.Identifier(self.name), sql.Literal('%s (pid %d)' % (SCRATCH_MARKER, os.getpid()))))

    def _drop(self, name):
        self.session.query(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))

    def drop(self):
        if self.created:
            self._drop(self.name)
            self.created = False
        self.session.one('SELECT pg_advisory_unlock_all() IS NULL AS ok')


def count_rows(connect, dbname, row_counts, resolved):
    """{table: {expected, restored[, error]}} for every table of the manifest whose restored row count
    differs; ``resolved`` maps entry indexes to (schema, table) as ``verify_catalog`` found them."""
    conn = connect(dbname)
    mismatches = {}
    try:
        with conn.cursor() as cur:
            for index, entry in enumerate(row_counts or []):
                schema, name = resolved.get(index, (entry['schema'], entry['table']))
                label = B.table_label({'schema': schema, 'table': name})
                expected = entry['rows']
                try:
                    cur.execute(sql.SQL('SELECT count(*) FROM {}.{}').format(sql.Identifier(schema), sql.Identifier(name)))
                    got = cur.fetchone()[0]
                except psycopg2.Error as exc:
                    conn.rollback()
                    mismatches[label] = {'expected': expected, 'restored': None, 'error': db_error_text(exc)}
                    continue
                if got != expected:
                    mismatches[label] = {'expected': expected, 'restored': got}
        conn.rollback()
    finally:
        conn.close()
    return mismatches


def run_smoke_queries(connect, dbname, queries):
    """[{name, ok, message}] for the user's smoke queries, run read-only in the restored database."""
    results = []
    conn = connect(dbname)
    try:
        conn.set_session(readonly=True)
        for item in queries or []:
            name = item.get('name') or item['query'][:40]
            try:
                with conn.cursor() as cur:
                    cur.execute(item['query'])
                    rows = cur.fetchall() if cur.description else []
                conn.rollback()
            except psycopg2.Error as exc:
                conn.rollback()
                results.append({'name': name, 'ok': False, 'message': 'query failed: %s' % db_error_text(exc)})
                continue
            if 'expect' in item and item['expect'] is not None:
                got = rows[0][0] if rows and rows[0] else None
                ok = str(got) == str(item['expect'])
                results.append({'name': name, 'ok': ok, 'message': 'returned %r, expected %r' % (got, item['expect'])})
            else:
                minimum = item.get('min_rows', 1)
                ok = len(rows) >= minimum
                results.append({'name': name, 'ok': ok,
                                'message': 'returned %d row(s), at least %d expected' % (len(rows), minimum)})
    finally:
        conn.close()
    return results


def validate_smoke_queries(queries):
    for index, item in enumerate(queries or []):
        if not isinstance(item, dict) or not isinstance(item.get('query'), str) or not item['query'].strip():
            raise ConfigurationError('smoke_queries[%d] needs a query string' % index)
        unknown = set(item) - {'name', 'query', 'expect', 'min_rows'}
        if unknown:
            raise ConfigurationError('smoke_queries[%d]: unknown key(s) %s; use name, query, expect, min_rows'
                                     % (index, ', '.join(sorted(unknown))))
        if 'expect' in item and 'min_rows' in item:
            raise ConfigurationError('smoke_queries[%d]: give expect or min_rows, not both' % index)
        if 'min_rows' in item and (not isinstance(item['min_rows'], int) or item['min_rows'] < 0):
            raise ConfigurationError('smoke_queries[%d]: min_rows must be a whole number >= 0' % index)


def restore(pg_restore, env, path, manifest, dbname, jobs, no_owner, decryptor=None):
    """Run pg_restore --exit-on-error into ``dbname`` (from a decrypting pipe when the backup is encrypted);
    returns seconds, raises RestoreFailed on failure."""
    argv = [pg_restore, '--exit-on-error', '--no-password', '--dbname=%s' % dbname]
    if jobs > 1:
        argv.append('--jobs=%d' % jobs)
    if no_owner:
        argv += ['--no-owner', '--no-privileges']
    started = time.monotonic()
    if is_encrypted(path, manifest):
        try:
            returncode, _out, stderr = (decryptor or E.Decryptor()).stream(archive_path(path, manifest), argv, env,
                                                                           manifest.get('encryption'))
        except E.ArchiveUndecryptable as exc:
            raise RestoreFailed('restore failed after %.1f s: %s' % (time.monotonic() - started, exc),
                                time.monotonic() - started) from exc
    else:
        proc = subprocess.run(argv + [archive_path(path, manifest)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, check=False)
        returncode, stderr = proc.returncode, proc.stderr
    seconds = time.monotonic() - started
    if returncode != 0:
        raise RestoreFailed('pg_restore failed after %.1f s: %s' % (seconds, _exit_reason(returncode, stderr)), seconds)
    return seconds


class RestoreFailed(VerifyError):
    def __init__(self, message, seconds):
        super(RestoreFailed, self).__init__(message)
        self.seconds = seconds


def age_check(name, hours, rpo_hours, entry):
    return C.evaluate(name, round(hours, 4), round(0.8 * rpo_hours, 4), rpo_hours, C.ABOVE, unit='hours',
                      obj='backup=%s' % entry['id'],
                      message='newest good backup %s finished {value} h ago (RPO %s h)' % (entry['id'], rpo_hours))
