# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing files so that no reader ever sees half of one, and durably: the collection's one writer.

``write_atomic`` writes through a temporary file in the same directory, fsyncs it, renames it into place
and fsyncs the directory, so after a crash a reader finds the old file or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile


def safe_name(text):
    """``text`` as one file-name component: each run of characters other than letters, digits, ``_``, ``.`` and
    ``-`` becomes one ``_``, and leading and trailing dots and underscores go (``db`` when nothing is left).

    Backup directories are named with it (``<database>-<time>``) and recognised by it, so the rule never
    changes: a backup named by an older rule would no longer be found."""
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
    """fsync every file and directory under ``root``, and ``root``."""
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


def write_atomic(path, text, mode=0o600):
    """Write ``text`` (str or bytes) to ``path``: temporary file, fsync, rename, fsync of the directory.
    Creates the directory when missing. ``mode`` is the new file's permission bits."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(handle, 'wb') as out:
            out.write(text.encode('utf-8') if isinstance(text, str) else text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        fsync_path(directory)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path, data, mode=0o600):
    """``write_atomic`` of ``data`` as indented, key-sorted JSON with a final newline."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + '\n', mode)
