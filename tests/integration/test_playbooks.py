# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as users run it: ansible-playbook, the action group, the daily playbook."""

from __future__ import annotations

import json
import os
import re
import textwrap

import pytest

from modrunner import REPO_ROOT, run_playbook
from pgserver import SUPERUSER_PASSWORD

pytestmark = pytest.mark.usefixtures('server')


def write_inventory(tmp_path, server, dbname, **extra):
    lines = ['all:', '  hosts:', '    app1:', '      ansible_connection: local',
             '      ansible_python_interpreter: "{{ ansible_playbook_python }}"',
             '      appcare_db_host: 127.0.0.1', '      appcare_db_port: %d' % server.port,
             '      appcare_db_user: postgres', '      appcare_db_password: %s' % SUPERUSER_PASSWORD,
             '      appcare_db_name: %s' % dbname, '      appcare_db_ssl_mode: disable']
    lines += ['      %s: %s' % item for item in extra.items()]
    path = tmp_path / 'hosts.yml'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def test_daily_playbook_prints_summary(tmp_path, target):
    inventory = write_inventory(tmp_path, target.server, target.dbname, health_check_size_quota='1MB')
    proc = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'daily.yml'), inventory,
                        extra_vars={'appcare_targets': 'all'})
    assert proc.returncode == 0, proc.stdout
    assert 'app1: overall CRITICAL' in proc.stdout  # the 1MB quota is exceeded
    assert 'database_size' in proc.stdout and 'CRITICAL' in proc.stdout
    assert re.search(r'^ *connections_used +OK ', proc.stdout, re.M), proc.stdout  # columns fit the longest name


def test_daily_playbook_shows_a_down_target_and_goes_on(tmp_path, server, target):
    inventory = write_inventory(tmp_path, server, target.dbname)
    with open(inventory, 'a') as handle:
        handle.write(textwrap.indent(textwrap.dedent('''\
            down1:
              ansible_connection: local
              ansible_python_interpreter: "{{ ansible_playbook_python }}"
              appcare_db_host: 127.0.0.1
              appcare_db_port: 1
              appcare_db_user: postgres
              appcare_db_name: postgres
            '''), '    '))
    proc = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'daily.yml'), inventory,
                        extra_vars={'appcare_targets': 'all'})
    assert proc.returncode == 0, proc.stdout
    assert 'down1: overall CRITICAL' in proc.stdout
    assert 'cannot connect to 127.0.0.1:1' in proc.stdout
    assert 'app1: overall' in proc.stdout


def test_module_defaults_group_and_no_secret_with_vvv(tmp_path, target):
    playbook = tmp_path / 'play.yml'
    playbook.write_text(textwrap.dedent('''\
        - hosts: all
          gather_facts: false
          module_defaults:
            group/appcare.maintenance.postgresql:
              login_host: "{{ appcare_db_host }}"
              login_port: "{{ appcare_db_port }}"
              login_user: "{{ appcare_db_user }}"
              login_password: "{{ appcare_db_password }}"
              login_db: "{{ appcare_db_name }}"
          tasks:
            - name: health
              appcare.maintenance.pg_health_info:
                checks: [database_connection]
              register: out
            - name: wrong password fails
              appcare.maintenance.pg_health_info:
                login_password: "wrong-{{ appcare_db_password }}"
              register: bad
              ignore_errors: true
            - ansible.builtin.assert:
                that:
                  - out.checks[0].status == 'ok'
                  - bad is failed
                  - "'password authentication failed' in bad.msg"
        '''))
    inventory = write_inventory(tmp_path, target.server, target.dbname)
    proc = run_playbook(str(playbook), inventory, options=['-vvv'])
    assert proc.returncode == 0, proc.stdout
    assert 'password authentication failed' in proc.stdout
    assert SUPERUSER_PASSWORD not in proc.stdout  # neither the password nor the wrong one built from it


def test_daily_playbook_backs_up_when_a_destination_is_set(tmp_path, target):
    target.sql('CREATE TABLE applications AS SELECT g AS id FROM generate_series(1, 250) g')
    dest = tmp_path / 'backups'
    inventory = write_inventory(tmp_path, target.server, target.dbname, backup_dest=str(dest))
    proc = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'daily.yml'), inventory,
                        extra_vars={'appcare_targets': 'all'})
    assert proc.returncode == 0, proc.stdout
    backups = [p for p in dest.iterdir() if not p.name.startswith('.')]
    assert len(backups) == 1
    manifest = json.loads((backups[0] / 'manifest.json').read_text())
    assert manifest['row_counts'] == [{'schema': 'public', 'table': 'applications', 'rows': 250}]
    assert 'backup: %s' % backups[0] in proc.stdout
    assert 'verification (catalog): OK - backup_checksum OK, backup_catalog OK, backup_future_dated OK, backup_age OK, backup_encryption OK' in proc.stdout
    assert manifest['verification']['result'] == 'ok' and manifest['verification']['level'] == 'catalog'
    check = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'daily.yml'), inventory,
                         extra_vars={'appcare_targets': 'all'}, options=['--check'])
    assert check.returncode == 0, check.stdout
    assert len([p for p in dest.iterdir() if not p.name.startswith('.')]) == 1


def test_maintenance_results_with_skipped_objects_are_not_read_as_skipped_tasks(tmp_path, target):
    """A result key called "skipped" would make Ansible report the task itself as skipped."""
    target.sql('CREATE TABLE bookings (during int4range, EXCLUDE USING gist (during WITH &&))')
    playbook = tmp_path / 'play.yml'
    playbook.write_text(textwrap.dedent('''\
        - hosts: all
          gather_facts: false
          module_defaults:
            group/appcare.maintenance.postgresql:
              login_host: "{{ appcare_db_host }}"
              login_port: "{{ appcare_db_port }}"
              login_user: "{{ appcare_db_user }}"
              login_password: "{{ appcare_db_password }}"
              login_db: "{{ appcare_db_name }}"
          tasks:
            - name: Rebuild an index that must be skipped
              appcare.maintenance.pg_reindex:
                indexes: [bookings_during_excl]
              register: rebuilt
            - ansible.builtin.assert:
                that:
                  - rebuilt is not skipped
                  - rebuilt.skipped_indexes | length == 1
                  - rebuilt.checks | length == 3
        '''))
    proc = run_playbook(str(playbook), write_inventory(tmp_path, target.server, target.dbname))
    assert proc.returncode == 0, proc.stdout[-3000:]
