# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' connection settings (appcare_db_* inventory variables, applied by the private role
appcare.maintenance._connection) end to end: verify-full with a CA file against a real PostgreSQL with ssl = on
(the distribution's server - the embedded PostgreSQL 18 has no SSL), through a tier playbook and through a role in
a user's own play; a CA that did not sign the server's certificate; the Unix socket and the connect timeout."""

from __future__ import annotations

import json
import os
import re
import textwrap
import uuid

import pytest

from conftest import DISTRO, _bindir
from modrunner import REPO_ROOT, run_playbook
from pgserver import SUPERUSER_PASSWORD, PgServer
from webserver import CertificateAuthority


@pytest.fixture(scope='module')
def tls_server():
    """ssl = on with a server certificate for 127.0.0.1 signed by the CA the harness makes (ca_file), and every
    TCP connection without TLS refused; log_connections shows how each module's session came in."""
    srv = PgServer(_bindir(DISTRO), tls_only=True, settings={'log_connections': 'on'})
    try:
        srv.start()
    except Exception:
        srv.cleanup()
        raise
    yield srv
    srv.cleanup()


@pytest.fixture
def dbname(tls_server):
    name = 'conn_' + uuid.uuid4().hex[:8]
    tls_server.execute('CREATE DATABASE %s' % name)
    yield name
    tls_server.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)


def inventory(tmp_path, server, dbname, **connection):
    host = {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
            'appcare_db_host': '127.0.0.1', 'appcare_db_port': server.port, 'appcare_db_user': 'postgres',
            'appcare_db_password': SUPERUSER_PASSWORD, 'appcare_db_name': dbname}
    host.update(connection)
    path = tmp_path / 'hosts.json'
    path.write_text(json.dumps({'all': {'children': {'postgres_targets': {'hosts': {'app1': host}}}}}))
    return str(path)


def own_play(tmp_path, role):
    """The role in a user's own play: no tier playbook, no play-level module_defaults."""
    path = tmp_path / 'own_play.yml'
    path.write_text(textwrap.dedent('''\
        - name: A user's own play
          hosts: postgres_targets
          gather_facts: false
          roles:
            - role: appcare.maintenance.%s
        ''' % role))
    return str(path)


def play(tmp_path, playbook, inv):
    return run_playbook(playbook, inv, env={'APPCARE_REPORT_DIR': str(tmp_path / 'reports')})


def daily(tmp_path, inv):
    return play(tmp_path, os.path.join(REPO_ROOT, 'playbooks', 'daily.yml'), inv)


def finding(tmp_path, name):
    checks = json.loads((tmp_path / 'reports' / 'latest.json').read_text())['targets'][0]['checks']
    found = [c for c in checks if c['name'] == name]
    assert len(found) == 1, checks
    return found[0]


def tls_sessions(server, dbname, module):
    """The log lines of the sessions ``module`` opened in ``dbname`` that came in over TLS."""
    pattern = re.compile(r'connection authorized: user=postgres database=%s application_name=appcare\.maintenance\.%s '
                         r'SSL enabled \(protocol=TLSv1\.[23]' % (dbname, module))
    return [line for line in server.log().splitlines() if pattern.search(line)]


def test_verify_full_with_the_ca_connects_over_tls(tls_server, dbname, tmp_path):
    inv = inventory(tmp_path, tls_server, dbname, appcare_db_ssl_mode='verify-full',
                    appcare_db_ca_cert=tls_server.ca_file)
    proc = daily(tmp_path, inv)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert finding(tmp_path, 'database_connection')['status'] == 'ok'
    assert tls_sessions(tls_server, dbname, 'pg_health_info'), tls_server.log()[-3000:]
    # the same inventory, a role in a user's own play
    proc = play(tmp_path, own_play(tmp_path, 'security_audit'), inv)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert tls_sessions(tls_server, dbname, 'pg_audit_info'), tls_server.log()[-3000:]


def test_verify_full_with_a_ca_that_did_not_sign_the_certificate_fails(tls_server, dbname, tmp_path):
    other = CertificateAuthority(str(tmp_path / 'other-ca'), name='another CA')
    inv = inventory(tmp_path, tls_server, dbname, appcare_db_ssl_mode='verify-full', appcare_db_ca_cert=other.ca_file)
    expected = 'cannot connect to 127.0.0.1:%d as postgres (database %s)' % (tls_server.port, dbname)
    proc = play(tmp_path, own_play(tmp_path, 'security_audit'), inv)
    assert proc.returncode != 0
    assert expected in proc.stdout and 'certificate verify failed' in proc.stdout, proc.stdout[-3000:]
    # the daily tier goes on and reports the target as critical, for the same reason
    proc = daily(tmp_path, inv)
    assert proc.returncode == 0, proc.stdout[-3000:]
    connection = finding(tmp_path, 'database_connection')
    assert connection['status'] == 'critical', connection
    assert expected in connection['message'] and 'certificate verify failed' in connection['message'], connection
    assert not tls_sessions(tls_server, dbname, 'pg_health_info')


def test_unix_socket_and_connect_timeout_reach_the_modules(tls_server, dbname, tmp_path):
    # the socket wins over the host, which does not resolve
    inv = inventory(tmp_path, tls_server, dbname, appcare_db_host='db.invalid', appcare_db_unix_socket=tls_server.base_dir,
                    appcare_db_ssl_mode='disable', appcare_db_connect_timeout=3)
    proc = play(tmp_path, own_play(tmp_path, 'security_audit'), inv)
    assert proc.returncode == 0, proc.stdout[-3000:]
    inv = inventory(tmp_path, tls_server, dbname, appcare_db_connect_timeout=0)
    proc = play(tmp_path, own_play(tmp_path, 'security_audit'), inv)
    assert proc.returncode != 0 and 'connect_timeout must be at least 1 second, got 0' in proc.stdout, proc.stdout[-3000:]
