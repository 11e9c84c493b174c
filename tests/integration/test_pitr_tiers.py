# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tiers with pitr_enabled: the daily run takes an incremental pgBackRest backup (a full one first, as
pgBackRest does when none exists), the weekly a full one, the monthly verifies; each watches the stanza and the
recoverable window, and the report holds it. Real PostgreSQL 15 archiving through a real pgBackRest."""

from __future__ import annotations

import json
import os

import pytest

from conftest import VERSIONS
from modrunner import REPO_ROOT, run_playbook
from pgbackrest_harness import PgBackRestCluster, pgbackrest_path
from pgserver import SUPERUSER_PASSWORD

pytestmark = pytest.mark.skipif(not pgbackrest_path(), reason='pgBackRest is not installed (apt-get install pgbackrest)')


@pytest.fixture(scope='module')
def cluster():
    if '15' not in VERSIONS:
        if os.environ.get('APPCARE_REQUIRE_DEBIAN_PG') == '1':
            pytest.fail('PostgreSQL 15 is required but not installed')
        pytest.skip('PostgreSQL 15 is not installed here')
    cl = PgBackRestCluster(VERSIONS['15']).start()
    try:
        cl.pgbackrest('stanza-create')
        yield cl
    finally:
        cl.cleanup()


def inventory(tmp_path, cluster, pitr_enabled):
    host = {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
            'appcare_db_host': '127.0.0.1', 'appcare_db_port': cluster.server.port, 'appcare_db_user': 'postgres',
            'appcare_db_password': SUPERUSER_PASSWORD, 'appcare_db_ssl_mode': 'disable', 'appcare_db_name': 'postgres',
            'pitr_enabled': pitr_enabled, 'pitr_backup_stanza': cluster.stanza, 'pitr_backup_config': cluster.conf,
            'pitr_backup_repo': 1,
            # The tests run as root: the modules switch to the server's account themselves instead of become.
            'pitr_backup_become': False, 'pitr_backup_os_user': cluster.os_user or ''}
    path = tmp_path / 'hosts.json'
    path.write_text(json.dumps({'all': {'children': {'postgres_targets': {'hosts': {'selfhosted': host}}}}}))
    return str(path)


def run_tier(tmp_path, cluster, tier, pitr_enabled=True):
    env = {'APPCARE_REPORT_DIR': str(tmp_path / tier)}
    proc = run_playbook(os.path.join(REPO_ROOT, 'playbooks', '%s.yml' % tier), inventory(tmp_path, cluster, pitr_enabled),
                        env=env, cwd=REPO_ROOT)
    report = json.loads((tmp_path / tier / 'latest.json').read_text())
    target = report['targets'][0]
    return proc, target, {c['name']: c for c in target['checks']}


def test_daily_weekly_monthly_run_pgbackrest(tmp_path, cluster):
    proc, target, checks = run_tier(tmp_path, cluster, 'daily')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert checks['pgbackrest_stanza']['status'] == 'ok', checks['pgbackrest_stanza']
    assert checks['backup_age']['status'] == 'ok'
    pitr = target['pitr']
    assert pitr['stanza'] == cluster.stanza and pitr['newest_backup']['label']
    assert pitr['window_start'] and pitr['window_end'] and pitr['window_start'] <= pitr['window_end']
    assert 'backups' in target['categories']
    labels = [b['label'] for b in json.loads(cluster.pgbackrest('info', '--output=json', '--repo=1').stdout)[0]['backup']]

    proc, target, checks = run_tier(tmp_path, cluster, 'weekly')
    assert proc.returncode == 0, proc.stdout[-3000:]
    after = json.loads(cluster.pgbackrest('info', '--output=json', '--repo=1').stdout)[0]['backup']
    assert len(after) == len(labels) + 1 and after[-1]['type'] == 'full'
    assert target['pitr']['last_backup']['type'] == 'full'

    proc, target, checks = run_tier(tmp_path, cluster, 'monthly')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert checks['pgbackrest_verify']['status'] == 'ok', checks['pgbackrest_verify']
    # The monthly tier takes no backup.
    assert len(json.loads(cluster.pgbackrest('info', '--output=json', '--repo=1').stdout)[0]['backup']) == len(after)


def test_without_pitr_enabled_no_pgbackrest_runs(tmp_path, cluster):
    before = json.loads(cluster.pgbackrest('info', '--output=json', '--repo=1').stdout)[0]['backup']
    proc, target, checks = run_tier(tmp_path, cluster, 'daily', pitr_enabled=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'pgbackrest_stanza' not in checks and 'pitr' not in target
    assert len(json.loads(cluster.pgbackrest('info', '--output=json', '--repo=1').stdout)[0]['backup']) == len(before)
