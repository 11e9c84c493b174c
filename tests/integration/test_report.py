# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance_report callback in real ansible-playbook runs: JSON and HTML reports, the summary table,
an unreachable target, fail_on, no secret anywhere with -vvv and every alert channel configured, and the
dashboard rendered by headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
import time

import pytest

from conftest import wait_for
from modrunner import REPO_ROOT, run_playbook
from pgserver import SUPERUSER_PASSWORD
from webserver import LocalServer, Route

SLACK_SECRET = '/services/T1/B2/report-slack-secret'
HMAC_SECRET = 'report-hmac-secret-1234'
SMS_TOKEN = 'report-sms-token-5678'

PLAYBOOK = '''\
- name: Report test run
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
      register: health
    - name: Back up
      appcare.maintenance.pg_backup:
        dest: "{{ backup_dir }}/{{ inventory_hostname }}"
      register: backup
      when: inventory_hostname == 'app1'
    - name: Verify the backup
      appcare.maintenance.pg_backup_verify:
        backup: "{{ backup.path }}"
        level: catalog
      when: inventory_hostname == 'app1'
    - name: Review the sizes
      appcare.maintenance.pg_inspect_info:
        sections: [sizes]
      register: review
      when: inventory_hostname == 'app1'
    - name: Keep the figures
      appcare.maintenance.metrics_history:
        dest: "{{ history_dir }}"
        target: "{{ inventory_hostname }}"
        metrics: "{{ review.metrics }}"
      delegate_to: localhost
      when: inventory_hostname == 'app1'
    - name: Probe the application
      appcare.maintenance.http_health_info:
        endpoints:
          - {name: hook, url: "{{ sink }}/hook"}
      delegate_to: localhost
      when: inventory_hostname == 'app1'
    - name: Alert
      appcare.maintenance.notify:
        target: "{{ inventory_hostname }}"
        findings: "{{ health.checks }}"
        channels:
          - {name: slack, type: slack, url: "{{ sink }}{{ slack_path }}"}
          - {name: hook, type: webhook, url: "{{ sink }}/hook", secret: "{{ hmac_secret }}"}
          - {name: sms, type: sms, url: "{{ sink }}/sms", headers: {Authorization: "Bearer {{ sms_token }}"}}
        rules:
          - {min_severity: critical, channels: [slack, hook, sms]}
      delegate_to: localhost
'''


def inventory(tmp_path, server, dbname, sink):
    hosts = {
        'app1': {'db_port': server.port, 'db_name': dbname},
        'down1': {'db_port': 1, 'db_name': 'postgres'},
    }
    common = {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
              'db_password': SUPERUSER_PASSWORD, 'backup_dir': str(tmp_path / 'backups'), 'sink': sink.url,
              'history_dir': str(tmp_path / 'history'),
              'slack_path': SLACK_SECRET, 'hmac_secret': HMAC_SECRET, 'sms_token': SMS_TOKEN}
    path = tmp_path / 'hosts.json'
    path.write_text(json.dumps({'all': {'vars': common, 'hosts': hosts}}))
    return str(path)


@pytest.fixture
def sink():
    with LocalServer({SLACK_SECRET: Route(200, b'ok'), '/hook': Route(200, b'ok'), '/sms': Route(200, b'ok')}) as srv:
        yield srv


def run(tmp_path, target, sink, options=(), fail_on=None):
    playbook = tmp_path / 'run.yml'
    playbook.write_text(PLAYBOOK)
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'appcare.maintenance.maintenance_report',
           'APPCARE_REPORT_DIR': str(tmp_path / 'reports')}
    if fail_on:
        env['APPCARE_REPORT_FAIL_ON'] = fail_on
    return run_playbook(str(playbook), inventory(tmp_path, target.server, target.dbname, sink), options=options,
                        env=env, cwd=str(tmp_path))


