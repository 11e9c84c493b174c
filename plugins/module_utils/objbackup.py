# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of storage_backup: every object of the chosen buckets of an S3-compatible store into the backup store.

The run lists each bucket page by page and copies its objects with ``concurrency`` threads, each streaming one object
in 1 MiB chunks into a temporary file while hashing it, so memory depends on the number of threads, never on object
sizes; at most twice as many objects as threads are queued at once. An object whose key, size and ETag are those of
the previous good backup of the same source is not downloaded: its content file is hard-linked from that backup and
its size and sha256 are recomputed from the link before it is used (the previous manifest and index are read back, so
they are not trusted; a file that does not hash to what they claim is downloaded again), and where the store's ETag is
an MD5 of the content, the link's MD5 must be the ETag listed now - the proof that rests on nothing read back.

Every object is fetched with ``If-Match`` of the ETag it was listed with, and its answer's ETag and length are
compared with the listing, so an object replaced or deleted during the run is noticed, kept at the version fetched
and reported (``storage_backup_changed``). An object the credentials may not read is reported
(``storage_backup_denied``) and the backup is marked incomplete; it is never skipped in silence. A failure of the
endpoint itself (unreachable, credentials refused, errors after retries) stops the run: the partial directory is
removed and nothing that could pass for a backup is left.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import objstore as O
from ansible_collections.appcare.maintenance.plugins.module_utils import store as S
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.dump import prepare_dest
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.files import sha256_file

try:
    import botocore.exceptions
except ImportError:  # pragma: no cover - reported by objstore.require_boto3()
    botocore = None
try:
    import urllib3.exceptions
    STREAM_ERRORS = (OSError, urllib3.exceptions.HTTPError)
except ImportError:  # pragma: no cover - urllib3 comes with botocore
    STREAM_ERRORS = (OSError,)
# What a transfer is retried on (one tuple: older pylint misreads a tuple sum in an except clause).
RETRY_ERRORS = ((botocore.exceptions.BotoCoreError,) if botocore else ()) + STREAM_ERRORS

CHUNK = 1024 * 1024
# Listing pages (of up to 1000 objects) fetched ahead of the copy.
PAGES_AHEAD = 2
ATTEMPTS = 3
INCOMING = '.incoming'
RETENTION_OPTIONS = ('keep_daily', 'keep_weekly', 'keep_monthly')
# How many objects a finding's message names; the result and the manifest list them all.
NAMED = 10

THRESHOLDS = {
    # The new backup's object bytes as a share of the previous one's; a drop below half is suspicious.
    'storage_backup_size': {'warning': 50, 'critical': None, 'direction': C.BELOW, 'unit': 'percent'},
}


class RunStopped(O.StorageError):
    """The endpoint failed in a way that concerns the whole run, not one object."""


def validate(params):
    """Every option of storage_backup, before anything touches disk or network. Returns (endpoint, name, thresholds)."""
    endpoint = O.validate_s3(params, params['concurrency'])
    O.validate_buckets(params['buckets'])
    name = O.validate_source_name(params['source_name'] or O.default_source_name(params, endpoint))
    for option in RETENTION_OPTIONS:
        if params[option] is not None and params[option] < 0:
            raise ConfigurationError('%s must be 0 or more, got %d' % (option, params[option]))
    thresholds = C.merge_thresholds(THRESHOLDS, params['thresholds'])
    return endpoint, name, thresholds


def label(bucket, key):
    return '%s/%s' % (bucket, key)


# --- reuse of the previous good backup ----------------------------------------------------------------------------

class Previous(object):
    """The previous good backup of the source, as far as it can be used: its directory and the index entries that are
    well-formed, by (bucket, key). Nothing in it is trusted until the content file hashes to the claimed sha256."""

    def __init__(self, entry=None):
        self.id = entry['id'] if entry else None
        self.path = entry['path'] if entry else None
        self.entries = {}
        self.files = O.ContentFiles(entry['path']) if entry else None
        if entry:
            entries, _problems = O.read_index(entry['path'])
            self.entries = dict(((e['bucket'], e['key']), e) for e in entries)

    def match(self, bucket, item):
        """The previous entry of an object listed now with the same size and ETag, or None."""
        prev = self.entries.get((bucket, item['Key']))
        if prev and prev['size'] == item['Size'] and prev['etag'] == item.get('ETag'):
            return prev
        return None

    def source_file(self, sha256):
        return self.files.path(sha256) if self.files else None


