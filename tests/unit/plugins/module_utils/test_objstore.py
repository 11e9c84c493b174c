# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure logic of storage_backup and storage_backup_verify: options, what S3 errors mean, the index read back from
disk, reuse decisions, the catalogue comparison, findings and retention."""

from __future__ import annotations

import datetime
import hashlib
import json
import os

import botocore.exceptions
import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import objbackup as B
from ansible_collections.appcare.maintenance.plugins.module_utils import objstore as O
from ansible_collections.appcare.maintenance.plugins.module_utils import objverify as V
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

UTC = datetime.timezone.utc
SHA = hashlib.sha256(b'x').hexdigest()


def s3_params(**overrides):
    params = dict(endpoint_url='http://127.0.0.1:9000', project_ref=None, region='us-east-1', access_key_id='id',
                  secret_access_key='secret', addressing_style='path', validate_certs=True, endpoint_ca_cert=None, timeout=60)
    params.update(overrides)
    return params


@pytest.mark.parametrize('overrides, expected', [
    (dict(), 'http://127.0.0.1:9000'),
    (dict(endpoint_url='https://minio.internal:9000/'), 'https://minio.internal:9000'),
    (dict(endpoint_url=None, project_ref='abcdefghijklmnopqrst'), 'https://abcdefghijklmnopqrst.supabase.co/storage/v1/s3'),
])
def test_endpoint_of(overrides, expected):
    assert O.endpoint_of(s3_params(**overrides)) == expected


@pytest.mark.parametrize('overrides, message', [
    (dict(project_ref='abcdefghijklmnopqrst'), 'not both'),
    (dict(endpoint_url=None), 'endpoint_url or project_ref is required'),
    (dict(endpoint_url=None, project_ref='x.evil.example/'), 'not a Supabase project reference'),
    (dict(endpoint_url=None, project_ref='ABC'), 'not a Supabase project reference'),
    (dict(endpoint_url='s3://bucket'), 'http:// or https://'),
    (dict(endpoint_url='http://'), 'http:// or https://'),
    (dict(endpoint_url='https://key:secret@host'), 'must not hold credentials'),
    (dict(endpoint_url='https://host/?x=1'), 'query or fragment'),
])
def test_endpoint_of_refuses(overrides, message):
    with pytest.raises(ConfigurationError, match=message):
        O.endpoint_of(s3_params(**overrides))


def test_a_refused_url_never_shows_its_password():
    with pytest.raises(ConfigurationError) as caught:
        O.endpoint_of(s3_params(endpoint_url='ftp://user:hunter2@host'))
    assert 'hunter2' not in str(caught.value) and '***@host' in str(caught.value)


def test_default_source_name_and_its_validation():
    assert O.default_source_name(s3_params(), 'http://127.0.0.1:9000') == 'storage-127.0.0.1_9000'
    assert O.default_source_name(s3_params(project_ref='abc'), 'https://abc.supabase.co/storage/v1/s3') == 'storage-abc'
    assert O.validate_source_name('files.prod-1') == 'files.prod-1'
    for bad in ('', '../x', 'a b', '.hidden', 'x_'):
        with pytest.raises(ConfigurationError, match='plain name'):
            O.validate_source_name(bad)


def test_validate_s3_and_buckets():
    with pytest.raises(ConfigurationError, match='access_key_id and secret_access_key are required'):
        O.validate_s3(s3_params(secret_access_key=None))
    with pytest.raises(ConfigurationError, match='timeout must be at least 1'):
        O.validate_s3(s3_params(timeout=0))
    with pytest.raises(ConfigurationError, match='concurrency must be between 1 and 64'):
        O.validate_s3(s3_params(), concurrency=65)
    O.validate_buckets(['avatars', 'my.bucket-2'])
    for bad in (['ab'], ['Upper'], ['-lead'], ['a/b'], ['same', 'same']):
        with pytest.raises(ConfigurationError):
            O.validate_buckets(bad)


def client_error(code, status, message='m'):
    return botocore.exceptions.ClientError({'Error': {'Code': code, 'Message': message},
                                            'ResponseMetadata': {'HTTPStatusCode': status}}, 'GetObject')


@pytest.mark.parametrize('code, status, expected', [
    ('InvalidAccessKeyId', 403, 'refused the credentials of access key id: InvalidAccessKeyId (the access key id is '
                                'unknown'),
    ('SignatureDoesNotMatch', 403, 'the secret access key is wrong'),
    ('AccessDenied', 403, 'access denied by http://e (AccessDenied: m): the access key lacks a permission'),
    ('InternalError', 500, 'http://e answered InternalError (HTTP 500): m'),
])
def test_describe_s3_errors(code, status, expected):
    text = O.describe(client_error(code, status), s3_params(access_key_id='id'), 'http://e')
    assert expected in text and 'secret' not in text.replace('secret access key', '')


def test_describe_connection_errors():
    text = O.describe(botocore.exceptions.EndpointConnectionError(endpoint_url='http://e/'), endpoint='http://e')
    assert text.startswith('cannot connect to http://e:') and 'check endpoint_url' in text
    assert O.error_code(ValueError('x')) == (None, None)
    assert O.error_code(client_error('NoSuchKey', 404)) == ('NoSuchKey', 404)


def test_etag_md5():
    assert O.etag_md5('"900150983cd24fb0d6963f7d28e17f72"') == '900150983cd24fb0d6963f7d28e17f72'
    assert O.etag_md5('900150983cd24fb0d6963f7d28e17f72') == '900150983cd24fb0d6963f7d28e17f72'
    assert O.etag_md5('"900150983cd24fb0d6963f7d28e17f72-3"') is None  # multipart
    assert O.etag_md5(None) is None and O.etag_md5('"abc"') is None


def test_parse_time():
    assert O.parse_time('Fri, 04 Dec 2026 12:35:14 GMT') == '2026-12-04T12:35:14.000000Z'
    assert O.parse_time('2026-12-04T12:35:14.250Z') == '2026-12-04T12:35:14.250000Z'
    assert O.parse_time(datetime.datetime(2026, 1, 2, 3, 4, 5)) == '2026-01-02T03:04:05.000000Z'
    assert O.parse_time('yesterday') is None and O.parse_time(None) is None


def write_index(path, lines):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, O.INDEX), 'w') as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + '\n')


def entry(key, sha=SHA, size=1, bucket='b1', etag='"e"', **extra):
    data = {'bucket': bucket, 'key': key, 'size': size, 'etag': etag, 'sha256': sha}
    data.update(extra)
    return data


def test_read_index_keeps_only_well_formed_entries(tmp_path):
    write_index(str(tmp_path), [entry('ok'), 'not json', entry('badsha', sha='../../etc/passwd'),
                                entry('negative', size=-1), entry('bool', size=True), {'bucket': 'b1'}, entry('ok'),
                                '', entry('', sha=SHA)])
    entries, problems = O.read_index(str(tmp_path))
    assert [e['key'] for e in entries] == ['ok']
    assert problems == ['objects.jsonl line 2: not JSON', 'objects.jsonl line 3: not an object entry',
                        'objects.jsonl line 4: not an object entry', 'objects.jsonl line 5: not an object entry',
                        'objects.jsonl line 6: not an object entry', 'objects.jsonl line 7: b1/ok is listed twice',
                        'objects.jsonl line 9: not an object entry']
    assert O.read_index(str(tmp_path / 'missing'))[1] == ['objects.jsonl: No such file or directory']


def test_content_files_refuse_symlinks_and_escapes(tmp_path):
    root = tmp_path / 'backup'
    real_sha, link_sha, none_sha, escaped_sha = 'ab' + 'a' * 62, 'ab' + 'b' * 62, 'ab' + 'c' * 62, 'cd' + 'd' * 62
    (root / 'objects' / 'ab').mkdir(parents=True)
    (root / 'objects' / 'ab' / real_sha).write_bytes(b'x')
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / escaped_sha).write_bytes(b'y')
    (outside / 'file').write_bytes(b'z')
    os.symlink(str(outside / 'file'), str(root / 'objects' / 'ab' / link_sha))
    os.symlink(str(outside), str(root / 'objects' / 'cd'))  # a directory that leads out of the backup
    files = O.ContentFiles(str(root))
    assert files.path(real_sha) == os.path.join(os.path.realpath(str(root)), 'objects', 'ab', real_sha)
    assert files.path(link_sha) is None and files.path(none_sha) is None and files.path(escaped_sha) is None
    assert files.path('../../etc/passwd') is None
    # the whole objects directory replaced by a symlink
    os.rename(str(root / 'objects'), str(tmp_path / 'moved'))
    os.symlink(str(tmp_path / 'moved'), str(root / 'objects'))
    assert O.ContentFiles(str(root)).path(real_sha) is None


def backup_entry(backup_id, verdict=None, **manifest):
    records = [{'level': 'checksum', 'result': verdict, 'at': '2026-01-01T00:00:00.000000Z'}] if verdict else []
    data = {'tool': O.BACKUP_TOOL, 'database': 'src', 'target': 'http://e', 'verifications': records}
    data.update(manifest)
    return {'id': backup_id, 'path': '/nowhere/' + backup_id, 'manifest': data}


def test_newest_good_and_same_source():
    failed, incomplete, good = (backup_entry('c', 'failed'), backup_entry('b', complete=False, denied=[{}]),
                                backup_entry('a', 'ok'))
    backups = [failed, incomplete, good]
    assert O.newest_good(backups)['id'] == 'a'
    assert O.newest_good(backups, require_complete=False)['id'] == 'b'
    assert O.newest_good([failed]) is None
    other = backup_entry('d', database='other')
    pg = dict(backup_entry('e'), manifest={'tool': 'appcare.maintenance.pg_backup', 'database': 'src'})
    assert [b['id'] for b in O.same_source(backups + [other, pg], 'src', 'http://e')] == ['c', 'b', 'a']
    assert [b['id'] for b in O.same_source(backups, 'src', 'http://elsewhere')] == []
    # a manifest that says it is complete while listing denied objects is not complete
    assert not O.complete({'complete': True, 'denied': [{'bucket': 'b', 'key': 'k'}]})


def test_previous_matches_by_key_size_and_etag(tmp_path):
    write_index(str(tmp_path), [entry('k', size=5, etag='"aa"')])
    previous = B.Previous({'id': 'prev', 'path': str(tmp_path)})
    assert previous.match('b1', {'Key': 'k', 'Size': 5, 'ETag': '"aa"'})['key'] == 'k'
    assert previous.match('b1', {'Key': 'k', 'Size': 6, 'ETag': '"aa"'}) is None
    assert previous.match('b1', {'Key': 'k', 'Size': 5, 'ETag': '"bb"'}) is None
    assert previous.match('b2', {'Key': 'k', 'Size': 5, 'ETag': '"aa"'}) is None
    assert B.Previous(None).match('b1', {'Key': 'k', 'Size': 5, 'ETag': '"aa"'}) is None


def test_retention_protects_this_run_and_the_newest_complete():
    base = datetime.datetime(2026, 11, 20, 2, tzinfo=UTC)
    backups = [{'id': 'b%d' % i, 'finished_at': base - datetime.timedelta(hours=i), 'manifest': {'verifications': []}}
               for i in range(4)]
    params = dict(keep_daily=1, keep_weekly=None, keep_monthly=None)
    assert B.plan_retention(backups, params, 'b0') == ['b1', 'b2', 'b3']
    assert B.plan_retention(backups, params, 'b0', protect=['b2', None]) == ['b1', 'b3']
    assert B.plan_retention(backups, dict(params, keep_daily=None), 'b0') == []


def manifest_of(**extra):
    data = {'objects': 3, 'bytes': 300, 'buckets': [{'name': 'b1'}], 'previous': None, 'changed': [], 'vanished': [],
            'denied': [], 'errors': [], 'counts': {'downloaded_objects': 3, 'downloaded_bytes': 300,
                                                   'skipped_objects': 0, 'skipped_bytes': 0}}
    data.update(extra)
    return data


def statuses(findings):
    return dict((f['name'], f['status']) for f in findings)


def test_backup_findings():
    thresholds = B.THRESHOLDS
    quiet = statuses(B.findings(thresholds, manifest_of(), None, 'src'))
    assert quiet == {'storage_backup_objects': 'ok', 'storage_backup_denied': 'ok', 'storage_backup_errors': 'ok',
                     'storage_backup_changed': 'ok', 'storage_backup_size': 'ok'}
    denied = [{'bucket': 'b1', 'key': 'k%d' % i, 'reason': 'AccessDenied'} for i in range(12)]
    loud = B.findings(thresholds, manifest_of(denied=denied, errors=[denied[0]], vanished=[{'bucket': 'b1', 'key': 'v'}],
                                              bytes=100),
                      {'id': 'prev', 'manifest': {'bytes': 1000}}, 'src')
    by_name = dict((f['name'], f) for f in loud)
    assert statuses(loud)['storage_backup_denied'] == 'critical' and 'and 2 more' in by_name['storage_backup_denied'][
        'message']
    assert statuses(loud)['storage_backup_errors'] == 'critical'
    assert statuses(loud)['storage_backup_changed'] == 'warning' and 'b1/v' in by_name['storage_backup_changed']['message']
    assert by_name['storage_backup_size']['status'] == 'warning' and by_name['storage_backup_size']['value'] == 10.0
    empty_before = B.findings(thresholds, manifest_of(), {'id': 'prev', 'manifest': {'bytes': 0}}, 'src')
    assert statuses(empty_before)['storage_backup_size'] == 'ok'


NOW = datetime.datetime(2026, 11, 23, 2, tzinfo=UTC)


def row(bucket, name, size, created=None, updated=None):
    hour_ago = NOW - datetime.timedelta(hours=1)
    return {'bucket_id': bucket, 'name': name, 'size': size, 'created_at': created or hour_ago,
            'updated_at': updated or created or hour_ago}


def test_compare_catalog():
    entries = [entry('a', size=10), entry('b', size=20), entry('c', size=30), entry('orphan', size=1)]
    later = NOW + datetime.timedelta(minutes=5)
    rows = [row('b1', 'a', '10'), row('b1', 'b', '21'), row('b1', 'c', '99', updated=later), row('b1', 'lost', '5'),
            row('b1', 'new', '5', created=later), row('b1', None, '1'), row('b1', 'nosize', None)]
    outcome = V.compare_catalog(rows, entries, NOW)
    assert outcome['missing_files'] == ['b1/lost', 'b1/nosize']
    assert outcome['size_mismatches'] == ['b1/b (row 21 bytes, file 20)']
    assert outcome['orphan_files'] == ['b1/orphan'] and outcome['newer'] == 1 and outcome['rows'] == 7
    findings = dict((f['name'], f) for f in V.catalog_findings(outcome, 'postgres', 'backup=x'))
    assert findings['storage_backup_catalog']['status'] == 'critical'
    assert findings['storage_backup_orphans']['status'] == 'warning'
    clean = V.compare_catalog([row('b1', 'a', '10')], [entry('a', size=10)], NOW)
    expected = {'storage_backup_catalog': 'ok', 'storage_backup_orphans': 'ok'}
    assert statuses(V.catalog_findings(clean, 'postgres', 'x')) == expected


def verify_params(**overrides):
    params = dict(s3_params(), level='checksum', catalog=True, concurrency=8, rpo_hours=24, rto_minutes=60,
                  source_name=None, scratch_bucket=None, login_port=5432, login_user='postgres', login_db='postgres',
                  ssl_mode='prefer', connect_timeout=10, statement_timeout=60, login_host=None, login_password=None,
                  login_unix_socket=None)
    params.update(overrides)
    return params


def test_verify_levels_and_options():
    assert V.levels_run(verify_params(level='restore')) == ['checksum', 'catalog', 'restore']
    assert V.levels_run(verify_params(level='restore', catalog=False)) == ['checksum', 'restore']
    assert V.validate(verify_params()) is None
    assert V.validate(verify_params(level='restore')) == 'http://127.0.0.1:9000'
    with pytest.raises(ConfigurationError, match='needs catalog: true'):
        V.validate(verify_params(level='catalog', catalog=False))
    with pytest.raises(ConfigurationError, match='starting with appcare-verify-'):
        V.validate(verify_params(level='restore', scratch_bucket='production-files'))
    with pytest.raises(ConfigurationError, match='login_port'):
        V.validate(verify_params(level='catalog', login_port=0))
