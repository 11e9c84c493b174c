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
import re
import subprocess
import time
import zlib

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import dump as D
from ansible_collections.appcare.maintenance.plugins.module_utils import encryption as E
from ansible_collections.appcare.maintenance.plugins.module_utils import pgclient as P
from ansible_collections.appcare.maintenance.plugins.module_utils import store as S
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.dump import _exit_reason
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import AppcareError, ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.files import safe_name
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    Session,
    client_env,
    connect_kwargs,
    db_error_text,
    target_label,
)

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


def archive_path(path, manifest):
    """The dump file of a backup. Only a plain file name is taken from the manifest: it never points
    elsewhere."""
    name = manifest.get('dump')
    if not isinstance(name, str) or name in ('', '.', '..') or '/' in name or os.sep in name:
        name = D.DUMP_FILE.get(manifest.get('format'), 'database.dump')
    return os.path.join(path, name)


def is_encrypted(path, manifest):
    """Decided by the file itself, so an edited manifest can neither hide nor invent encryption."""
    return any(E.looks_encrypted(a['path']) for a in archives(path, manifest)[0])


def _plain_name(name):
    return isinstance(name, str) and name not in ('', '.', '..') and '/' not in name and os.sep not in name


def _valid_counts(counts):
    return isinstance(counts, list) and all(
        isinstance(e, dict) and isinstance(e.get('schema'), str) and isinstance(e.get('table'), str)
        and isinstance(e.get('rows'), int) and not isinstance(e.get('rows'), bool) for e in counts)


def _valid_proofs(proofs):
    return isinstance(proofs, list) and all(
        isinstance(p, dict) and isinstance(p.get('name'), str) and p['name'].startswith('backup_')
        and isinstance(p.get('schema'), str) and isinstance(p.get('table'), str)
        and isinstance(p.get('columns'), list) and p['columns'] and all(isinstance(c, str) for c in p['columns'])
        and isinstance(p.get('rows'), int) and isinstance(p.get('sha256'), str) for p in proofs)


def archives(path, manifest):
    """([archive], problems): the pg_dump archives of a backup in the order a restore needs their pre-data - the
    platform part (auth and storage, whose tables application foreign keys point at) before the application's.
    Each is {name, path, row_counts, proofs}. The application archive is the manifest's ``dump`` with ``row_counts``
    (a manifest without ``parts``, as older pg_backup versions wrote, has only that one). A malformed ``parts``
    entry is a problem, never followed outside the backup directory."""
    found, problems = [], []
    parts = manifest.get('parts')
    if parts is not None and not isinstance(parts, list):
        problems.append('parts is not a list')
        parts = []
    for part in parts or []:
        if not isinstance(part, dict) or part.get('name') != 'platform':
            continue
        if not _plain_name(part.get('file')):
            problems.append('the platform part names no plain file name')
        elif not _valid_counts(part.get('row_counts')):
            problems.append('the platform part has malformed row counts')
        elif not _valid_proofs(part.get('proofs') or []):
            problems.append('the platform part has malformed proofs')
        else:
            found.append({'name': 'platform', 'path': os.path.join(path, part['file']),
                          'row_counts': part['row_counts'], 'proofs': part.get('proofs') or []})
    found.append({'name': 'application', 'path': archive_path(path, manifest),
                  'row_counts': manifest.get('row_counts') or [], 'proofs': []})
    return found, problems


