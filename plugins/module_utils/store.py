# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup store, the same for every backup source: the directory layout under ``dest``, manifests,
one lock per destination, retention, checksums and verification records.

Layout under ``dest``::

    dest/.pg_backup.lock                  one run per destination (flock)
    dest/.partial-<id>/                   a run in progress (never a backup)
    dest/<id>/manifest.json               written last; a directory without it is not a backup
    dest/<id>/...                         what the source wrote (pg_dump: database.dump, globals.sql, ...)

A source (``dump.py`` for pg_dump) writes its files into ``partial_dir``, lists them with ``file_digests``
into its manifest and calls ``publish``; its own verification (``verify.py`` for pg_restore) records what
it proved with ``append_verification``. Checksums, retention, the verdict, ``backup_age`` and
``backup_encryption`` need nothing of the source.

``<id>`` is ``<database>-<UTC time>[-N]`` (``BACKUP_NAME``). The store trusts nothing it reads back:
a backup's identity is its directory name, never a manifest field; only direct children of ``dest``
with such a name, that are real directories inside ``dest`` with a valid manifest, are backups, and
only those can be deleted. A manifest dated in the future is set apart, never taken as the newest.
Verification records are appended, and the verdict is derived from all of them (``verdict``), so a
weaker pass never clears a stronger failure.

"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import re
import shutil
import stat

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import encryption as E
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, parse_iso, utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import AppcareError, ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.files import (
    fsync_path,
    fsync_tree,
    safe_name,
    sha256_file,
    write_json_atomic,
)

MANIFEST = 'manifest.json'
# 2: row_counts is a list of {schema, table, rows}; verifications is a list of records. 1 is still read.
MANIFEST_FORMAT = 2
READABLE_FORMATS = (1, 2)
# The only directory names the store makes, and so the only ones retention may ever delete.
BACKUP_NAME = re.compile(r'^(?![.])[A-Za-z0-9_.-]+-[0-9]{8}T[0-9]{6}Z(?:-[0-9]+)?$')
# A manifest finished later than now plus this is dated in the future: a finding, never the newest backup.
FUTURE_TOLERANCE = datetime.timedelta(minutes=5)
LOCK_FILE = '.pg_backup.lock'
PARTIAL_PREFIX = '.partial-'


class BackupError(AppcareError):
    """The backup could not be made, found or deleted; nothing was left that could pass for one."""


class LockBusy(BackupError):
    """Another run holds the destination's lock."""


# --- files ----------------------------------------------------------------------------------------


def file_digests(root):
    """[{path, bytes, sha256}] of every file under ``root`` (paths relative to it), sorted."""
    entries = []
    for current, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(current, name)
            rel = os.path.relpath(full, root)
            if rel == MANIFEST:
                continue
            size, digest = sha256_file(full)
            entries.append({'path': rel, 'bytes': size, 'sha256': digest})
    return entries


def new_backup_id(dest, database, now=None):
    """``<database>-<UTC time>``, with ``-N`` when that name is taken (by a backup or a run in progress)."""
    moment = now or utcnow()
    base = '%s-%s' % (safe_name(database), moment.strftime('%Y%m%dT%H%M%SZ'))
    candidate, n = base, 1
    while os.path.exists(os.path.join(dest, candidate)) or os.path.exists(
            os.path.join(dest, PARTIAL_PREFIX + candidate)):
        n += 1
        candidate = '%s-%d' % (base, n)
    return candidate


def partial_dir(dest, backup_id):
    """Create the hidden directory a run writes into (0700); never a backup until ``publish``."""
    path = os.path.join(dest, PARTIAL_PREFIX + backup_id)
    os.mkdir(path, 0o700)
    return path


def publish(dest, partial, backup_id, manifest):
    """Write the manifest last, make everything durable, and rename the partial directory into place."""
    write_json_atomic(os.path.join(partial, MANIFEST), manifest)
    fsync_tree(partial)
    final = os.path.join(dest, backup_id)
    os.rename(partial, final)
    fsync_path(dest)
    return final


def read_manifest(backup_dir):
    """The manifest of a backup directory in the current format (older formats are migrated in memory),
    or None when it has none or it is unreadable or malformed."""
    path = os.path.join(backup_dir, MANIFEST)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get('format_version') not in READABLE_FORMATS or not data.get('finished_at'):
        return None
    try:
        parse_iso(data['finished_at'])
    except (TypeError, ValueError):
        return None
    return migrate_manifest(data)


