# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_restore_drill against a real PostgreSQL 15 archiving through a real pgBackRest (Debian's 2.45): a
restore to a time between two marker rows (the one before is there, the one after is not), a restore to the newest
point (both are there), a wrong expectation that fires, the scratch directory gone afterwards, a killed drill's
leftover cleaned by the next run, and too little free space refused before anything is restored."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time

import pytest

from conftest import VERSIONS, wait_until
from modrunner import run_module, start_module
from pgbackrest_harness import PgBackRestCluster, pgbackrest_path

pytestmark = pytest.mark.skipif(not pgbackrest_path(), reason='pgBackRest is not installed (apt-get install pgbackrest)')


def require_pg15():
    if '15' not in VERSIONS:
        if os.environ.get('APPCARE_REQUIRE_DEBIAN_PG') == '1':
            pytest.fail('PostgreSQL 15 is required but not installed')
        pytest.skip('PostgreSQL 15 is not installed here (apt-get install postgresql)')
    return VERSIONS['15']


def archived(cluster):
    """Switch to a new WAL segment and wait until the finished one is in the archive."""
    wal = cluster.server.execute('SELECT pg_walfile_name(pg_current_wal_lsn())')[0][0]
    cluster.server.execute('SELECT pg_switch_wal()')
    assert wait_until(lambda: (cluster.server.execute('SELECT last_archived_wal FROM pg_stat_archiver')[0][0] or '')
                      >= wal, timeout=30), 'WAL %s was not archived' % wal


