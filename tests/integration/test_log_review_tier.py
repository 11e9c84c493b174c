# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The weekly tier's error-log review as users run it: weekly.yml against a real server whose logging collector
writes real errors into its log directory - the top errors and the new patterns in the findings, the run report and
the dashboard; the next week reads on from the state file and finds nothing new; a target without a log is skipped
with a message, not failed; a Supabase target's logs through the local stand-in of the Management API
(tests/management_api.py), with the API's real traffic on the dashboard."""

from __future__ import annotations

import json
import os

import psycopg2
import pytest

from management_api import PROJECT_REF, TOKEN, ManagementApiStandIn, auth_log, edge_log, pg_log
from modrunner import REPO_ROOT, run_playbook
from pgserver import SUPERUSER_PASSWORD
from webserver import CertificateAuthority

# What the review needs of the log: the collector writing into a directory of its own (relative: under the data
# directory), a prefix with time, process, user and database, lock waits and every temporary file.
LOGGING = {'logging_collector': 'on', 'log_directory': "'log'", 'log_line_prefix': "'%m [%p] %q%u@%d '",
           'log_lock_waits': 'on', 'log_temp_files': 0}


@pytest.fixture(scope='module')
def logging_server(spawn_server):
    server = spawn_server(settings=LOGGING)
    server.execute('CREATE DATABASE shop')
    server.execute('CREATE EXTENSION pg_stat_statements', 'shop')
    server.execute('CREATE TABLE orders (id int PRIMARY KEY, total numeric CHECK (total >= 0))', 'shop')
    server.execute('INSERT INTO orders VALUES (1, 10), (2, 20)', 'shop')
    return server


def make_errors(server, duplicates):
    """Real errors in the server's log: ``duplicates`` unique violations, a check violation, a division by zero, and
    a sort that spills into a temporary file."""
    conn = server.connect('shop')
    with conn.cursor() as cur:
        for _attempt in range(duplicates):
            with pytest.raises(psycopg2.errors.UniqueViolation):
                cur.execute('INSERT INTO orders VALUES (1, 5)')
        with pytest.raises(psycopg2.errors.CheckViolation):
            cur.execute('INSERT INTO orders VALUES (3, -1)')
        with pytest.raises(psycopg2.errors.DivisionByZero):
            cur.execute('SELECT total / 0 FROM orders')
        cur.execute("SET work_mem = '64kB'")
        cur.execute('SELECT g FROM generate_series(1, 100000) g ORDER BY g DESC')
    conn.close()


def inventory(tmp_path, server, **host):
    common = {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
              'appcare_db_host': '127.0.0.1', 'appcare_db_port': server.port, 'appcare_db_user': 'postgres',
              'appcare_db_password': SUPERUSER_PASSWORD, 'appcare_db_ssl_mode': 'disable', 'appcare_db_name': 'shop'}
    hosts = {'shop': dict(host), 'nolog': {}}
    path = tmp_path / 'hosts.json'
    path.write_text(json.dumps({'all': {'children': {'postgres_targets': {'vars': common, 'hosts': hosts}}}}))
    return str(path)


def weekly(tmp_path, inv):
    proc = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'weekly.yml'), inv,
                        env={'APPCARE_REPORT_DIR': str(tmp_path / 'reports')}, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:]
    report = json.loads((tmp_path / 'reports' / 'latest.json').read_text())
    page = (tmp_path / 'reports' / 'latest.html').read_text()
    return proc, dict((t['name'], t) for t in report['targets']), page


def status(target, name):
    return [c['status'] for c in target['checks'] if c['name'] == name]


