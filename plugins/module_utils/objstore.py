# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3-compatible object stores (Supabase Storage's S3 endpoint, MinIO, AWS S3 ...) as a backup source: the
connection options (doc fragment ``appcare.maintenance.s3``), the client, what an S3 error means for a backup,
and the layout of an object backup in the collection's store.

A storage backup is a directory of the store (``store.py``) holding::

    manifest.json          the store's manifest: counts, buckets, what was missing, ``files`` = [objects.jsonl]
    objects.jsonl          one JSON line per object: bucket, key, size, etag, sha256, last_modified, content_type
    objects/<aa>/<sha256>  the content of every object, named by its sha256 (identical objects are stored once)

The manifest seals the index with its sha256 (``files``), and the index gives the sha256 of every object, so
``store.verify_checksums`` plus ``index_problems`` prove every byte. The index is a file of its own because the
store reads every manifest of ``dest`` on each scan: a manifest stays small however many objects a bucket has.
Content files are named by their hash, never by the object key (keys may hold ``..``, empty segments, a key
that is also a "directory" of another, or more than a file name's 255 bytes), and a file is only ever reached
through a validated hash, so nothing read from an index can point outside the backup.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import json
import os
import re
import stat
from urllib.parse import urlsplit

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.appcare.maintenance.plugins.module_utils import store as S
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import (
    AppcareError,
    ConfigurationError,
    DependencyError,
)
from ansible_collections.appcare.maintenance.plugins.module_utils.files import safe_name
from ansible_collections.appcare.maintenance.plugins.module_utils.supabase_api import PROJECT_REF

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the managed host
    boto3 = None
    botocore = None
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc

BACKUP_TOOL = 'appcare.maintenance.storage_backup'
INDEX = 'objects.jsonl'
CONTENT_DIR = 'objects'
SUPABASE_ENDPOINT = 'https://%s.supabase.co/storage/v1/s3'
SHA256 = re.compile(r'^[0-9a-f]{64}$')
# S3's bucket naming rules (lower-case letters, digits, dots and hyphens, 3 to 63, starting and ending with a letter
# or digit); also what a scratch bucket name must be.
BUCKET_NAME = re.compile(r'^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')

# What an S3 error code means for one object of a backup.
DENIED = ('AccessDenied', 'AllAccessDisabled', 'Forbidden', '403')
VANISHED = ('NoSuchKey', 'NotFound', '404')
CHANGED = ('PreconditionFailed', '412')
# Errors that concern the credentials or the endpoint, never one object: a run that meets one stops.
CREDENTIALS = ('InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'TokenRefreshRequired',
               'AuthorizationHeaderMalformed', 'InvalidClientTokenId', 'AccountProblem', 'RequestTimeTooSkewed')
NO_BUCKET = ('NoSuchBucket',)


class StorageError(AppcareError):
    """The object store could not be reached, refused the credentials, or answered what a backup cannot use."""


def require_boto3():
    if not HAS_BOTO3:
        raise DependencyError('%s: %s' % (missing_required_lib('boto3'), BOTO3_IMPORT_ERROR))


# --- options ----------------------------------------------------------------------------------------------------

def s3_argument_spec():
    """The connection options of an S3-compatible store (documented in doc_fragments/s3.py). The keys are checked by
    ``validate_s3`` where they are needed (storage_backup_verify needs them only for level restore)."""
    return dict(
        endpoint_url=dict(type='str'),
        project_ref=dict(type='str'),
        region=dict(type='str', default='us-east-1', fallback=(env_fallback, ['AWS_REGION', 'AWS_DEFAULT_REGION'])),
        access_key_id=dict(type='str', no_log=False, fallback=(env_fallback, ['AWS_ACCESS_KEY_ID'])),
        secret_access_key=dict(type='str', no_log=True,
                               fallback=(env_fallback, ['AWS_SECRET_ACCESS_KEY'])),
        addressing_style=dict(type='str', default='path', choices=['path', 'virtual']),
        validate_certs=dict(type='bool', default=True),
        endpoint_ca_cert=dict(type='path'),
        timeout=dict(type='int', default=60),
    )


def endpoint_of(params):
    """The endpoint URL from O(endpoint_url) or O(project_ref); raises ConfigurationError for neither, both, or a URL
    that is not http(s)://host[:port][/path] (credentials in a URL would end up in logs and manifests)."""
    url, ref = params.get('endpoint_url'), params.get('project_ref')
    if url and ref:
        raise ConfigurationError('give endpoint_url or project_ref, not both')
    if ref:
        if not PROJECT_REF.match(ref):  # the Management API's definition; it also keeps the host name ours
            raise ConfigurationError('project_ref %r is not a Supabase project reference (the 20 lower-case letters '
                                     'of https://<project_ref>.supabase.co)' % ref)
        return SUPABASE_ENDPOINT % ref
    if not url:
        raise ConfigurationError('endpoint_url or project_ref is required (the S3 endpoint of the store)')
    parts = urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise ConfigurationError('endpoint_url %r must be an http:// or https:// URL with a host' % _redact_url(url))
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError('endpoint_url must not hold credentials; use access_key_id and secret_access_key')
    if parts.query or parts.fragment:
        raise ConfigurationError('endpoint_url %r must not have a query or fragment' % _redact_url(url))
    return url.rstrip('/')


def _redact_url(url):
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ''
    return parts._replace(netloc='***@%s%s' % (host, ':%d' % parts.port if parts.port else '')).geturl()


def default_source_name(params, endpoint):
    """``storage-<project_ref>``, else ``storage-<endpoint host[_port]>``: the name in backup ids and manifests."""
    if params.get('project_ref'):
        return 'storage-%s' % params['project_ref']
    parts = urlsplit(endpoint)
    host = parts.hostname + ('_%d' % parts.port if parts.port else '')
    return safe_name('storage-%s' % host)


def validate_source_name(name):
    if not isinstance(name, str) or not name or safe_name(name) != name:
        raise ConfigurationError('source_name %r must be a plain name (letters, digits, ".", "_", "-"; no leading or '
                                 'trailing "." or "_"); it names the backup directories' % (name,))
    return name


def validate_s3(params, concurrency=1):
    """Options of the S3 connection, before anything touches disk or network. Returns the endpoint URL."""
    endpoint = endpoint_of(params)
    if not params.get('access_key_id') or not params.get('secret_access_key'):
        raise ConfigurationError('access_key_id and secret_access_key are required (the S3 access keys; for Supabase, '
                                 'Project Settings > Storage > S3 access keys)')
    if not params.get('region'):
        raise ConfigurationError('region must not be empty (for Supabase, the project\'s region shown with its S3 '
                                 'endpoint)')
    if params['timeout'] < 1:
        raise ConfigurationError('timeout must be at least 1 second, got %d' % params['timeout'])
    if concurrency < 1 or concurrency > 64:
        raise ConfigurationError('concurrency must be between 1 and 64, got %d' % concurrency)
    if params.get('endpoint_ca_cert') and not os.path.isfile(params['endpoint_ca_cert']):
        raise ConfigurationError('endpoint_ca_cert %s is not a file' % params['endpoint_ca_cert'])
    return endpoint


def validate_buckets(buckets):
    for name in buckets or []:
        if not isinstance(name, str) or not BUCKET_NAME.match(name):
            raise ConfigurationError('buckets: %r is not a bucket name (3 to 63 lower-case letters, digits, "." and '
                                     '"-")' % (name,))
    if buckets and len(set(buckets)) != len(buckets):
        raise ConfigurationError('buckets: a bucket is listed twice')


# --- the client -------------------------------------------------------------------------------------------------

def _client_config(params, pool):
    # Our own arguments are checked by us: botocore's validation of each request's parameters is CPU a run of many
    # small objects spends per request (half of the client's time with it, measured against moto).
    kwargs = dict(signature_version='s3v4', s3={'addressing_style': params['addressing_style']},
                  connect_timeout=params['timeout'], read_timeout=params['timeout'],
                  retries={'max_attempts': 3, 'mode': 'standard'}, max_pool_connections=pool,
                  parameter_validation=False, user_agent_extra='appcare.maintenance')
    try:
        # botocore 1.36+ adds CRC checksums to uploads in a chunked encoding and asks for checksums on downloads,
        # which several S3-compatible stores refuse or mishandle; only where S3 requires them. The backup hashes every
        # byte it receives (sha256) and checks its length anyway.
        return botocore.config.Config(request_checksum_calculation='when_required',
                                      response_checksum_validation='when_required', **kwargs)
    except TypeError:  # pragma: no cover - older botocore
        return botocore.config.Config(**kwargs)


def connect(params, endpoint, pool=10):
    """A boto3 S3 client for the options; one client serves every thread (boto3 clients are thread-safe). Times in
    answers stay text (``parse_time`` reads them): botocore's own date parsing costs more than the request."""
    require_boto3()
    verify = params['endpoint_ca_cert'] if params.get('endpoint_ca_cert') else params['validate_certs']
    session = boto3.session.Session()
    session._session.get_component('response_parser_factory').set_parser_defaults(  # pylint: disable=protected-access
        timestamp_parser=str)
    try:
        return session.client(
            's3', endpoint_url=endpoint, region_name=params['region'], aws_access_key_id=params['access_key_id'],
            aws_secret_access_key=params['secret_access_key'], verify=verify, config=_client_config(params, pool))
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise StorageError('cannot set up the S3 client for %s: %s' % (endpoint, _one_line(exc))) from exc


def parse_time(value):
    """An S3 time (an HTTP date in headers, ISO 8601 in listings, or a datetime) as the collection's ISO text; None
    when it is none of these."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            try:
                moment = datetime.datetime.fromisoformat(value.replace('Z', '+00:00'))
            except ValueError:
                return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return iso(moment.astimezone(datetime.timezone.utc))


def error_code(exc):
    """(code, HTTP status) of a botocore ClientError; (None, None) for anything else."""
    response = getattr(exc, 'response', None)
    if not isinstance(response, dict):
        return None, None
    code = (response.get('Error') or {}).get('Code')
    status = (response.get('ResponseMetadata') or {}).get('HTTPStatusCode')
    return (str(code) if code is not None else None), status


def is_client_error(exc):
    return HAS_BOTO3 and isinstance(exc, botocore.exceptions.ClientError)


def describe(exc, params=None, endpoint=None):
    """One line about an S3 failure that says what to do: credentials refused, endpoint unreachable, TLS, a missing
    bucket. Never holds the secret key (botocore's messages do not carry it, and neither do ours)."""
    where = endpoint or ''
    key = (params or {}).get('access_key_id')
    if is_client_error(exc):
        code, status = error_code(exc)
        message = ((exc.response.get('Error') or {}).get('Message') or '').strip()
        if code in CREDENTIALS:
            hint = {'InvalidAccessKeyId': 'the access key id is unknown to the store',
                    'SignatureDoesNotMatch': 'the secret access key is wrong for this access key id (or region is '
                                             'wrong for the store)',
                    'RequestTimeTooSkewed': 'this host\'s clock is too far from the store\'s'}.get(code, 'check the keys')
            return ('%s refused the credentials%s: %s (%s%s)' % (where or 'the store', ' of access key %s' % key if key
                                                                 else '', code, hint, ': %s' % message if message else ''))
        if code in DENIED:
            return 'access denied by %s (%s%s): the access key lacks a permission' % (
                where or 'the store', code, ': %s' % message if message else '')
        return '%s answered %s%s%s' % (where or 'the store', code or 'an error', ' (HTTP %s)' % status if status else '',
                                       ': %s' % message if message else '')
    if HAS_BOTO3 and isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return 'cannot connect to %s: %s (check endpoint_url / project_ref and the network)' % (
            where, _one_line(exc))
    if HAS_BOTO3 and isinstance(exc, botocore.exceptions.SSLError):
        return 'TLS failure talking to %s: %s (set endpoint_ca_cert to the CA that signed its certificate)' % (
            where, _one_line(exc))
    if HAS_BOTO3 and isinstance(exc, (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError)):
        return '%s did not answer in time: %s (timeout)' % (where, _one_line(exc))
    return '%s: %s' % (where or 'object store', _one_line(exc))


def _one_line(exc):
    return ' '.join(str(exc).split())


def list_bucket_names(client):
    return sorted(b['Name'] for b in client.list_buckets().get('Buckets') or [])


def resolve_buckets(client, params, endpoint, wanted):
    """The buckets to back up: ``wanted`` (each must exist), or every bucket the credentials list. Raises StorageError
    with the cause: credentials refused, endpoint unreachable, a bucket that does not exist."""
    try:
        if not wanted:
            names = list_bucket_names(client)
            if not names:
                raise StorageError('%s lists no bucket for these credentials: nothing to back up' % endpoint)
            return names
        for name in wanted:
            try:
                client.head_bucket(Bucket=name)
            except botocore.exceptions.ClientError as exc:
                code, status = error_code(exc)
                if code in NO_BUCKET + ('404', 'NotFound') or status == 404:
                    raise StorageError('bucket %s does not exist at %s (check buckets)' % (name, endpoint)) from exc
                if code in ('403', 'AccessDenied') and status == 403:
                    # HEAD answers have no body: find out whether the credentials or the bucket's permissions are wrong.
                    client.list_objects_v2(Bucket=name, MaxKeys=1)
                raise
        return list(wanted)
    except StorageError:
        raise
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise StorageError(describe(exc, params, endpoint)) from exc


def iter_pages(client, bucket):
    """The listing of ``bucket``, one page (a list of up to 1000 objects) at a time."""
    paginator = client.get_paginator('list_objects_v2')
    for page in paginator.paginate(Bucket=bucket, PaginationConfig={'PageSize': 1000}):
        yield page.get('Contents') or []


def iter_objects(client, bucket):
    """Every object of ``bucket`` as listed (``Key``, ``Size``, ``ETag``, ``LastModified``), page by page, so a bucket of
    any size is never held in memory whole."""
    paginator = client.get_paginator('list_objects_v2')
    for page in paginator.paginate(Bucket=bucket, PaginationConfig={'PageSize': 1000}):
        yield from page.get('Contents') or []


# --- the backup's files -------------------------------------------------------------------------------------------

ETAG_MD5 = re.compile(r'^"?([0-9a-f]{32})"?$')


def etag_md5(etag):
    """The MD5 an ETag is, or None. S3 and most compatible stores make a single-part upload's ETag the MD5 of its
    content; a multipart upload's ends in ``-<parts>``. (Objects encrypted with KMS keys have other ETags: they are
    downloaded again instead of reused.)"""
    match = ETAG_MD5.match(etag) if isinstance(etag, str) else None
    return match.group(1) if match else None


def hash_file(path):
    """(bytes, sha256, md5) of a file, read once in 1 MiB chunks."""
    sha256, md5 = hashlib.sha256(), hashlib.md5()  # nosec - MD5 is what S3 ETags are made of, not a protection
    size = 0
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b''):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return size, sha256.hexdigest(), md5.hexdigest()


def content_relpath(sha256):
    """Where an object's content lives in a backup, relative to it; ``sha256`` must be validated already."""
    return os.path.join(CONTENT_DIR, sha256[:2], sha256)


def valid_entry(entry):
    """Whether an index line is an object entry this collection wrote: the shapes a reader relies on, nothing else."""
    return (isinstance(entry, dict) and isinstance(entry.get('bucket'), str) and entry['bucket'] != ''
            and isinstance(entry.get('key'), str) and entry['key'] != ''
            and isinstance(entry.get('size'), int) and not isinstance(entry['size'], bool) and entry['size'] >= 0
            and isinstance(entry.get('etag'), str) and isinstance(entry.get('sha256'), str)
            and bool(SHA256.match(entry['sha256'])))


def read_index(backup_dir):
    """(entries, problems) of a backup's ``objects.jsonl``: valid entries in file order, and what is wrong with the
    rest (a malformed line, a key listed twice). A missing or unreadable index is a problem, never an error."""
    entries, problems, seen = [], [], set()
    path = os.path.join(backup_dir, INDEX)
    try:
        handle = open(path, encoding='utf-8')
    except OSError as exc:
        return [], ['%s: %s' % (INDEX, exc.strerror)]
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                problems.append('%s line %d: not JSON' % (INDEX, number))
                continue
            if not valid_entry(entry):
                problems.append('%s line %d: not an object entry' % (INDEX, number))
                continue
            ident = (entry['bucket'], entry['key'])
            if ident in seen:
                problems.append('%s line %d: %s/%s is listed twice' % (INDEX, number, entry['bucket'], entry['key']))
                continue
            seen.add(ident)
            entries.append(entry)
    return entries, problems


class ContentFiles(object):
    """The content files of one backup directory, reached only through a validated sha256: ``path(sha256)`` is the
    file when it is a regular file (not a symlink) in a real ``objects/<aa>`` directory of the backup (each directory
    checked once, not per file: a backup has 256 of them and millions of files), else None."""

    def __init__(self, backup_dir):
        self.root = os.path.realpath(backup_dir)
        self.dirs = {}

    def _dir_ok(self, relative):
        ok = self.dirs.get(relative)
        if ok is None:
            path, ok = self.root, True
            for part in relative.split(os.sep):
                path = os.path.join(path, part)
                try:
                    info = os.lstat(path)
                except OSError:
                    ok = False
                    break
                if not stat.S_ISDIR(info.st_mode):
                    ok = False
                    break
            self.dirs[relative] = ok
        return ok

    def path(self, sha256):
        if not SHA256.match(sha256) or not self._dir_ok(os.path.join(CONTENT_DIR, sha256[:2])):
            return None
        path = os.path.join(self.root, CONTENT_DIR, sha256[:2], sha256)
        try:
            return path if stat.S_ISREG(os.lstat(path).st_mode) else None
        except OSError:
            return None


# --- the store's view of storage backups --------------------------------------------------------------------------

def is_storage_backup(manifest):
    return isinstance(manifest, dict) and manifest.get('tool') == BACKUP_TOOL


def complete(manifest):
    """Whether a backup holds every object it listed (none denied or failed). Read back, so only ever used to
    *withhold* trust (a backup that says it is incomplete is not good), never to grant it."""
    return not manifest.get('denied') and not manifest.get('errors') and manifest.get('complete') is not False


def same_source(backups, name, target=None):
    """The storage backups (as from ``store.scan``) of source ``name`` (and endpoint ``target`` when given)."""
    return [b for b in backups if is_storage_backup(b['manifest']) and b['manifest'].get('database') == name
            and (target is None or b['manifest'].get('target') == target)]


def newest_good(backups, require_complete=True):
    """The newest of ``backups`` (newest first) whose verdict is not failed and, with ``require_complete``, that is
    complete. The base of an incremental run need not be complete: what it takes from there is proven file by file."""
    for entry in backups:
        if S.verdict(entry['manifest'])['result'] == 'failed':
            continue
        if require_complete and not complete(entry['manifest']):
            continue
        return entry
    return None