def test_report_files_summary_and_secrets(tmp_path, target, sink):
    target.sql('CREATE TABLE applications AS SELECT g AS id FROM generate_series(1, 100) g')
    proc = run(tmp_path, target, sink, options=['-vvv'])
    assert proc.returncode == 0, proc.stdout[-3000:]
    reports = tmp_path / 'reports'
    latest = json.loads((reports / 'latest.json').read_text())
    assert latest['tier'] == 'daily' and latest['status'] == 'critical'
    targets = dict((t['name'], t) for t in latest['targets'])
    assert targets['down1']['status'] == 'critical'
    assert any(c['name'] == 'database_connection' and c['status'] == 'critical' for c in targets['down1']['checks'])
    app = targets['app1']
    assert any(c['name'] == 'database_size' and c['status'] == 'critical' for c in app['checks'])  # 1MB quota
    assert app['backup']['verified'] == 'ok' and app['backup']['bytes'] > 0 and app['backup']['age_hours'] < 1
    assert app['kpis']['Database size']['value'] > 0
    # each finding carries the category of the module that returned it, counted per target
    categories = dict((c['task'], c['category']) for c in app['checks'])
    assert categories['Check database health'] == 'health' and categories['Verify the backup'] == 'backups'
    assert categories['Review the sizes'] == 'performance' and categories['Probe the application'] == 'health'
    assert app['categories']['health']['critical'] >= 1 and {'performance', 'health', 'backups'} <= set(app['categories'])
    assert 'to do - health:' in proc.stdout and 'down1 database_connection' in proc.stdout
    assert {d['channel'] for d in app['deliveries']} == {'slack', 'hook', 'sms'} and all(d['ok'] for d in app['deliveries'])
    # what the modules declared in their result's ``report``
    assert app['metrics']['database_size'] > 0 and app['forecast']['metric'] == 'database_size'
    assert app['chart'].endswith('.svg') and [e['name'] for e in app['endpoints']] == ['hook']
    assert app['kpis']['Slowest endpoint']['value'] > 0 and 'endpoints' not in targets['down1']
    assert [s for s in latest['schedule'] if s['tier'] == 'daily'][0]['last_run']
    assert 'Check database health' in latest['tasks']
    dated = [p.name for p in reports.iterdir() if p.name.startswith('daily-')]
    assert len([n for n in dated if n.endswith('.json')]) == 1 and len([n for n in dated if n.endswith('.html')]) == 1
    assert 'APPCARE MAINTENANCE REPORT (daily)' in proc.stdout
    assert [line for line in proc.stdout.splitlines() if line.startswith('down1') and 'CRITICAL' in line]
    assert 'overall: CRITICAL' in proc.stdout
    everything = proc.stdout + ''.join(p.read_text() for p in reports.iterdir() if p.is_file())
    for secret in (SUPERUSER_PASSWORD, SLACK_SECRET, HMAC_SECRET, SMS_TOKEN):
        assert secret not in everything, 'secret %s leaked into the output or the report' % secret
    assert len([r for r in sink.requests if r['path'] == SLACK_SECRET]) == 2  # both targets had a critical


def test_fail_on_makes_the_run_fail(tmp_path, target, sink):
    failed = run(tmp_path, target, sink, fail_on='critical')
    assert failed.returncode == 2 and 'fail_on=critical' in failed.stdout
    assert 'app1 (database_size' in failed.stdout and 'down1 (database_connection' in failed.stdout  # names what tripped it
    assert (tmp_path / 'reports' / 'latest.json').exists()  # written before the run ends