class Drilled(object):
    """A cluster with a full backup, marker ``before`` committed before ``target``, ``after`` committed after it."""

    def __init__(self, cluster):
        self.cluster = cluster
        server = cluster.server
        server.execute('CREATE TABLE dr_marker (label text PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())')
        server.execute('CREATE TABLE filler AS SELECT g FROM generate_series(1, 1000) g')
        cluster.pgbackrest('backup', '--type=full', '--repo=1')
        server.execute("INSERT INTO dr_marker (label) VALUES ('before')")
        time.sleep(1.1)
        self.target = server.execute("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                                     "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")[0][0]
        time.sleep(1.1)
        server.execute("INSERT INTO dr_marker (label) VALUES ('after')")
        archived(cluster)
        # The scratch directory's parent: reachable by the server's account (a pytest tmp_path under /root is not).
        self.parent = tempfile.mkdtemp(prefix='appcare-drill-')
        os.chmod(self.parent, 0o755)
        self.scratch_dir = os.path.join(self.parent, 's')

    def args(self, **overrides):
        args = self.cluster.module_args(scratch_dir=self.scratch_dir, timeout=120)
        for key in ('login_host', 'login_port', 'login_user', 'login_password', 'login_db', 'login_unix_socket'):
            args.pop(key, None)  # the drill does not connect to the source server
        args.update(overrides)
        return args


@pytest.fixture(scope='module')
def drilled():
    cluster = PgBackRestCluster(require_pg15()).start()
    try:
        cluster.pgbackrest('stanza-create')
        state = Drilled(cluster)
        yield state
        shutil.rmtree(state.parent, ignore_errors=True)
    finally:
        cluster.cleanup()


BEFORE = "SELECT 1 FROM dr_marker WHERE label = 'before'"
AFTER = "SELECT 1 FROM dr_marker WHERE label = 'after'"


def drill(drilled, check_mode=False, **overrides):
    return run_module('pgbackrest_restore_drill', drilled.args(**overrides), check_mode=check_mode)


def scratch_children(drilled):
    return sorted(os.listdir(drilled.scratch_dir)) if os.path.isdir(drilled.scratch_dir) else []


def test_check_mode_restores_nothing(drilled):
    result = drill(drilled, check_mode=True, target_time=drilled.target)
    assert not result.failed and not result['changed'], result
    assert '--type=time' in result['planned'] and result['planned'].endswith(' restore'), result['planned']
    assert result['drill']['pg_version'] == 15 and result['drill']['needed_bytes'] > 0
    assert scratch_children(drilled) == [] and 'report' not in result


def test_restore_to_time_has_marker_before_not_after(drilled):
    result = drill(drilled, target_time=drilled.target, present_queries=[BEFORE],
                   absent_queries=[{'name': 'after the target', 'query': AFTER}],
                   expect_rows={'public.dr_marker': 1, 'filler': 1000},
                   smoke_queries=[{'name': 'filler sum', 'query': 'SELECT sum(g) FROM filler', 'expect': 500500}])
    assert not result.failed, result
    assert result['status'] == 'ok', [c for c in result['checks'] if c['status'] != 'ok']
    for name in ('pitr_drill', 'pitr_restore_time', 'pitr_rpo_achieved', 'pitr_markers', 'pitr_row_counts',
                 'pitr_smoke_queries'):
        assert result.check(name)['status'] == 'ok', result.check(name)
    info = result['drill']
    assert info['result'] == 'ok' and info['scratch_removed'] and info['server_stopped'], info
    assert info['target'].startswith(drilled.target[:19]) and info['timeline'] == 2
    assert info['recovered_to'] <= info['target'] and info['rto_seconds'] > 0
    assert 0 <= info['rpo_seconds'] < 5, info
    section = result['report']['pitr_drill']
    assert section['result'] == 'ok' and section['rto_seconds'] == info['rto_seconds'] and section['finished_at']
    assert scratch_children(drilled) == []


def test_restore_to_newest_has_both_markers(drilled):
    result = drill(drilled, present_queries=[BEFORE, AFTER], expect_rows={'dr_marker': 2})
    assert not result.failed and result['status'] == 'ok', result
    assert result['drill']['target'] == 'newest' and result['report']['pitr_drill']['target'] == 'newest'
    assert result.check('pitr_markers')['results'][1]['rows'] == 1
    assert scratch_children(drilled) == []


def test_wrong_expectation_is_critical(drilled):
    result = drill(drilled, target_time=drilled.target, present_queries=[AFTER], expect_rows={'dr_marker': 2},
                   rto_minutes=0.0001)
    assert not result.failed, result
    markers = result.check('pitr_markers')
    assert markers['status'] == 'critical' and 'committed before the target' in markers['message'], markers
    assert result.check('pitr_row_counts')['status'] == 'critical'
    assert result['mismatches'] == {'public.dr_marker': {'expected': 2, 'restored': 1}}
    assert result.check('pitr_restore_time')['status'] == 'critical'
    assert result['drill']['result'] == 'failed' and result['report']['pitr_drill']['result'] == 'failed'
    assert scratch_children(drilled) == []


def test_target_before_the_backup_is_a_clear_error(drilled):
    result = drill(drilled, target_time='2000-01-01T00:00:00Z')
    assert result.failed and 'before the end of the oldest usable backup' in result['msg'], result


def test_killed_drill_leftover_is_cleaned(drilled):
    """A drill killed outright (SIGKILL) while its scratch server recovers leaves the directory and a running
    postmaster; the next run stops it and removes the directory."""
    slow = drilled.args(settings={'recovery_min_apply_delay': '1h'}, target_time=drilled.target)
    running = start_module('pgbackrest_restore_drill', slow)

    def server_up():
        for name in scratch_children(drilled):
            pid_file = os.path.join(drilled.scratch_dir, name, 'data', 'postmaster.pid')
            if os.path.exists(pid_file):
                return pid_file
        return None

    try:
        assert wait_until(server_up, timeout=60), 'the drill never started its scratch server'
        pid_file = server_up()
        time.sleep(0.5)
    finally:
        running.proc.send_signal(signal.SIGKILL)
        running.proc.communicate()
        os.unlink(running.args_file)
    with open(pid_file) as handle:
        postmaster = int(handle.readline())
    assert os.path.exists('/proc/%d' % postmaster), 'the killed drill left no running server to clean'
    result = drill(drilled, present_queries=[BEFORE])
    assert not result.failed and result['changed'], result
    assert [c['path'] for c in result['cleaned']] == [os.path.dirname(os.path.dirname(pid_file))]
    assert result['cleaned'][0]['server_running']
    assert wait_until(lambda: not os.path.exists('/proc/%d' % postmaster), timeout=10)
    assert scratch_children(drilled) == []


def test_stopped_task_cleans_up(drilled):
    """SIGTERM (how a task is stopped) during recovery: the module stops its server and removes its directory."""
    slow = drilled.args(settings={'recovery_min_apply_delay': '1h'}, target_time=drilled.target)
    running = start_module('pgbackrest_restore_drill', slow)
    assert wait_until(lambda: any(os.path.exists(os.path.join(drilled.scratch_dir, n, 'data', 'postmaster.pid'))
                                  for n in scratch_children(drilled)), timeout=60)
    running.proc.send_signal(signal.SIGTERM)
    try:
        _out, err = running.proc.communicate(timeout=60)
    finally:
        os.unlink(running.args_file)
    assert running.proc.returncode != 0 and 'interrupted by signal 15' in err, err
    assert scratch_children(drilled) == []


def test_too_little_free_space_restores_nothing(drilled):
    result = drill(drilled, min_free_bytes=1 << 60)
    assert result.failed and 'not enough free space' in result['msg'] and 'nothing was restored' in result['msg']
    assert scratch_children(drilled) == []