# --- the copy -----------------------------------------------------------------------------------------------------

class Copier(object):
    """Copies listed objects into ``partial`` with a bounded pool of threads and writes the index as they finish."""

    def __init__(self, client, params, endpoint, partial, previous):
        self.client = client
        self.params = params
        self.endpoint = endpoint
        self.partial = partial
        self.previous = previous
        self.incoming = os.path.join(partial, INCOMING)
        os.mkdir(self.incoming, 0o700)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.fatal = None
        self.placed = {}  # sha256 -> MD5 of the content files this run holds
        self.folders = set()
        self.index = open(os.path.join(partial, O.INDEX), 'w', encoding='utf-8')  # pylint: disable=consider-using-with
        self.counts = {'objects': 0, 'bytes': 0, 'downloaded_objects': 0, 'downloaded_bytes': 0, 'skipped_objects': 0,
                       'skipped_bytes': 0, 'stored_bytes': 0}
        self.buckets = {}
        self.changed, self.vanished, self.denied, self.errors = [], [], [], []

    # -- one object ------------------------------------------------------------------------------------------------
    def _temp(self):
        return os.path.join(self.incoming, uuid.uuid4().hex)

    def _place(self, temp, sha256, md5, size, downloaded=True):
        """Move a verified content file to its final name; a second object with the same content is stored once.
        ``stored_bytes`` counts what takes new disk: downloaded content, not links."""
        with self.lock:
            first = sha256 not in self.placed
            if first:
                self.placed[sha256] = md5
                if downloaded:
                    self.counts['stored_bytes'] += size
        if first:
            final = os.path.join(self.partial, O.content_relpath(sha256))
            folder = os.path.dirname(final)
            if folder not in self.folders:
                os.makedirs(folder, 0o700, exist_ok=True)
                self.folders.add(folder)  # a race adds it twice: harmless
            os.replace(temp, final)
        else:
            os.unlink(temp)

    def _reuse(self, prev, item):
        """Hard-link the previous backup's content file (a copy where the file system refuses links) and prove it:
        its size and sha256 must be what the previous index claims, and where the store's ETag is an MD5 of the content
        (a single-part upload), its MD5 must be the ETag the store lists now - the one proof that does not rest on
        anything read back from the previous backup. Returns True when the object is taken from there."""
        sha256 = prev['sha256']
        wanted_md5 = O.etag_md5(item.get('ETag'))
        with self.lock:
            if sha256 in self.placed:
                # this run holds that content already, verified; the same object only if its MD5 says so
                return wanted_md5 is None or self.placed[sha256] == wanted_md5
        source = self.previous.source_file(sha256)
        if source is None:
            return False
        temp = self._temp()
        try:
            try:
                os.link(source, temp, follow_symlinks=False)
            except OSError:
                shutil.copyfile(source, temp, follow_symlinks=False)
            size, digest, md5 = O.hash_file(temp)
        except OSError:
            if os.path.lexists(temp):
                os.unlink(temp)
            return False
        if size != prev['size'] or digest != sha256 or (wanted_md5 is not None and md5 != wanted_md5):
            os.unlink(temp)
            return False
        self._place(temp, sha256, md5, size, downloaded=False)
        return True

    def _stream(self, body, temp, length=None):
        digest, md5 = hashlib.sha256(), hashlib.md5()  # nosec - MD5 is what S3 ETags are made of, not a protection
        size = 0
        # A read allocates its whole buffer: a small object is read in one piece of its own size (plus the end).
        chunk_size = min(CHUNK, length + 1) if isinstance(length, int) and length >= 0 else CHUNK
        with open(temp, 'wb') as out:
            while True:
                if self.stop.is_set():
                    raise RunStopped('stopped')
                chunk = body.read(chunk_size)
                if not chunk:
                    break
                digest.update(chunk)
                md5.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        return size, digest.hexdigest(), md5.hexdigest()

    def _download(self, bucket, item):
        """(entry or None, outcome) for one object: ``downloaded``, ``changed`` (fetched at a newer version than
        listed), ``vanished``, ``denied`` or ``error``. Raises RunStopped for what concerns the whole run."""
        key, listed_etag = item['Key'], item.get('ETag')
        conditional, changed, last = bool(listed_etag), False, None
        attempt = 0
        while attempt < ATTEMPTS:
            attempt += 1
            request = {'Bucket': bucket, 'Key': key}
            if conditional:
                request['IfMatch'] = listed_etag
            temp = self._temp()
            try:
                answer = self.client.get_object(**request)
                size, digest, md5 = self._stream(answer['Body'], temp, answer.get('ContentLength'))
            except botocore.exceptions.ClientError as exc:
                self._discard(temp)
                code, status = O.error_code(exc)
                if (code in O.CHANGED or status == 412) and conditional:
                    # Replaced since it was listed: not a failure, fetch the version there is now (once).
                    conditional, changed = False, True
                    attempt -= 1
                    continue
                if code in O.VANISHED:
                    return None, 'vanished'
                if code in O.DENIED and code not in O.CREDENTIALS:
                    return {'bucket': bucket, 'key': key, 'reason': O.describe(exc)}, 'denied'
                if code in O.CREDENTIALS or code in O.NO_BUCKET:
                    raise RunStopped('%s, fetching %s' % (O.describe(exc, self.params, self.endpoint),
                                                          label(bucket, key))) from exc
                if status is not None and status < 500 and code not in ('SlowDown', 'RequestTimeout'):
                    return {'bucket': bucket, 'key': key, 'reason': O.describe(exc)}, 'error'
                last = exc
            except RunStopped:
                self._discard(temp)
                raise
            except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError) as exc:
                # botocore has retried the connection already: the endpoint is gone, not this object.
                self._discard(temp)
                raise RunStopped('%s, fetching %s' % (O.describe(exc, self.params, self.endpoint),
                                                      label(bucket, key))) from exc
            except RETRY_ERRORS as exc:
                self._discard(temp)
                last = exc
            else:
                length = answer.get('ContentLength')
                if length is not None and length != size:
                    self._discard(temp)
                    last = O.StorageError('%d of %d bytes received' % (size, length))
                else:
                    etag = answer.get('ETag') or listed_etag
                    changed = changed or etag != listed_etag or size != item['Size']
                    self._place(temp, digest, md5, size)
                    entry = {'bucket': bucket, 'key': key, 'size': size, 'etag': etag, 'sha256': digest,
                             'last_modified': O.parse_time(answer.get('LastModified')),
                             'content_type': answer.get('ContentType')}
                    if answer.get('Metadata'):
                        entry['metadata'] = answer['Metadata']
                    return entry, ('changed' if changed else 'downloaded')
            if attempt < ATTEMPTS and not self.stop.is_set():
                time.sleep(0.5 * attempt)
        raise RunStopped('%s failed after %d attempts: %s' % (label(bucket, key), ATTEMPTS,
                                                              O.describe(last, self.params, self.endpoint)))

    def _discard(self, temp):
        if os.path.lexists(temp):
            os.unlink(temp)

    def one(self, bucket, item):
        """Back up one listed object; returns (entry, outcome)."""
        if self.stop.is_set():
            return None, 'cancelled'
        prev = self.previous.match(bucket, item)
        if prev is not None and self._reuse(prev, item):
            entry = dict((k, prev[k]) for k in ('bucket', 'key', 'size', 'etag', 'sha256'))
            # Descriptive fields of the read-back entry are carried over only in the shape this module writes them.
            for field in ('last_modified', 'content_type'):
                entry[field] = prev.get(field) if isinstance(prev.get(field), str) else None
            metadata = prev.get('metadata')
            if isinstance(metadata, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
                entry['metadata'] = metadata
            return entry, 'skipped'
        return self._download(bucket, item)

    # -- bookkeeping (the pool's threads call it as objects finish) --------------------------------------------
    def _record(self, bucket, item, future):
        try:
            if future.cancelled():
                return
            try:
                entry, outcome = future.result()
            except RunStopped as exc:
                with self.lock:
                    if self.fatal is None:
                        self.fatal = exc
                self.stop.set()
                return
            except BaseException as exc:  # pylint: disable=broad-except
                with self.lock:
                    if self.fatal is None:
                        self.fatal = exc
                self.stop.set()
                return
            with self.lock:
                if outcome == 'cancelled':
                    return
                if outcome == 'vanished':
                    self.vanished.append({'bucket': bucket, 'key': item['Key'], 'size': item['Size'],
                                          'etag': item.get('ETag')})
                    return
                if outcome in ('denied', 'error'):
                    (self.denied if outcome == 'denied' else self.errors).append(entry)
                    return
                if outcome == 'changed':
                    self.changed.append({'bucket': bucket, 'key': item['Key'], 'listed_size': item['Size'],
                                         'listed_etag': item.get('ETag'), 'size': entry['size'], 'etag': entry['etag']})
                self.index.write(json.dumps(entry, sort_keys=True, separators=(',', ':')) + '\n')
                counts = self.counts
                counts['objects'] += 1
                counts['bytes'] += entry['size']
                kind = 'skipped' if outcome == 'skipped' else 'downloaded'
                counts[kind + '_objects'] += 1
                counts[kind + '_bytes'] += entry['size']
                per_bucket = self.buckets.setdefault(bucket, {'objects': 0, 'bytes': 0})
                per_bucket['objects'] += 1
                per_bucket['bytes'] += entry['size']
        finally:
            self.slots.release()

    def _list(self, buckets, pages):
        """The lister thread: every bucket's listing, page by page, into ``pages`` (at most PAGES_AHEAD pages wait
        there, so the next page is fetched while the last one is copied, and memory stays bounded). Ends with None,
        or with the exception that stopped it."""
        try:
            for bucket in buckets:
                try:
                    for page in O.iter_pages(self.client, bucket):
                        if not self._offer(pages, (bucket, page)):
                            return
                except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                    cause = O.describe(exc, self.params, self.endpoint)
                    raise RunStopped('listing bucket %s failed: %s' % (bucket, cause)) from exc
            self._offer(pages, None)
        except BaseException as exc:  # pylint: disable=broad-except
            self._offer(pages, exc)

    def _offer(self, pages, item):
        while not self.stop.is_set():
            try:
                pages.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self, buckets):
        """Copy every object of ``buckets``; raises the first failure that concerns the whole run."""
        concurrency = self.params['concurrency']
        self.slots = threading.BoundedSemaphore(2 * concurrency)  # pylint: disable=attribute-defined-outside-init
        for bucket in buckets:
            self.buckets.setdefault(bucket, {'objects': 0, 'bytes': 0})
        pages = queue.Queue(maxsize=PAGES_AHEAD)
        lister = threading.Thread(target=self._list, args=(buckets, pages), name='appcare-s3-list', daemon=True)
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix='appcare-s3')
        lister.start()
        try:
            while not self.stop.is_set():
                try:
                    got = pages.get(timeout=0.2)
                except queue.Empty:
                    continue
                if got is None:
                    break
                if isinstance(got, BaseException):
                    raise got
                bucket, page = got
                for item in page:
                    self.slots.acquire()  # pylint: disable=consider-using-with
                    if self.stop.is_set():
                        self.slots.release()
                        break
                    future = pool.submit(self.one, bucket, item)
                    future.add_done_callback(lambda f, b=bucket, i=item: self._record(b, i, f))
        except BaseException:
            self.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)  # every queued object is copied (after a failure: none is left queued)
            self.stop.set()  # the lister, if it still runs, stops
            self.index.close()
            lister.join(5)
        if self.fatal is not None:
            raise self.fatal
        os.rmdir(self.incoming)


