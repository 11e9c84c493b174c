# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: pg_backup against bare ``pg_dump -Fc`` on a pgbench database.

In one invocation and against one embedded PostgreSQL 18, alternating runs of:

* bare      -- ``pg_dump -Fc`` with the same compression, the same client binary;
* pg_backup -- the module as Ansible runs it (its own Python process), custom format: checksums,
               manifest, snapshot row counts, archive checks and the atomic rename included;
* parallel  -- pg_backup in directory format with jobs=2.

Prints the medians and the ratio pg_backup / bare (target: at most 1.10). Run by hand::

    .venv/bin/python benchmarks/backup_throughput.py --scale 20 --repeat 5
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
from pgserver import SUPERUSER_PASSWORD, PgServer, available_versions  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=int, default=10, help='pgbench scale factor (100,000 accounts each)')
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--compression', default='gzip')
    opts = parser.parse_args()

    server = PgServer(available_versions()['18'], settings={'shared_buffers': "'256MB'"})
    server.start()
    work = tempfile.mkdtemp(prefix='appcare-backup-bench-')
    env = dict(os.environ, PGPASSWORD=SUPERUSER_PASSWORD)
    conn = ['-h', '127.0.0.1', '-p', str(server.port), '-U', 'postgres']
    try:
        server.execute('CREATE DATABASE bench')
        print('pgbench -i -s %d ...' % opts.scale)
        subprocess.run([server.bin('pgbench'), '-i', '-q', '-s', str(opts.scale)] + conn + ['bench'], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        size = server.execute("SELECT pg_size_pretty(pg_database_size('bench'))")[0][0]
        args = dict(server.login_args('bench'), compression=opts.compression)

        def bare():
            out = os.path.join(work, 'bare.dump')
            level = ['--compress=%s' % opts.compression]
            subprocess.run([server.bin('pg_dump'), '-Fc', '-f', out, '-d', 'bench'] + level + conn, env=env,
                           check=True)
            os.unlink(out)

        def module(**extra):
            dest = os.path.join(work, 'dest')
            result = run_module('pg_backup', dict(args, dest=dest, **extra))
            if result.failed:
                raise SystemExit('pg_backup failed: %s' % result['msg'])
            shutil.rmtree(dest)

        runs = {'bare': [], 'pg_backup': [], 'parallel': []}
        actions = [('bare', bare), ('pg_backup', module),
                   ('parallel', lambda: module(format='directory', jobs=2))]
        for _round in range(opts.repeat):
            for label, action in actions:
                started = time.monotonic()
                action()
                runs[label].append(time.monotonic() - started)
        med = {label: statistics.median(times) for label, times in runs.items()}
        print('\npgbench scale %d (database %s), compression %s, %d alternating runs each, medians:'
              % (opts.scale, size, opts.compression, opts.repeat))
        print('  bare pg_dump -Fc        %7.2f s' % med['bare'])
        for label, title in (('pg_backup', 'pg_backup (custom)     '), ('parallel', 'pg_backup (dir, jobs=2)')):
            print('  %s %7.2f s   ratio to bare: %.3f' % (title, med[label], med[label] / med['bare']))
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