def test_weekly_reviews_the_log_and_next_week_reads_on(tmp_path, logging_server):
    inv = inventory(tmp_path, logging_server, log_review_path=os.path.join(logging_server.datadir, 'log'),
                    log_review_state_dir=str(tmp_path / 'log-review'))
    # the first review records what the log holds so far: nothing is new on a first run
    proc, targets, _page = weekly(tmp_path, inv)
    assert status(targets['shop'], 'log_new_patterns') == ['ok'] and targets['shop']['log_review']['new_patterns'] == 0
    assert (tmp_path / 'log-review' / 'shop.json').is_file()
    # the target without a log path: skipped with the reason, and no log review of its own
    assert 'nothing to review on nolog' in proc.stdout and 'log_review' not in targets['nolog']

    # a week of mistakes: each pattern is new, the top errors count them, the dashboard marks them
    make_errors(logging_server, duplicates=4)
    _proc, targets, page = weekly(tmp_path, inv)
    review = targets['shop']['log_review']
    assert review['source'] == 'postgresql'
    duplicate = [e for e in review['top_errors'] if 'duplicate key value violates unique constraint' in e['pattern']]
    assert len(duplicate) == 1 and duplicate[0]['count'] == 4 and duplicate[0]['new'] is True
    assert duplicate[0]['databases'] == ['shop'] and duplicate[0]['users'] == ['postgres']
    assert review['severities']['ERROR'] == 6 and review['new_patterns'] == 3
    assert review['events']['temp_files'] >= 1
    assert status(targets['shop'], 'log_new_patterns') == ['warning'] and status(targets['shop'], 'log_panic') == ['ok']
    assert status(targets['shop'], 'log_temp_files') == ['ok']  # bytes, warning above 1 GiB
    section = page.split('<section id="errors">')[1].split('</section>')[0]
    assert section.count('<tr class="new">') == 3 and 'duplicate key value violates unique constraint' in section
    assert '<h3>shop' in section and '<h3>nolog' not in section

    # the next week: only what was written since is read; the same mistake again is not new, another one is
    make_errors(logging_server, duplicates=2)
    conn = logging_server.connect('shop')
    with conn.cursor() as cur, pytest.raises(psycopg2.errors.UndefinedTable):
        cur.execute('SELECT * FROM order_lines')
    conn.close()
    _proc, targets, page = weekly(tmp_path, inv)
    review = targets['shop']['log_review']
    duplicate = [e for e in review['top_errors'] if 'duplicate key value violates unique constraint' in e['pattern']]
    assert duplicate[0]['count'] == 2 and duplicate[0]['new'] is False
    assert [e['pattern'] for e in review['top_errors'] if e['new']] == ['relation "..." does not exist']
    assert review['new_patterns'] == 1 and status(targets['shop'], 'log_new_patterns') == ['warning']
    section = page.split('<section id="errors">')[1].split('</section>')[0]
    assert section.count('<tr class="new">') == 1


@pytest.fixture(scope='module')
def management_api(tmp_path_factory):
    ca = CertificateAuthority(str(tmp_path_factory.mktemp('log-review-tls')))
    server = ManagementApiStandIn(*ca.issue('api')).start()
    yield server, ca.ca_file
    server.stop()


def test_weekly_reviews_a_supabase_projects_logs(tmp_path, logging_server, management_api):
    api, ca_file = management_api
    api.reset()
    for hours in (30, 20, 2):
        api.logs['postgres_logs'].append(pg_log(hours, 'ERROR', 'permission denied for table invoices', '42501'))
    api.logs['auth_logs'].extend(auth_log(5, 400, remote_addr='203.0.113.7') for _failure in range(12))
    for index in range(100):  # one request in ten answered 500
        api.logs['edge_logs'].append(edge_log(index + 0.5, status_code=500 if index % 10 == 0 else 200))
    inv = inventory(tmp_path, logging_server, log_review_supabase_project_ref=PROJECT_REF,
                    log_review_supabase_access_token=TOKEN, log_review_supabase_api_url=api.url,
                    log_review_supabase_ca_cert=ca_file, log_review_state_dir=str(tmp_path / 'log-review'))
    proc, targets, page = weekly(tmp_path, inv)
    assert TOKEN not in proc.stdout and TOKEN not in page
    assert TOKEN not in (tmp_path / 'reports' / 'latest.json').read_text()
    shop = targets['shop']
    review = shop['log_review']
    assert review['source'] == 'supabase' and review['top_errors'][0]['count'] == 3
    assert review['failed_signins'][0]['address'] == '203.0.113.7'
    assert shop['api_traffic']['requests'] == 100 and shop['api_traffic']['errors_5xx'] == 10
    assert status(shop, 'api_error_rate') == ['critical']  # 10 % of the requests, above 5 %
    assert status(shop, 'auth_failed_signins') == ['warning'] and status(shop, 'supabase_api') == ['ok']
    assert (tmp_path / 'log-review' / 'shop.supabase.json').is_file()
    section = page.split('<section id="errors">')[1].split('</section>')[0]
    assert '<h3>shop <span class="muted">supabase' in section and 'permission denied for table' in section
    assert 'API traffic' in section and '<td>server errors (5xx)</td><td>10.0 % (10)</td>' in section
    assert 'failed sign-ins' in section and '203.0.113.7 (12)' in section
    # the next week: the same error is known
    _proc, targets, _page = weekly(tmp_path, inv)
    assert targets['shop']['log_review']['new_patterns'] == [] and status(targets['shop'], 'log_new_patterns') == ['ok']
