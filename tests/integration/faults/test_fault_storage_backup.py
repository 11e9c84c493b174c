# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults storage_backup survives, each named after the fault, against a real S3 protocol server (moto_server): the
server dying mid-transfer, a 403 on one object, objects changed and deleted during the run, many small objects in
bounded memory, a tampered previous backup, a killed run, a disk that takes no more."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid

from modrunner import COLLECTIONS_ROOT, MODULES_DIR, ModuleResult, run_module, start_module
from s3server import DENIED_PREFIX, S3Server, fill

# Small objects in the memory test. 10,000 objects take moto_server about a minute to take and serve on 2 cores; 2,500
# go through the same code (three listing pages, the bounded queue refilled thousands of times) in a quarter of it.
MANY = 2500
# The module's peak resident memory (Python, Ansible's module code, boto3's S3 model, the threads) measured here is
# about 60 MiB whatever the number or size of objects; a run that held its listing's objects or an object's content in
# memory would pass this with the 64 MiB object.
RSS_LIMIT_MB = 100


def sha(data):
    return hashlib.sha256(data).hexdigest()


def new_bucket(prefix='b'):
    return '%s-%s' % (prefix, uuid.uuid4().hex[:12])


def backups_in(dest):
    """(backup directories, partial directories) under ``dest``."""
    names = os.listdir(dest) if os.path.isdir(dest) else []
    return ([n for n in names if not n.startswith('.')], [n for n in names if n.startswith('.partial-')])


def index_of(path):
    with open(os.path.join(path, 'objects.jsonl')) as handle:
        return dict(((e['bucket'], e['key']), e) for e in map(json.loads, handle))


def content_files(partial):
    root = os.path.join(partial, 'objects')
    return sum(len(files) for _root, _dirs, files in os.walk(root))


