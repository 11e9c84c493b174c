# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The severity option against a real server: a fired finding takes the level the inventory gives its check, a
quiet one stays ok, a bad level is refused before anything connects, and the roles pass appcare_severity."""

from __future__ import annotations

import os
import re

from modrunner import REPO_ROOT, run_playbook
from pgserver import SUPERUSER_PASSWORD


def test_severity_changes_a_fired_finding_and_leaves_a_quiet_one(target):
    plain = target.run(checks=['database_size', 'connections_used'], size_quota='1MB')
    assert plain.rc == 0, plain.raw
    assert plain.check('database_size')['status'] == 'critical'  # every database is larger than 1 MB
    assert plain.check('connections_used')['status'] == 'ok'
    assert 'default_status' not in plain.check('database_size')

    lowered = target.run(checks=['database_size', 'connections_used'], size_quota='1MB',
                         severity={'database_size': 'info', 'connections_used': 'critical'})
    assert lowered.rc == 0, lowered.raw
    size = lowered.check('database_size')
    assert size['status'] == 'info' and size['default_status'] == 'critical'
    assert lowered.check('connections_used')['status'] == 'ok'  # found nothing: an override does not invent a problem
    assert lowered['status'] == 'info'


def test_a_bad_severity_is_refused_before_connecting(target):
    result = target.run(checks=['database_size'], severity={'database_size': 'ok'}, login_port=1)
    assert result.failed
    assert 'invalid options: severity.database_size must be one of info, warning, critical' in result['msg']


def test_the_roles_pass_appcare_severity(tmp_path, target):
    server = target.server
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text('\n'.join([
        'all:', '  hosts:', '    app1:', '      ansible_connection: local',
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"',
        '      appcare_db_host: 127.0.0.1', '      appcare_db_port: %d' % server.port,
        '      appcare_db_user: postgres', '      appcare_db_password: %s' % SUPERUSER_PASSWORD,
        '      appcare_db_name: %s' % target.dbname, '      appcare_db_ssl_mode: disable',
        '      health_check_size_quota: 1MB', '      appcare_severity: {database_size: warning}']) + '\n')
    proc = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'daily.yml'), str(inventory),
                        extra_vars={'appcare_targets': 'all'}, env={'APPCARE_REPORT_DIR': str(tmp_path / 'reports')})
    assert proc.returncode == 0, proc.stdout
    assert re.search(r'database_size\s+WARNING', proc.stdout), proc.stdout
    assert not re.search(r'database_size\s+CRITICAL', proc.stdout), proc.stdout
