# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup_verify's pure parts: picking the backup, checksums, smoke query validation, RPO."""

from __future__ import annotations

import datetime
import hashlib
import json
import os

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import store as S
from ansible_collections.appcare.maintenance.plugins.module_utils import verify as V
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError


def make_backup(root, name, database, finished, content=b'PGDMP data', verification=None):
    name = '%s-%s' % (name, finished[:10].replace('-', '') + 'T000000Z') if not name[-1] == 'Z' else name
    path = os.path.join(root, name)
    os.makedirs(path)
    with open(os.path.join(path, 'database.dump'), 'wb') as handle:
        handle.write(content)
    manifest = {'format_version': 2, 'id': name, 'database': database, 'finished_at': finished,
                'files': [{'path': 'database.dump', 'bytes': len(content),
                           'sha256': hashlib.sha256(content).hexdigest()}],
                'verifications': [dict(verification, level='restore', at=finished)] if verification else []}
    with open(os.path.join(path, 'manifest.json'), 'w') as handle:
        json.dump(manifest, handle)
    return path, manifest


def test_pick_latest_of_a_database(tmp_path):
    make_backup(str(tmp_path), 'a', 'a', '2026-01-01T00:00:00.000000Z')
    newest_a = make_backup(str(tmp_path), 'a', 'a', '2026-01-03T00:00:00.000000Z')[0]
    newest = make_backup(str(tmp_path), 'b', 'b', '2026-01-04T00:00:00.000000Z')[0]
    assert S.pick_backup('latest', str(tmp_path))[0] == newest
    assert S.pick_backup('latest', str(tmp_path), 'a')[0] == newest_a
    with pytest.raises(S.BackupError, match='no complete backup of database c'):
        S.pick_backup('latest', str(tmp_path), 'c')
    with pytest.raises(ConfigurationError, match='needs dest'):
        S.pick_backup('latest', None)
    with pytest.raises(S.BackupError, match='does not exist'):
        S.pick_backup(str(tmp_path / 'missing'), None)


def test_newest_good_skips_failed_verifications(tmp_path):
    make_backup(str(tmp_path), 'a', 'a', '2026-01-01T00:00:00.000000Z', verification={'result': 'ok'})
    make_backup(str(tmp_path), 'a', 'a', '2026-01-02T00:00:00.000000Z', verification={'result': 'failed'})
    backups = S.scan(str(tmp_path)).backups
    assert S.newest_good(backups, 'a')['id'] == 'a-20260101T000000Z'
    assert S.newest_good(backups, 'zzz') is None


def test_checksum_problems(tmp_path):
    path, manifest = make_backup(str(tmp_path), 'x', 'a', '2026-01-01T00:00:00.000000Z')
    assert S.verify_checksums(path, manifest) == []
    with open(os.path.join(path, 'database.dump'), 'r+b') as handle:
        handle.write(b'X')
    assert S.verify_checksums(path, manifest) == [('database.dump', 'sha256 differs from the manifest')]
    with open(os.path.join(path, 'database.dump'), 'ab') as handle:
        handle.write(b'more')
    assert 'size' in S.verify_checksums(path, manifest)[0][1]
    os.unlink(os.path.join(path, 'database.dump'))
    assert 'unreadable' in S.verify_checksums(path, manifest)[0][1]
    assert S.verify_checksums(path, dict(manifest, files=[])) == [('manifest.json', 'lists no files')]


@pytest.mark.parametrize('queries, fragment', [
    ([{'name': 'x'}], 'needs a query string'),
    (['SELECT 1'], 'needs a query string'),
    ([{'query': 'SELECT 1', 'expected': 1}], 'unknown key'),
    ([{'query': 'SELECT 1', 'expect': 1, 'min_rows': 1}], 'expect or min_rows, not both'),
    ([{'query': 'SELECT 1', 'min_rows': -1}], 'min_rows must be'),
])
def test_smoke_query_validation(queries, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        V.validate_smoke_queries(queries)


def test_valid_smoke_queries_pass():
    V.validate_smoke_queries([{'query': 'SELECT 1', 'expect': 1}, {'name': 'n', 'query': 'SELECT 1', 'min_rows': 0}])


@pytest.mark.parametrize('hours, status', [(1, 'ok'), (20, 'warning'), (25, 'critical')])
def test_backup_age_against_rpo(hours, status):
    entry = {'id': 'b', 'finished_at': datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)}
    assert S.age_check('backup_age', hours, 24, entry)['status'] == status


def test_scratch_lock_key_is_stable():
    assert V.scratch_lock_key('appcare_verify_ims') == V.scratch_lock_key('appcare_verify_ims')
    assert 0 <= V.scratch_lock_key('x') < 2 ** 31
