# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report's Prometheus metrics against the real tools: promtool checks the textfile, the alerting rules
(and runs their unit tests) and the dashboard's queries; a real node_exporter serves the textfiles of two tiers;
a real Pushgateway takes a push; and a real playbook run writes and pushes through the callback's options.

The binaries come from Debian's prometheus, prometheus-node-exporter and prometheus-pushgateway packages. A test
skips when one is missing, unless APPCARE_REQUIRE_PROMETHEUS=1, which makes it fail."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import textwrap
import time
import urllib.request

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import prometheus as P
from ansible_collections.appcare.maintenance.plugins.module_utils import report as RP
from conftest import EMBEDDED
from modrunner import REPO_ROOT, run_playbook
from pgserver import SUPERUSER_PASSWORD

REQUIRE = os.environ.get('APPCARE_REQUIRE_PROMETHEUS') == '1'
CONTRIB = os.path.join(REPO_ROOT, 'contrib')
NOW = datetime.datetime.now(datetime.timezone.utc)


def binary(name):
    path = shutil.which(name)
    if path:
        return path
    message = '%s is not installed (Debian packages prometheus, prometheus-node-exporter, prometheus-pushgateway)' % name
    if REQUIRE:
        pytest.fail(message + ' and APPCARE_REQUIRE_PROMETHEUS=1')
    pytest.skip(message)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.read().decode('utf-8')