# --- the run --------------------------------------------------------------------------------------------------

def plan_retention(backups, params, this_run, protect=()):
    if all(params[option] is None for option in RETENTION_OPTIONS):
        return []
    _keep, delete = S.retention_plan(backups, *[params[option] or 0 for option in RETENTION_OPTIONS],
                                     protect=[this_run] + [p for p in protect if p])
    return delete


def _plan(client, buckets, previous):
    """What a run would copy (check mode): counts of objects and bytes to download and to take from the previous
    backup (by key, size and ETag; the content is proven only by a real run)."""
    plan = {'objects': 0, 'bytes': 0, 'downloaded_objects': 0, 'downloaded_bytes': 0, 'skipped_objects': 0,
            'skipped_bytes': 0}
    for bucket in buckets:
        for item in O.iter_objects(client, bucket):
            kind = 'skipped' if previous.match(bucket, item) else 'downloaded'
            plan['objects'] += 1
            plan['bytes'] += item['Size']
            plan[kind + '_objects'] += 1
            plan[kind + '_bytes'] += item['Size']
    return plan


def run_backup(params, endpoint, name, thresholds, check_mode, result):
    """The whole storage_backup run into ``result``: buckets, lock, plan, (not in check mode) clean-up of crashed runs,
    the copy, manifest and rename, retention, findings."""
    dest = params['dest']
    client = O.connect(params, endpoint, pool=params['concurrency'] + 2)
    buckets = O.resolve_buckets(client, params, endpoint, params['buckets'])
    result['buckets'] = buckets
    lock = None
    if not check_mode:
        prepare_dest(dest)
        lock = S.DestinationLock(dest).acquire()
    try:
        found = S.scan(dest)
        ours = O.same_source(found.backups, name, endpoint)
        prev_entry = O.newest_good(ours, require_complete=False)
        previous = Previous(prev_entry)
        backup_id = S.new_backup_id(dest, name)
        result.update(path=os.path.join(dest, backup_id), previous=previous.id, ignored=found.others,
                      future=[e['path'] for e in found.future])
        if check_mode:
            try:
                plan = _plan(client, buckets, previous)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise O.StorageError(O.describe(exc, params, endpoint)) from exc
            planned = {'id': backup_id, 'finished_at': utcnow(), 'manifest': {'verifications': []}}
            result.update(changed=True, cleaned=found.partials, progress=plan,
                          deleted=plan_retention([planned] + ours, params, backup_id))
            return
        for partial in found.partials:
            S.remove_tree(partial)
            result['cleaned'].append(partial)
        manifest = _copy(client, params, endpoint, name, buckets, previous, backup_id)
        result.update(changed=True, manifest=manifest)
        progress = dict(manifest['counts'], changed=len(manifest['changed']), vanished=len(manifest['vanished']),
                        denied=len(manifest['denied']), errors=len(manifest['errors']),
                        seconds=manifest['duration_seconds'])
        seconds = max(manifest['duration_seconds'], 1e-6)
        progress['mb_per_s'] = round(manifest['bytes'] / 1048576.0 / seconds, 2)
        progress['download_mb_per_s'] = round(manifest['counts']['downloaded_bytes'] / 1048576.0 / seconds, 2)
        result['progress'] = progress
        for key, returned in (('changed', 'changed_objects'), ('vanished', 'vanished_objects'),
                              ('denied', 'denied_objects'), ('errors', 'failed_objects')):
            result[returned] = manifest[key]
        result['report'] = {'storage_backup': {'id': backup_id, 'path': result['path'], 'objects': manifest['objects'],
                                               'bytes': manifest['bytes'], 'finished_at': manifest['finished_at'],
                                               'complete': manifest['complete'], 'verified': None}}
        complete_one = O.newest_good(O.same_source(S.scan(dest).backups, name, endpoint))
        for doomed in plan_retention(O.same_source(S.scan(dest).backups, name, endpoint), params, backup_id,
                                     protect=[complete_one['id'] if complete_one else None]):
            S.delete_backup(dest, doomed)
            result['deleted'].append(doomed)
    finally:
        if lock is not None:
            lock.release()
    result['checks'] = findings(thresholds, manifest, next(iter(ours), None), name) + [S.future_check(found)]