@pytest.mark.skipif(not shutil.which('chromium'), reason='chromium is not installed (make test installs it)')
def test_dashboard_renders_in_headless_chromium(tmp_path, target, sink):
    proc = run(tmp_path, target, sink)
    assert proc.returncode == 0, proc.stdout[-3000:]
    page = tmp_path / 'reports' / 'latest.html'
    html = page.read_text()
    assert 'http://' not in html.replace('http://www.w3.org/2000/svg', '') and 'https://' not in html  # no external assets
    base = ['chromium', '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
            '--disable-dev-shm-usage', '--user-data-dir=%s' % (tmp_path / 'chrome')]
    dom = subprocess.run(base + ['--enable-logging=stderr', '--v=0', '--dump-dom', page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'down1' in dom.stdout and 'cannot connect to 127.0.0.1:1' in dom.stdout
    assert 'Backup status' in dom.stdout and 'app1' in dom.stdout
    assert 'Trends' in dom.stdout and '<svg' in dom.stdout and 'Slowest endpoint' in dom.stdout
    console = [line for line in dom.stderr.splitlines() if 'CONSOLE' in line or 'Uncaught' in line]
    assert console == [], console
    artifacts = os.path.join(REPO_ROOT, 'tests', 'output')
    os.makedirs(artifacts, exist_ok=True)
    shot = os.path.join(artifacts, 'dashboard.png')
    subprocess.run(base + ['--screenshot=%s' % shot, '--window-size=1280,2400', page.as_uri()],
                   capture_output=True, text=True, timeout=120, check=True)
    assert os.path.getsize(shot) > 10000


def test_report_dir_play_variable_and_a_failed_task(tmp_path, target):
    playbook = tmp_path / 'fail.yml'
    playbook.write_text(textwrap.dedent('''\
        - hosts: all
          gather_facts: false
          vars:
            appcare_tier: weekly
            appcare_report_dir: "{{ playbook_dir }}/custom"
          tasks:
            - name: A task that fails
              ansible.builtin.fail:
                msg: the planted failure
        '''))
    (tmp_path / 'hosts.yml').write_text('all:\n  hosts:\n    one:\n      ansible_connection: local\n'
                                        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n')
    proc = run_playbook(str(playbook), str(tmp_path / 'hosts.yml'), cwd=str(tmp_path),
                        env={'ANSIBLE_CALLBACKS_ENABLED': 'appcare.maintenance.maintenance_report'})
    assert proc.returncode == 2
    report = json.loads((tmp_path / 'custom' / 'latest.json').read_text())
    one = report['targets'][0]
    assert report['tier'] == 'weekly' and one['status'] == 'critical'
    assert one['failures'] == [{'task': 'A task that fails', 'msg': 'the planted failure'}]


ADVICE_PLAYBOOK = '''\
- name: Advice and sessions
  hosts: all
  gather_facts: false
  vars:
    appcare_tier: weekly
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
        checks: [database_connection, database_size, idle_in_transaction, blocked_sessions]
        size_quota: 1MB
        severity: {database_size: info}
        thresholds:
          blocked_sessions: {warning: 1, critical: 600}
          idle_in_transaction: {warning: 1, critical: 600}
    - name: A task no host runs
      ansible.builtin.debug:
        msg: never
      when: false
'''


def test_advice_categories_and_who_holds_the_lock(tmp_path, target):
    target.sql('CREATE TABLE applicants (id int)')
    holder = target.conn(autocommit=False, application_name='nightly-import')
    with holder.cursor() as cur:
        cur.execute('LOCK TABLE applicants IN ACCESS EXCLUSIVE MODE')
    waiter = target.start_async('SELECT count(*) FROM applicants')
    time.sleep(2.0)
    playbook = tmp_path / 'advice.yml'
    playbook.write_text(ADVICE_PLAYBOOK)
    hosts = tmp_path / 'hosts.json'
    hosts.write_text(json.dumps({'all': {'hosts': {'app1': {
        'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
        'db_port': target.server.port, 'db_name': target.dbname, 'db_password': SUPERUSER_PASSWORD,
        'backup_dir': str(tmp_path / 'backups')}}}}))
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'appcare.maintenance.maintenance_report',
           'APPCARE_REPORT_DIR': str(tmp_path / 'reports'), 'APPCARE_REPORT_FAIL_ON': 'warning'}
    try:
        proc = run_playbook(str(playbook), str(hosts), env=env, cwd=str(tmp_path))
    finally:
        holder.rollback()
    assert proc.returncode == 2, proc.stdout[-3000:]
    # the gate names the problems, never the advice
    gate = [line for line in proc.stdout.splitlines() if 'fail_on=warning' in line][0]
    assert 'blocked_sessions' in gate and 'database_size' not in gate
    report = json.loads((tmp_path / 'reports' / 'latest.json').read_text())
    app = report['targets'][0]
    checks = dict((c['name'], c) for c in app['checks'])
    assert checks['database_size']['status'] == 'info' and checks['database_size']['default_status'] == 'critical'
    assert app['counts']['info'] == 1 and report['totals']['info'] == 1
    assert {c['category'] for c in app['checks'] if c['task'] == 'Check database health'} == {'health'}
    assert app['categories']['health']['info'] == 1 and app['categories']['health']['warning'] >= 1
    # who holds the lock: application_name, user and client address, and the blocking pid
    blocked = checks['blocked_sessions']
    assert blocked['status'] == 'warning', blocked
    assert blocked['sessions'][0]['blocked_by'] == [holder.get_backend_pid()]
    assert blocked['sessions'][0]['client_addr'] == '127.0.0.1' and blocked['sessions'][0]['user'] == 'postgres'
    holder_entry = blocked['blockers'][0]
    assert holder_entry['pid'] == holder.get_backend_pid() and holder_entry['application_name'] == 'nightly-import'
    assert holder_entry['user'] == 'postgres' and holder_entry['client_addr'] == '127.0.0.1'
    assert 'query' not in holder_entry
    idle = checks['idle_in_transaction']
    assert idle['status'] == 'warning' and idle['sessions'][0]['application_name'] == 'nightly-import'
    page = (tmp_path / 'reports' / 'latest.html').read_text()
    assert ('lock held by pid %d, user postgres, app nightly-import, client 127.0.0.1' % holder.get_backend_pid()) in page
    assert 'LOCK TABLE' not in page  # the dashboard names sessions, never their queries
    advice = page.split('<section id="advice">')[1].split('</section>')[0]
    findings = page.split('<section id="findings">')[1].split('</section>')[0]
    assert '<td>database_size</td>' in advice and 'database_size' not in findings
    assert 'id="category-health"' in findings
    # the text summary after the recap: info counted in its own column, the to-do list per category, advice apart
    text = proc.stdout.split('APPCARE MAINTENANCE REPORT (weekly)')[1]
    assert re.search(r'target\s+status\s+critical\s+warning\s+unknown\s+info\s+ok', text)
    assert re.search(r'to do - health: \d+ warning', text) and 'advice - health: 1 info' in text
    assert re.search(r'  WARNING +app1 blocked_sessions \[pid=\d+\]: 1 session\(s\) waiting on locks', text)
    assert text.index('to do - health') < text.index('advice - health')
    # roles and tasks that ran, not those only skipped
    assert 'This weekly run: tasks Check database health</p>' in page
    wait_for(waiter)
