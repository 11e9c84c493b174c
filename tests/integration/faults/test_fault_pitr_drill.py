# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_restore_drill survives what it may find in scratch_dir and a drill that cannot finish: it removes only
its own marked, unlocked children, never signals a process that is not a postmaster of a leftover, and a restored
server that cannot start or cannot reach its target is a critical finding with the server's words - the scratch
directory is removed all the same. Real PostgreSQL 15 and pgBackRest."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import VERSIONS
from modrunner import run_module
from pgbackrest_harness import PgBackRestCluster, pgbackrest_path

pytestmark = pytest.mark.skipif(not pgbackrest_path(), reason='pgBackRest is not installed (apt-get install pgbackrest)')

TOOL = 'appcare.maintenance.pgbackrest_restore_drill'


@pytest.fixture(scope='module')
def cluster():
    if '15' not in VERSIONS:
        if os.environ.get('APPCARE_REQUIRE_DEBIAN_PG') == '1':
            pytest.fail('PostgreSQL 15 is required but not installed')
        pytest.skip('PostgreSQL 15 is not installed here (apt-get install postgresql)')
    cl = PgBackRestCluster(VERSIONS['15']).start()
    try:
        cl.pgbackrest('stanza-create')
        cl.pgbackrest('backup', '--type=full', '--repo=1')
        yield cl
    finally:
        cl.cleanup()


@pytest.fixture()
def scratch_dir():
    parent = tempfile.mkdtemp(prefix='appcare-drillf-')
    os.chmod(parent, 0o755)
    path = os.path.join(parent, 's')
    os.mkdir(path, 0o755)
    yield path
    shutil.rmtree(parent, ignore_errors=True)


def drill(cluster, scratch_dir, **overrides):
    args = cluster.module_args(scratch_dir=scratch_dir, timeout=60, repo=1)
    for key in ('login_host', 'login_port', 'login_user', 'login_password', 'login_db', 'login_unix_socket'):
        args.pop(key, None)
    args.update(overrides)
    return run_module('pgbackrest_restore_drill', args)


def marked_child(scratch_dir, name, tool=TOOL):
    child = os.path.join(scratch_dir, name)
    os.makedirs(os.path.join(child, 'data'))
    with open(os.path.join(child, '.appcare-pitr-drill'), 'w') as handle:
        json.dump({'tool': tool, 'stanza': 'appcare', 'pid': 1, 'started_at': '2026-01-01T00:00:00.000000Z'}, handle)
    return child


def test_fault_unmarked_child_is_never_removed(cluster, scratch_dir):
    # Named like a scratch child but without the marker; with another tool's marker; a symlink to a marked child
    # elsewhere; a marked child a live drill holds the lock of; an unrelated file.
    unmarked = os.path.join(scratch_dir, 'pitr-drill-000000000001')
    os.makedirs(unmarked)
    with open(os.path.join(unmarked, 'precious'), 'w') as handle:
        handle.write('keep me')
    foreign = marked_child(scratch_dir, 'pitr-drill-000000000002', tool='someone.else')
    elsewhere = tempfile.mkdtemp(prefix='appcare-drillf-target-')
    try:
        target = marked_child(elsewhere, 'pitr-drill-000000000003')
        os.symlink(target, os.path.join(scratch_dir, 'pitr-drill-000000000003'))
        busy = marked_child(scratch_dir, 'pitr-drill-000000000004')
        with open(os.path.join(scratch_dir, 'notes.txt'), 'w') as handle:
            handle.write('not ours')
        with open(os.path.join(busy, '.appcare-pitr-drill')) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            result = drill(cluster, scratch_dir)
        assert not result.failed and result['status'] == 'ok', result
        assert result['cleaned'] == [] and result['busy'] == [busy] and not result['changed'], result
        assert sorted(os.listdir(scratch_dir)) == ['notes.txt', 'pitr-drill-000000000001', 'pitr-drill-000000000002',
                                                   'pitr-drill-000000000003', 'pitr-drill-000000000004']
        assert os.path.exists(os.path.join(unmarked, 'precious')) and os.path.isdir(foreign)
        assert os.path.isdir(target)
        # The lock released (its drill died), the same child is a leftover and goes.
        result = drill(cluster, scratch_dir)
        assert [c['path'] for c in result['cleaned']] == [busy] and not result['cleaned'][0]['server_running']
        assert not os.path.exists(busy) and os.path.isdir(target) and os.path.isdir(unmarked)
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_fault_stale_pid_file_never_signals_another_process(cluster, scratch_dir):
    """A leftover whose postmaster.pid names a live process that is not its postmaster (the pid was reused): the
    process is left alone, the directory removed."""
    leftover = marked_child(scratch_dir, 'pitr-drill-00000000000a')
    bystander = subprocess.Popen(['sleep', '60'])
    try:
        with open(os.path.join(leftover, 'data', 'postmaster.pid'), 'w') as handle:
            handle.write('%d\n%s\n' % (bystander.pid, os.path.join(leftover, 'data')))
        result = drill(cluster, scratch_dir)
        assert not result.failed and result['changed'], result
        assert [c['path'] for c in result['cleaned']] == [leftover] and not result['cleaned'][0]['server_running']
        assert bystander.poll() is None, 'the drill signalled a process that is not a leftover postmaster'
        assert os.listdir(scratch_dir) == []
    finally:
        bystander.kill()
        bystander.wait()


def test_fault_server_that_cannot_start_is_critical_and_removed(cluster, scratch_dir):
    result = drill(cluster, scratch_dir, settings={'shared_buffers': 'plenty'})
    assert not result.failed, result
    check = result.check('pitr_drill')
    assert check['status'] == 'critical' and 'shared_buffers' in check['message'] and 'pg_ctl start' in check['message'], check
    assert result['drill']['result'] == 'failed' and result['drill']['scratch_removed'], result['drill']
    assert result['report']['pitr_drill']['result'] == 'failed'
    assert os.listdir(scratch_dir) == []


def test_fault_target_beyond_the_archive_is_critical(cluster, scratch_dir):
    """A target after the newest archived WAL: PostgreSQL ends recovery before it and stops; the drill says so."""
    result = drill(cluster, scratch_dir, target_time='2099-01-01T00:00:00Z')
    assert not result.failed, result
    check = result.check('pitr_drill')
    assert check['status'] == 'critical' and 'recovery target' in check['message'], check
    assert os.listdir(scratch_dir) == []


def test_fault_missing_scratch_user_is_named_at_once(cluster, scratch_dir):
    result = drill(cluster, scratch_dir, scratch_user='nosuchrole')
    check = result.check('pitr_drill')
    assert check['status'] == 'critical' and 'nosuchrole' in check['message'] and 'scratch_user' in check['message']
    assert os.listdir(scratch_dir) == []
