# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: what rebuilding a bloated index with pg_reindex costs a busy database, against a plain REINDEX.

On an embedded PostgreSQL 18, a pgbench database is created and its ``pgbench_accounts_pkey`` bloated to
about twice its size (one non-HOT UPDATE of every row, then VACUUM); that database is the template every
phase starts from (``CREATE DATABASE ... TEMPLATE``), so the three phases begin in the same state. Each
phase runs the same pgbench TPC-B workload (fixed clients and duration, per-transaction log), which reads
and updates pgbench_accounts through that index:

* baseline      -- pgbench alone;
* pg_reindex    -- the module as Ansible runs it (its own Python process, default lock options) with
                   ``indexes: [pgbench_accounts_pkey]``, started ``--start-after`` seconds into the run;
* plain_reindex -- ``REINDEX INDEX pgbench_accounts_pkey`` (ACCESS EXCLUSIVE on the index, SHARE on the
                   table: every client waits for it) at the same moment.

For each phase it prints TPS, latency p99 and maximum (from the per-transaction log), failed
transactions, and for the rebuilds how long they took, the TPS while they ran and after they ended (from
the log's completion times), and the module's result; it warns when a rebuild did not end inside the
pgbench window. The three phases alternate ``--repeat`` times (3 by default: one round varies by 10-20 %
on 2 cores) and the medians are printed too. Then the ratios TPS(pg_reindex)/TPS(baseline) and
TPS(plain REINDEX)/TPS(baseline), over the whole phase and while the rebuild ran. Target: no failed
transaction and at least 70 % of the baseline TPS during pg_reindex. Exits non-zero when pg_reindex did
not rebuild the index. Run by hand (the defaults, about 4.5 minutes on 2 cores; ``--repeat 1`` about 2)::

    .venv/bin/python benchmarks/reindex_under_load.py --scale 80 --duration 20

``--smoke`` is the smallest run of the same code (scale 1, 4 s phases, the rebuild 1 s in, one round) for
``make test``: it also fails when a pgbench run fails or has a failed transaction, and compares no figure
with the target.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, 'tests'), os.path.join(REPO, 'collections')]

from modrunner import start_module  # noqa: E402
from pgserver import SUPERUSER_PASSWORD, PgServer, available_versions  # noqa: E402

INDEX = 'pgbench_accounts_pkey'
TEMPLATE = 'bench_template'
TARGET_RATIO = 0.70


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float('nan')
    return sorted_values[max(0, int(math.ceil(fraction * len(sorted_values))) - 1)]


def read_logs(prefix):
    """pgbench per-transaction logs -> (latencies in ms of the successful transactions, completion times
    (epoch seconds) of all of them, number logged as failed)."""
    latencies, ends, failed = [], [], 0
    for path in glob.glob(prefix + '.*'):
        with open(path) as handle:
            for line in handle:
                # client_id transaction_no time script_no time_epoch time_us [schedule_lag] [retries]
                fields = line.split()
                if len(fields) < 6:
                    continue
                ends.append(int(fields[4]) + int(fields[5]) / 1e6)
                if fields[2].isdigit():
                    latencies.append(int(fields[2]) / 1000.0)
                else:
                    failed += 1  # "failed", "serialization", "deadlock", "skipped"
    latencies.sort()
    ends.sort()
    return latencies, ends, failed