def list_archive(pg_restore, archive, decryptor, env=None, encryption=None):
    """(returncode, stdout, stderr) of ``pg_restore --list`` over the archive file ``archive``, decrypting it in the
    stream when it is encrypted (the whole file is decrypted, so its integrity is proven too)."""
    if E.looks_encrypted(archive):
        return decryptor.stream(archive, [pg_restore, '--list'], env, encryption)
    proc = subprocess.run([pg_restore, '--list', archive], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def _catalog_one(pg_restore, archive, decryptor, encryption):
    """(problem or None, resolved) for one archive: pg_restore --list reads it and lists data for every counted
    table; ``resolved`` maps each row-count entry's index to the (schema, table) the archive holds it as."""
    try:
        returncode, listing, stderr = list_archive(pg_restore, archive['path'], decryptor, encryption=encryption)
    except E.ArchiveUndecryptable as exc:
        return '%s: %s' % (os.path.basename(archive['path']), exc), {}
    if returncode != 0:
        return 'pg_restore --list of %s failed: %s' % (os.path.basename(archive['path']),
                                                       _exit_reason(returncode, stderr)), {}
    data = set()
    for line in listing.splitlines():
        if not line.startswith(';') and ' TABLE DATA ' in line:
            data.add(line.split(' TABLE DATA ', 1)[1])
    missing, resolved = [], {}
    for index, entry in enumerate(archive['row_counts']):
        for schema, name in D.table_candidates(entry):
            if any(line.startswith('%s %s ' % (schema, name)) for line in data):
                resolved[index] = (schema, name)
                break
        else:
            missing.append(entry.get('legacy_key') or D.table_label(entry))
    if missing:
        return '%s has no data for %d table(s) the manifest lists: %s' % (
            os.path.basename(archive['path']), len(missing), ', '.join(missing[:10])), resolved
    return None, resolved


def verify_catalog(pg_restore, path, manifest, decryptor=None):
    """(ok, message, resolved): pg_restore --list succeeds on every archive of the backup and lists data for every
    counted table. ``resolved`` maps each archive's name to {row-count entry index: (schema, table)}."""
    found, problems = archives(path, manifest)
    resolved = {}
    counted = []
    for archive in found:
        problem, resolved[archive['name']] = _catalog_one(pg_restore, archive, decryptor or E.Decryptor(),
                                                          manifest.get('encryption'))
        if problem:
            problems.append(problem)
        counted.append('%s %d' % (archive['name'], len(archive['row_counts'])))
    if problems:
        return False, '; '.join(problems), resolved
    total = sum(len(a['row_counts']) for a in found)
    if len(found) == 1:
        return True, 'pg_restore lists data for all %d tables of the manifest' % total, resolved
    return True, 'pg_restore lists data for all %d tables of the manifest (%s)' % (total, ', '.join(counted)), resolved


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


def check_proofs(connect, dbname, proofs):
    """The platform part's row proofs in the restored database ``dbname``: one finding per proof, named as the
    proof is (``backup_auth_users`` ...). Only counts and digests are compared, so no value (no password hash)
    is read or shown."""
    findings = []
    conn = connect(dbname)
    try:
        with conn.cursor() as cur:
            for proof in proofs:
                label = D.table_label(proof)
                columns = ', '.join(proof['columns'])
                obj = 'db=%s' % dbname
                try:
                    cur.execute(D.proof_sql(proof['schema'], proof['table'], proof['columns']))
                    rows, digest = cur.fetchone()
                except psycopg2.Error as exc:
                    conn.rollback()
                    findings.append(C.finding(proof['name'], C.CRITICAL, '%s cannot be read after the restore: %s'
                                              % (label, db_error_text(exc)), obj=obj))
                    continue
                if rows == proof['rows'] and digest == proof['sha256']:
                    findings.append(C.finding(proof['name'], C.OK, 'all %d rows of %s are back with the same %s'
                                              % (rows, label, columns), value=rows, unit='rows', obj=obj))
                elif rows != proof['rows']:
                    findings.append(C.finding(proof['name'], C.CRITICAL, '%s: %d rows restored, the backup holds %d'
                                              % (label, rows, proof['rows']), value=rows, unit='rows', obj=obj,
                                              expected=proof['rows']))
                else:
                    findings.append(C.finding(proof['name'], C.CRITICAL, '%s: %d rows restored, but their %s differ '
                                              'from the backup\'s (digest of every row)' % (label, rows, columns),
                                              value=rows, unit='rows', obj=obj, expected=proof['rows']))
        conn.rollback()
    finally:
        conn.close()
    return findings


def count_rows(connect, dbname, row_counts, resolved):
    """{table: {expected, restored[, error]}} for every table of the manifest whose restored row count
    differs; ``resolved`` maps entry indexes to (schema, table) as ``verify_catalog`` found them."""
    conn = connect(dbname)
    mismatches = {}
    try:
        with conn.cursor() as cur:
            for index, entry in enumerate(row_counts or []):
                schema, name = resolved.get(index, (entry['schema'], entry['table']))
                label = D.table_label({'schema': schema, 'table': name})
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


def restore(pg_restore, env, archive, dbname, jobs, no_owner, decryptor=None, encryption=None, sections=None):
    """Run pg_restore --exit-on-error of the archive file ``archive`` (``sections``: pg_restore's --section values,
    all by default) into ``dbname``, from a decrypting pipe when it is encrypted; returns seconds, raises
    RestoreFailed on failure."""
    argv = [pg_restore, '--exit-on-error', '--no-password', '--dbname=%s' % dbname]
    argv += ['--section=%s' % section for section in sections or []]
    if jobs > 1:
        argv.append('--jobs=%d' % jobs)
    if no_owner:
        argv += ['--no-owner', '--no-privileges']
    started = time.monotonic()
    what = os.path.basename(archive) + (' (%s)' % ', '.join(sections) if sections else '')
    if E.looks_encrypted(archive):
        try:
            returncode, _out, stderr = (decryptor or E.Decryptor()).stream(archive, argv, env, encryption)
        except E.ArchiveUndecryptable as exc:
            raise RestoreFailed('restore failed on %s after %.1f s: %s' % (what, time.monotonic() - started, exc),
                                time.monotonic() - started) from exc
    else:
        proc = subprocess.run(argv + [archive], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, check=False)
        returncode, stderr = proc.returncode, proc.stderr
    seconds = time.monotonic() - started
    if returncode != 0:
        raise RestoreFailed('pg_restore failed on %s after %.1f s: %s'
                            % (what, seconds, _exit_reason(returncode, stderr)), seconds)
    return seconds


def restore_steps(found):
    """(archive, sections) in the order that restores a backup whose platform part and application depend on each
    other: application tables reference auth.users (a foreign key, post-data) and triggers on auth.users call
    application functions (pre-data). So: the platform's pre-data and data, the application's, then the
    platform's post-data (keys, indexes, triggers, policies) and the application's. One archive: one full restore."""
    if len(found) == 1:
        return [(found[0], None)]
    steps = [(archive, ['pre-data', 'data']) for archive in found]
    return steps + [(archive, ['post-data']) for archive in found]


class RestoreFailed(VerifyError):
    def __init__(self, message, seconds):
        super(RestoreFailed, self).__init__(message)
        self.seconds = seconds


# --- the pg_backup_verify run ----------------------------------------------------------------------

SCRATCH_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]{0,62}$')
# Integrity decides a verification's result; these judge objectives and the store, not the backup.
OBJECTIVES = ('backup_restore_time', 'backup_future_dated', 'backup_age', 'backup_encryption')


