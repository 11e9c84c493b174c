# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure parts of module_utils/pgbackrest.py: versions, error text, info checking, the window, archive state."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import pgbackrest as B
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError, DependencyError

NOW = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.timezone.utc)
T = int(NOW.timestamp())


def backup(label, kind, start, stop):
    return {'label': label, 'type': kind, 'timestamp': {'start': start, 'stop': stop},
            'info': {'size': 10, 'delta': 10, 'repository': {'size': 5, 'delta': 5}}, 'database': {'repo-key': 1}}


def entry(backups, wal_max='000000010000000000000010', code=0):
    return {'name': 's', 'status': {'code': code, 'message': 'ok'}, 'repo': [{'key': 1, 'status': {'code': code}}],
            'archive': [{'min': '000000010000000000000001', 'max': wal_max}], 'backup': backups}


@pytest.mark.parametrize('text, expected', [('pgBackRest 2.45', (2, 45, 0)), ('2.55.1', (2, 55, 1)), ('none', None)])
def test_parse_version(text, expected):
    assert B.parse_version(text) == expected


@pytest.mark.parametrize('version, server, ok', [((2, 45, 0), 150004, True), ((2, 45, 0), 180001, False),
                                                 ((2, 55, 0), 180001, True), ((2, 30, 0), 180001, True)])
def test_check_pg_supported(version, server, ok):
    if ok:
        B.check_pg_supported(version, server)
    else:
        with pytest.raises(DependencyError, match='up to 15, but the server is PostgreSQL 18: install pgBackRest 2.55'):
            B.check_pg_supported(version, server)


def test_stderr_parsing_and_failure_text():
    errors, hints, _warn = B._parse_stderr('ERROR: [037]: backup command requires option: pg1-path\n'
                                           '       HINT: does this stanza exist?\n')
    assert errors == ['backup command requires option: pg1-path'] and hints == ['does this stanza exist?']


@pytest.mark.parametrize('options', [{'repo1-cipher-pass': 'x'}, {'Bad Name': 1}, {'stanza': 'x'}, {'pg1-port': [1]}])
def test_validate_options_refuses(options):
    with pytest.raises(ConfigurationError):
        B.validate_options({'stanza': 'main', 'options': options})


def test_parse_info_refuses_truncated_and_malformed():
    good = [entry([backup('a', 'full', T - 100, T - 50)])]
    text = json.dumps(good)
    assert B.parse_info(text, 's')['backup'][0]['label'] == 'a'
    with pytest.raises(B.PgBackRestError, match='not valid JSON'):
        B.parse_info(text[:-3], 's')
    bad = json.loads(text)
    bad[0]['backup'][0]['timestamp']['stop'] = T - 200
    with pytest.raises(B.PgBackRestError, match='before it started'):
        B.parse_info(json.dumps(bad), 's')
    with pytest.raises(B.PgBackRestError, match='0 entries'):
        B.parse_info(text, 'other')


def test_future_backups_are_not_fresh_and_window():
    e = entry([backup('f', 'full', T - 7200, T - 7000), backup('i', 'incr', T - 3600, T - 3500),
               backup('x', 'full', T + 9000, T + 9100)])
    usable, future = B.split_backups(e, NOW)
    assert [b['label'] for b in usable] == ['f', 'i'] and [b['label'] for b in future] == ['x']
    archiver = {'last_archived_at': NOW - datetime.timedelta(seconds=30), 'last_archived_wal': '000000010000000000000010'}
    window = B.recoverable_window(e, archiver, NOW)
    assert window['start'] == '2026-11-30T10:03:20.000000Z' and window['end_source'] == 'last archived WAL'
    # The server archived a segment the repository does not hold: the window ends with the newest backup.
    window = B.recoverable_window(entry(e['backup'], wal_max='00000001000000000000000F'), archiver, NOW)
    assert window['end_source'] == 'newest backup'


def test_settle_waiting():
    seg = 16 * 1024 * 1024
    state = {'last_archived_wal': '000000010000000000000002', '_lsn_bytes': 3 * seg + 40, '_segment_size': seg}
    assert not B.settle_waiting(dict(state), None)['wal_waiting']
    assert B.settle_waiting(dict(state, _lsn_bytes=3 * seg + 5000), None)['wal_waiting']
    # A .backup file names no segment; the repository's newest does.
    state = dict(state, last_archived_wal='000000010000000000000002.00000028.backup', _lsn_bytes=3 * seg + 40)
    assert not B.settle_waiting(state, '000000010000000000000002')['wal_waiting']


def test_archive_age_finding():
    th = C.merge_thresholds(B.DEFAULT_THRESHOLDS, {})
    base = {'archive_mode': 'on', 'last_archived_at': NOW - datetime.timedelta(seconds=900),
            'last_archived_wal': 'w', 'archive_timeout': 60}
    assert B.archive_age_finding(th, dict(base, wal_waiting=False), NOW)['status'] == C.OK
    assert B.archive_age_finding(th, dict(base, wal_waiting=True), NOW)['status'] == C.WARNING
    assert B.archive_age_finding(th, dict(base, wal_waiting=True, failing=True, failed_count=3), NOW)['status'] == C.CRITICAL
    future = dict(base, last_archived_at=NOW + datetime.timedelta(hours=2), wal_waiting=True)
    assert B.archive_age_finding(th, future, NOW)['status'] == C.CRITICAL
    assert B.archive_age_finding(th, dict(base, archive_mode='off'), NOW)['status'] == C.CRITICAL
    assert B.archive_thresholds(th, {}, 60)['archive_age']['warning'] == 120


def test_stanza_finding_levels():
    assert B.stanza_finding(entry([], code=0), 's')['status'] == C.OK
    assert B.stanza_finding(entry([], code=2), 's')['status'] == C.CRITICAL
    mixed = entry([], code=4)
    mixed['repo'] = [{'key': 1, 'status': {'code': 0, 'message': 'ok'}}, {'key': 2, 'status': {'code': 0}}]
    assert B.stanza_finding(mixed, 's')['status'] == C.WARNING
