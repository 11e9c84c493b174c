# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: storage_backup against ``rclone copy`` of the same buckets from the same S3 server, full and incremental.

A moto_server (a real S3 protocol server, request signing enforced) gets two buckets: many small objects and a few
large ones. Then, alternating in one invocation:

* rclone full  -- ``rclone copy src: DIR`` of every bucket into an empty directory (``--transfers`` and
                  ``--checkers`` = ``--concurrency``);
* rclone incr  -- the same command again, nothing changed;
* ours full    -- storage_backup as Ansible runs it (its own Python process) into an empty store: listing, parallel
                  streaming with sha256 of every object, manifest, index, atomic publish;
* ours incr    -- storage_backup again, nothing changed: every object is taken over from the previous backup by hard
                  link after its sha256 (and MD5 against the ETag) is recomputed.

Prints the medians and the ratios ours full / rclone full (target: at most 1.2) and ours incr / ours full (target: at
most 0.2). Run by hand::

    .venv/bin/python benchmarks/storage_backup.py --small 3000 --large 8 --repeat 3

``--smoke`` is the smallest run of the same code (60 small objects, 1 large, one round) for ``make test``: it fails when
a run fails or copies the wrong number of objects, and compares no figure with a target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, 'tests'), os.path.join(REPO, 'collections')]

from modrunner import run_module  # noqa: E402
from s3server import REGION, S3Server, fill  # noqa: E402

TARGET_FULL = 1.2
TARGET_INCREMENTAL = 0.2


def rclone_env(s3):
    """rclone's configuration of the remote ``src`` in its environment; AWS_* variables of the caller (a CA bundle,
    a profile) are left out, so both tools see the same plain endpoint and keys."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('AWS_') and not k.startswith('RCLONE_'))
    env.update(RCLONE_CONFIG_SRC_TYPE='s3', RCLONE_CONFIG_SRC_PROVIDER='Other', RCLONE_CONFIG_SRC_ENV_AUTH='false',
               RCLONE_CONFIG_SRC_ACCESS_KEY_ID=s3.admin['access_key_id'],
               RCLONE_CONFIG_SRC_SECRET_ACCESS_KEY=s3.admin['secret_access_key'],
               RCLONE_CONFIG_SRC_ENDPOINT=s3.endpoint, RCLONE_CONFIG_SRC_REGION=REGION,
               RCLONE_CONFIG_SRC_FORCE_PATH_STYLE='true', RCLONE_CONFIG='/dev/null')
    return env


def count_files(root):
    return sum(len(files) for _root, _dirs, files in os.walk(root))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--small', type=int, default=2000, help='small objects (16 KiB each)')
    parser.add_argument('--large', type=int, default=8, help='large objects (32 MiB each)')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--concurrency', type=int, default=8, help='our concurrency and rclone\'s transfers/checkers')
    parser.add_argument('--smoke', action='store_true',
                        help='smallest run of the whole code path (60 small, 1 large of 2 MiB, one round); no target '
                             'is checked')
    opts = parser.parse_args()
    small_size, large_size = 16 * 1024, 32 * 1024 * 1024
    if opts.smoke:
        opts.small, opts.large, opts.repeat, large_size = 60, 1, 1, 2 * 1024 * 1024
    rclone = shutil.which('rclone')
    if rclone is None:
        raise SystemExit('rclone is not installed (Debian package rclone; scripts/install-system-deps.sh installs it)')
    work = tempfile.mkdtemp(prefix='appcare-storage-bench-')
    try:
        with S3Server() as s3:
            client = s3.client()
            print('filling: %d objects of %d KiB and %d of %d MiB ...'
                  % (opts.small, small_size // 1024, opts.large, large_size // 1048576))
            fill(client, 'bench-small', dict(('dir-%02d/obj-%06d' % (i % 50, i), os.urandom(small_size))
                                             for i in range(opts.small)))
            fill(client, 'bench-large', dict(('video-%03d.bin' % i, os.urandom(large_size)) for i in range(opts.large)))
            objects = opts.small + opts.large
            total_mb = (opts.small * small_size + opts.large * large_size) / 1048576.0
            env = rclone_env(s3)
            argv = [rclone, 'copy', '--quiet', '--transfers', str(opts.concurrency), '--checkers',
                    str(opts.concurrency), 'src:']
            args = s3.args(concurrency=opts.concurrency)
            runs = dict((k, []) for k in ('rclone_full', 'rclone_incr', 'ours_full', 'ours_incr'))

            def timed(label, action):
                started = time.monotonic()
                action()
                runs[label].append(time.monotonic() - started)

            def rclone_copy(target):
                proc = subprocess.run(argv + [target], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, check=False)
                if proc.returncode != 0:
                    raise SystemExit('rclone copy failed: %s' % proc.stdout)
                if count_files(target) != objects:
                    raise SystemExit('rclone copied %d files, expected %d' % (count_files(target), objects))

            def ours(dest, downloaded):
                result = run_module('storage_backup', dict(args, dest=dest))
                if result.failed or result['status'] != 'ok':
                    raise SystemExit('storage_backup failed: %s' % result.get('msg', result.get('checks')))
                progress = result['progress']
                if progress['objects'] != objects or progress['downloaded_objects'] != downloaded:
                    raise SystemExit('storage_backup copied %s, expected %d objects, %d downloaded'
                                     % (progress, objects, downloaded))

            for index in range(opts.repeat):
                target, dest = os.path.join(work, 'rclone-%d' % index), os.path.join(work, 'ours-%d' % index)
                timed('rclone_full', lambda t=target: rclone_copy(t))
                timed('rclone_incr', lambda t=target: rclone_copy(t))
                timed('ours_full', lambda d=dest: ours(d, objects))
                timed('ours_incr', lambda d=dest: ours(d, 0))
                shutil.rmtree(target)
                shutil.rmtree(dest)
        med = dict((label, statistics.median(times)) for label, times in runs.items())
        full, incremental = med['ours_full'] / med['rclone_full'], med['ours_incr'] / med['ours_full']
        print('\n%d objects (%.0f MB) in 2 buckets on moto_server, concurrency %d, %d alternating rounds, medians:'
              % (objects, total_mb, opts.concurrency, opts.repeat))
        print('  rclone copy, full          %7.2f s' % med['rclone_full'])
        print('  rclone copy, nothing new   %7.2f s   (%.3f of its full run)'
              % (med['rclone_incr'], med['rclone_incr'] / med['rclone_full']))
        print('  storage_backup, full       %7.2f s   ours / rclone: %.3f (target <= %.1f)'
              % (med['ours_full'], full, TARGET_FULL))
        print('  storage_backup, nothing new%7.2f s   incremental / full: %.3f (target <= %.1f)'
              % (med['ours_incr'], incremental, TARGET_INCREMENTAL))
        rounds = range(opts.repeat)
        print('  rounds: ours/rclone %s; incremental/full %s' % (
            ', '.join('%.3f' % (runs['ours_full'][i] / runs['rclone_full'][i]) for i in rounds),
            ', '.join('%.3f' % (runs['ours_incr'][i] / runs['ours_full'][i]) for i in rounds)))
        if opts.smoke:
            print('smoke run: every run succeeded; figures this small are not compared with the targets')
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
