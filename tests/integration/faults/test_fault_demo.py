# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults of `make demo` itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import EMBEDDED, VERSIONS
from modrunner import REPO_ROOT
from pgserver import PgServer, free_port

PGSERVER = os.path.join(REPO_ROOT, 'tests', 'pgserver.py')


@pytest.fixture
def demo_parent():
    """A parent directory the server's account can traverse (pytest's tmp_path is private to root)."""
    parent = tempfile.mkdtemp(prefix='appcare-demo-fault-')
    os.chmod(parent, 0o755)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def test_fault_demo_stop_with_the_installation_gone(demo_parent):
    """The demo's state named the PostgreSQL installation of a checkout that was since removed: `make demo`
    died in `pgserver.py stop` (FileNotFoundError) before it could start a fresh server. Now the old server is
    stopped by its pid file and its directory removed."""
    base = os.path.join(demo_parent, 'demo')
    server = PgServer(VERSIONS[EMBEDDED], base_dir=base, port=free_port(), keep_dir=True)
    server.start()
    with open(os.path.join(base, 'data', 'postmaster.pid')) as handle:
        pid = int(handle.readline())
    with open(os.path.join(base, 'server.json'), 'w') as handle:
        json.dump({'bindir': os.path.join(demo_parent, 'removed-checkout', 'pginstall', 'bin'), 'port': server.port}, handle)
    try:
        proc = subprocess.run([sys.executable, PGSERVER, 'stop', '--dir', base], capture_output=True, text=True,
                              check=False, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert not os.path.exists(base)
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive, 'the old postmaster still runs'
    finally:
        server.cleanup()


def test_demo_stop_with_a_live_installation_stops_it(demo_parent):
    """The quiet case: a state file with a usable installation is stopped the ordinary way."""
    base = os.path.join(demo_parent, 'demo')
    proc = subprocess.run([sys.executable, PGSERVER, 'start', '--dir', base, '--port', str(free_port())],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, PGSERVER, 'stop', '--dir', base], capture_output=True, text=True,
                          check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 'stopped the server' in proc.stdout
    assert not os.path.exists(base)
