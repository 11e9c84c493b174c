# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification of a storage_backup backup, at three levels that each include the ones before:

* ``checksum`` - the index against the manifest, every content file against the index (size and sha256), and that
  the backup is complete (no object was denied or failed);
* ``catalog`` - the index against ``storage.objects`` of the Supabase database: every object row has a file of the
  same size; a row with no file, or a file with no row, is a finding;
* ``restore`` - every object uploaded into a scratch bucket and read back against its sha256; the scratch bucket is
  deleted afterwards, also on failure or when the task is stopped.

What was proved is appended to the manifest with ``store.append_verification``; the backup's worth is
``store.verdict``, so a weaker pass never clears a stronger failure.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import objstore as O
from ansible_collections.appcare.maintenance.plugins.module_utils import store as S
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, parse_iso, utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import AppcareError, ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.files import sha256_file
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    Session,
    connect_kwargs,
    db_error_text,
    target_label,
)

try:
    import boto3.s3.transfer
    import botocore.exceptions
except ImportError:  # pragma: no cover - reported by objstore.require_boto3()
    boto3 = None
    botocore = None
try:
    import psycopg2
except ImportError:  # pragma: no cover - reported by postgres.require_psycopg2()
    psycopg2 = None

LEVELS = ['checksum', 'catalog', 'restore']
SCRATCH_PREFIX = 'appcare-verify-'
SCRATCH_MARKER = '.appcare-verify-scratch'
SCRATCH_TOOL = 'appcare.maintenance.storage_backup_verify'
# A marked scratch bucket older than this was left by a run that was killed: the next run deletes it.
SCRATCH_STALE_HOURS = 24
# Integrity decides a verification's result; these judge objectives and the store, not the backup.
OBJECTIVES = ('storage_backup_orphans', 'storage_backup_restore_time', 'storage_backup_age', 'backup_future_dated')
NAMED = 10
CHUNK = 1024 * 1024

# Whether row-level security would hide rows of storage.objects from the login role (as pg_dump's check does).
CATALOG_RLS_SQL = """
SELECT c.relrowsecurity AND NOT (r.rolsuper OR r.rolbypassrls)
       AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')) AS limited,
       quote_ident(current_user) AS role
  FROM pg_class c, pg_roles r
 WHERE c.oid = to_regclass('storage.objects') AND r.rolname = current_user
"""

CATALOG_COLUMNS_SQL = """
SELECT a.attname FROM pg_attribute a
 WHERE a.attrelid = to_regclass('storage.objects') AND a.attnum > 0 AND NOT a.attisdropped
"""


class VerifyError(AppcareError):
    """The verification itself could not run (as opposed to a backup that failed verification)."""


def validate(params):
    """Every option of storage_backup_verify, before anything touches disk or network. Returns the S3 endpoint
    (None when the level needs none)."""
    if params['rpo_hours'] <= 0 or params['rto_minutes'] <= 0:
        raise ConfigurationError('rpo_hours and rto_minutes must be larger than 0')
    if params['concurrency'] < 1 or params['concurrency'] > 64:
        raise ConfigurationError('concurrency must be between 1 and 64, got %d' % params['concurrency'])
    if params['source_name'] is not None:
        O.validate_source_name(params['source_name'])
    if params['level'] == 'catalog' and not params['catalog']:
        raise ConfigurationError('level catalog compares with storage.objects: it needs catalog: true')
    if 'catalog' in levels_run(params):
        connect_kwargs(params, 'validation only')
    if params['level'] != 'restore':
        return None
    scratch = params['scratch_bucket']
    if scratch is not None and (not O.BUCKET_NAME.match(scratch) or not scratch.startswith(SCRATCH_PREFIX)):
        raise ConfigurationError('scratch_bucket %r must be a bucket name starting with %s (the module deletes it '
                                 'afterwards, so it only ever uses buckets of that name)' % (scratch, SCRATCH_PREFIX))
    return O.validate_s3(params, params['concurrency'])