def migrate_manifest(data):
    """A format 1 manifest in format 2's shape. Format 1 keyed row counts ``schema.table``; a name with a
    dot in it cannot be split back for sure, so such an entry keeps its ``legacy_key`` and verification
    tries every split against the archive (``table_candidates``). Returns None when malformed."""
    if data.get('format_version') == 1:
        counts = data.get('row_counts') or {}
        if not isinstance(counts, dict):
            return None
        entries = []
        for key, rows in sorted(counts.items()):
            schema, _dot, table = key.partition('.')
            entry = {'schema': schema, 'table': table, 'rows': rows}
            if key.count('.') != 1:
                entry['legacy_key'] = key
            entries.append(entry)
        data['row_counts'] = entries
        old = data.get('verification')
        data['verifications'] = [old] if isinstance(old, dict) else []
        data['format_version'] = MANIFEST_FORMAT
    counts = data.get('row_counts')
    if counts is None:
        data['row_counts'] = []
    elif not isinstance(counts, list) or not all(
            isinstance(e, dict) and isinstance(e.get('schema'), str) and isinstance(e.get('table'), str)
            and isinstance(e.get('rows'), int) and not isinstance(e.get('rows'), bool) for e in counts):
        return None
    if not isinstance(data.get('verifications'), list):
        data['verifications'] = []
    return data


# --- verification records -------------------------------------------------------------------------

VERIFY_LEVELS = ('checksum', 'catalog', 'restore')
VERIFY_RESULTS = ('ok', 'failed')


def _record_problem(record, now):
    """Why a verification record cannot be believed, or None."""
    if not isinstance(record, dict):
        return 'not a record'
    if record.get('level') not in VERIFY_LEVELS or record.get('result') not in VERIFY_RESULTS:
        return 'unknown level or result'
    try:
        at = parse_iso(record.get('at'))
    except (TypeError, ValueError):
        return 'no valid time'
    if at > now + FUTURE_TOLERANCE:
        return 'dated in the future'
    return None


def verdict(manifest, now=None):
    """What the verification records of a manifest prove, as ``{result, level, at, records}``.

    ``result`` is ``ok`` only when the newest record at the strongest level that was ever verified
    passed and no record after it failed, at any level; ``failed`` when a record says so; ``None``
    when the backup was never verified. Records are taken in the order they were appended. A record that
    cannot be believed (malformed, or dated in the future) counts as a failed restore-level record, so
    only a later restore that passes clears it.
    """
    now = now or utcnow()
    records = []
    for record in manifest.get('verifications') or []:
        problem = _record_problem(record, now)
        if problem:
            records.append({'level': 'restore', 'result': 'failed', 'at': None, 'problem': problem})
        else:
            records.append(record)
    if not records:
        return {'result': None, 'level': None, 'at': None, 'records': 0}
    strongest = max(VERIFY_LEVELS.index(r['level']) for r in records)
    last_top = max(i for i, r in enumerate(records) if VERIFY_LEVELS.index(r['level']) == strongest)
    failed_after = any(r['result'] == 'failed' for r in records[last_top + 1:])
    decisive = records[last_top]
    result = 'ok' if decisive['result'] == 'ok' and not failed_after else 'failed'
    if failed_after:
        decisive = [r for r in records[last_top + 1:] if r['result'] == 'failed'][-1]
    return {'result': result, 'level': VERIFY_LEVELS[strongest], 'at': decisive.get('at'), 'records': len(records),
            'problem': decisive.get('problem')}


def is_verified_good(manifest):
    return verdict(manifest)['result'] == 'ok'


def append_verification(backup_dir, record):
    """Append a verification record to a backup's manifest (re-read now, written atomically); returns the
    backup's verdict after it. The summary ``verification`` field is for people: code reads ``verdict``."""
    manifest = read_manifest(backup_dir)
    if manifest is None:
        raise AppcareError('the manifest of %s disappeared or became unreadable during verification' % backup_dir)
    manifest['verifications'].append(record)
    summary = verdict(manifest)
    manifest['verification'] = {k: summary[k] for k in ('result', 'level', 'at')}
    write_json_atomic(os.path.join(backup_dir, MANIFEST), manifest)
    return summary


class Scan(object):
    """What ``scan`` found in ``dest``: ``backups`` (newest first), ``partials`` (crashed runs), ``others``
    (directories that are not backups: never counted, never deleted) and ``future`` (backups whose
    manifest is dated in the future: reported, never the newest, never deleted)."""

    def __init__(self):
        self.backups, self.partials, self.others, self.future = [], [], [], []


