# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tiers as users run them: maintenance.yml -e tier=..., every tier in --check (nothing changes), the monthly
optimisation for real, a fleet of 20 targets with one broken, and setup_roles.yml run twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg2
import pytest

from modrunner import REPO_ROOT, ansible_env, run_playbook
from pgserver import SUPERUSER_PASSWORD

PLAYBOOKS = os.path.join(REPO_ROOT, 'playbooks')


def inventory(tmp_path, server, hosts, **common):
    base = {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
            'appcare_db_host': '127.0.0.1', 'appcare_db_port': server.port, 'appcare_db_user': 'postgres',
            'appcare_db_password': SUPERUSER_PASSWORD, 'appcare_db_ssl_mode': 'disable'}
    base.update(common)
    path = tmp_path / 'hosts.json'
    path.write_text(json.dumps({'all': {'children': {'postgres_targets': {'vars': base, 'hosts': hosts}}}}))
    return str(path)


def play(tmp_path, name, inv, extra=None, options=()):
    env = {'APPCARE_REPORT_DIR': str(tmp_path / 'reports')}
    return run_playbook(os.path.join(PLAYBOOKS, name), inv, extra_vars=extra, options=options, env=env,
                        cwd=REPO_ROOT)


def report(tmp_path):
    return json.loads((tmp_path / 'reports' / 'latest.json').read_text())


@pytest.mark.parametrize('extra, message', [({'tier': 'hourly'}, "unknown tier 'hourly'"), (None, 'no tier given')])
def test_maintenance_refuses_an_unknown_tier(tmp_path, server, extra, message):
    inv = inventory(tmp_path, server, {'one': {'appcare_db_name': 'postgres'}})
    proc = play(tmp_path, 'maintenance.yml', inv, extra=extra)
    assert proc.returncode != 0 and message in proc.stdout, proc.stdout[-2000:]
    assert 'run with -e tier=daily, -e tier=weekly, -e tier=monthly or -e tier=quarterly' in proc.stdout


def test_maintenance_runs_the_tier_it_is_given(tmp_path, target):
    inv = inventory(tmp_path, target.server, {'one': {'appcare_db_name': target.dbname}})
    proc = play(tmp_path, 'maintenance.yml', inv, extra={'tier': 'daily'})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'PLAY [Daily maintenance]' in proc.stdout and report(tmp_path)['tier'] == 'daily'


def plant(target):
    target.sql('CREATE TABLE applications (id int PRIMARY KEY, state text, email text) WITH (autovacuum_enabled = false)')
    target.sql("INSERT INTO applications SELECT g, 'submitted', 'same@example.org' FROM generate_series(1, 20000) g")
    target.sql('CREATE INDEX idx_applications_state ON applications (state)')
    with pytest.raises(psycopg2.Error):
        target.sql('CREATE UNIQUE INDEX CONCURRENTLY applications_email_key ON applications (email)')
    target.sql('DELETE FROM applications WHERE id % 2 = 0')


def state_of(target, tmp_path):
    rows = target.sql("SELECT c.relname, c.relfilenode, i.indisvalid FROM pg_index i JOIN pg_class c "
                      "ON c.oid = i.indexrelid WHERE i.indrelid = 'applications'::regclass ORDER BY 1")
    stats = target.sql("SELECT vacuum_count, analyze_count FROM pg_stat_user_tables WHERE relname = 'applications'")
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*')
                   if 'reports' not in p.parts and p.name != 'hosts.json')
    return rows, stats, files


@pytest.mark.parametrize('tier', ['daily', 'weekly', 'monthly', 'quarterly'])
def test_every_tier_in_check_mode_changes_nothing(tmp_path, target, tier):
    plant(target)
    (tmp_path / 'backups').mkdir()
    inv = inventory(tmp_path, target.server, {'one': {'appcare_db_name': target.dbname}},
                    backup_dest=str(tmp_path / 'backups'), performance_review_history_dir=str(tmp_path / 'history'),
                    security_audit_baseline_dir=str(tmp_path / 'access'),
                    db_optimize_reindex_indexes=['idx_applications_state'], db_optimize_min_index_size='0')
    before = state_of(target, tmp_path)
    proc = play(tmp_path, '%s.yml' % tier, inv, options=['--check'])
    assert proc.returncode in (0, 2), proc.stdout[-3000:]
    assert state_of(target, tmp_path) == before, 'the %s tier changed something in --check mode' % tier
    assert report(tmp_path)['tier'] == tier


