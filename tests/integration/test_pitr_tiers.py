# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tiers with pitr_enabled: the daily run takes an incremental pgBackRest backup (a full one first, as
pgBackRest does when none exists), the weekly a full one, the monthly verifies; each watches the stanza and the
recoverable window, and the report holds it. Real PostgreSQL 15 archiving through a real pgBackRest."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

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


def test_quarterly_drills_the_point_in_time_restore(tmp_path, cluster, request):
    cluster.pgbackrest('backup', '--type=full', '--repo=1')  # what the daily and weekly tiers have taken
    cluster.server.execute('CREATE TABLE IF NOT EXISTS drill_marker (name text PRIMARY KEY)')
    cluster.server.execute("INSERT INTO drill_marker VALUES ('quarterly') ON CONFLICT DO NOTHING")
    cluster.server.execute('SELECT pg_switch_wal()')
    # The newest point is what has been archived: wait until the marker's segment is.
    cluster.pgbackrest('check')
    # A short path the server's account can reach (a Unix socket path has at most 107 bytes; tmp_path is private).
    scratch = tempfile.mkdtemp(prefix='appcare-q-')
    os.chmod(scratch, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    inv = inventory(tmp_path, cluster, True)
    hosts = json.loads(open(inv).read())
    host = hosts['all']['children']['postgres_targets']['hosts']['selfhosted']
    host.update({'dr_test_pitr_config': cluster.conf, 'dr_test_pitr_repo': 1, 'dr_test_pitr_become': False,
                 'dr_test_pitr_os_user': cluster.os_user or '', 'dr_test_pitr_stanza': cluster.stanza,
                 'dr_test_pitr_scratch_dir': scratch,
                 'dr_test_pitr_present_queries': ["SELECT 1 FROM drill_marker WHERE name = 'quarterly'"],
                 'dr_test_pitr_absent_queries': ["SELECT 1 FROM drill_marker WHERE name = 'never-written'"]})
    with open(inv, 'w') as handle:
        json.dump(hosts, handle)
    env = {'APPCARE_REPORT_DIR': str(tmp_path / 'quarterly')}
    proc = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'quarterly.yml'), inv, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    target = json.loads((tmp_path / 'quarterly' / 'latest.json').read_text())['targets'][0]
    checks = {c['name']: c for c in target['checks']}
    assert checks['pitr_drill']['status'] == 'ok', checks['pitr_drill']
    assert checks['pitr_markers']['status'] == 'ok', checks['pitr_markers']
    assert checks['pitr_restore_time']['status'] == 'ok'
    assert target['pitr_drill']['result'] == 'ok'
    assert os.listdir(scratch) == []  # the scratch cluster is gone