def levels_run(params):
    """The levels a run verifies: up to ``level``, without ``catalog`` when O(catalog) is off."""
    wanted = LEVELS[:LEVELS.index(params['level']) + 1]
    return [level for level in wanted if level != 'catalog' or params['catalog']]


def pick_backup(params):
    """(path, manifest) of the backup to verify: O(backup), or the newest storage backup under O(dest) (of
    O(source_name) when given; never one dated in the future)."""
    backup = params['backup']
    if backup and backup != 'latest':
        path = os.path.abspath(backup)
        manifest = S.read_manifest(path) if os.path.isdir(path) else None
        if manifest is None:
            raise VerifyError('%s is not a complete backup: no such directory, or no valid manifest.json (a failed or '
                              'partial run)' % path)
        if not O.is_storage_backup(manifest):
            raise VerifyError('%s is a backup of %s, not of storage_backup' % (path, manifest.get('tool')))
        return path, manifest
    if not params['dest']:
        raise ConfigurationError('backup: latest needs dest, the directory that holds the backups')
    backups = [b for b in S.scan(params['dest']).backups if O.is_storage_backup(b['manifest'])]
    if params['source_name']:
        backups = [b for b in backups if b['manifest'].get('database') == params['source_name']]
    if not backups:
        raise VerifyError('no complete storage backup%s under %s' % (
            ' of %s' % params['source_name'] if params['source_name'] else '', params['dest']))
    return backups[0]['path'], backups[0]['manifest']


def _names(items):
    shown = ', '.join(items[:NAMED])
    return shown + (' and %d more' % (len(items) - NAMED) if len(items) > NAMED else '')


def _label(bucket, key):
    return '%s/%s' % (bucket, key)


# --- checksum -----------------------------------------------------------------------------------------------------

def check_files(path, manifest, concurrency):
    """(problems, entries): the index against the manifest, and every content file against the index. Problems are
    (what, problem) pairs; ``entries`` are the index's valid entries."""
    problems = S.verify_checksums(path, manifest)
    entries, index_problems = O.read_index(path)
    problems += [(O.INDEX, p) for p in index_problems]
    count = manifest.get('objects')
    if isinstance(count, int) and count != len(entries) + len(index_problems):
        listed = len(entries) + len(index_problems)
        problems.append((O.INDEX, 'lists %d object(s), the manifest says %d' % (listed, count)))
    by_sha = {}
    for entry in entries:
        by_sha.setdefault(entry['sha256'], []).append(entry)

    files = O.ContentFiles(path)

    def one(sha256):
        file_path = files.path(sha256)
        if file_path is None:
            return 'missing (or not a regular file inside the backup)', None
        try:
            return None, sha256_file(file_path)
        except OSError as exc:
            return 'unreadable: %s' % exc.strerror, None

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        shas = list(by_sha)
        for sha256, outcome in dict(zip(shas, pool.map(one, shas))).items():  # noqa: B905 - map yields one per item
            problem, measured = outcome
            owners = by_sha[sha256]
            what = _label(owners[0]['bucket'], owners[0]['key'])
            if problem:
                problems.append((what, problem))
                continue
            size, digest = measured
            if digest != sha256:
                problems.append((what, 'sha256 differs from the index'))
            for entry in owners:
                if entry['size'] != size:
                    problems.append((_label(entry['bucket'], entry['key']), 'size %d, the index says %d'
                                     % (size, entry['size'])))
    return problems, entries


