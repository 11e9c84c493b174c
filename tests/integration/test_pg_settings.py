# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_settings against real PostgreSQL 18 and 15 servers: check mode writes nothing, the run writes what differs
and reloads (a sighup setting applies at once), a setting applied at start only is reported as needing a restart
until the server restarts, a second run changes nothing, and refused values, names and roles fail clearly."""

from __future__ import annotations

import pytest

from modrunner import run_module

ARCHIVING = {'archive_mode': 'on', 'archive_command': '/bin/true %p', 'archive_timeout': '90s'}


def auto_conf(server):
    """What ALTER SYSTEM wrote, read independently of the module: {name: value} of postgresql.auto.conf."""
    rows = server.execute("SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%%postgresql.auto.conf'")
    return dict(rows)


def running(server, name):
    return server.execute('SELECT setting, pending_restart FROM pg_settings WHERE name = %s', dbname='postgres',
                          args=(name,))[0]


@pytest.fixture
def fresh(spawn_server):
    return spawn_server()


def test_check_mode_then_run_then_restart(fresh):
    args = dict(fresh.login_args(), settings=ARCHIVING)

    planned = run_module('pg_settings', args, check_mode=True)
    assert not planned.failed, planned
    assert planned['changed'] and planned['restart_required'] and planned['pending_restart'] == ['archive_mode']
    assert sorted(c['name'] for c in planned['changes']) == sorted(ARCHIVING)
    assert any(q.startswith('ALTER SYSTEM SET "archive_mode"') for q in planned['queries'])
    assert auto_conf(fresh) == {} and running(fresh, 'archive_timeout')[0] == '0'

    done = run_module('pg_settings', args)
    assert not done.failed, done
    assert done['changed'] and done['reloaded']
    assert auto_conf(fresh) == {'archive_mode': 'on', 'archive_command': '/bin/true %p', 'archive_timeout': '90s'}
    # sighup settings apply at the reload; archive_mode waits for the restart, and pg_settings says so
    assert running(fresh, 'archive_timeout')[0] == '90' and done['settings']['archive_timeout']['setting'] == '90'
    assert running(fresh, 'archive_mode') == ('off', True)
    assert done['restart_required'] and done['pending_restart'] == ['archive_mode']

    again = run_module('pg_settings', args)
    assert not again['changed'] and again['queries'] == [] and not again['reloaded']
    assert again['restart_required'] and again['pending_restart'] == ['archive_mode']

    fresh.stop()
    fresh.start()
    after = run_module('pg_settings', args)
    assert not after['changed'] and not after['restart_required'] and after['pending_restart'] == []
    assert running(fresh, 'archive_mode') == ('on', False)


def test_one_value_many_spellings(fresh):
    args = fresh.login_args()
    first = run_module('pg_settings', dict(args, settings={'archive_timeout': '1min', 'log_checkpoints': 'on'}))
    assert first['changed'] and not first['restart_required'], first
    for timeout, flag in (('1min', True), ('60', 'yes'), ('60s', 'true'), (60, 'on'), ('60000ms', '1')):
        same = run_module('pg_settings', dict(args, settings={'archive_timeout': timeout, 'log_checkpoints': flag}))
        assert not same['changed'], same['changes']
    other = run_module('pg_settings', dict(args, settings={'archive_timeout': '2min'}), check_mode=True)
    assert other['changed'] and other['changes'][0]['before'] == '1min'


def test_reload_off_leaves_the_running_value(fresh):
    result = run_module('pg_settings', dict(fresh.login_args(), settings={'archive_timeout': 30}, reload=False))
    assert result['changed'] and not result['reloaded'] and 'next reload' in result['notes'][0]
    assert auto_conf(fresh) == {'archive_timeout': '30'} and running(fresh, 'archive_timeout')[0] == '0'


@pytest.mark.parametrize('settings, message', [
    ({'no_such_setting': 'on'}, 'setting the server settings failed: unknown setting: no_such_setting'),
    ({'archive_mode': 'maybe'}, 'invalid options: archive_mode: '),
    ({'archive_timeout': '5MB'}, 'invalid options: archive_timeout: '),
    ({'block_size': 4096}, 'invalid options: block_size cannot be set'),
    ({'archive mode; drop': 'on'}, 'invalid options: '),
    ({}, 'invalid options: settings is empty'),
])
def test_refused(server, settings, message):
    result = run_module('pg_settings', dict(server.login_args(), settings=settings))
    assert result.failed and result['msg'].startswith(message), result['msg']


def test_a_role_without_the_right_fails_and_writes_nothing(fresh):
    fresh.execute("CREATE ROLE plain LOGIN PASSWORD 'plain-secret'")
    result = run_module('pg_settings', dict(fresh.login_args(user='plain', password='plain-secret'),
                                            settings={'archive_timeout': 30}))
    assert result.failed and 'permission denied' in result['msg'], result['msg']
    assert 'plain-secret' not in result.raw
    assert auto_conf(fresh) == {}