def scan(dest, now=None):
    """What is in ``dest``. A backup's ``id`` is its directory name: a manifest never names what it is."""
    found = Scan()
    now = now or utcnow()
    try:
        names = sorted(os.listdir(dest))
    except FileNotFoundError:
        return found
    for name in names:
        path = os.path.join(dest, name)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        if name.startswith(PARTIAL_PREFIX):
            found.partials.append(path)
            continue
        if name.startswith('.'):
            continue
        manifest = read_manifest(path) if BACKUP_NAME.match(name) else None
        if manifest is None:
            found.others.append(path)
            continue
        entry = {'id': name, 'path': path, 'manifest': manifest, 'finished_at': parse_iso(manifest['finished_at'])}
        if entry['finished_at'] > now + FUTURE_TOLERANCE:
            found.future.append(entry)
        else:
            found.backups.append(entry)
    found.backups.sort(key=lambda b: b['finished_at'], reverse=True)
    return found


def future_check(found, now=None):
    """The ``backup_future_dated`` finding: backups whose manifest says they finished in the future (clock
    skew, a copy from elsewhere, tampering). They are never taken as the newest backup, nor deleted."""
    now = now or utcnow()
    if not found.future:
        return C.finding('backup_future_dated', C.OK, 'no backup is dated in the future', value=0, unit='count')
    names = ', '.join('%s (finished_at %s)' % (e['id'], e['manifest']['finished_at']) for e in found.future[:5])
    return C.finding('backup_future_dated', C.WARNING,
                     '%d backup(s) dated more than %d min after this host\'s clock (%s): %s; they are not '
                     'counted as the newest backup and retention leaves them alone - check the clocks, or '
                     'remove them by hand' % (len(found.future), FUTURE_TOLERANCE.seconds // 60, iso(now), names),
                     value=len(found.future), unit='count')


# --- what a backup is worth ---------------------------------------------------------------------

def pick_backup(backup, dest, database=None):
    """The backup directory to verify: an explicit path, or the newest complete one under ``dest`` (never
    one dated in the future)."""
    if backup and backup != 'latest':
        path = os.path.abspath(backup)
        if not os.path.isdir(path):
            raise BackupError('backup %s does not exist or is not a directory' % path)
        manifest = read_manifest(path)
        if manifest is None:
            raise BackupError('backup %s has no valid manifest.json: it is not a complete pg_backup backup '
                              '(a failed or partial run, or not made by pg_backup)' % path)
        return path, manifest
    if not dest:
        raise ConfigurationError('backup: latest needs dest, the directory that holds the backups')
    backups = scan(dest).backups
    if database:
        backups = [b for b in backups if b['manifest'].get('database') == database]
    if not backups:
        raise BackupError('no complete backup%s under %s' % (' of database %s' % database if database else '', dest))
    return backups[0]['path'], backups[0]['manifest']


def newest_good(backups, database):
    """The newest of ``backups`` (as from ``scan``) of ``database`` whose verdict is not ``failed``."""
    for entry in backups:
        manifest = entry['manifest']
        if manifest.get('database') != database:
            continue
        if verdict(manifest)['result'] == 'failed':
            continue
        return entry
    return None


def plaintext_files(path):
    """The files of a backup directory that are not OpenPGP-encrypted (judged by their bytes, not by the
    manifest; the manifest itself is metadata and stays readable, and so does a temporary copy of it that an
    interrupted manifest write left)."""
    plain = []
    for current, _dirs, files in os.walk(path):
        for name in sorted(files):
            full = os.path.join(current, name)
            metadata = current == path and (name == MANIFEST or name.startswith('.%s.' % MANIFEST))
            if not metadata and not E.looks_encrypted(full):
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
    """[(file, problem)] for every file that is missing, resized or whose sha256 differs. A file entry that
    is malformed or points outside the backup directory is a problem, never read."""
    problems = []
    root = os.path.realpath(path)
    for entry in manifest.get('files') or []:
        if not (isinstance(entry, dict) and isinstance(entry.get('path'), str) and isinstance(entry.get('sha256'), str)
                and isinstance(entry.get('bytes'), int)):
            problems.append((str(entry)[:80], 'malformed file entry'))
            continue
        full = os.path.realpath(os.path.join(root, entry['path']))
        if not full.startswith(root + os.sep):
            problems.append((entry['path'], 'outside the backup directory'))
            continue
        try:
            size, digest = sha256_file(full)
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


def age_check(name, hours, rpo_hours, entry):
    return C.evaluate(name, round(hours, 4), round(0.8 * rpo_hours, 4), rpo_hours, C.ABOVE, unit='hours',
                      obj='backup=%s' % entry['id'],
                      message='newest good backup %s finished {value} h ago (RPO %s h)' % (entry['id'], rpo_hours))


def store_findings(dest, database, rpo_hours, require_encryption):
    """``backup_future_dated``, ``backup_age`` (the newest backup of ``database`` that is not failed, against
    ``rpo_hours``) and ``backup_encryption`` of the store under ``dest``, from one scan."""
    found = scan(dest)
    entry = newest_good(found.backups, database)
    if entry is None:
        age = C.finding('backup_age', C.CRITICAL, 'no good backup of %s under %s' % (database, dest),
                        unit='hours', obj='db=%s' % database)
    else:
        age = age_check('backup_age', (utcnow() - entry['finished_at']).total_seconds() / 3600.0, rpo_hours, entry)
    return [future_check(found), age, encryption_check(found.backups, dest, database, require_encryption)]


class DestinationLock(object):
    """An exclusive, non-blocking flock on ``dest/.pg_backup.lock``; released when the process ends."""

    def __init__(self, dest):
        self.path = os.path.join(dest, LOCK_FILE)
        self.fd = None

    def acquire(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ''
            try:
                holder = os.pread(self.fd, 64, 0).decode('ascii', 'replace').strip()
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LockBusy('another backup run holds the lock on %s%s; wait for it to finish'
                               % (self.path, ' (pid %s)' % holder if holder else '')) from exc
            raise
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode('ascii'), 0)
        return self

    def release(self):
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):
        raise BackupError('could not remove %s' % path)