def checksum_findings(path, manifest, problems, entries, obj):
    out = [C.finding('storage_backup_checksum', C.CRITICAL if problems else C.OK,
                     ('; '.join('%s: %s' % p for p in problems[:NAMED])
                      + (' and %d more problem(s)' % (len(problems) - NAMED) if len(problems) > NAMED else ''))
                     if problems else 'all %d object(s) match their size and sha256 (%d content file(s))'
                     % (len(entries), len(set(e['sha256'] for e in entries))),
                     value=len(problems), unit='count', obj=obj)]
    missing = [e for key in ('denied', 'errors') for e in (manifest.get(key) or []) if isinstance(e, dict)]
    if O.complete(manifest):
        out.append(C.finding('storage_backup_complete', C.OK, 'the backup holds every object it listed', value=0,
                             unit='count', obj=obj))
    else:
        named = [_label(e.get('bucket'), e.get('key')) for e in missing]
        out.append(C.finding('storage_backup_complete', C.CRITICAL, 'the backup lacks %d object(s) it could not copy '
                             '(denied or failed when it was made): %s' % (len(missing), _names(named)),
                             value=len(missing), unit='count', obj=obj))
    return out


# --- catalog ------------------------------------------------------------------------------------------------------

def _started(manifest):
    for field in ('started_at', 'finished_at'):
        try:
            return parse_iso(manifest.get(field))
        except (TypeError, ValueError):
            continue
    return None


def read_catalog(params, buckets, everything):
    """Rows of ``storage.objects`` (bucket_id, name, size, created_at, updated_at) of ``buckets`` (or of every bucket
    when ``everything``), read in one read-only session."""
    with Session(params, SCRATCH_TOOL, read_only=True) as session:
        try:
            columns = {r['attname'] for r in session.query(CATALOG_COLUMNS_SQL)}
            if not {'bucket_id', 'name', 'metadata'} <= columns:
                raise VerifyError('database %s has no storage.objects table (bucket_id, name, metadata) - Supabase '
                                  'Storage\'s catalogue; for a store that is not Supabase Storage set catalog: false'
                                  % params['login_db'])
            rls = session.one(CATALOG_RLS_SQL)
            if rls and rls['limited']:
                raise VerifyError('role %s is subject to row-level security on storage.objects and would see only some '
                                  'object rows; log in as postgres, or grant BYPASSRLS (ALTER ROLE %s BYPASSRLS)'
                                  % (rls['role'], rls['role']))
            times = ', '.join('%s' % c if c in columns else 'NULL::timestamptz AS %s' % c
                              for c in ('created_at', 'updated_at'))
            return session.query("SELECT bucket_id, name, metadata->>'size' AS size, %s FROM storage.objects "
                                 "WHERE %%s OR bucket_id = ANY(%%s)" % times, (everything, list(buckets)))
        except psycopg2.Error as exc:
            hint = ''
            if getattr(exc, 'pgcode', None) == '42501':
                hint = ('; the login role needs SELECT on storage.objects and to bypass its row-level security (log in '
                        'as postgres, or a role with BYPASSRLS)')
            raise VerifyError('cannot read storage.objects in database %s: %s%s'
                              % (params['login_db'], db_error_text(exc), hint)) from exc


def compare_catalog(rows, entries, started):
    """{missing_files, size_mismatches, orphan_files, newer} of the catalogue rows against the index. A row created
    after the backup started is not expected in it (``newer``); a row updated after it started is not compared by
    size."""
    files = dict(((e['bucket'], e['key']), e['size']) for e in entries)
    seen, missing, mismatched, newer = set(), [], [], 0
    for row in rows:
        key = (row['bucket_id'], row['name'])
        if row['name'] is None:
            continue
        if started is not None and row.get('created_at') is not None and row['created_at'] > started:
            newer += 1
            seen.add(key)
            continue
        if key not in files:
            missing.append(_label(*key))
            continue
        seen.add(key)
        try:
            size = int(row['size']) if row['size'] is not None else None
        except (TypeError, ValueError):
            size = None
        updated_since = started is not None and row.get('updated_at') is not None and row['updated_at'] > started
        if size is not None and size != files[key] and not updated_since:
            mismatched.append('%s (row %d bytes, file %d)' % (_label(*key), size, files[key]))
    orphans = sorted(_label(*k) for k in files if k not in seen)
    return {'missing_files': sorted(missing), 'size_mismatches': sorted(mismatched), 'orphan_files': orphans,
            'newer': newer, 'rows': len(rows)}