def _copy(client, params, endpoint, name, buckets, previous, backup_id):
    """Copy into a partial directory, write the manifest last and publish; removes the partial on any failure."""
    dest = params['dest']
    started = utcnow()
    clock = time.monotonic()
    partial = S.partial_dir(dest, backup_id)
    try:
        copier = Copier(client, params, endpoint, partial, previous)
        copier.run(buckets)
        finished = utcnow()
        index_size, index_sha = sha256_file(os.path.join(partial, O.INDEX))
        counts = copier.counts
        manifest = {
            'format_version': S.MANIFEST_FORMAT,
            'id': backup_id,
            'tool': O.BACKUP_TOOL,
            'database': name,
            'target': endpoint,
            'region': params['region'],
            'project_ref': params.get('project_ref'),
            'selection': 'listed' if params['buckets'] else 'all',
            'buckets': [dict(name=b, **copier.buckets.get(b, {'objects': 0, 'bytes': 0})) for b in buckets],
            'objects': counts['objects'],
            'bytes': counts['bytes'],
            'stored_bytes': counts['stored_bytes'],
            'counts': dict(counts),
            'previous': previous.id,
            'index': O.INDEX,
            'changed': sorted(copier.changed, key=lambda e: (e['bucket'], e['key'])),
            'vanished': sorted(copier.vanished, key=lambda e: (e['bucket'], e['key'])),
            'denied': sorted(copier.denied, key=lambda e: (e['bucket'], e['key'])),
            'errors': sorted(copier.errors, key=lambda e: (e['bucket'], e['key'])),
            'complete': not copier.denied and not copier.errors,
            'started_at': iso(started),
            'finished_at': iso(finished),
            'duration_seconds': round(time.monotonic() - clock, 3),
            'files': [{'path': O.INDEX, 'bytes': index_size, 'sha256': index_sha}],
            'row_counts': [],
            'verification': None,
            'verifications': [],
        }
        S.publish(dest, partial, backup_id, manifest)
        return manifest
    except BaseException:
        S.remove_tree(partial)
        raise


