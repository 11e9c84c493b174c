# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: pgbackrest_restore_drill against a bare pgBackRest restore of the same backup, and the achieved RPO.

Debian's PostgreSQL 15 archives through pgBackRest (``archive_timeout=60``) into a local repository; a pgbench
database is backed up once (full). A writer commits one row every 0.2 s for the whole run. Then, alternating in one
invocation, both to the newest point the archive holds:

* bare  -- ``pgbackrest restore --set=<backup> --type=default`` into a fresh directory, the port, socket and
           ``archive_mode=off`` appended to postgresql.auto.conf, ``pg_ctl start -w``, then polling until
           ``pg_is_in_recovery()`` is false (the stop and removal afterwards are not timed);
* drill -- the module as Ansible runs it: pgbackrest info, free-space check, the same restore, start, recovery,
           a marker query and the row count of pgbench_accounts, stop and removal.

Prints the medians and the ratio drill / bare (target: at most 1.10), and the achieved RPO each drill measured -
how far behind the newest commit of the writer the restored cluster was (target: under 2 minutes with
``archive_timeout=60``, against the guides' 1 hour). Run by hand::

    .venv/bin/python benchmarks/pitr_drill.py --scale 20 --repeat 3

``--smoke`` is the smallest run of the same code (scale 1, one round, the writer 2 s before the first drill) for
``make test``: it fails when a run fails and compares no figure with a target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, 'tests'), os.path.join(REPO, 'collections')]

import psycopg2  # noqa: E402

from modrunner import run_module  # noqa: E402
from pgbackrest_harness import PgBackRestCluster, pgbackrest_path  # noqa: E402
from pgserver import SUPERUSER_PASSWORD, available_versions, free_port  # noqa: E402


class Writer(threading.Thread):
    """Commits one row with its commit time every ``interval`` seconds until stopped."""

    def __init__(self, server, interval=0.2):
        super().__init__(daemon=True)
        self.server = server
        self.interval = interval
        self.stopped = threading.Event()
        self.commits = 0

    def run(self):
        conn = self.server.connect(dbname='bench')
        try:
            with conn.cursor() as cur:
                while not self.stopped.is_set():
                    cur.execute('INSERT INTO rpo_writer DEFAULT VALUES')
                    self.commits += 1
                    self.stopped.wait(self.interval)
        finally:
            conn.close()


def as_account(cluster, argv):
    account = cluster.server.account
    return ['runuser', '-u', account.pw_name, '--'] + argv if account is not None else argv