def validate(params):
    """Every option of pg_backup_verify, before anything touches disk or network. Returns the decryptor."""
    if params['jobs'] < 1:
        raise ConfigurationError('jobs must be 1 or more, got %d' % params['jobs'])
    if params['rto_minutes'] <= 0 or params['rpo_hours'] <= 0:
        raise ConfigurationError('rto_minutes and rpo_hours must be larger than 0')
    if params['scratch_db'] is not None and not SCRATCH_NAME.match(params['scratch_db']):
        raise ConfigurationError('scratch_db %r must be a plain identifier (letters, digits, _; at most 63)'
                                 % params['scratch_db'])
    if params.get('restored_db') is not None:
        if params['level'] != 'restore':
            raise ConfigurationError('restored_db checks a restore: it needs level: restore')
        if not SCRATCH_NAME.match(params['restored_db']):
            raise ConfigurationError('restored_db %r must be a plain identifier (letters, digits, _; at most 63)'
                                     % params['restored_db'])
    validate_smoke_queries(params['smoke_queries'])
    connect_kwargs(params, 'validation only')
    decryptor = E.Decryptor(params['decryption_key_file'], params['decryption_passphrase_file'])
    decryptor.validate()
    return decryptor


def levels_upto(level):
    """The levels a verification at ``level`` runs: each includes the ones before it."""
    return LEVELS[:LEVELS.index(level) + 1]


def pass_or_critical(name, ok, message, **extra):
    return C.finding(name, C.OK if ok else C.CRITICAL, message, **extra)