def _names(items):
    shown = ', '.join(label(i['bucket'], i['key']) for i in items[:NAMED])
    return shown + (' and %d more' % (len(items) - NAMED) if len(items) > NAMED else '')


def findings(thresholds, manifest, previous, name):
    """``storage_backup_objects``, ``storage_backup_denied``, ``storage_backup_errors``, ``storage_backup_changed`` and
    ``storage_backup_size`` of a finished run."""
    obj = 'source=%s' % name
    counts = manifest['counts']
    out = [C.finding('storage_backup_objects', C.OK, '%d object(s), %s in %d bucket(s): %d downloaded (%s), %d '
                     'unchanged since %s and not downloaded again (%s)'
                     % (manifest['objects'], C.human_bytes(manifest['bytes']), len(manifest['buckets']),
                        counts['downloaded_objects'], C.human_bytes(counts['downloaded_bytes']),
                        counts['skipped_objects'], manifest['previous'] or 'the previous backup',
                        C.human_bytes(counts['skipped_bytes'])),
                     value=manifest['objects'], unit='count', obj=obj)]
    denied = manifest['denied']
    out.append(C.finding('storage_backup_denied', C.CRITICAL if denied else C.OK,
                         ('%d object(s) could not be read with these credentials and are NOT in the backup: %s; '
                          'grant the access key read access to them (s3:GetObject)' % (len(denied), _names(denied)))
                         if denied else 'every listed object could be read', value=len(denied), unit='count', obj=obj))
    errors = manifest['errors']
    out.append(C.finding('storage_backup_errors', C.CRITICAL if errors else C.OK,
                         ('%d object(s) failed and are NOT in the backup: %s (%s)'
                          % (len(errors), _names(errors), errors[0]['reason'])) if errors
                         else 'no object failed', value=len(errors), unit='count', obj=obj))
    moved = manifest['changed'] + manifest['vanished']
    if moved:
        message = ('%d object(s) changed and %d were deleted while the backup ran: %s; the backup holds the version '
                   'fetched (not one moment across all objects)' % (len(manifest['changed']), len(manifest['vanished']),
                                                                    _names(moved)))
    else:
        message = 'no object changed while the backup ran'
    out.append(C.finding('storage_backup_changed', C.WARNING if moved else C.OK, message, value=len(moved),
                         unit='count', obj=obj))
    spec = thresholds['storage_backup_size']
    if previous is None:
        out.append(C.finding('storage_backup_size', C.OK, 'first backup of %s here: %s' % (name, C.human_bytes(
            manifest['bytes'])), unit='percent', warning=spec['warning'], critical=spec['critical'], obj=obj,
            bytes=manifest['bytes']))
    else:
        before = previous['manifest'].get('bytes')
        if not isinstance(before, int) or isinstance(before, bool) or before <= 0:
            out.append(C.finding('storage_backup_size', C.OK, 'the previous backup %s held no object bytes; %s now'
                                 % (previous['id'], C.human_bytes(manifest['bytes'])), unit='percent',
                                 warning=spec['warning'], critical=spec['critical'], obj=obj, bytes=manifest['bytes']))
            return out
        pct = round(100.0 * manifest['bytes'] / before, 1)
        out.append(C.evaluate('storage_backup_size', pct, spec['warning'], spec['critical'], C.BELOW, unit='percent',
                              obj=obj, message='objects hold {value}%% of the bytes of the previous backup (%s now, %s '
                              'in %s)' % (C.human_bytes(manifest['bytes']), C.human_bytes(before), previous['id']),
                              bytes=manifest['bytes'], previous_bytes=before))
    return out
