# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: pg_backup against bare ``pg_dump -Fc`` on a pgbench database, with and without encryption.

In one invocation and against one embedded PostgreSQL 18, alternating runs of:

* bare      -- ``pg_dump -Fc`` with the same compression, the same client binary;
* pg_backup -- the module as Ansible runs it (its own Python process), custom format: checksums,
               manifest, snapshot row counts, archive checks and the atomic rename included;
* encrypted -- the same, encrypted in the stream with OpenPGP (``encryption_recipients``: a public key
               the script generates with gpg in a temporary home directory, removed afterwards);
* parallel  -- pg_backup in directory format with jobs=2.

Prints the medians, the ratio pg_backup / bare (target: at most 1.10) and the ratio encrypted / pg_backup
(target: at most 1.10, the cost of encryption), with the per-round ratios. Run by hand::

    .venv/bin/python benchmarks/backup_throughput.py --scale 20 --repeat 5

``--smoke`` is the smallest run of the same code (scale 1, one round) for ``make test``: it fails when a
run fails and compares no figure with a target.
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

TARGET = 1.10


def make_recipient_key(work):
    """Generate a key pair in a temporary gpg home; returns the armored public key's file. The home (with
    the secret key and the agent gpg started in it) is removed: the benchmark only encrypts."""
    gpg = shutil.which('gpg')
    if not gpg:
        raise SystemExit('gpg is needed for the encrypted runs (Debian/Ubuntu: apt-get install gnupg)')
    home = tempfile.mkdtemp(prefix='appcare-bench-gpg-')
    os.chmod(home, 0o700)
    argv = [gpg, '--homedir', home, '--batch', '--no-tty']
    try:
        subprocess.run(argv + ['--passphrase', '', '--quick-gen-key', 'appcare benchmark <bench@example.org>',
                               'future-default', 'default', 'never'], check=True, capture_output=True)
        public = subprocess.run(argv + ['--armor', '--export'], check=True, capture_output=True).stdout
    finally:
        subprocess.run([os.path.join(os.path.dirname(gpg), 'gpgconf'), '--homedir', home, '--kill', 'all'],
                       check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    path = os.path.join(work, 'recipient.public.asc')
    with open(path, 'wb') as handle:
        handle.write(public)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=int, default=10, help='pgbench scale factor (100,000 accounts each)')
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--compression', default='gzip')
    parser.add_argument('--smoke', action='store_true',
                        help='smallest run of the whole code path (scale 1, one round); no target is checked')
    opts = parser.parse_args()
    if opts.smoke:
        opts.scale, opts.repeat = 1, 1

    server = PgServer(available_versions()['18'], settings={'shared_buffers': "'256MB'"})
    server.start()
    work = tempfile.mkdtemp(prefix='appcare-backup-bench-')
    env = dict(os.environ, PGPASSWORD=SUPERUSER_PASSWORD)
    conn = ['-h', '127.0.0.1', '-p', str(server.port), '-U', 'postgres']
    try:
        recipient = make_recipient_key(work)
        server.execute('CREATE DATABASE bench')
        print('pgbench -i -s %d ...' % opts.scale)
        subprocess.run([server.bin('pgbench'), '-i', '-q', '-s', str(opts.scale)] + conn + ['bench'], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        size = server.execute("SELECT pg_size_pretty(pg_database_size('bench'))")[0][0]
        args = dict(server.login_args('bench'), compression=opts.compression)
        archive_bytes = {}

        def bare():
            out = os.path.join(work, 'bare.dump')
            level = ['--compress=%s' % opts.compression]
            subprocess.run([server.bin('pg_dump'), '-Fc', '-f', out, '-d', 'bench'] + level + conn, env=env,
                           check=True)
            archive_bytes['bare'] = os.path.getsize(out)
            os.unlink(out)

        def module(label, **extra):
            dest = os.path.join(work, 'dest')
            result = run_module('pg_backup', dict(args, dest=dest, **extra))
            if result.failed:
                raise SystemExit('pg_backup (%s) failed: %s' % (label, result['msg']))
            encryption = result['manifest'].get('encryption')
            if bool(encryption) != bool(extra.get('encryption_recipients')):
                raise SystemExit('pg_backup (%s): the manifest records encryption %r' % (label, encryption))
            if encryption and (encryption['mode'] != 'public-key' or not result['manifest']['dump'].endswith('.gpg')):
                raise SystemExit('pg_backup (%s) did not write an OpenPGP file: %s, %r'
                                 % (label, result['manifest']['dump'], encryption))
            archive_bytes[label] = result['bytes']
            shutil.rmtree(dest)

        runs = {'bare': [], 'pg_backup': [], 'encrypted': [], 'parallel': []}
        actions = [('bare', bare), ('pg_backup', lambda: module('pg_backup')),
                   ('encrypted', lambda: module('encrypted', encryption_recipients=[recipient])),
                   ('parallel', lambda: module('parallel', format='directory', jobs=2))]
        for _round in range(opts.repeat):
            for label, action in actions:
                started = time.monotonic()
                action()
                runs[label].append(time.monotonic() - started)
        med = {label: statistics.median(times) for label, times in runs.items()}
        print('\npgbench scale %d (database %s), compression %s, %d alternating runs each, medians (time, size on disk):'
              % (opts.scale, size, opts.compression, opts.repeat))
        print('  %-29s %7.2f s   %7.1f MB' % ('bare pg_dump -Fc', med['bare'], archive_bytes['bare'] / 1048576.0))
        for label, title in (('pg_backup', 'pg_backup (custom)'), ('encrypted', 'pg_backup (custom, encrypted)'),
                             ('parallel', 'pg_backup (dir, jobs=2)')):
            print('  %-29s %7.2f s   %7.1f MB   ratio to bare: %.3f'
                  % (title, med[label], archive_bytes[label] / 1048576.0, med[label] / med['bare']))
        plain = med['pg_backup'] / med['bare']
        encrypted = med['encrypted'] / med['pg_backup']
        rounds = ' '.join('%.3f' % (e / p) for e, p in zip(runs['encrypted'], runs['pg_backup'], strict=True))
        print('  ratio encrypted / pg_backup (custom): %.3f   (per round: %s)' % (encrypted, rounds))
        if opts.smoke:
            print('smoke run: every run succeeded; figures this small are not compared with the targets')
            return
        print('  target pg_backup / bare at most %.2f: %s; encrypted / pg_backup at most %.2f: %s'
              % (TARGET, 'met' if plain <= TARGET else 'NOT met', TARGET, 'met' if encrypted <= TARGET else 'NOT met'))
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