def test_monthly_optimises_for_real_and_is_idempotent(tmp_path, target):
    plant(target)
    target.sql("UPDATE applications SET email = id || '@example.org'")  # now the unique index can be rebuilt
    target.sql('ANALYZE applications')
    inv = inventory(tmp_path, target.server, {'one': {'appcare_db_name': target.dbname}},
                    db_optimize_reindex_indexes=['idx_applications_state'], db_optimize_min_index_size='0')
    proc = play(tmp_path, 'monthly.yml', inv)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rows = target.sql("SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                      "WHERE i.indrelid = 'applications'::regclass")
    valid = dict((r[0], r[1]) for r in rows)
    assert valid == {'applications_pkey': True, 'idx_applications_state': True, 'applications_email_key': True}
    assert target.sql("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'applications'")[0][0] == 0
    actions = report(tmp_path)['targets'][0]['actions']
    assert {a['result'] for a in actions} == {'done'} and len(actions) >= 3
    again = play(tmp_path, 'monthly.yml', inv, extra={'db_optimize_reindex_indexes': []})
    assert again.returncode == 0 and 'changed=0' in again.stdout.split('PLAY RECAP')[-1], again.stdout[-2000:]


def test_fleet_of_twenty_with_one_broken_target(tmp_path, server):
    names = ['fleet_%02d' % i for i in range(20)]
    for name in names:
        server.execute('DROP DATABASE IF EXISTS %s' % name)
        server.execute('CREATE DATABASE %s' % name)
        server.execute('CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 100) g', name)
    try:
        hosts = dict((name, {'appcare_db_name': name}) for name in names)
        hosts['broken'] = {'appcare_db_name': 'postgres', 'appcare_db_port': 1}
        inv = inventory(tmp_path, server, hosts, backup_dest=str(tmp_path / 'backups' / '{{ inventory_hostname }}'))
        proc = play(tmp_path, 'daily.yml', inv, options=['--forks', '10'])
        assert proc.returncode == 2, proc.stdout[-3000:]  # the broken target's backup failed
        result = dict((t['name'], t) for t in report(tmp_path)['targets'])
        assert len(result) == 21
        assert result['broken']['status'] == 'critical' and result['broken']['failures']
        for name in names:
            assert result[name]['backup']['verified'] == 'ok', result[name]
            assert not result[name].get('failures')
        with_backup = [p.name for p in (tmp_path / 'backups').iterdir() if list(p.glob('*/manifest.json'))]
        assert sorted(with_backup) == names
    finally:
        for name in names:
            server.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)