def bare_restore(cluster, label, parent):
    """The bare procedure; returns (seconds, data directory, port)."""
    target = tempfile.mkdtemp(prefix='bare-', dir=parent)
    data = os.path.join(target, 'data')
    os.mkdir(data, 0o700)
    account = cluster.server.account
    if account is not None:
        for path in (target, data):
            os.chown(path, account.pw_uid, account.pw_gid)
    port = free_port()
    started = time.monotonic()
    cluster.pgbackrest('--pg1-path=%s' % data, '--set=%s' % label, '--type=default', 'restore')
    with open(os.path.join(data, 'postgresql.auto.conf'), 'a') as handle:
        handle.write("port = %d\nlisten_addresses = ''\nunix_socket_directories = '%s'\narchive_mode = 'off'\n"
                     % (port, target))
    subprocess.run(as_account(cluster, [cluster.server.bin('pg_ctl'), '-D', data, '-l',
                                        os.path.join(target, 'server.log'), '-w', '-t', '3600', 'start']),
                   check=True, stdout=subprocess.DEVNULL, cwd='/')
    while True:
        try:
            conn = psycopg2.connect(host=target, port=port, user='postgres', dbname='postgres',
                                    password=SUPERUSER_PASSWORD)
            try:
                with conn.cursor() as cur:
                    cur.execute('SELECT pg_is_in_recovery()')
                    if not cur.fetchone()[0]:
                        break
            finally:
                conn.close()
        except psycopg2.OperationalError:
            pass
        time.sleep(0.05)
    seconds = time.monotonic() - started
    subprocess.run(as_account(cluster, [cluster.server.bin('pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop']),
                   check=True, stdout=subprocess.DEVNULL, cwd='/')
    shutil.rmtree(target)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=int, default=20)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--writer-seconds', type=int, default=150,
                        help='how long the writer runs before the first drill (several archive_timeout periods)')
    parser.add_argument('--smoke', action='store_true',
                        help='smallest run of the whole code path (scale 1, one round, writer 2 s); no target is checked')
    opts = parser.parse_args()
    if opts.smoke:
        opts.scale, opts.repeat, opts.writer_seconds = 1, 1, 2
    versions = available_versions()
    if '15' not in versions or not pgbackrest_path():
        raise SystemExit('this benchmark needs Debian\'s PostgreSQL 15 and pgBackRest (apt-get install postgresql '
                         'pgbackrest; make setup installs both)')
    cluster = PgBackRestCluster(versions['15']).start()  # archive_timeout 60
    parent = tempfile.mkdtemp(prefix='appcare-pitr-bench-')
    os.chmod(parent, 0o755)
    writer = None
    try:
        cluster.pgbackrest('stanza-create')
        server = cluster.server
        server.execute('CREATE DATABASE bench')
        print('pgbench -i -s %d ...' % opts.scale)
        subprocess.run([server.bin('pgbench'), '-i', '-q', '-s', str(opts.scale), '-h', '127.0.0.1', '-p',
                        str(server.port), '-U', 'postgres', 'bench'], env=dict(os.environ, PGPASSWORD=SUPERUSER_PASSWORD),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server.execute('CREATE TABLE rpo_writer (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())',
                       dbname='bench')
        size = server.execute("SELECT pg_size_pretty(pg_database_size('bench'))")[0][0]
        cluster.pgbackrest('backup', '--type=full', '--repo=1')
        info = run_module('pgbackrest_info', cluster.module_args(repo=1))
        label = info['backups'][-1]['label']
        accounts = opts.scale * 100000
        writer = Writer(server)
        writer.start()
        print('backup %s of a %s database; the writer commits every 0.2 s, %d s before the first drill'
              % (label, size, opts.writer_seconds))
        time.sleep(opts.writer_seconds)
        if opts.smoke:
            # Too short for archive_timeout to switch a segment: switch one, so the writer's rows are archived.
            wal = server.execute('SELECT pg_walfile_name(pg_current_wal_lsn())')[0][0]
            server.execute('SELECT pg_switch_wal()')
            deadline = time.monotonic() + 30
            while (server.execute('SELECT last_archived_wal FROM pg_stat_archiver')[0][0] or '') < wal:
                if time.monotonic() > deadline:
                    raise SystemExit('WAL %s was not archived within 30 s' % wal)
                time.sleep(0.1)
        args = cluster.module_args(scratch_dir=os.path.join(parent, 'drill'), database='bench', repo=1,
                                   present_queries=['SELECT 1 FROM rpo_writer'],
                                   expect_rows={'pgbench_accounts': accounts}, rpo_minutes=2)
        for key in ('login_host', 'login_port', 'login_user', 'login_password', 'login_db', 'login_unix_socket'):
            args.pop(key, None)

        def drill():
            started = time.monotonic()
            result = run_module('pgbackrest_restore_drill', args)
            seconds = time.monotonic() - started
            if result.failed or result['drill'].get('result') != 'ok':
                raise SystemExit('drill failed: %s' % result.get('msg', result.get('checks')))
            rpos.append(result['drill']['rpo_seconds'])
            return seconds

        runs, rpos = {'bare': [], 'drill': []}, []
        for _round in range(opts.repeat):
            runs['bare'].append(bare_restore(cluster, label, parent))
            runs['drill'].append(drill())
        med = dict((name, statistics.median(times)) for name, times in runs.items())
        print('\npgbench scale %d (database %s), %d alternating runs each, medians:' % (opts.scale, size, opts.repeat))
        print('  bare restore + pg_ctl start + recovery   %7.2f s' % med['bare'])
        print('  pgbackrest_restore_drill                 %7.2f s   ratio to bare: %.3f (target <= 1.10)'
              % (med['drill'], med['drill'] / med['bare']))
        print('  achieved RPO (archive_timeout=60)        %s s; worst %.1f s (target: under 120 s; the guides: 3600 s)'
              % (', '.join('%.1f' % r for r in rpos), max(rpos)))
        print('  writer commits: %d' % writer.commits)
        if opts.smoke:
            print('smoke run: every run succeeded; figures this small are not compared with the targets')
    finally:
        if writer is not None:
            writer.stopped.set()
            writer.join(5)
        cluster.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == '__main__':
    main()