def summary_value(pattern, text, cast=float, default=None):
    match = re.search(pattern, text, re.M)
    return cast(match.group(1)) if match else default


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=int, default=80, help='pgbench scale factor (100,000 accounts each)')
    parser.add_argument('--clients', type=int, default=4, help='pgbench clients')
    parser.add_argument('--threads', type=int, default=1, help='pgbench worker threads')
    parser.add_argument('--duration', type=int, default=20, help='seconds of pgbench per phase')
    parser.add_argument('--start-after', type=float, default=2.0,
                        help='seconds into the pgbench run at which the rebuild starts')
    parser.add_argument('--repeat', type=int, default=3,
                        help='rounds of the three phases, alternating; medians are printed when more than one')
    parser.add_argument('--smoke', action='store_true',
                        help='smallest run of the whole code path (scale 1, 4 s phases, one round); fails on any '
                             'pgbench error or failed transaction; no target is checked')
    opts = parser.parse_args()
    if opts.smoke:
        opts.scale, opts.duration, opts.start_after, opts.repeat = 1, 4, 1.0, 1

    server = PgServer(available_versions()['18'], settings={
        'shared_buffers': "'256MB'", 'max_wal_size': "'4GB'", 'checkpoint_timeout': "'30min'"})
    server.start()
    work = tempfile.mkdtemp(prefix='appcare-reindex-bench-')
    env = dict(os.environ, PGPASSWORD=SUPERUSER_PASSWORD)
    conn = ['-h', '127.0.0.1', '-p', str(server.port), '-U', 'postgres']

    def index_state(dbname):
        return server.execute("SELECT pg_relation_filenode('%s'), pg_relation_size('%s'), "
                              "(SELECT indisvalid FROM pg_index WHERE indexrelid = '%s'::regclass)"
                              % (INDEX, INDEX, INDEX), dbname)[0]

    try:
        server.execute('CREATE DATABASE %s' % TEMPLATE)
        print('pgbench -i -s %d, then bloat %s (UPDATE of every row, VACUUM) ...' % (opts.scale, INDEX))
        subprocess.run([server.bin('pgbench'), '-i', '-q', '-s', str(opts.scale)] + conn + [TEMPLATE], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        clean_size = index_state(TEMPLATE)[1]
        # pgbench_accounts has fillfactor 100, so every updated row goes to a new page and gets a new index
        # entry; the pages split, and VACUUM then leaves them about half empty.
        server.execute('UPDATE pgbench_accounts SET abalance = abalance', TEMPLATE)
        server.execute('VACUUM (ANALYZE) pgbench_accounts', TEMPLATE)
        server.execute('CREATE EXTENSION pg_prewarm', TEMPLATE)
        bloated_size = index_state(TEMPLATE)[1]
        db_size = server.execute("SELECT pg_database_size('%s')" % TEMPLATE)[0][0]

        def phase(label, rebuild, number):
            dbname = 'bench_%s' % label
            server.execute('CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY' % (dbname, TEMPLATE))
            server.execute("SELECT pg_prewarm('%s'), pg_prewarm('pgbench_branches'), pg_prewarm('pgbench_tellers')"
                           % INDEX, dbname)
            server.execute('CHECKPOINT')
            os.sync()  # write the copied database out now, not during the measured window
            before = index_state(dbname)
            prefix = os.path.join(work, label)
            argv = [server.bin('pgbench'), '-c', str(opts.clients), '-j', str(opts.threads), '-T', str(opts.duration),
                    '-l', '--log-prefix', prefix] + conn + [dbname]
            print('[round %d, %s] pgbench -c %d -j %d -T %d%s'
                  % (number, label, opts.clients, opts.threads, opts.duration,
                     '' if rebuild is None else ', rebuild after %.1f s' % opts.start_after))
            bench_start = time.time()
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    cwd=work)
            out = {'label': label}
            try:
                if rebuild is not None:
                    time.sleep(opts.start_after)
                    out['rebuild_start'] = time.time()
                    out.update(rebuild(dbname))
                    out['rebuild_end'] = time.time()
            finally:
                stdout, stderr = proc.communicate()
            bench_end = time.time()
            after = index_state(dbname)
            latencies, ends, logged_failed = read_logs(prefix)
            errors = [line for line in stderr.splitlines() if 'error' in line.lower() or 'abort' in line.lower()]
            out.update(
                rc=proc.returncode,
                tps=summary_value(r'^tps = ([0-9.]+)', stdout),
                transactions=summary_value(r'^number of transactions actually processed: ([0-9]+)', stdout, int, 0),
                failed=max(logged_failed, summary_value(r'^number of failed transactions: ([0-9]+)', stdout, int, 0)),
                errors=errors,
                p99=percentile(latencies, 0.99), max=latencies[-1] if latencies else float('nan'),
                first_end=ends[0] if ends else bench_start, last_end=ends[-1] if ends else bench_end,
                size_before=before[1], size_after=after[1], rebuilt=before[0] != after[0] and after[2])
            if rebuild is not None:
                start, end, out_end = out['rebuild_start'], out['rebuild_end'], out['last_end']
                out['rebuild_seconds'] = end - start
                done = sum(1 for t in ends if start <= t <= end)
                out['tps_during'] = done / (end - start) if end > start else float('nan')
                later = sum(1 for t in ends if t > end)
                out['tps_after'] = later / (out_end - end) if out_end > end + 1 else float('nan')
                if end > out['last_end'] or start < out['first_end']:
                    out['overlap_warning'] = True
            if proc.returncode != 0 or out['tps'] is None:
                print('  pgbench exited with %d:\n%s' % (proc.returncode, (stdout + stderr)[-2000:]))
            server.execute('DROP DATABASE %s' % dbname)
            for path in glob.glob(prefix + '.*'):
                os.unlink(path)
            return out

        def with_module(dbname):
            running = start_module('pg_reindex', dict(server.login_args(dbname), indexes=[INDEX]))
            result = running.finish()
            actions = [a for a in result.get('actions', []) if a['index'] == 'public.%s' % INDEX]
            action = actions[0] if actions else {}
            return {'module_failed': result.failed, 'module_msg': result.get('msg'),
                    'result': action.get('result'), 'attempts': action.get('attempts'),
                    'statement_seconds': action.get('seconds'), 'message': action.get('message'),
                    'other_actions': [(a['index'], a['result']) for a in result.get('actions', [])
                                      if a['index'] != 'public.%s' % INDEX],
                    'warnings': result.get('warnings', [])}

        def with_plain_reindex(dbname):
            db = server.connect(dbname)
            try:
                with db.cursor() as cur:
                    cur.execute('REINDEX INDEX %s' % INDEX)
            finally:
                db.close()
            return {}

        rounds = []
        for number in range(1, opts.repeat + 1):
            rounds.append([phase('baseline', None, number), phase('pg_reindex', with_module, number),
                           phase('plain_reindex', with_plain_reindex, number)])

        print('\nPostgreSQL %s, pgbench scale %d (template database %.0f MB), %d clients, %d thread(s), %d s per '
              'phase, %d round(s); %s %.0f MB bloated (%.0f MB when freshly built)'
              % (server.version, opts.scale, db_size / 1048576.0, opts.clients, opts.threads, opts.duration,
                 opts.repeat, INDEX, bloated_size / 1048576.0, clean_size / 1048576.0))
        header = ('round', 'phase', 'TPS', 'p99 ms', 'max ms', 'failed', 'rebuild s', 'TPS during', 'TPS after',
                  'index MB')
        row = '  %-6s %-14s %9s %9s %9s %7s %10s %11s %10s %13s'
        print('\n' + row % header)

        def fmt(value, pattern):
            return '-' if value is None else pattern % value

        def show(number, run):
            print(row % (number, run['label'], fmt(run['tps'], '%.1f'), fmt(run['p99'], '%.2f'),
                         fmt(run['max'], '%.1f'), run['failed'], fmt(run.get('rebuild_seconds'), '%.2f'),
                         fmt(run.get('tps_during'), '%.1f'), fmt(run.get('tps_after'), '%.1f'),
                         '%.0f -> %.0f' % (run['size_before'] / 1048576.0, run['size_after'] / 1048576.0)))

        for number, runs in enumerate(rounds, 1):
            for run in runs:
                show(number, run)
                if run['errors'] or run['rc']:
                    print('    pgbench exit code %d; %d error line(s), first: %s'
                          % (run['rc'], len(run['errors']), run['errors'][:1]))
                if run.get('overlap_warning'):
                    print('    WARNING: the rebuild (%.2f s) did not end inside the pgbench window; use a longer '
                          '--duration or a smaller --scale' % run['rebuild_seconds'])
        if opts.repeat > 1:
            for index, label in enumerate(('baseline', 'pg_reindex', 'plain_reindex')):
                runs = [r[index] for r in rounds]
                merged = {'label': label, 'failed': sum(r['failed'] for r in runs),
                          'size_before': runs[0]['size_before'], 'size_after': runs[0]['size_after']}
                for key in ('tps', 'p99', 'max', 'rebuild_seconds', 'tps_during', 'tps_after'):
                    values = [r[key] for r in runs if r.get(key) is not None]
                    merged[key] = statistics.median(values) if values else None
                show('median', merged)

        print()
        for number, (_base, mod, _plain) in enumerate(rounds, 1):
            print('  round %d pg_reindex: result %s after %s attempt(s), REINDEX CONCURRENTLY statement %s s, whole '
                  'module run %.2f s: %s' % (number, mod['result'], mod['attempts'], mod['statement_seconds'],
                                             mod['rebuild_seconds'], mod['message'] or mod['module_msg']))
            for warning in mod['warnings']:
                print('    module warning: %s' % warning)
            if mod['other_actions']:
                print('    other indexes the module handled: %s' % mod['other_actions'])

        def ratios(index, key):
            return [(r[index][key] or 0.0) / r[0]['tps'] for r in rounds]

        print()
        summary = {}
        for index, name in ((1, 'pg_reindex'), (2, 'plain REINDEX')):
            phase_ratio, during_ratio = ratios(index, 'tps'), ratios(index, 'tps_during')
            summary[index] = statistics.median(phase_ratio), statistics.median(during_ratio)
            print('  TPS(%s) / TPS(baseline)%s = %.3f   while it ran: %.3f%s'
                  % (name, ' ' * (14 - len(name)), summary[index][0], summary[index][1],
                     '   (median of rounds: %s / %s)' % (' '.join('%.3f' % v for v in phase_ratio),
                                                         ' '.join('%.3f' % v for v in during_ratio))
                     if opts.repeat > 1 else ''))
        clean = all(r[1]['failed'] == 0 and not r[1]['errors'] and r[1]['rc'] == 0 for r in rounds)
        if opts.smoke:
            broken = ['round %d %s: pgbench exit code %d, tps %s, %d failed transaction(s), %d error line(s) %s'
                      % (number, run['label'], run['rc'], run['tps'], run['failed'], len(run['errors']), run['errors'][:1])
                      for number, runs in enumerate(rounds, 1) for run in runs
                      if run['rc'] or run['tps'] is None or run['failed'] or run['errors']]
            if broken:
                raise SystemExit('smoke run: pgbench did not run cleanly: %s' % '; '.join(broken))
        else:
            print('  target (no failed transaction, at least %d %% of baseline TPS during pg_reindex): over the phase '
                  '%s; while the rebuild itself ran %s'
                  % (TARGET_RATIO * 100, 'met' if clean and summary[1][0] >= TARGET_RATIO else 'NOT met',
                     'met' if clean and summary[1][1] >= TARGET_RATIO else 'NOT met'))

        for _base, mod, plain in rounds:
            if mod['module_failed'] or mod['result'] != 'done' or not mod['rebuilt']:
                raise SystemExit('pg_reindex did not rebuild %s (result %s, module failed: %s, %s): nothing was '
                                 'measured' % (INDEX, mod['result'], mod['module_failed'],
                                               mod['message'] or mod['module_msg']))
            if not plain['rebuilt']:
                raise SystemExit('the plain REINDEX did not rebuild %s' % INDEX)
        if opts.smoke:
            print('smoke run: every phase ran cleanly and both rebuilds happened; figures this small are not '
                  'compared with the target')
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
