# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_info and pgbackrest_backup against a real PostgreSQL 15 archiving into local repositories with a real
pgBackRest (Debian's 2.45): backups of each type, an encrypted repository, a broken archive_command, a running
backup, verify, and the clear failures (missing stanza, missing binary, unsupported PostgreSQL)."""

from __future__ import annotations

import fcntl
import os
import tempfile

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import pgbackrest as B
from conftest import VERSIONS, wait_until
from modrunner import run_module
from pgbackrest_harness import PgBackRestCluster, pgbackrest_path

pytestmark = pytest.mark.skipif(not pgbackrest_path(), reason='pgBackRest is not installed (apt-get install pgbackrest)')


def _require_pg15():
    if '15' not in VERSIONS:
        if os.environ.get('APPCARE_REQUIRE_DEBIAN_PG') == '1':
            pytest.fail('PostgreSQL 15 is required but not installed')
        pytest.skip('PostgreSQL 15 is not installed here')
    return VERSIONS['15']


@pytest.fixture(scope='module')
def cluster():
    """PostgreSQL 15 archiving through pgBackRest into repo1 (plain) and repo2 (encrypted); the stanza exists."""
    bindir = _require_pg15()
    cl = PgBackRestCluster(bindir).start()
    try:
        cl.pgbackrest('stanza-create')
        yield cl
    finally:
        cl.cleanup()


def info(cluster, **overrides):
    return run_module('pgbackrest_info', cluster.module_args(**overrides))


def backup(cluster, check_mode=False, **overrides):
    return run_module('pgbackrest_backup', cluster.module_args(**overrides), check_mode=check_mode)


def test_no_backup_yet_is_critical(cluster):
    result = info(cluster)
    assert not result.failed, result
    assert result.check('pgbackrest_stanza')['status'] == 'critical'
    assert 'no valid backups (code 2)' in result.check('pgbackrest_stanza')['message']
    assert result.check('full_backup_age')['status'] == 'critical'
    assert result.check('pitr_rpo')['status'] == 'critical'
    assert result['window'] is None


def test_check_mode_takes_no_backup(cluster):
    result = backup(cluster, check_mode=True, type='full')
    assert not result.failed and not result['changed'], result
    assert '--type=full' in result['planned'] and result['planned'].endswith(' backup')
    assert B.parse_info(cluster.pgbackrest('info', '--output=json').stdout, cluster.stanza)['backup'] == []


def test_full_backup_then_info_ok(cluster):
    result = backup(cluster, type='full')
    assert not result.failed and result['changed'], result
    taken = result['backup']
    assert taken['type'] == 'full' and taken['label'].endswith('F') and taken['size_bytes'] > 0
    assert result['report']['pitr']['last_backup']['label'] == taken['label']
    # The same backup into the encrypted repository, its passphrase through cipher_pass (the client configuration
    # does not hold it).
    enc = backup(cluster, type='full', repo=2, config=cluster.client_conf, cipher_pass=cluster.cipher_pass)
    assert not enc.failed, enc
    assert cluster.cipher_pass not in enc.raw
    cluster.server.execute('CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g')
    cluster.server.execute('SELECT pg_switch_wal()')
    assert wait_until(lambda: not info(cluster)['archiver']['wal_waiting'], timeout=30)
    result = info(cluster)
    assert result['status'] == 'ok', [c for c in result['checks'] if c['status'] != 'ok']
    window = result['window']
    assert window['oldest_backup'] == taken['label'] and window['end_source'] == 'last archived WAL'
    assert window['start'] <= window['end']
    assert result.check('pitr_rpo')['value'] == 0
    pitr = result['report']['pitr']
    assert pitr['window_start'] == window['start'] and pitr['newest_backup']['type'] == 'full'
    assert [r['cipher'] for r in result['stanza']['repos']] == ['none', 'aes-256-cbc']


def test_incr_and_diff(cluster):
    cluster.server.execute('INSERT INTO t SELECT g FROM generate_series(1, 1000) g')
    incr = backup(cluster, type='incr')
    assert not incr.failed and incr['backup']['type'] == 'incr', incr
    assert incr['backup']['prior']
    diff = backup(cluster, type='diff')
    assert not diff.failed and diff['backup']['type'] == 'diff', diff
    result = info(cluster, repo=1)
    assert result['newest']['incr']['label'] == incr['backup']['label']
    assert result['newest']['diff']['label'] == diff['backup']['label']
    assert result.check('backup_age')['label'] == diff['backup']['label']


def broken_archive_command(cluster):
    """An archive_command that calls pgBackRest with a configuration file that is not there: archiving fails."""
    command = cluster.good_archive_command.replace(cluster.conf, os.path.join(cluster.dir, 'absent.conf'))
    cluster.server.execute("ALTER SYSTEM SET archive_command = '%s'" % command)
    cluster.server.execute('SELECT pg_reload_conf()')


def test_waiting_wal_is_judged_against_archive_timeout(cluster):
    # A writer with archiving paused: WAL waits, and its age is judged (warning above 0 s here).
    broken_archive_command(cluster)
    cluster.server.execute('SELECT pg_reload_conf()')
    try:
        cluster.server.execute('INSERT INTO t SELECT g FROM generate_series(1, 100) g')
        result = info(cluster, thresholds={'archive_age': {'warning': 0}})
        age = result.check('archive_age')
        assert age['status'] in ('warning', 'critical') and result['archiver']['wal_waiting'], age
    finally:
        cluster.server.execute('ALTER SYSTEM RESET archive_command')
        cluster.server.execute('SELECT pg_reload_conf()')


def test_broken_archive_command_is_critical(cluster):
    broken_archive_command(cluster)
    try:
        cluster.server.execute('INSERT INTO t SELECT g FROM generate_series(1, 100) g')
        cluster.server.execute('SELECT pg_switch_wal()')
        assert wait_until(lambda: cluster.server.execute('SELECT failed_count FROM pg_stat_archiver')[0][0] > 0,
                          timeout=30)
        result = info(cluster)
        assert result.check('wal_archiver')['status'] == 'critical'
        age = result.check('archive_age')
        assert age['status'] == 'critical' and age['failed_count'] > 0 and age['last_failed_time'], age
        assert 'archiving is failing' in age['message']
        assert result['archiver']['failing'] and result['report']['pitr']['archive_failed_count'] > 0
        # A backup cannot complete without its WAL: pgBackRest's archive-timeout (82) comes back clearly.
        failed = backup(cluster, type='incr', options={'archive-timeout': 3})
        assert failed.failed and '(archive-timeout)' in failed['msg'] and 'archive_command' in failed['msg'], failed
    finally:
        cluster.server.execute('ALTER SYSTEM RESET archive_command')
        cluster.server.execute('SELECT pg_reload_conf()')
        cluster.server.execute('SELECT pg_switch_wal()')
    assert wait_until(lambda: not info(cluster)['archiver']['failing'], timeout=60)


def test_encrypted_repository(cluster):
    good = info(cluster, repo=2, config=cluster.client_conf, cipher_pass=cluster.cipher_pass)
    assert not good.failed, good
    assert good['stanza']['repos'][0]['cipher'] == 'aes-256-cbc' and good['backups']
    assert cluster.cipher_pass not in good.raw
    wrong = info(cluster, repo=2, config=cluster.client_conf, cipher_pass='not-the-passphrase')
    assert 'not-the-passphrase' not in wrong.raw
    # pgBackRest 2.45 reports the failed decryption as status 99 (with the garbage it decrypted as message).
    stanza = wrong.check('pgbackrest_stanza')
    assert stanza['status'] == 'critical' and stanza['value'] == 99, stanza
    assert 'cipher_pass' in stanza['message'], stanza
    missing = info(cluster, repo=2, config=cluster.client_conf)
    assert missing.failed and 'cipher_pass' in missing['msg'], missing


class HeldBackupLock(object):
    """pgBackRest's backup lock as a running backup holds it (src/common/lock.c, 2.45): an flock on
    ``<lock-path>/<stanza>-backup.lock`` whose content is ``{"execId": .., "pctCplt": .., "pid": ..}``."""

    def __init__(self, cluster):
        self.path = os.path.join(cluster.dir, 'lock', '%s-backup.lock' % cluster.stanza)
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, 'w')
        fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.handle.write('{"execId":"12345-appcaretest","pctCplt":4250,"pid":%d}' % os.getpid())
        self.handle.flush()
        os.chmod(self.path, 0o644)
        return self

    def __exit__(self, *exc):
        os.unlink(self.path)
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
        return False


def test_backup_in_progress(cluster):
    with HeldBackupLock(cluster):
        result = info(cluster)
        busy = backup(cluster, type='incr')
    assert result['stanza']['backup_running'] and result['report']['pitr']['backup_running'], result['stanza']
    assert 'a backup or expire is running' in result.check('pgbackrest_stanza')['message']
    assert busy.failed and '(lock-acquire)' in busy['msg'], busy


def test_verify(cluster):
    result = backup(cluster, type='none', verify=True, repo=1)
    assert not result.failed and not result['changed'], result
    assert result.check('pgbackrest_verify')['status'] == 'ok'
    assert result['report']['pitr']['verify']['status'] == 'ok'


def test_missing_stanza_is_a_clear_error(cluster):
    result = info(cluster, stanza='nosuch')
    assert result.failed and 'stanza nosuch does not exist' in result['msg'] and 'stanza-create' in result['msg']
    result = backup(cluster, stanza='nosuch', type='full')
    assert result.failed and 'stanza-create' in result['msg'], result


def test_missing_config_file(cluster):
    result = info(cluster, config=os.path.join(cluster.dir, 'absent.conf'))
    assert result.failed and '(file-missing)' in result['msg'] and 'absent.conf' in result['msg'], result


def test_missing_binary_names_the_install(cluster):
    empty = tempfile.mkdtemp()
    try:
        result = run_module('pgbackrest_info', cluster.module_args(), env={'PATH': empty})
    finally:
        os.rmdir(empty)
    assert result.failed and 'not found in PATH' in result['msg'] and 'apt-get install pgbackrest' in result['msg']


def test_unsupported_postgresql_is_named():
    """PostgreSQL 18 with a pgBackRest that does not support it (2.45 supports up to 15)."""
    if '18' not in VERSIONS:
        pytest.skip('PostgreSQL 18 is not installed here')
    version = B.parse_version(os.popen('pgbackrest version').read())
    if B.max_pg_major(version) is None or B.max_pg_major(version) >= 18:
        pytest.skip('this pgBackRest supports PostgreSQL 18')
    cl = PgBackRestCluster(VERSIONS['18'], archive=False).start()
    try:
        for module in ('pgbackrest_info', 'pgbackrest_backup'):
            result = run_module(module, cl.module_args())
            assert result.failed, result
            assert 'supports PostgreSQL up to %d, but the server is PostgreSQL 18' % B.max_pg_major(version) in result['msg']
            assert 'install pgBackRest 2.55' in result['msg']
    finally:
        cl.cleanup()