def test_setup_roles_is_idempotent(tmp_path, target):
    inv = inventory(tmp_path, target.server, {'one': {'appcare_db_name': target.dbname}},
                    appcare_monitor_role='fleet_monitor', appcare_monitor_password='monitor-pw-1',
                    appcare_maintenance_role='fleet_maint', appcare_maintenance_password='maint-pw-2')
    try:
        first = play(tmp_path, 'setup_roles.yml', inv)
        assert first.returncode == 0 and 'changed=1' in first.stdout.split('PLAY RECAP')[-1], first.stdout[-2000:]
        second = play(tmp_path, 'setup_roles.yml', inv)
        assert second.returncode == 0 and 'changed=0' in second.stdout.split('PLAY RECAP')[-1], second.stdout[-2000:]
        member = dict(target.sql("SELECT u.rolname, array_agg(r.rolname ORDER BY r.rolname) FROM pg_auth_members m "
                                 "JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member "
                                 "WHERE u.rolname IN ('fleet_monitor', 'fleet_maint') GROUP BY 1"))
        assert member['fleet_monitor'] == ['pg_monitor']
        expected = ['pg_monitor', 'pg_read_all_data'] + (['pg_maintain'] if target.server.version >= '17' else [])
        assert sorted(member['fleet_maint']) == sorted(expected)
        conn = psycopg2.connect(host='127.0.0.1', port=target.server.port, user='fleet_monitor', password='monitor-pw-1',
                                dbname=target.dbname)
        conn.close()
        assert 'monitor-pw-1' not in first.stdout and 'maint-pw-2' not in first.stdout
    finally:
        for role in ('fleet_monitor', 'fleet_maint'):
            target.sql("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                       "EXECUTE 'DROP OWNED BY %s'; EXECUTE 'DROP ROLE %s'; END IF; END $$" % (role, role, role))


def test_example_inventory_is_a_working_template():
    bindir = os.path.dirname(sys.executable)
    listed = subprocess.run([os.path.join(bindir, 'ansible-inventory'), '-i', 'inventories/example', '--list'],
                            capture_output=True, text=True, cwd=REPO_ROOT, env=ansible_env(), check=True)
    hostvars = json.loads(listed.stdout)['_meta']['hostvars']
    assert set(hostvars) == {'ims-supabase', 'crm-production'}
    assert hostvars['ims-supabase']['backup_preset'] == 'supabase'
    assert hostvars['crm-production']['appcare_db_name'] == 'crm'
    for name, host in hostvars.items():  # verify-full checks the server against a CA file: every such target names one
        if host['appcare_db_ssl_mode'] in ('verify-ca', 'verify-full'):
            assert host.get('appcare_db_ca_cert'), '%s verifies the server without appcare_db_ca_cert' % name
    for tier in ('daily', 'weekly', 'monthly', 'quarterly', 'maintenance', 'setup_roles'):
        check = subprocess.run([os.path.join(bindir, 'ansible-playbook'), '-i', 'inventories/example', '--syntax-check',
                                'playbooks/%s.yml' % tier, '-e', 'tier=daily'],
                               capture_output=True, text=True, cwd=REPO_ROOT, env=ansible_env(), check=False)
        assert check.returncode == 0, check.stdout + check.stderr


def test_every_tier_shows_the_key_figures_and_only_the_roles_that_ran(tmp_path, target):
    inv = inventory(tmp_path, target.server, {'one': {'appcare_db_name': target.dbname}})
    daily = play(tmp_path, 'daily.yml', inv)
    assert daily.returncode == 0, daily.stdout[-3000:]
    first = report(tmp_path)['targets'][0]['kpis']
    assert {'DB latency', 'Connections used', 'Cache hit', 'Database size'} <= set(first)
    assert not any(item.get('stale') for item in first.values())  # measured in this run
    page = (tmp_path / 'reports' / 'latest.html').read_text()
    assert 'This daily run: roles health_check, report' in page  # no backup_dest: backup and backup_verify skipped
    state = json.loads((tmp_path / 'reports' / 'kpis.json').read_text())
    assert state['format'] == 'appcare.kpis/1' and state['targets']['one']['DB latency']['value'] == first['DB latency']['value']
    monthly = play(tmp_path, 'monthly.yml', inv)  # runs no health check
    assert monthly.returncode == 0, monthly.stdout[-3000:]
    kpis = report(tmp_path)['targets'][0]['kpis']
    for label in ('DB latency', 'Connections used', 'Cache hit', 'Database size'):
        assert kpis[label]['value'] == first[label]['value'] and kpis[label]['stale'] is True, kpis[label]
        assert 0 <= kpis[label]['age_hours'] < 1 and kpis[label]['measured_at']
    page = (tmp_path / 'reports' / 'latest.html').read_text()
    kpi_section = page.split('<section id="kpis">')[1].split('</section>')[0]
    assert kpi_section.count(' min ago') >= 4 and 'not measured in this run' in kpi_section
    assert 'This monthly run: roles db_optimize, app_review, report' in page and 'backup_verify' not in page.split('This monthly run')[1]
