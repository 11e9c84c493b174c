# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: pg_log_info against pgBadger over the same stderr log, at the same number of processes.

It writes one stderr log of ``--size-mb`` (1 GB by default) with ``log_line_prefix = '%m [%p] %q%u@%d %h '`` and a
week of timestamps ending now: mostly ``duration: ... statement:`` lines (``log_min_duration_statement = 0``),
connections received / authorised / ended, checkpoints, multi-line autovacuum reports, temporary files, lock waits
and checkpoint warnings, and about 4 % ERROR / FATAL / WARNING reports (with DETAIL, HINT and STATEMENT lines) of
several hundred distinct patterns. The generator counts what it writes. Then, alternating in one invocation, at
``--processes`` 1 and 2:

* ours     -- ``pg_log_info`` as Ansible runs it (its own Python process; ``read_settings: false``, the prefix given,
              ``processes: N``), result checked against the generator's counts;
* pgbadger -- ``pgbadger -j N -f stderr --prefix ... -x json -o FILE``, its defaults otherwise, result checked
              against the same counts. No ``--disable-*`` option: ``--disable-query`` (the reports about statements,
              which the review does not make) also makes pgBadger 12 drop every "canceling statement due to statement
              timeout" error from its error report (its cancelled-query path returns early), so its error counts
              would be wrong - and it was not faster (16.0 s against 12.9 s on a 20 MB log like this one).

Every run is its own process tree: the wall time, the largest single process's peak RSS (its VmHWM) and the peak
RSS of the whole tree (all workers), both sampled from /proc every 50 ms, are printed, with the ratios ours /
pgbadger at the same number of processes. Target: below 1 at each process count. Run by hand::

    .venv/bin/python benchmarks/log_review.py --size-mb 1024 --repeat 1   # a round takes about 15 minutes (pgBadger)

``--smoke`` is the smallest run of the same code (17 MB, just enough for ``processes: 2`` to split the file; one
round) for ``make test``: it fails when a run fails or reports other counts than the generator wrote, and compares
no figure with a target.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
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

from ansible_collections.appcare.maintenance.plugins.module_utils.logreview import CHUNK_MIN_BYTES  # noqa: E402
from modrunner import COLLECTIONS_ROOT, MODULES_DIR  # noqa: E402
from pglogs import pgbadger_options, pgbadger_patterns, pgbadger_severities  # noqa: E402

PREFIX = '%m [%p] %q%u@%d %h '
SEVERITIES = ('PANIC', 'FATAL', 'ERROR', 'WARNING')
MB = 1048576.0
WORDS_A = ('get', 'set', 'sync', 'load', 'calc', 'check', 'merge', 'purge', 'audit', 'queue', 'notify', 'refresh',
           'archive', 'resolve', 'render', 'import', 'export', 'rebuild', 'score', 'route')
WORDS_B = ('order', 'invoice', 'customer', 'stock', 'price', 'cart', 'session', 'token', 'ledger', 'shipment',
           'refund', 'coupon', 'report', 'tenant', 'payment', 'address', 'review', 'account', 'event', 'item')
TABLES = ('orders', 'order_items', 'customers', 'invoices', 'payments', 'products', 'stock_moves', 'sessions',
          'audit_log', 'shipments', 'coupons', 'accounts')