def catalog_findings(outcome, database, obj):
    missing, mismatched, orphans = outcome['missing_files'], outcome['size_mismatches'], outcome['orphan_files']
    newer = (' (%d row(s) created after the backup started are not expected in it)' % outcome['newer']
             if outcome['newer'] else '')
    if missing or mismatched:
        parts = []
        if missing:
            parts.append('%d object row(s) of storage.objects have no file in the backup: %s'
                         % (len(missing), _names(missing)))
        if mismatched:
            parts.append('%d file(s) differ in size from their row: %s' % (len(mismatched), _names(mismatched)))
        catalog = C.finding('storage_backup_catalog', C.CRITICAL, '; '.join(parts) + newer,
                            value=len(missing) + len(mismatched), unit='count', obj=obj, database=database)
    else:
        catalog = C.finding('storage_backup_catalog', C.OK, 'every object row of storage.objects (%d) has a file of '
                            'the same size in the backup%s' % (outcome['rows'] - outcome['newer'], newer), value=0,
                            unit='count', obj=obj, database=database)
    if orphans:
        orphan = C.finding('storage_backup_orphans', C.WARNING, '%d file(s) in the backup have no row in '
                           'storage.objects (objects the application does not know, or rows deleted since the backup): '
                           '%s' % (len(orphans), _names(orphans)), value=len(orphans), unit='count', obj=obj,
                           database=database)
    else:
        orphan = C.finding('storage_backup_orphans', C.OK, 'every file in the backup has its row in storage.objects',
                           value=0, unit='count', obj=obj, database=database)
    return [catalog, orphan]


# --- restore ------------------------------------------------------------------------------------------------------

class ScratchBucket(object):
    """A bucket this module creates, marks, fills and always deletes; it never deletes a bucket it did not mark."""

    def __init__(self, client, name, region):
        self.client = client
        self.name = name
        self.region = region
        self.created = False

    def _marker(self, name):
        try:
            body = self.client.get_object(Bucket=name, Key=SCRATCH_MARKER)['Body'].read(4096)
            marker = json.loads(body.decode('utf-8'))
            return marker if isinstance(marker, dict) and marker.get('tool') == SCRATCH_TOOL else None
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, ValueError, UnicodeDecodeError):
            return None

    def clean_abandoned(self, now=None):
        """Delete scratch buckets of killed runs: named ``appcare-verify-...``, holding our marker, and older than
        SCRATCH_STALE_HOURS. Returns their names."""
        now = now or utcnow()
        cleaned = []
        for name in O.list_bucket_names(self.client):
            if not name.startswith(SCRATCH_PREFIX) or name == self.name:
                continue
            marker = self._marker(name)
            try:
                age = (now - parse_iso(marker['created_at'])).total_seconds() / 3600.0 if marker else None
            except (TypeError, ValueError, KeyError):
                age = None
            if age is not None and age > SCRATCH_STALE_HOURS:
                self._delete(name)
                cleaned.append(name)
        return cleaned

    def create(self):
        kwargs = {'Bucket': self.name}
        if self.region and self.region != 'us-east-1':
            kwargs['CreateBucketConfiguration'] = {'LocationConstraint': self.region}
        try:
            self.client.create_bucket(**kwargs)
        except botocore.exceptions.ClientError as exc:
            code, _status = O.error_code(exc)
            if code in ('BucketAlreadyOwnedByYou', 'BucketAlreadyExists'):
                raise VerifyError('scratch bucket %s already exists; it is never used or deleted unless this module '
                                  'created it - choose another scratch_bucket' % self.name) from exc
            raise
        self.created = True
        marker = {'tool': SCRATCH_TOOL, 'created_at': iso(utcnow()), 'host': socket.gethostname(), 'pid': os.getpid()}
        self.client.put_object(Bucket=self.name, Key=SCRATCH_MARKER, Body=json.dumps(marker).encode('utf-8'))

    def _delete(self, name):
        paginator = self.client.get_paginator('list_objects_v2')
        for page in paginator.paginate(Bucket=name):
            keys = [{'Key': item['Key']} for item in page.get('Contents') or []]
            if keys:
                self.client.delete_objects(Bucket=name, Delete={'Objects': keys, 'Quiet': True})
        self.client.delete_bucket(Bucket=name)

    def delete(self):
        if self.created:
            self._delete(self.name)
            self.created = False