def run_verification(params, decryptor, check_mode, result):
    """The whole pg_backup_verify run into ``result``: pick the backup, verify it up to the level, record the
    outcome (not in check mode, nor when checking a restore made elsewhere), then judge the store - after the
    record, so ``backup_age`` names the newest backup that is good now. A key that cannot decrypt raises
    DecryptionKeyError and records nothing."""
    levels = levels_upto(params['level'])
    findings = result['checks']
    path, manifest = S.pick_backup(params['backup'], params['dest'], params['source_database'])
    result['backup'] = path
    database = manifest.get('database')
    obj = 'backup=%s' % os.path.basename(path)
    if 'restore' in levels and params['jobs'] > 1 and is_encrypted(path, manifest):
        raise ConfigurationError('jobs > 1 cannot restore an encrypted backup (pg_restore reads it serially from '
                                 'the decrypting stream); use jobs: 1')
    parts = [p for p in manifest.get('parts') or [] if isinstance(p, dict)]
    if parts:
        result['parts'] = '; '.join(str(p.get('summary')) for p in parts)

    problems = S.verify_checksums(path, manifest)
    findings.append(pass_or_critical('backup_checksum', not problems, '; '.join('%s: %s' % p for p in problems) or
                                     'all %d file(s) match their sha256' % len(manifest.get('files') or []),
                                     value=len(problems), unit='count', obj=obj))
    restored_db = params.get('restored_db')
    try:
        if 'catalog' in levels:
            # pg_restore reads archives of its own and older pg_dump versions.
            client_major = int(str(manifest.get('client_version') or '0').split('.', maxsplit=1)[0] or 0)
            client = P.find_client(client_major, manifest.get('client_version'), params['pg_bin_dir'],
                                   tools=('pg_restore',))
            result['client'] = client
            ok, message, resolved = verify_catalog(os.path.join(client['bin_dir'], 'pg_restore'), path, manifest,
                                                   decryptor)
            findings.append(pass_or_critical('backup_catalog', ok, message, obj=obj))
            if 'restore' in levels and restored_db:
                check_restored(params, path, manifest, result, resolved)
            elif 'restore' in levels and not check_mode:
                run_restore(params, path, manifest, client, result, decryptor, resolved)
    except E.DecryptionKeyError as exc:
        raise E.DecryptionKeyError('cannot decrypt %s: %s' % (path, exc)) from exc

    verified = [c for c in findings if c['name'] not in OBJECTIVES]
    result['result'] = 'ok' if all(c['status'] == C.OK for c in verified) else 'failed'
    if check_mode or restored_db:
        result['verdict'] = S.verdict(manifest)
    else:
        record = {
            'at': iso(utcnow()),
            'level': params['level'],
            'result': result['result'],
            'restore_seconds': result.get('restore_seconds'),
            'mismatches': result.get('mismatches', {}),
            'failed_checks': [c['name'] for c in verified if c['status'] != C.OK],
            'server': target_label(params) if 'restore' in levels else None,
        }
        result.update(changed=True, verification=record, verdict=S.append_verification(path, record))
    if params['dest']:
        findings.extend(S.store_findings(params['dest'], database, params['rpo_hours'], params['require_encryption']))
    result['status'] = C.worst_status(findings)
    # For the run report: what the backup is worth now (its verdict), merged into pg_backup's section.
    result['report'] = {'backup': {'id': os.path.basename(path), 'verified': result['verdict']['result'],
                                   'verified_level': result['verdict']['level']}}


def run_restore(params, path, manifest, client, result, decryptor, resolved):
    """The timed test restore into a scratch database that is always dropped; adds the restore findings."""
    database = manifest.get('database')
    scratch_name = params['scratch_db'] or ('%s%s' % (SCRATCH_PREFIX, safe_name(database or 'db')))[:63]
    result['scratch_db'] = scratch_name
    with Session(params, 'appcare.maintenance.pg_backup_verify', read_only=False) as admin:
        server_major = admin.one("SELECT current_setting('server_version_num')::int / 10000 AS major")['major']
        if server_major > client['major']:
            client.update(P.find_client(server_major, str(server_major), params['pg_bin_dir'], tools=('pg_restore',)))
        scratch = Scratch(admin, scratch_name)
        result['cleaned'] = scratch.clean_abandoned()
        scratch.create(forbidden={database, params['login_db']})
        try:
            _restore_and_check(params, path, manifest, client, result, decryptor, resolved, scratch_name)
        finally:
            scratch.drop()