def delete_backup(dest, name):
    """Delete the backup ``name`` of ``dest``, and nothing else: ``name`` must be a backup directory name
    of the store, the path a real directory (not a symlink) directly inside ``dest`` once resolved, with a
    valid manifest. Returns the path removed."""
    if not isinstance(name, str) or not BACKUP_NAME.match(name) or os.sep in name:
        raise BackupError('refusing to delete %r: not a backup name of this store' % (name,))
    root = os.path.realpath(dest)
    path = os.path.join(root, name)
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise BackupError('refusing to delete %s: %s' % (path, exc.strerror)) from exc
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise BackupError('refusing to delete %s: not a directory of its own (a symlink or a file)' % path)
    if os.path.dirname(os.path.realpath(path)) != root:
        raise BackupError('refusing to delete %s: it resolves outside %s' % (path, root))
    if read_manifest(path) is None:
        raise BackupError('refusing to delete %s: it has no valid manifest, so it is not a backup' % path)
    remove_tree(path)
    return path


# --- retention ------------------------------------------------------------------------------------

def retention_plan(backups, keep_daily=0, keep_weekly=0, keep_monthly=0, protect=()):
    """Split complete backups (newest first, as from ``scan``) into (keep, delete) lists of ids.

    Keeps the newest backup of each of the last ``keep_daily`` days, ``keep_weekly`` ISO weeks and
    ``keep_monthly`` months that have backups (UTC, by the manifest's completion time), always the
    newest backup, always the newest verified-good backup, and always the ids in ``protect`` (the backup
    the current run just wrote).
    """
    for name, value in (('keep_daily', keep_daily), ('keep_weekly', keep_weekly), ('keep_monthly', keep_monthly)):
        if value is None or value < 0:
            raise ConfigurationError('%s must be 0 or more, got %r' % (name, value))
    ordered = sorted(backups, key=lambda b: b['finished_at'], reverse=True)
    keep = {}
    for backup_id in protect:
        keep[backup_id] = 'this run'

    def bucket_keep(key_of, count, reason):
        seen = []
        for backup in ordered:
            key = key_of(backup['finished_at'])
            if key in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(key)
            keep.setdefault(backup['id'], reason)

    bucket_keep(lambda t: t.date(), keep_daily, 'daily')
    bucket_keep(lambda t: tuple(t.isocalendar()[:2]), keep_weekly, 'weekly')
    bucket_keep(lambda t: (t.year, t.month), keep_monthly, 'monthly')
    if ordered:
        keep.setdefault(ordered[0]['id'], 'newest')
    verified = [b for b in ordered if is_verified_good(b['manifest'])]
    if verified:
        keep.setdefault(verified[0]['id'], 'newest verified-good')
    delete = [b['id'] for b in ordered if b['id'] not in keep]
    return keep, delete