def _upload(client, bucket, files, entry):
    extra = {}
    if isinstance(entry.get('content_type'), str) and entry['content_type']:
        extra['ContentType'] = entry['content_type']
    metadata = entry.get('metadata')
    if isinstance(metadata, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        extra['Metadata'] = metadata
    source = files.path(entry['sha256'])
    if source is None:
        raise OSError(errno.ENOENT, 'its content file is missing from the backup')
    # Multipart above 64 MiB (a single PUT stops at 5 GiB); objects are already uploaded in parallel, so one thread each.
    client.upload_file(source, bucket, entry['key'], ExtraArgs=extra,
                       Config=boto3.s3.transfer.TransferConfig(multipart_threshold=64 * CHUNK, use_threads=False))


def _read_back(client, bucket, entry):
    """None when the scratch copy has the entry's size and sha256, else the problem."""
    body = client.get_object(Bucket=bucket, Key=entry['key'])['Body']
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: body.read(CHUNK), b''):
        digest.update(chunk)
        size += len(chunk)
    if size != entry['size']:
        return 'read back %d bytes, the backup holds %d' % (size, entry['size'])
    if digest.hexdigest() != entry['sha256']:
        return 'read back with another sha256 than the backup\'s'
    return None


def restore_check(params, endpoint, path, entries, result):
    """Upload every object of the backup into a scratch bucket, read each back against its sha256, and delete the
    bucket whatever happens. Returns (problems, seconds)."""
    client = O.connect(params, endpoint, pool=params['concurrency'] + 2)
    name = params['scratch_bucket'] or '%s%s' % (SCRATCH_PREFIX, uuid.uuid4().hex[:16])
    scratch = ScratchBucket(client, name, params['region'])
    result['scratch_bucket'] = name
    try:
        result['cleaned'] = scratch.clean_abandoned()
        scratch.create()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise VerifyError('cannot create the scratch bucket %s: %s' % (name, O.describe(exc, params, endpoint))) from exc
    problems = []
    files = O.ContentFiles(path)
    started = time.monotonic()
    try:
        def one(entry):
            what = _label(entry['bucket'], entry['key'])
            try:
                _upload(client, name, files, entry)
                problem = _read_back(client, name, entry)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
                return what, O.describe(exc)
            return what, problem

        # Objects of several buckets share one scratch bucket; a key two buckets both hold is restored once per bucket
        # in turn, so each is compared before the next overwrites it.
        rounds = {}
        for entry in entries:
            rounds.setdefault(entry['key'], []).append(entry)
        while rounds:
            batch = [items.pop(0) for items in rounds.values()]
            rounds = dict((k, v) for k, v in rounds.items() if v)
            with ThreadPoolExecutor(max_workers=params['concurrency']) as pool:
                problems += [(w, p) for w, p in pool.map(one, batch) if p]
    finally:
        seconds = time.monotonic() - started
        try:
            scratch.delete()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            result['scratch_left'] = name
            problems.append(('scratch bucket %s' % name, 'could not be deleted: %s; delete it by hand'
                             % O.describe(exc, params, endpoint)))
    return problems, seconds


# --- the run ------------------------------------------------------------------------------------------------------