class Daemon(object):
    """A real exporter on a free local port, stopped (by its own pid) when the test ends."""

    def __init__(self, argv, port, log):
        self.url = 'http://127.0.0.1:%d' % port
        self.log = log
        with open(log, 'wb') as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                fetch(self.url + '/metrics', timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    with open(log, 'r', encoding='utf-8', errors='replace') as handle:
                        raise AssertionError('%s did not start: %s' % (argv[0], handle.read()[-2000:])) from None
                time.sleep(0.05)

    def metrics(self):
        return fetch(self.url + '/metrics')

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def pushgateway(tmp_path):
    path = binary('prometheus-pushgateway')
    port = free_port()
    daemon = Daemon([path, '--web.listen-address=127.0.0.1:%d' % port,
                     '--persistence.file=%s' % (tmp_path / 'pushgateway.data')], port, str(tmp_path / 'pushgateway.log'))
    yield daemon
    daemon.stop()


def ours(text):
    """{(name, frozenset(labels)): value} of the appcare_ samples in a /metrics page."""
    found = {}
    for line in text.splitlines():
        match = re.match(r'^(appcare_[a-z0-9_]+)\{(.*)\} (\S+)$', line)
        if match:
            labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', match.group(2)))
            found[(match.group(1), labels)] = float(match.group(3))
    return found


def value(samples, name, **labels):
    want = set(labels.items())
    hits = [v for (metric, key), v in samples.items() if metric == name and want <= key]
    assert len(hits) == 1, '%s %s: %s' % (name, labels, [k for k in samples if k[0] == name])
    return hits[0]


def sample_report(tier):
    """A built report with a little of everything the writer turns into metrics, and a hostile target name."""
    hours_ago = (NOW - datetime.timedelta(hours=3)).isoformat()
    targets = {
        'app1': {'checks': [
            {'name': 'database_connection', 'status': 'ok', 'value': 4.2, 'unit': 'ms', 'object': 'db=app'},
            {'name': 'cache_hit_ratio', 'status': 'warning', 'value': 91.0, 'unit': 'percent', 'object': 'db=app'},
            {'name': 'backup_age', 'status': 'ok', 'value': 3.0, 'unit': 'hours', 'critical': 24, 'object': 'db=app'},
            {'name': 'invalid_indexes', 'status': 'critical', 'value': 2, 'unit': 'count', 'object': 'idx "a"'},
            {'name': 'invalid_indexes', 'status': 'ok', 'value': 0, 'unit': 'count', 'object': 'idx b'}],
            'backup': {'finished_at': hours_ago, 'bytes': 123456, 'verified': 'ok'},
            'pitr_drill': {'finished_at': hours_ago, 'result': 'failed', 'rto_seconds': 81.5}},
        'db "quoted"\\x\nline': {'checks': [], 'unreachable': 'no route'},
    }
    run = {'tier': tier, 'started_at': (NOW - datetime.timedelta(seconds=30)).isoformat(), 'targets': targets,
           'tasks': [], 'schedule': []}
    return RP.build(run, NOW)


def test_promtool_checks_the_textfile_rules_and_dashboard_queries(tmp_path):
    promtool = binary('promtool')
    path = P.write_textfile(str(tmp_path), 'daily', P.render(sample_report('daily'), NOW, {'version': '0.1.0'}))
    with open(path, 'rb') as handle:
        checked = subprocess.run([promtool, 'check', 'metrics'], stdin=handle, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = os.path.join(CONTRIB, 'prometheus', 'appcare.rules.yml')
    checked = subprocess.run([promtool, 'check', 'rules', rules], capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and '8 rules found' in checked.stdout, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, 'test', 'rules', 'appcare.rules.test.yml'], capture_output=True, text=True, check=False,
                            cwd=os.path.join(CONTRIB, 'prometheus'))
    assert tested.returncode == 0 and 'SUCCESS' in tested.stdout, tested.stdout + tested.stderr
    # every dashboard query parses as PromQL: promtool checks them as recording rules
    with open(os.path.join(CONTRIB, 'grafana', 'appcare.json'), 'r', encoding='utf-8') as handle:
        dashboard = json.load(handle)
    exprs = [t['expr'].replace('$target', '.*') for p in dashboard['panels'] for t in p['targets']]
    queries = tmp_path / 'dashboard.rules.yml'
    queries.write_text(json.dumps({'groups': [{'name': 'dashboard', 'rules': [
        {'record': 'appcare:dashboard_query_%d' % i, 'expr': expr} for i, expr in enumerate(exprs)]}]}))
    checked = subprocess.run([promtool, 'check', 'rules', str(queries)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_node_exporter_serves_the_textfiles_of_two_tiers(tmp_path):
    exporter = binary('prometheus-node-exporter')
    directory = tmp_path / 'textfile'
    for tier in ('daily', 'weekly'):
        P.write_textfile(str(directory), tier, P.render(sample_report(tier), NOW, {'version': '0.1.0'}))
    port = free_port()
    daemon = Daemon([exporter, '--collector.disable-defaults', '--collector.textfile',
                     '--collector.textfile.directory=%s' % directory, '--web.listen-address=127.0.0.1:%d' % port],
                    port, str(tmp_path / 'node_exporter.log'))
    try:
        page = daemon.metrics()
    finally:
        daemon.stop()
    assert re.search(r'^node_textfile_scrape_error 0$', page, re.M), page[-2000:]
    samples = ours(page)
    for tier in ('daily', 'weekly'):
        assert value(samples, 'appcare_check_status', tier=tier, target='app1', check='invalid_indexes') == 4
        assert value(samples, 'appcare_check_value_ratio', tier=tier, check='cache_hit_ratio') == 0.91
        assert value(samples, 'appcare_backup_size_bytes', tier=tier, target='app1', kind='dump') == 123456
        assert value(samples, 'appcare_restore_drill_success', tier=tier) == 0
        assert value(samples, 'appcare_target_status', tier=tier, target='db \\"quoted\\"\\\\x\\nline') == 4
        assert abs(value(samples, 'appcare_run_last_success_timestamp_seconds', tier=tier) - NOW.timestamp()) < 1


def test_pushgateway_takes_a_push_and_reports_a_refusal(pushgateway):
    text = P.render(sample_report('weekly'), NOW, {'version': '0.1.0'})
    assert P.push(pushgateway.url, 'weekly', text) is None
    samples = ours(pushgateway.metrics())
    assert value(samples, 'appcare_check_status', job='appcare', tier='weekly', check='invalid_indexes') == 4
    assert value(samples, 'appcare_check_findings', tier='weekly', check='invalid_indexes', status='ok') == 1
    # a second push replaces the group: the target that is gone is gone
    assert P.push(pushgateway.url, 'weekly', P.render(RP.build(
        {'tier': 'weekly', 'started_at': NOW.isoformat(), 'targets': {'app2': {'checks': []}}}, NOW), NOW)) is None
    samples = ours(pushgateway.metrics())
    assert not [k for k in samples if k[0] == 'appcare_target_status' and ('target', 'app1') in k[1]]
    assert value(samples, 'appcare_target_status', tier='weekly', target='app2') == 0
    problem = P.push(pushgateway.url, 'weekly', 'not { metrics\n')
    assert problem and 'HTTP 400' in problem


PLAYBOOK = '''\
- name: Prometheus export run
  hosts: all
  gather_facts: false
  vars:
    appcare_tier: daily
  module_defaults:
    group/appcare.maintenance.postgresql:
      login_host: 127.0.0.1
      login_port: "{{ db_port }}"
      login_user: postgres
      login_password: "{{ db_password }}"
      login_db: "{{ db_name }}"
  tasks:
    - name: Check database health
      appcare.maintenance.pg_health_info:
        size_quota: 1MB
        fail_on_unreachable: false
'''


@pytest.mark.parametrize('pg_version', [EMBEDDED], indirect=True)
def test_a_playbook_run_writes_and_pushes(tmp_path, target, pushgateway):
    promtool = binary('promtool')
    (tmp_path / 'run.yml').write_text(PLAYBOOK)
    hosts = {'all': {'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
                              'db_password': SUPERUSER_PASSWORD},
                     'hosts': {'app1': {'db_port': target.server.port, 'db_name': target.dbname},
                               'down1': {'db_port': 1, 'db_name': 'postgres'}}}}
    (tmp_path / 'hosts.json').write_text(json.dumps(hosts))
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'appcare.maintenance.maintenance_report',
           'APPCARE_REPORT_DIR': str(tmp_path / 'reports'),
           'APPCARE_PROMETHEUS_TEXTFILE_DIR': 'textfile'}  # relative: under the directory the run starts in
    proc = run_playbook(str(tmp_path / 'run.yml'), str(tmp_path / 'hosts.json'), env=env, cwd=str(tmp_path),
                        extra_vars={'appcare_pushgateway_url': pushgateway.url})  # the extra variable of the option
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'maintenance_report:' not in proc.stdout, proc.stdout[-3000:]  # no warning: written and pushed
    path = tmp_path / 'textfile' / 'appcare_daily.prom'
    assert sorted(os.listdir(str(tmp_path / 'textfile'))) == ['appcare_daily.prom']
    with open(str(path), 'rb') as handle:
        checked = subprocess.run([promtool, 'check', 'metrics'], stdin=handle, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    samples = ours(path.read_text())
    assert value(samples, 'appcare_check_status', target='app1', check='database_size') == 4  # over the 1MB quota
    assert value(samples, 'appcare_check_value_bytes', target='app1', check='database_size') > 1024 * 1024
    assert value(samples, 'appcare_check_value_seconds', target='app1', check='database_connection') < 5
    assert value(samples, 'appcare_target_status', target='down1') == 4
    assert value(samples, 'appcare_findings', target='app1', status='critical') >= 1
    build = [k for k in samples if k[0] == 'appcare_build_info'][0][1]
    assert dict(build)['version'] != 'unknown' and re.match(r'^2\.\d+', dict(build)['ansible_version'])
    pushed = ours(pushgateway.metrics())
    assert value(pushed, 'appcare_check_status', job='appcare', tier='daily', target='app1',
                 check='database_size') == 4
    latest = json.loads((tmp_path / 'reports' / 'latest.json').read_text())
    assert latest['status'] == 'critical'
    assert SUPERUSER_PASSWORD not in path.read_text()


def test_an_unreachable_pushgateway_is_a_warning_not_a_failed_run(tmp_path):
    (tmp_path / 'run.yml').write_text(textwrap.dedent('''\
        - name: Nothing to measure
          hosts: localhost
          gather_facts: false
          vars:
            appcare_tier: weekly
            appcare_prometheus_textfile_dir: "{{ playbook_dir }}/prom"
          tasks:
            - name: Say hello
              ansible.builtin.debug:
                msg: hello
        '''))
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'appcare.maintenance.maintenance_report',
           'APPCARE_REPORT_DIR': str(tmp_path / 'reports'),
           'APPCARE_PUSHGATEWAY_URL': 'http://127.0.0.1:%d' % free_port()}
    proc = run_playbook(str(tmp_path / 'run.yml'), 'localhost,', env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'cannot push to the Pushgateway' in proc.stdout
    assert (tmp_path / 'prom' / 'appcare_weekly.prom').is_file()
