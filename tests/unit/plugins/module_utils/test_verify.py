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


def platform_part(**overrides):
    part = {'name': 'platform', 'file': 'platform.dump', 'row_counts': [{'schema': 'auth', 'table': 'users', 'rows': 2}],
            'proofs': [{'name': 'backup_auth_users', 'schema': 'auth', 'table': 'users', 'columns': ['id'], 'rows': 2,
                        'sha256': 'ab'}]}
    part.update(overrides)
    return part


def test_archives_put_the_platform_part_first_and_keep_old_manifests_as_they_were(tmp_path):
    path = str(tmp_path)
    old = {'dump': 'database.dump', 'row_counts': [{'schema': 'public', 'table': 't', 'rows': 1}]}
    found, problems = V.archives(path, old)
    assert problems == [] and [a['name'] for a in found] == ['application']
    assert found[0]['path'] == os.path.join(path, 'database.dump') and found[0]['proofs'] == []
    found, problems = V.archives(path, dict(old, parts=[{'name': 'application'}, platform_part(), {'name': 'roles'}]))
    assert problems == [] and [a['name'] for a in found] == ['platform', 'application']
    assert found[0]['path'] == os.path.join(path, 'platform.dump') and found[0]['proofs'][0]['name'] == 'backup_auth_users'


@pytest.mark.parametrize('part, problem', [
    (platform_part(file='../x.dump'), 'names no plain file name'),
    (platform_part(file='/etc/passwd'), 'names no plain file name'),
    (platform_part(row_counts={'auth.users': 2}), 'malformed row counts'),
    (platform_part(proofs=[{'name': 'anything', 'schema': 'auth', 'table': 'users', 'columns': ['id'], 'rows': 1,
                            'sha256': 'x'}]), 'malformed proofs'),
    (platform_part(proofs=[{'name': 'backup_x', 'schema': 'auth', 'table': 'users', 'columns': [], 'rows': 1,
                            'sha256': 'x'}]), 'malformed proofs'),
])
def test_archives_name_a_malformed_platform_part(tmp_path, part, problem):
    found, problems = V.archives(str(tmp_path), {'dump': 'database.dump', 'parts': [part]})
    assert [a['name'] for a in found] == ['application']
    assert len(problems) == 1 and problem in problems[0]


def test_restore_steps_order_the_parts_by_what_depends_on_what():
    platform, application = {'name': 'platform'}, {'name': 'application'}
    assert V.restore_steps([application]) == [(application, None)]
    assert V.restore_steps([platform, application]) == [
        (platform, ['pre-data', 'data']), (application, ['pre-data', 'data']),
        (platform, ['post-data']), (application, ['post-data'])]


def test_restored_db_needs_the_restore_level():
    params = {'jobs': 1, 'rto_minutes': 60, 'rpo_hours': 24, 'scratch_db': None, 'smoke_queries': [],
              'restored_db': 'postgres', 'level': 'catalog', 'decryption_key_file': None,
              'decryption_passphrase_file': None}
    with pytest.raises(ConfigurationError, match='restored_db checks a restore: it needs level: restore'):
        V.validate(params)
    with pytest.raises(ConfigurationError, match='must be a plain identifier'):
        V.validate(dict(params, level='restore', restored_db='x; DROP DATABASE y'))