USERS = ('app', 'app', 'app', 'reporting', 'etl', 'admin')
DATABASES = ('shop', 'shop', 'shop', 'crm', 'analytics')
HOSTS = tuple('10.0.%d.%d' % (i // 7, 10 + i * 3) for i in range(24))


def statements(rng):
    """A pool of realistic statements (the duration lines and the STATEMENT lines of errors draw from it)."""
    pool = []
    for table in TABLES:
        pool += ['SELECT * FROM %s WHERE id = %d' % (table, rng.randint(1, 10 ** 6)),
                 'SELECT id, status, updated_at FROM %s WHERE customer_id = $1 ORDER BY updated_at DESC LIMIT 50' % table,
                 'UPDATE %s SET status = $1, updated_at = now() WHERE id = $2' % table,
                 'INSERT INTO %s (customer_id, status, payload) VALUES ($1, $2, $3) RETURNING id' % table,
                 'DELETE FROM %s WHERE created_at < now() - interval \'90 days\'' % table,
                 'SELECT count(*), sum(total) FROM %s o JOIN customers c ON c.id = o.customer_id '
                 'WHERE o.created_at >= $1 AND c.region = $2 GROUP BY c.region' % table]
    pool += ['BEGIN', 'COMMIT', 'ROLLBACK', 'SELECT 1', 'SET application_name = \'worker\'', 'SHOW TRANSACTION ISOLATION LEVEL']
    return pool


def error_templates():
    """(severity, sqlstate, message format, detail, hint, with STATEMENT): several hundred distinct patterns - one per
    function name in the first template alone (pgBadger and we both keep an unquoted name)."""
    templates = []
    for first in WORDS_A:
        for second in WORDS_B:
            templates.append(('ERROR', '42883', 'function %s_%s(integer) does not exist' % (first, second), None,
                              'No function matches the given name and argument types. You might need to add explicit '
                              'type casts.', True))
    templates += [
        ('ERROR', '23505', 'duplicate key value violates unique constraint "{table}_pkey"', 'Key (id)=({n})'
         ' already exists.', None, True),
        ('ERROR', '42P01', 'relation "{table}_old" does not exist at character {c}', None, None, True),
        ('ERROR', '42703', 'column "{word}_id" does not exist at character {c}', None, None, True),
        ('ERROR', '22012', 'division by zero', None, None, True),
        ('ERROR', '40001', 'could not serialize access due to concurrent update', None, None, True),
        ('ERROR', '40P01', 'deadlock detected', 'Process {pid} waits for ShareLock on transaction {n}; blocked by '
         'process {pid2}.', 'See server log for query details.', True),
        ('ERROR', '57014', 'canceling statement due to statement timeout', None, None, True),
        ('ERROR', '55P03', 'canceling statement due to lock timeout', None, None, True),
        ('ERROR', '22001', 'value too long for type character varying({c})', None, None, True),
        ('ERROR', '23502', 'null value in column "{word}" of relation "{table}" violates not-null constraint',
         'Failing row contains ({n}, null).', None, True),
        ('ERROR', '23503', 'insert or update on table "{table}" violates foreign key constraint "{table}_fk"',
         'Key (customer_id)=({n}) is not present in table "customers".', None, True),
        ('ERROR', '42601', 'syntax error at or near "{word}" at character {c}', None, None, True),
        ('ERROR', '22P02', 'invalid input syntax for type integer: "{word}{n}"', None, None, True),
        ('ERROR', '42501', 'permission denied for table {table}', None, None, True),
        ('FATAL', '28P01', 'password authentication failed for user "{user}"',
         'Connection matched file "/etc/postgresql/16/main/pg_hba.conf" line 118: "host all all 0.0.0.0/0 '
         'scram-sha-256"', None, False),
        ('FATAL', '28000', 'no pg_hba.conf entry for host "{host}", user "{user}", database "{db}", no encryption',
         None, None, False),
        ('FATAL', '3D000', 'database "{db}_old" does not exist', None, None, False),
        ('FATAL', '57P01', 'terminating connection due to administrator command', None, None, False),
        ('FATAL', '53300', 'remaining connection slots are reserved for roles with the SUPERUSER attribute', None,
         None, False),
        ('WARNING', '25P01', 'there is no transaction in progress', None, None, False),
        ('WARNING', '01000', 'nonstandard use of \\\\ in a string literal at character {c}', None,
         'Use the escape string syntax for backslashes, e.g., E\'\\\\\'.', False),
        ('WARNING', '57P02', 'terminating connection because of crash of another server process', 'The postmaster has '
         'commanded this server process to roll back the current transaction and exit.', None, False),
    ]
    return templates


def write_log(path, size_mb, seed=7, end=None):
    """Write the log; returns what it holds: {'bytes', 'lines', 'severities', 'temp_files', 'lock_waits'}."""
    rng = random.Random(seed)
    pool = statements(rng)
    templates = error_templates()
    by_severity = dict((s, [t for t in templates if t[0] == s]) for s in SEVERITIES)
    functions = [t for t in by_severity['ERROR'] if t[1] == '42883']
    common = [t for t in by_severity['ERROR'] if t[1] != '42883']
    limit = int(size_mb * 1024 * 1024)
    end = end or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=5)
    # about 160 bytes a line: spread the lines evenly over six days before ``end``
    seconds = 6 * 24 * 3600
    step = seconds / max(1.0, limit / 160.0)
    clock = (end - datetime.timedelta(seconds=seconds)).timestamp()
    counts = {severity: 0 for severity in SEVERITIES}
    counts.update(temp_files=0, lock_waits=0, lines=0)
    written, cached_second, cached_text = 0, None, ''
    out = []
    with open(path, 'w', encoding='utf-8') as handle:
        while written < limit:
            clock += step
            second = int(clock)
            if second != cached_second:
                cached_second = second
                cached_text = datetime.datetime.fromtimestamp(second, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S')
            stamp = '%s.%03d UTC' % (cached_text, int((clock - second) * 1000))
            pid = 20000 + rng.randrange(400)
            user, db, host = rng.choice(USERS), rng.choice(DATABASES), rng.choice(HOSTS)
            head = '%s [%d] %s@%s %s ' % (stamp, pid, user, db, host)
            roll = rng.random()
            if roll < 0.78:
                lines = ['%sLOG:  duration: %.3f ms  statement: %s' % (head, rng.expovariate(1 / 3.0), rng.choice(pool))]
            elif roll < 0.82:
                lines = ['%s [%d] [unknown]@[unknown] %s LOG:  connection received: host=%s port=%d'
                         % (stamp, pid, host, host, rng.randint(30000, 65000))]
            elif roll < 0.86:
                lines = ['%sLOG:  connection authorized: user=%s database=%s application_name=%s'
                         % (head, user, db, rng.choice(('psql', 'app-worker', 'PostgreSQL JDBC Driver')))]
            elif roll < 0.90:
                lines = ['%sLOG:  disconnection: session time: 0:%02d:%06.3f user=%s database=%s host=%s port=%d'
                         % (head, rng.randrange(60), rng.random() * 60, user, db, host, rng.randint(30000, 65000))]
            elif roll < 0.91:
                lines = ['%s [%d] LOG:  checkpoint complete: wrote %d buffers (%.1f%%); 0 WAL file(s) added, 0 removed, '
                         '%d recycled; write=%.3f s, sync=0.004 s, total=%.3f s; sync files=41, longest=0.002 s, '
                         'average=0.001 s; distance=%d kB, estimate=%d kB' % (
                             stamp, pid, rng.randint(100, 9000), rng.random() * 10, rng.randint(0, 3),
                             rng.random() * 30, rng.random() * 30, rng.randint(1000, 90000), rng.randint(1000, 90000))]
            elif roll < 0.915:
                table = rng.choice(TABLES)
                lines = ['%s [%d] LOG:  automatic vacuum of table "%s.public.%s": index scans: 1' % (stamp, pid, db, table),
                         '\tpages: 0 removed, %d remain, %d scanned (%.2f%% of total)' % (
                             rng.randint(1000, 90000), rng.randint(10, 900), rng.random() * 100),
                         '\ttuples: %d removed, %d remain, 0 are dead but not yet removable' % (
                             rng.randint(10, 9000), rng.randint(10000, 900000)),
                         '\tbuffer usage: %d hits, %d misses, %d dirtied' % (
                             rng.randint(1, 9000), rng.randint(1, 900), rng.randint(1, 90)),
                         '\tsystem usage: CPU: user: %.2f s, system: %.2f s, elapsed: %.2f s' % (
                             rng.random(), rng.random(), rng.random() * 120)]
            elif roll < 0.925:
                counts['temp_files'] += 1
                lines = ['%sLOG:  temporary file: path "base/pgsql_tmp/pgsql_tmp%d.%d", size %d'
                         % (head, pid, rng.randrange(9), rng.randint(8192, 900000000)),
                         '%sSTATEMENT:  %s' % (head, rng.choice(pool))]
            elif roll < 0.93:
                counts['lock_waits'] += 1
                statement = rng.choice(pool)
                lines = ['%sLOG:  process %d still waiting for ShareLock on transaction %d after %.3f ms'
                         % (head, pid, rng.randint(10 ** 5, 10 ** 7), 1000 + rng.random() * 5000),
                         '%sDETAIL:  Process holding the lock: %d. Wait queue: %d.' % (head, pid + 1, pid),
                         '%sCONTEXT:  while updating tuple (%d,%d) in relation "%s"'
                         % (head, rng.randint(0, 9999), rng.randint(1, 60), rng.choice(TABLES)),
                         '%sSTATEMENT:  %s' % (head, statement)]
            elif roll < 0.97:
                roll = rng.random()
                severity = 'ERROR' if roll < 0.75 else 'FATAL' if roll < 0.88 else 'WARNING'
                counts[severity] += 1
                choices = by_severity[severity]
                if severity == 'ERROR':  # the everyday errors nine times in ten, a missing function otherwise
                    choices = functions if rng.random() < 0.1 else common
                _sev, _state, text, detail, hint, with_statement = rng.choice(choices)
                fields = dict(table=rng.choice(TABLES), n=rng.randint(1, 10 ** 6), c=rng.randint(1, 400),
                              word=rng.choice(WORDS_B), user=user, db=db, host=host, pid=pid, pid2=pid + 7)
                lines = ['%s%s:  %s' % (head, severity, text.format(**fields) if '{' in text else text)]
                if detail:
                    lines.append('%sDETAIL:  %s' % (head, detail.format(**fields) if '{' in detail else detail))
                if hint:
                    lines.append('%sHINT:  %s' % (head, hint))
                if with_statement:
                    lines.append('%sSTATEMENT:  %s' % (head, rng.choice(pool)))
            else:
                slow = 1000 + rng.random() * 9000  # the slow statements a DBA looks for
                lines = ['%sLOG:  duration: %.3f ms  statement: %s' % (head, slow, rng.choice(pool))]
            for line in lines:
                out.append(line)
                written += len(line) + 1
            counts['lines'] += len(lines)
            if len(out) > 5000:
                handle.write('\n'.join(out) + '\n')
                out = []
        if out:
            handle.write('\n'.join(out) + '\n')
    counts['bytes'] = os.path.getsize(path)
    return counts


# -- running and measuring -----------------------------------------------------------------------------------------
def _tree_memory(root):
    """{pid: (VmRSS, VmHWM)} in bytes of ``root`` and all its descendants (Linux: /proc/PID/status and
    /proc/PID/task/TID/children). VmHWM is a process's peak since it exec'd, so a sample taken any time before it
    ends sees its true peak."""
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            rss = hwm = 0
            with open('/proc/%d/status' % pid) as handle:
                for line in handle:
                    if line.startswith('VmRSS:'):
                        rss = int(line.split()[1]) * 1024
                    elif line.startswith('VmHWM:'):
                        hwm = int(line.split()[1]) * 1024
            found[pid] = (rss, hwm)
            for task in os.listdir('/proc/%d/task' % pid):
                with open('/proc/%d/task/%s/children' % (pid, task)) as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
    return found


def measure(argv, env=None):
    """Run ``argv``; returns (seconds, peak RSS of its largest process, peak RSS of its whole tree, stdout).

    Memory is sampled from /proc every 50 ms, not taken from wait4's ru_maxrss: a child started by fork (or vfork)
    counts the driver's own pages until it execs, so after the driver has loaded a large pgBadger report ru_maxrss
    reports that, not the tool (a first version of this script printed 526 MB for a run that peaks at 36 MB)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    peaks = {'largest': 0, 'tree': 0}
    stop = threading.Event()

    def sample():
        while True:
            found = _tree_memory(proc.pid)
            if found:
                peaks['largest'] = max([peaks['largest']] + [hwm for _rss, hwm in found.values()])
                peaks['tree'] = max(peaks['tree'], sum(rss for rss, _hwm in found.values()))
            if stop.wait(0.05):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = proc.stdout.read()
    proc.wait()
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join()
    text = output.decode('utf-8', 'replace')
    if proc.returncode != 0:
        raise SystemExit('%s failed (%d):\n%s' % (' '.join(argv[:3]), proc.returncode, text[-3000:]))
    return elapsed, peaks['largest'], max(peaks['tree'], peaks['largest']), text


def ours(log, processes, work):
    args = {'log_path': log, 'log_format': 'stderr', 'log_line_prefix': PREFIX, 'log_timezone': 'UTC',
            'read_settings': False, 'processes': processes, '_ansible_check_mode': False}
    args_file = os.path.join(work, 'args.json')
    with open(args_file, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT)
    seconds, rss, tree, out = measure([sys.executable, os.path.join(MODULES_DIR, 'pg_log_info.py'), args_file], env)
    result = json.loads(out[out.index('{'):])
    if result.get('failed'):
        raise SystemExit('pg_log_info failed: %s' % result.get('msg'))
    return seconds, rss, tree, result


def pgbadger(log, processes, work):
    out_file = os.path.join(work, 'pgbadger.json')
    argv = ['pgbadger'] + pgbadger_options('stderr', out_file, PREFIX, processes) + [log]
    seconds, rss, tree, _out = measure(argv)
    with open(out_file) as handle:
        report = json.load(handle)
    os.unlink(out_file)
    counted = (pgbadger_severities(report), len(pgbadger_patterns(report)))
    del report  # large; the driver must not hold it while it starts the next run
    return seconds, rss, tree, counted


def check(label, got, expected):
    if got != expected:
        raise SystemExit('%s counted %s, the log holds %s' % (label, got, expected))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size-mb', type=float, default=1024.0, help='size of the generated log (MB)')
    parser.add_argument('--repeat', type=int, default=1, help='alternating rounds (pgBadger takes minutes per GB)')
    parser.add_argument('--processes', default='1,2', help='process counts to compare (ours processes, pgbadger -j)')
    parser.add_argument('--tools', default='ours,pgbadger', help='which to run (a ratio needs both)')
    parser.add_argument('--keep', metavar='PATH', help='keep the generated log at PATH (reused when it exists)')
    parser.add_argument('--smoke', action='store_true',
                        help='smallest run of the whole code path (a log just big enough for processes=2 to split it, '
                             '17 MB; one round); no target is checked')
    opts = parser.parse_args()
    if opts.smoke:
        # just big enough for processes=2 to split the file (two ranges of at least CHUNK_MIN_BYTES)
        opts.size_mb, opts.repeat = 2 * CHUNK_MIN_BYTES / MB + 1, 1
    if opts.smoke:
        opts.tools = 'ours,pgbadger'
    if shutil.which('pgbadger') is None:
        raise SystemExit('pgbadger is not installed (Debian packages pgbadger and libjson-xs-perl; '
                         'scripts/install-system-deps.sh installs them)')
    process_counts = [int(p) for p in opts.processes.split(',')]
    tools = [t for t in ('ours', 'pgbadger') if t in opts.tools.split(',')]
    work = tempfile.mkdtemp(prefix='appcare-logbench-')
    try:
        log = opts.keep or os.path.join(work, 'postgresql.log')
        started = time.monotonic()
        counts_file = log + '.counts.json'
        if opts.keep and os.path.isfile(log) and os.path.isfile(counts_file):
            with open(counts_file) as handle:
                counts = json.load(handle)
            print('reusing %s (%.0f MB, %d lines)' % (log, counts['bytes'] / MB, counts['lines']))
        else:
            counts = write_log(log, opts.size_mb)
            if opts.keep:
                with open(counts_file, 'w') as handle:
                    json.dump(counts, handle)
            print('wrote %.0f MB, %d lines in %.1f s: %s' % (counts['bytes'] / MB, counts['lines'],
                                                             time.monotonic() - started,
                                                             ', '.join('%s %d' % (s, counts[s]) for s in SEVERITIES)))
        expected = dict((s, counts[s]) for s in SEVERITIES)
        runs = dict(((tool, p), []) for tool in tools for p in process_counts)
        for index in range(opts.repeat):
            for processes in process_counts:
                if 'ours' in tools:
                    seconds, rss, tree, result = ours(log, processes, work)
                    check('pg_log_info (processes %d)' % processes, result['severities'], expected)
                    events = result['events']
                    if (events['temp_files']['count'], events['lock_waits']['count']) != (counts['temp_files'],
                                                                                          counts['lock_waits']):
                        raise SystemExit('pg_log_info counted events %s; the log holds %d temporary files, %d lock '
                                         'waits' % (events, counts['temp_files'], counts['lock_waits']))
                    runs[('ours', processes)].append((seconds, rss, tree))
                    print('round %d  ours      %d process(es)  %8.2f s  largest process %6.0f MB  tree %6.0f MB  '
                          '%d patterns' % (index + 1, processes, seconds, rss / MB, tree / MB, result['patterns_total']),
                          flush=True)
                if 'pgbadger' in tools:
                    seconds, rss, tree, (severities, patterns) = pgbadger(log, processes, work)
                    check('pgbadger -j %d' % processes, severities, expected)
                    runs[('pgbadger', processes)].append((seconds, rss, tree))
                    print('round %d  pgbadger  -j %d            %8.2f s  largest process %6.0f MB  tree %6.0f MB  '
                          '%d patterns' % (index + 1, processes, seconds, rss / MB, tree / MB, patterns), flush=True)
        print('\n%.0f MB stderr log, %d lines, %d alternating round(s), medians (peak RSS: largest process / whole '
              'tree):' % (counts['bytes'] / MB, counts['lines'], opts.repeat))
        for processes in process_counts:
            med = {}
            for tool in tools:
                rows = runs[(tool, processes)]
                med[tool] = [statistics.median(r[i] for r in rows) for i in range(3)]
                print('  %-8s  %d process(es)  %8.2f s  %6.1f MB/s  peak RSS %6.0f MB / %6.0f MB'
                      % (tool, processes, med[tool][0], counts['bytes'] / MB / med[tool][0], med[tool][1] / MB,
                         med[tool][2] / MB))
            if len(tools) == 2:
                rounds = [o[0] / p[0] for o, p in zip(runs[('ours', processes)], runs[('pgbadger', processes)], strict=True)]
                print('  ours / pgbadger at %d process(es): %.3f (target < 1; rounds %s); memory (tree) %.3f'
                      % (processes, med['ours'][0] / med['pgbadger'][0], ', '.join('%.3f' % r for r in rounds),
                         med['ours'][2] / med['pgbadger'][2]))
        if opts.smoke:
            print('smoke run: every run succeeded and counted what the log holds; figures this small are not compared '
                  'with the target')
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
