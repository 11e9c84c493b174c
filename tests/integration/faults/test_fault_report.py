# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults the run report survives, each named after the fault, in real ansible-playbook runs (and module runs)
against a real PostgreSQL: an advice (info) finding that crashed the report role's summary, long check names
that broke its columns, a key-figure state file that is malformed or dated in the future, a rejected threshold,
and the stray "(sequence range)" in the sequence message."""

from __future__ import annotations

import datetime
import json
import os
import re
import textwrap

from modrunner import REPO_ROOT, run_playbook
from pgserver import SUPERUSER_PASSWORD

PLAYBOOKS = os.path.join(REPO_ROOT, 'playbooks')


def inventory(tmp_path, server, dbname, **common):
    base = {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
            'appcare_db_host': '127.0.0.1', 'appcare_db_port': server.port, 'appcare_db_user': 'postgres',
            'appcare_db_password': SUPERUSER_PASSWORD, 'appcare_db_ssl_mode': 'disable', 'appcare_db_name': dbname}
    base.update(common)
    path = tmp_path / 'hosts.json'
    path.write_text(json.dumps({'all': {'children': {'postgres_targets': {'hosts': {'one': base}}}}}))
    return str(path)


def tier(tmp_path, name, inv, env=None):
    return run_playbook(os.path.join(PLAYBOOKS, name), inv, cwd=REPO_ROOT,
                        env=dict({'APPCARE_REPORT_DIR': str(tmp_path / 'reports')}, **(env or {})))


LONG_NAME = 'rls_policy_always_true_on_a_table_with_a_long_name'
SUMMARY_PLAY = '''\
- hosts: all
  gather_facts: false
  vars:
    appcare_findings:
      - {name: database_connection, status: ok, value: 1.5, unit: ms, message: connected}
      - {name: unused_index, status: info, value: null, unit: null, object: public.i, message: never scanned}
      - {name: %s, status: warning, value: 1, unit: count, message: a policy that lets everyone in}
  roles:
    - role: appcare.maintenance.report
''' % LONG_NAME


def test_fault_info_finding_crashed_the_report_summary_and_long_names_broke_its_columns(tmp_path):
    playbook = tmp_path / 'summary.yml'
    playbook.write_text(SUMMARY_PLAY)
    (tmp_path / 'hosts.yml').write_text('all:\n  hosts:\n    one:\n      ansible_connection: local\n'
                                        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n')
    proc = run_playbook(str(playbook), str(tmp_path / 'hosts.yml'), cwd=str(tmp_path),
                        env={'APPCARE_REPORT_DIR': str(tmp_path / 'reports')})
    assert proc.returncode == 0, proc.stdout[-3000:]  # order.index('info') raised before
    assert 'one: overall WARNING' in proc.stdout
    lines = proc.stdout.splitlines()
    header = [line for line in lines if 'CHECK' in line and 'STATUS' in line][0]
    texts = ('connected', 'never scanned', 'everyone in')
    rows = [line for line in lines if re.search(r'\b(OK|INFO|WARNING)\s+\S', line) and any(t in line for t in texts)]
    assert len(rows) == 3, rows
    column = header.index('STATUS')
    for line in rows:  # every status starts in the STATUS column, however long the check name
        assert re.match(r'(OK|INFO|WARNING) ', line[column:]), (header, line)
    order = [next(i for i, line in enumerate(lines) if text in line)
             for text in ('everyone in', '-- advice', 'never scanned', '-- ok', 'connected')]
    assert order == sorted(order), lines  # problems, then the advice apart, then ok


def test_fault_kpi_state_malformed_or_from_the_future_is_not_shown_as_fresh(tmp_path, target):
    inv = inventory(tmp_path, target.server, target.dbname)
    reports = tmp_path / 'reports'
    reports.mkdir()
    (reports / 'kpis.json').write_text('{"format": "appcare.kpis/1", "targets": ')  # torn
    monthly = tier(tmp_path, 'monthly.yml', inv)
    assert monthly.returncode == 0, monthly.stdout[-3000:]
    one = json.loads((reports / 'latest.json').read_text())['targets'][0]
    assert 'DB latency' not in one['kpis']
    future = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3)).isoformat()
    past = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)).isoformat()
    (reports / 'kpis.json').write_text(json.dumps({'format': 'appcare.kpis/1', 'targets': {'one': {
        'DB latency': {'value': 1.0, 'unit': 'ms', 'status': 'ok', 'measured_at': future},
        'Cache hit': {'value': 97.5, 'unit': '%', 'status': 'ok', 'measured_at': past},
        'Connections used': {'value': '<script>', 'unit': '%', 'status': 'ok', 'measured_at': past}}}}))
    again = tier(tmp_path, 'monthly.yml', inv)
    assert again.returncode == 0, again.stdout[-3000:]
    one = json.loads((reports / 'latest.json').read_text())['targets'][0]
    assert 'DB latency' not in one['kpis'] and 'Connections used' not in one['kpis']
    assert one['kpis']['Cache hit']['stale'] is True and 47 < one['kpis']['Cache hit']['age_hours'] < 49
    page = (reports / 'latest.html').read_text()
    assert '2.0 d ago' in page and '&lt;script&gt;' not in page and '<script>' not in page
    kept = json.loads((reports / 'kpis.json').read_text())
    assert set(kept['targets']['one']) == {'Cache hit'}  # the untrusted entries are not written back


def test_fault_rejected_threshold_shows_only_the_clear_message(tmp_path, target):
    # ansible-core 2.19 attaches an error summary to every failed result; a callback that prints it (oneline, AWX's)
    # showed "An exception occurred ... (traceback unavailable)" for it. The module itself must not add a traceback
    # or print anything but its message, and the run report must carry that one message.
    inv = inventory(tmp_path, target.server, target.dbname,
                    health_check_thresholds={'connections_used': {'warning': 95, 'critical': 80}})
    proc = tier(tmp_path, 'daily.yml', inv)
    assert proc.returncode == 2, proc.stdout[-3000:]
    message = ('invalid options: connections_used: warning threshold 95 is above the critical threshold 80 (a larger'
               ' value is worse here, so warning must be <= critical)')
    assert message in proc.stdout
    for noise in ('Traceback', 'An exception occurred', 'traceback unavailable', 'exception:'):
        assert noise not in proc.stdout, proc.stdout[-3000:]
    one = json.loads((tmp_path / 'reports' / 'latest.json').read_text())['targets'][0]
    assert one['failures'] == [{'task': 'appcare.maintenance.health_check : Check database health', 'msg': message}]
    # the same with the stdout callback that printed the noise: only what ansible-core itself adds remains
    oneline = tier(tmp_path, 'daily.yml', inv, env={'ANSIBLE_STDOUT_CALLBACK': 'oneline'})
    assert message in oneline.stdout and 'Traceback' not in oneline.stdout


def test_fault_sequence_message_said_sequence_range(target):
    target.sql('CREATE TABLE applications (id bigserial PRIMARY KEY)')
    target.sql("SELECT setval('applications_id_seq', 8500000000000000000)")
    finding = target.run(checks=['sequence_exhaustion']).check('sequence_exhaustion')
    assert finding['status'] == 'critical', finding
    assert 'sequence range' not in finding['message'] and '()' not in finding['message']
    assert re.match(r'sequence public\.applications_id_seq has used [0-9.]+% of its range \(critical', finding['message'])
    target.sql('CREATE TABLE documents (id integer)')
    target.sql('CREATE SEQUENCE documents_id_seq AS bigint OWNED BY documents.id')
    target.sql("SELECT setval('documents_id_seq', 2140000000)")
    bounded = target.run(checks=['sequence_exhaustion']).check('sequence_exhaustion')
    assert '(bounded by integer column public.documents.id)' in bounded['message'], bounded


def test_fault_report_summary_of_only_advice_with_a_null_message(tmp_path):
    playbook = tmp_path / 'odd.yml'
    playbook.write_text(textwrap.dedent('''\
        - hosts: all
          gather_facts: false
          vars:
            appcare_findings:
              - {name: x, status: info, value: null, unit: null, message: null}
          roles:
            - role: appcare.maintenance.report
        '''))
    (tmp_path / 'hosts.yml').write_text('all:\n  hosts:\n    one:\n      ansible_connection: local\n'
                                        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n')
    proc = run_playbook(str(playbook), str(tmp_path / 'hosts.yml'), cwd=str(tmp_path),
                        env={'APPCARE_REPORT_DIR': str(tmp_path / 'reports')})
    assert proc.returncode == 0 and 'one: overall INFO' in proc.stdout, proc.stdout[-3000:]