def wait_for_content(dest, count, timeout=60, other_than=None):
    """Wait until a run in progress under ``dest`` (not the partial directory ``other_than``) has ``count`` content
    files; returns its partial directory."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in backups_in(dest)[1]:
            path = os.path.join(dest, name)
            if path != other_than and content_files(path) >= count:
                return path
        time.sleep(0.01)
    raise AssertionError('no run in progress copied %d objects under %s within %s s' % (count, dest, timeout))


def run_with_rss(name, args):
    """Run a module as its own process; returns (result, its peak resident memory in MiB). The peak is the kernel's
    VmHWM of the module's process, read until it exits (wait4's ru_maxrss would report the forked test process's
    memory, which the child starts from)."""
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
    out = tempfile.TemporaryFile()
    peak = 0
    try:
        proc = subprocess.Popen([sys.executable, os.path.join(MODULES_DIR, name + '.py'), handle.name], stdout=out,
                                stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT))
        while proc.poll() is None:
            try:
                with open('/proc/%d/status' % proc.pid) as status:
                    for line in status:
                        if line.startswith('VmHWM:'):
                            peak = max(peak, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        out.seek(0)
        raw = out.read().decode('utf-8', 'replace')
    finally:
        out.close()
        os.unlink(handle.name)
    result = ModuleResult(json.loads(raw))
    result.rc, result.raw = proc.returncode, raw
    return result, peak / 1024.0


def test_fault_storage_backup_server_dies_mid_transfer(tmp_path):
    dest = str(tmp_path / 'store')
    with S3Server() as s3:
        fill(s3.client(), 'crashing-bucket', dict(('obj-%04d' % i, os.urandom(16384)) for i in range(400)))
        running = start_module('storage_backup', s3.args(dest=dest, concurrency=2))
        wait_for_content(dest, 20)
        s3.kill()
        result = running.finish(timeout=120)
    assert result.failed, result.raw
    assert result['msg'].startswith('storage backup failed: ') and 'cannot connect to %s' % s3.endpoint in result['msg'], \
        result['msg']
    # nothing that could pass for a backup: no backup directory, no partial one
    assert backups_in(dest) == ([], [])
    verified = run_module('storage_backup_verify', {'dest': dest})
    assert verified.failed and 'no complete storage backup under' in verified['msg']


def test_fault_storage_backup_access_denied_on_one_object(s3_server, tmp_path):
    dest = str(tmp_path / 'store')
    bucket = new_bucket()
    secret_key = DENIED_PREFIX + 'payroll.pdf'
    fill(s3_server.client(), bucket, {'public.txt': b'anyone', secret_key: b'payroll', 'other.txt': b'x' * 10})
    result = run_module('storage_backup', s3_server.args('reader', dest=dest, buckets=[bucket]))
    assert result.rc == 0, result.raw
    denied = result.check('storage_backup_denied')
    assert denied['status'] == 'critical' and denied['value'] == 1 and '%s/%s' % (bucket, secret_key) in denied['message']
    assert result['status'] == 'critical'
    assert result['denied_objects'] == [dict(result['denied_objects'][0], bucket=bucket, key=secret_key)]
    assert 'AccessDenied' in result['denied_objects'][0]['reason']
    manifest = result['manifest']
    assert manifest['complete'] is False and manifest['objects'] == 2
    assert set(index_of(result['path'])) == {(bucket, 'public.txt'), (bucket, 'other.txt')}
    # the incomplete backup verifies as failed, and is not counted as a good backup
    verified = run_module('storage_backup_verify', {'dest': dest})
    assert verified['result'] == 'failed' and verified.check('storage_backup_complete')['status'] == 'critical'
    assert secret_key in verified.check('storage_backup_complete')['message']
    assert verified.check('storage_backup_checksum')['status'] == 'ok'
    assert verified.check('storage_backup_age')['status'] == 'critical'
    # with the right to read it, the next run completes; the backup that failed verification is no base for it
    again = run_module('storage_backup', s3_server.args('admin', dest=dest, buckets=[bucket]))
    assert again['manifest']['complete'] is True and again['previous'] is None
    assert again['progress']['downloaded_objects'] == 3
    assert again.check('storage_backup_denied')['status'] == 'ok'


def test_fault_storage_backup_object_changed_during_backup(s3_server, tmp_path):
    dest = str(tmp_path / 'store')
    bucket = new_bucket()
    client = s3_server.client()
    objects = dict(('obj-%04d' % i, os.urandom(8192)) for i in range(300))
    objects.update({'zzz-changed': b'the version that was listed', 'zzz-gone': b'deleted during the run'})
    fill(client, bucket, objects)
    # One thread copies the objects in key order; the zzz- ones are last, so they are changed after the listing and
    # before the run reaches them.
    running = start_module('storage_backup', s3_server.args(dest=dest, buckets=[bucket], concurrency=1))
    wait_for_content(dest, 1)
    newer = b'a newer version, written while the backup ran, of another size'
    client.put_object(Bucket=bucket, Key='zzz-changed', Body=newer)
    client.delete_object(Bucket=bucket, Key='zzz-gone')
    result = running.finish()
    assert result.rc == 0, result.raw
    changed = result.check('storage_backup_changed')
    assert changed['status'] == 'warning' and changed['value'] == 2, changed
    assert '%s/zzz-changed' % bucket in changed['message'] and '%s/zzz-gone' % bucket in changed['message']
    (record,) = result['changed_objects']
    assert record['key'] == 'zzz-changed' and record['listed_size'] == len(objects['zzz-changed'])
    assert record['size'] == len(newer) and record['etag'] != record['listed_etag']
    assert [v['key'] for v in result['vanished_objects']] == ['zzz-gone']
    # the backup holds the version it fetched, consistent with its own index, and not the deleted object
    index = index_of(result['path'])
    assert index[(bucket, 'zzz-changed')]['sha256'] == sha(newer) and (bucket, 'zzz-gone') not in index
    assert result['manifest']['complete'] is True and result['manifest']['objects'] == 301
    assert run_module('storage_backup_verify', {'dest': dest})['result'] == 'ok'


def test_fault_storage_backup_many_small_objects_bounded_memory(s3_server, tmp_path):
    dest = str(tmp_path / 'store')
    bucket, big = new_bucket('many'), new_bucket('big')
    client = s3_server.client()
    fill(client, bucket, dict(('dir-%d/obj-%05d' % (i % 7, i), os.urandom(256)) for i in range(MANY)))
    fill(client, big, {'video.bin': os.urandom(64 * 1024 * 1024)})
    result, rss_many = run_with_rss('storage_backup', s3_server.args(dest=dest, buckets=[bucket]))
    assert result.rc == 0, result.raw
    assert result['manifest']['objects'] == MANY and result['progress']['downloaded_objects'] == MANY
    again, rss_again = run_with_rss('storage_backup', s3_server.args(dest=dest, buckets=[bucket]))
    assert again['progress']['skipped_objects'] == MANY and again['progress']['downloaded_objects'] == 0
    large, rss_large = run_with_rss('storage_backup', s3_server.args(dest=str(tmp_path / 'large'), buckets=[big]))
    assert large['progress']['downloaded_bytes'] == 64 * 1024 * 1024
    assert max(rss_many, rss_again, rss_large) < RSS_LIMIT_MB, (rss_many, rss_again, rss_large)
    # streamed: a 64 MiB object costs no more memory than a few hundred bytes do
    assert rss_large < rss_many + 32, (rss_many, rss_large)


def test_fault_storage_backup_tampered_previous_backup(s3_server, tmp_path):
    dest = tmp_path / 'store'
    bucket = new_bucket()
    objects = {'a.txt': b'alpha ' * 50, 'b.txt': b'bravo ' * 50, 'c.txt': b'charlie ' * 50, 'd.txt': b'delta!! ' * 50}
    fill(s3_server.client(), bucket, objects)
    first = run_module('storage_backup', s3_server.args(dest=str(dest), buckets=[bucket]))
    assert first.rc == 0, first.raw
    path = first['path']
    index = index_of(path)

    def file_of(key):
        digest = index[(bucket, key)]['sha256']
        return os.path.join(path, 'objects', digest[:2], digest)

    # a.txt: same size, other bytes; b.txt: replaced by a symlink to a file outside the store that has the right
    # content; c.txt: the index claims it has d.txt's content, of the same size (so size and sha256 of the file agree
    # with the claim, and a link would be a wrong file: only the store's ETag, the MD5 of c.txt, tells)
    with open(file_of('a.txt'), 'r+b') as handle:
        handle.write(b'ALPHA!')
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'b').write_bytes(objects['b.txt'])
    os.unlink(file_of('b.txt'))
    os.symlink(str(outside / 'b'), file_of('b.txt'))
    lines = [json.loads(line) for line in open(os.path.join(path, 'objects.jsonl'))]
    for entry in lines:
        if entry['key'] == 'c.txt':
            entry['sha256'] = index[(bucket, 'd.txt')]['sha256']
    with open(os.path.join(path, 'objects.jsonl'), 'w') as handle:
        handle.writelines(json.dumps(e) + '\n' for e in lines)

    second = run_module('storage_backup', s3_server.args(dest=str(dest), buckets=[bucket]))
    assert second.rc == 0, second.raw
    # a.txt and b.txt are downloaded again (the file does not hash to the claim, the symlink is not followed), and so
    # is c.txt (the claimed file's MD5 is not its ETag); d.txt is taken over
    assert second['progress']['downloaded_objects'] == 3 and second['progress']['skipped_objects'] == 1
    new_index = index_of(second['path'])
    for key, data in objects.items():
        digest = new_index[(bucket, key)]['sha256']
        assert digest == sha(data), key
        with open(os.path.join(second['path'], 'objects', digest[:2], digest), 'rb') as handle:
            assert handle.read() == data, key
    assert run_module('storage_backup_verify', {'backup': second['path']})['result'] == 'ok'
    # retention deletes the tampered backup, and only it: the symlink goes, the file it pointed at stays
    pruned = run_module('storage_backup', s3_server.args(dest=str(dest), buckets=[bucket], keep_daily=1))
    assert os.path.basename(path) in pruned['deleted'] and not os.path.exists(path)
    assert (outside / 'b').read_bytes() == objects['b.txt']


def test_fault_storage_backup_killed_run(s3_server, tmp_path):
    dest = str(tmp_path / 'store')
    bucket = new_bucket()
    fill(s3_server.client(), bucket, dict(('obj-%04d' % i, os.urandom(8192)) for i in range(300)))
    running = start_module('storage_backup', s3_server.args(dest=dest, buckets=[bucket], concurrency=1))
    partial = wait_for_content(dest, 5)
    running.proc.send_signal(signal.SIGKILL)
    running.proc.wait()
    assert backups_in(dest) == ([], [os.path.basename(partial)])
    # asked to stop (SIGTERM, as Ansible stops a module), a run removes its partial directory itself - and, as any run
    # does, the killed run's leftovers first
    stopped = start_module('storage_backup', s3_server.args(dest=dest, buckets=[bucket], concurrency=1))
    own = wait_for_content(dest, 5, other_than=partial)
    stopped.proc.send_signal(signal.SIGTERM)
    _out, err = stopped.proc.communicate(timeout=60)
    os.unlink(stopped.args_file)
    assert stopped.proc.returncode != 0 and 'interrupted by signal 15' in err, err
    assert backups_in(dest) == ([], []), own
    complete = run_module('storage_backup', s3_server.args(dest=dest, buckets=[bucket]))
    assert complete.rc == 0 and complete['cleaned'] == [], complete.raw
    assert backups_in(dest) == ([os.path.basename(complete['path'])], [])


def test_fault_storage_backup_disk_takes_no_more(s3_server, tmp_path):
    dest = str(tmp_path / 'store')
    bucket = new_bucket()
    fill(s3_server.client(), bucket, {'small.txt': b'fits', 'large.bin': os.urandom(4 * 1024 * 1024)})

    def small_files():
        limit = 1024 * 1024  # a file may not grow past 1 MiB: the write fails as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = start_module('storage_backup', s3_server.args(dest=dest, buckets=[bucket]), preexec_fn=small_files).finish()
    assert result.failed and 'File too large' in result['msg'], result.raw
    assert backups_in(dest) == ([], [])
