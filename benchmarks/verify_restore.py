# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: pg_backup_verify level=restore against bare pg_restore of the same backup.

One pgbench database on an embedded PostgreSQL 18 is backed up once with pg_backup; then, alternating
in one invocation with the same ``jobs``:

* bare   -- CREATE DATABASE, then ``pg_restore --exit-on-error`` into it (the drop is not timed);
* verify -- the module as Ansible runs it: checksums, catalogue, scratch database, restore, exact row
            counts of every table, drop.

Prints the medians and the ratio verify / bare (target: at most 1.15). Run by hand::

    .venv/bin/python benchmarks/verify_restore.py --scale 20 --repeat 5 --jobs 1

``--smoke`` is the smallest run of the same code (scale 1, one round, jobs 2) for ``make test``: it fails
when a run fails and compares no figure with a target.
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
    parser.add_argument('--scale', type=int, default=10)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--smoke', action='store_true',
                        help='smallest run of the whole code path (scale 1, one round, jobs 2); no target is checked')
    opts = parser.parse_args()
    if opts.smoke:
        opts.scale, opts.repeat, opts.jobs = 1, 1, 2

    server = PgServer(available_versions()['18'], settings={'shared_buffers': "'256MB'"})
    server.start()
    work = tempfile.mkdtemp(prefix='appcare-verify-bench-')
    env = dict(os.environ, PGPASSWORD=SUPERUSER_PASSWORD)
    conn = ['-h', '127.0.0.1', '-p', str(server.port), '-U', 'postgres']
    try:
        server.execute('CREATE DATABASE bench')
        print('pgbench -i -s %d ...' % opts.scale)
        subprocess.run([server.bin('pgbench'), '-i', '-q', '-s', str(opts.scale)] + conn + ['bench'], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        size = server.execute("SELECT pg_size_pretty(pg_database_size('bench'))")[0][0]
        backup = run_module('pg_backup', dict(server.login_args('bench'), dest=os.path.join(work, 'b'),
                                              compression='gzip'))
        if backup.failed:
            raise SystemExit(backup['msg'])
        archive = os.path.join(backup['path'], backup['manifest']['dump'])

        def bare():
            server.execute('CREATE DATABASE bare_restore')
            argv = [server.bin('pg_restore'), '--exit-on-error', '-d', 'bare_restore', archive] + conn
            if opts.jobs > 1:
                argv.insert(1, '--jobs=%d' % opts.jobs)
            subprocess.run(argv, env=env, check=True)

        def verify():
            result = run_module('pg_backup_verify', dict(server.login_args('postgres'), backup=backup['path'],
                                                         level='restore', jobs=opts.jobs))
            if result.failed or result['result'] != 'ok':
                raise SystemExit('verification failed: %s' % result.get('msg', result.get('checks')))

        runs = {'bare': [], 'verify': []}
        for _round in range(opts.repeat):
            for label, action in (('bare', bare), ('verify', verify)):
                started = time.monotonic()
                action()
                runs[label].append(time.monotonic() - started)
                if label == 'bare':
                    server.execute('DROP DATABASE bare_restore')
        med = {label: statistics.median(times) for label, times in runs.items()}
        print('\npgbench scale %d (database %s), archive %.1f MB, jobs %d, %d alternating runs each, medians:'
              % (opts.scale, size, backup['bytes'] / 1048576.0, opts.jobs, opts.repeat))
        print('  bare pg_restore            %7.2f s' % med['bare'])
        ratio = med['verify'] / med['bare']
        print('  pg_backup_verify restore   %7.2f s   ratio to bare: %.3f' % (med['verify'], ratio))
        if opts.smoke:
            print('smoke run: every run succeeded; figures this small are not compared with the target')
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