def _restore_and_check(params, path, manifest, client, result, decryptor, resolved, scratch_name):
    findings = result['checks']
    obj = 'db=%s' % scratch_name
    env = client_env(params, 'appcare.maintenance.pg_backup_verify', dbname=scratch_name)
    found, problems = archives(path, manifest)
    seconds = 0.0
    try:
        if problems:
            raise RestoreFailed('; '.join(problems), 0.0)
        for archive, sections in restore_steps(found):
            seconds += restore(os.path.join(client['bin_dir'], 'pg_restore'), env, archive['path'], scratch_name,
                               params['jobs'], params['no_owner'], decryptor, manifest.get('encryption'), sections)
    except RestoreFailed as exc:
        result['restore_seconds'] = round(seconds + exc.seconds, 3)
        findings.append(C.finding('backup_restore', C.CRITICAL, str(exc), obj=obj))
        return
    result['restore_seconds'] = round(seconds, 3)
    parts = ' (%s)' % ', then '.join('%s%s' % (os.path.basename(a['path']), ' %s' % '+'.join(s) if s else '')
                                     for a, s in restore_steps(found)) if len(found) > 1 else ''
    findings.append(C.finding('backup_restore', C.OK, 'restored into %s in %.1f s%s' % (scratch_name, seconds, parts),
                              value=round(seconds, 3), unit='seconds', obj=obj))
    _check_contents(params, manifest, found, resolved, scratch_name, result)
    rto = params['rto_minutes']
    findings.append(C.evaluate('backup_restore_time', round(seconds / 60.0, 3), round(0.8 * rto, 3), rto, C.ABOVE,
                               unit='minutes', obj='db=%s' % manifest.get('database'),
                               message='restore took {value} min (RTO %s min)' % rto))


def check_restored(params, path, manifest, result, resolved):
    """Check a restore made outside this module (the supabase_restore runbook) in ``restored_db``: the same row
    counts, proofs and smoke queries as after a test restore; nothing is restored, dropped or recorded."""
    found, problems = archives(path, manifest)
    if problems:
        result['checks'].append(C.finding('backup_restore', C.CRITICAL, '; '.join(problems),
                                          obj='db=%s' % params['restored_db']))
        return
    _check_contents(params, manifest, found, resolved, params['restored_db'], result)


def _check_contents(params, manifest, found, resolved, dbname, result):
    """Row counts of every archive's tables, the platform part's proofs and the smoke queries in ``dbname``."""
    findings = result['checks']
    obj = 'db=%s' % dbname
    kwargs = connect_kwargs(params, 'appcare.maintenance.pg_backup_verify')

    def connect(name):
        return psycopg2.connect(**dict(kwargs, dbname=name))

    mismatches = {}
    for archive in found:
        mismatches.update(count_rows(connect, dbname, archive['row_counts'], resolved.get(archive['name'], {})))
    result['mismatches'] = mismatches
    counted = sum(len(a['row_counts']) for a in found)
    findings.append(pass_or_critical(
        'backup_row_counts', not mismatches,
        '%d of %d tables differ from the manifest: %s' % (
            len(mismatches), counted, '; '.join('%s expected %s, restored %s' % (t, m['expected'], m['restored'])
                                                for t, m in sorted(mismatches.items())[:10]))
        if mismatches else 'all %d tables have the row counts of the manifest' % counted,
        value=len(mismatches), unit='count', obj=obj))
    for archive in found:
        findings.extend(check_proofs(connect, dbname, archive['proofs']))
    if params['smoke_queries']:
        smoke = run_smoke_queries(connect, dbname, params['smoke_queries'])
        failed = [s for s in smoke if not s['ok']]
        findings.append(pass_or_critical(
            'backup_smoke_queries', not failed, '; '.join('%s: %s' % (s['name'], s['message']) for s in failed) or
            'all %d smoke queries passed' % len(smoke), value=len(failed), unit='count', obj=obj, results=smoke))