def run_verification(params, endpoint, check_mode, result):
    """The whole storage_backup_verify run into ``result``: pick the backup, verify it up to the level, record the
    outcome (not in check mode), then judge the store - after the record, so ``storage_backup_age`` names the newest
    backup that is good now."""
    levels = levels_run(params)
    findings = result['checks']
    path, manifest = pick_backup(params)
    result['backup'] = path
    obj = 'backup=%s' % os.path.basename(path)
    problems, entries = check_files(path, manifest, params['concurrency'])
    findings.extend(checksum_findings(path, manifest, problems, entries, obj))
    ran = ['checksum']
    if 'catalog' in levels:
        buckets = [b['name'] for b in manifest.get('buckets') or [] if isinstance(b, dict)
                   and isinstance(b.get('name'), str)]
        rows = read_catalog(params, buckets, manifest.get('selection') == 'all')
        outcome = compare_catalog(rows, entries, _started(manifest))
        result['catalog'] = outcome
        findings.extend(catalog_findings(outcome, params['login_db'], obj))
        ran.append('catalog')
    if 'restore' in levels and not check_mode:
        restore_problems, seconds = restore_check(params, endpoint, path, entries, result)
        result['restore_seconds'] = round(seconds, 3)
        if restore_problems:
            findings.append(C.finding('storage_backup_restore', C.CRITICAL, '%d problem(s) restoring into %s: %s' % (
                len(restore_problems), result['scratch_bucket'], '; '.join('%s: %s' % p for p in restore_problems[:NAMED])),
                value=len(restore_problems), unit='count', obj=obj))
        else:
            findings.append(C.finding('storage_backup_restore', C.OK, 'all %d object(s) uploaded into scratch bucket %s '
                                      'and read back with the same sha256 in %.1f s (bucket deleted)'
                                      % (len(entries), result['scratch_bucket'], seconds),
                                      value=round(seconds, 3), unit='seconds', obj=obj))
        rto = params['rto_minutes']
        findings.append(C.evaluate('storage_backup_restore_time', round(seconds / 60.0, 3), round(0.8 * rto, 3), rto,
                                   C.ABOVE, unit='minutes', obj=obj,
                                   message='upload and read-back took {value} min (RTO %s min)' % rto))
        ran.append('restore')
    verified = [c for c in findings if c['name'] not in OBJECTIVES]
    result['result'] = 'ok' if all(c['status'] == C.OK for c in verified) else 'failed'
    result['levels'] = ran
    if check_mode:
        result['verdict'] = S.verdict(manifest)
    else:
        record = {'at': iso(utcnow()), 'level': ran[-1], 'result': result['result'], 'levels': ran,
                  'failed_checks': [c['name'] for c in verified if c['status'] != C.OK],
                  'restore_seconds': result.get('restore_seconds'),
                  'database': target_label(params) if 'catalog' in ran else None}
        result.update(changed=True, verification=record, verdict=S.append_verification(path, record))
    if params['dest']:
        findings.extend(store_findings(params['dest'], manifest, params['rpo_hours']))
    result['report'] = {'storage_backup': {'id': os.path.basename(path), 'verified': result['verdict']['result'],
                                           'verified_level': result['verdict']['level']}}


def store_findings(dest, manifest, rpo_hours):
    """``backup_future_dated`` and ``storage_backup_age`` (the newest good, complete backup of the backup's source and
    endpoint under ``dest`` against ``rpo_hours``)."""
    found = S.scan(dest)
    name = manifest.get('database')
    entry = O.newest_good(O.same_source(found.backups, name, manifest.get('target')))
    if entry is None:
        age = C.finding('storage_backup_age', C.CRITICAL, 'no good, complete storage backup of %s under %s'
                        % (name, dest), unit='hours', obj='source=%s' % name)
    else:
        age = S.age_check('storage_backup_age', (utcnow() - entry['finished_at']).total_seconds() / 3600.0, rpo_hours,
                          entry)
    return [S.future_check(found), age]
