# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_audit_info's pure parts: the server log parser (stderr and jsonlog formats, addresses, time window,
time zones) and the access snapshot diff."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import access as AC
from ansible_collections.appcare.maintenance.plugins.module_utils import authlog as AL
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

SINCE = datetime.datetime(2026, 11, 20, tzinfo=datetime.timezone.utc)


def parse(tmp_path, text, zone='UTC', since=SINCE):
    path = tmp_path / 'postgresql.log'
    path.write_text(text)
    parser = AL.FailedLogins(since, zone)
    parser.feed_file(str(path))
    return parser


def test_default_prefix_with_log_connections(tmp_path):
    parser = parse(tmp_path, (
        '2026-11-23 10:00:00.100 UTC [101] LOG:  connection received: host=203.0.113.9 port=51000\n'
        '2026-11-23 10:00:00.120 UTC [101] FATAL:  password authentication failed for user "postgres"\n'
        '2026-11-23 10:00:00.121 UTC [101] DETAIL:  Connection matched file "pg_hba.conf" line 3\n'
        '2026-11-23 10:00:01.100 UTC [102] LOG:  connection received: host=10.0.0.5 port=51001\n'
        '2026-11-23 10:00:01.120 UTC [102] FATAL:  password authentication failed for user "app ""quoted"""\n'
        '2026-11-23 10:00:02.000 UTC [103] FATAL:  no pg_hba.conf entry for host "198.51.100.1", user "root", '
        'database "postgres", no encryption\n'
        '2026-11-19 09:00:00.000 UTC [99] FATAL:  password authentication failed for user "old"\n'
        '2026-11-23 10:00:03.000 UTC [104] FATAL:  database "nope" does not exist\n'))
    by_address = dict((row['address'], row) for row in parser.by_address())
    assert set(by_address) == {'203.0.113.9', '10.0.0.5', '198.51.100.1'}
    assert by_address['10.0.0.5']['users'] == ['app "quoted"']
    assert by_address['198.51.100.1']['users'] == ['root']
    assert by_address['203.0.113.9']['first'] == '2026-11-23T10:00:00.120000+00:00'
    assert 'old' not in parser.by_user()  # before the window


def test_host_in_prefix_and_local_time_zone(tmp_path):
    parser = parse(tmp_path, (
        '2026-11-23 11:00:00 CET [7] app@ims 192.0.2.44(50312) FATAL:  password authentication failed for user "app"\n'
        '2026-11-23 11:00:00 CET [8] app@ims [local] FATAL:  password authentication failed for user "app"\n'),
        zone='Europe/Berlin')
    rows = parser.by_address()
    assert [(r['address'], r['failures']) for r in rows] == [('192.0.2.44', 1), ('unknown', 1)]
    assert rows[0]['first'] == '2026-11-23T11:00:00+01:00'


def test_jsonlog(tmp_path):
    lines = [
        {'timestamp': '2026-11-23 10:00:00.000 UTC', 'pid': 5, 'remote_host': '203.0.113.7', 'error_severity': 'FATAL',
         'message': 'password authentication failed for user "admin"'},
        {'timestamp': '2026-11-23 10:00:01.000 UTC', 'pid': 6, 'error_severity': 'LOG',
         'message': 'connection received: host=203.0.113.8 port=1'},
        {'timestamp': '2026-11-23 10:00:01.100 UTC', 'pid': 6, 'error_severity': 'FATAL',
         'message': 'password authentication failed for user "admin"'},
    ]
    parser = parse(tmp_path, '\n'.join(json.dumps(line) for line in lines) + '\nnot json at all\n')
    assert sorted(r['address'] for r in parser.by_address()) == ['203.0.113.7', '203.0.113.8']
    assert parser.by_user() == {'admin': 2}


def test_log_directory_reads_recent_files(tmp_path):
    (tmp_path / 'a.log').write_text('x\n')
    (tmp_path / 'b.log').write_text('y\n')
    files = AL.log_files(str(tmp_path), datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
    assert sorted(f.rsplit('/', 1)[-1] for f in files) == ['a.log', 'b.log']
    assert AL.log_files(str(tmp_path), datetime.datetime(2999, 1, 1, tzinfo=datetime.timezone.utc)) == []


def snapshot(roles, grants):
    return {'format': AC.SNAPSHOT_FORMAT, 'taken_at': '2026-11-16T02:00:00+00:00', 'roles': roles, 'grants': grants}


def role(**attributes):
    base = dict(superuser=False, login=True, inherit=True, createrole=False, createdb=False, replication=False,
                bypassrls=False, connection_limit=-1, valid_until=None, member_of=[])
    base.update(attributes)
    return base


def test_diff_and_findings():
    old = snapshot({'app': role(), 'gone': role()}, ['SELECT ON table public.a TO app', 'USAGE ON schema public TO PUBLIC'])
    new = snapshot({'app': role(createdb=True, member_of=['pg_monitor']), 'boss': role(superuser=True)},
                   ['USAGE ON schema public TO PUBLIC', 'ALL ON table public.a TO boss'])
    changes = AC.diff(old, new)
    assert changes['roles_added'] == ['boss'] and changes['roles_removed'] == ['gone']
    assert changes['new_superusers'] == ['boss']
    assert changes['role_attributes_changed'] == ['app: createdb False -> True']
    assert changes['memberships_changed'] == ['app: granted pg_monitor']
    assert changes['grants_added'] == ['ALL ON table public.a TO boss']
    assert changes['grants_removed'] == ['SELECT ON table public.a TO app']
    result = dict((f['name'], f) for f in AC.findings(changes, old, AC.ALL_BASELINE_CHECKS, 'ims'))
    assert result['new_superusers']['status'] == 'critical'
    assert result['grants_changed']['value'] == 2 and '+ ALL ON table public.a TO boss' in result['grants_changed']['message']
    assert 'since 2026-11-16T02:00:00+00:00' in result['roles_added']['message']
    unchanged = AC.findings(AC.diff(old, old), old, AC.ALL_BASELINE_CHECKS, 'ims')
    assert set(f['status'] for f in unchanged) == {'ok'} and len(unchanged) == 6


def test_long_change_lists_are_cut_in_messages():
    old = snapshot({}, [])
    new = snapshot({}, ['SELECT ON table public.t%d TO x' % i for i in range(30)])
    result = AC.findings(AC.diff(old, new), old, ['grants_changed'], 'ims')[0]
    assert result['value'] == 30 and '... and 10 more' in result['message']


@pytest.mark.parametrize('value', [{'format': 'other'}, [], 'not/a/file.json', {'format': AC.SNAPSHOT_FORMAT}])
def test_bad_baselines_are_refused(value):
    with pytest.raises(ConfigurationError):
        AC.load_baseline(value)
