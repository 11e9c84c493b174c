# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the full default health check against 1 and 20 inventory targets.

Compares, in the same run and against the same embedded PostgreSQL 18 with the sample database:

* ours      -- one ``appcare.maintenance.pg_health_info`` task per host;
* community -- the same checks the way a user writes them today with community.postgresql:
               one ``postgresql_ping`` plus one ``postgresql_query`` task per check;
* floor     -- the same SQL through one ``psql`` session per target, no Ansible at all.

Run by hand (``make bench``); the tests run only ``--smoke`` (below). community.postgresql ships in the
``ansible`` package on PyPI; the script installs that package (without its dependencies) into ``.bench/``
the first time. Prints the three times and the ratios.

``--smoke`` is the smallest run of the same code (1 target, one run of each) for ``make test``: it fails
when a run fails and compares no figure with the target. When ``.bench/`` has no community.postgresql yet,
it downloads the same ``ansible`` package but unpacks only that collection (seconds instead of most of a
minute for the whole package); a later real run uses it as it is.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, 'tests'), os.path.join(REPO, 'collections'), os.path.join(REPO, 'demo')]

from ansible_collections.appcare.maintenance.plugins.module_utils import health as H  # noqa: E402
from ansible_collections.appcare.maintenance.plugins.module_utils import indexes as IX  # noqa: E402
from ansible_collections.appcare.maintenance.plugins.module_utils import schemas as S  # noqa: E402
from ansible_collections.appcare.maintenance.plugins.module_utils import statements as ST  # noqa: E402
from load_sample import load  # noqa: E402
from pgserver import SUPERUSER_PASSWORD, PgServer, available_versions  # noqa: E402

BENCH_DIR = os.path.join(REPO, '.bench')
COMMUNITY_DIR = os.path.join(BENCH_DIR, 'ansible')


def ensure_community_postgresql(collection_only=False):
    marker = os.path.join(COMMUNITY_DIR, 'ansible_collections', 'community', 'postgresql')
    if not os.path.isdir(marker) and collection_only:
        unpack_community_postgresql(marker)
    elif not os.path.isdir(marker):
        print('installing the ansible package (for community.postgresql) into %s ...' % COMMUNITY_DIR)
        subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', COMMUNITY_DIR,
                        'ansible'], check=True)
    return COMMUNITY_DIR


def unpack_community_postgresql(marker):
    """Only ``ansible_collections/community/postgresql`` of the ``ansible`` package's wheel, into ``marker``."""
    print('unpacking community.postgresql from the ansible package into %s ...' % COMMUNITY_DIR)
    os.makedirs(BENCH_DIR, exist_ok=True)
    download = tempfile.mkdtemp(prefix='wheel-', dir=BENCH_DIR)  # on the same file system as the collection
    try:
        subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary', ':all:',
                        '--dest', download, 'ansible'], check=True)
        wheels = glob.glob(os.path.join(download, 'ansible-*.whl'))
        if len(wheels) != 1:
            raise SystemExit('pip download ansible left %s, not one wheel' % os.listdir(download))
        prefix = 'ansible_collections/community/postgresql/'
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [name for name in wheel.namelist() if name.startswith(prefix)]
            if not members:
                raise SystemExit('%s holds no community.postgresql' % os.path.basename(wheels[0]))
            wheel.extractall(download, members)
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        os.rename(os.path.join(download, prefix), marker)
    finally:
        shutil.rmtree(download, ignore_errors=True)


def check_queries():
    """The SQL of every default check, as a user would paste it into postgresql_query tasks."""
    excluded = 'ARRAY[%s]::text[]' % ', '.join("'%s'" % r for r in S.SchemaFilter(S.SUPABASE_SCHEMAS).regexes)
    pgss = ST.TOP_SQL.format(schema='public', total='s.total_exec_time', mean='s.mean_exec_time',
                             max='s.max_exec_time', order='s.mean_exec_time').replace('%s', '5')
    activity = H.ACTIVITY_SQL.format(lock_wait=H.LOCK_WAIT_14)  # the benchmark's server is PostgreSQL 18
    return [
        ('database_connection', 'SELECT 1'),
        ('server', H.SERVER_SQL),
        ('connections_used', activity),
        ('long_running_queries', activity + " AND state = 'active'"),
        ('idle_in_transaction', activity + " AND state = 'idle in transaction'"),
        ('blocked_sessions', activity + " AND wait_event_type = 'Lock'"),
        ('cache_hit_ratio', H.STATS_SQL),
        ('database_size', 'SELECT pg_database_size(current_database())'),
        ('xid_wraparound', 'SELECT datname, age(datfrozenxid) FROM pg_database ORDER BY 2 DESC'),
        ('sequence_exhaustion', H.SEQUENCES_SQL.replace('%%', '%').replace('%s', excluded)),
        ('replication_lag', H.REPLICATION_PRIMARY_SQL),
        ('replication_slots', H.SLOTS_SQL),
        ('wal_archiver', H.ARCHIVER_SQL),
        ('invalid_indexes', IX.INVALID_INDEXES_SQL.replace('%(exclude)s', excluded)
         .replace('%(copy)s', "'%s'" % IX.COPY_RE.pattern)),
        ('data_checksum_failures', H.STATS_SQL),
        ('slow_queries', pgss),
    ]


def write_inventory(path, hosts, port):
    with open(path, 'w') as handle:
        handle.write('all:\n  hosts:\n')
        for i in range(hosts):
            handle.write('    target%02d:\n' % i)
        handle.write('  vars:\n    ansible_connection: local\n'
                     '    ansible_python_interpreter: "%s"\n    db_port: %d\n' % (sys.executable, port))


def write_playbooks(workdir):
    conn = ('login_host: 127.0.0.1\n      login_port: "{{ db_port }}"\n      login_user: postgres\n'
            '      login_password: "%s"\n      login_db: ims\n' % SUPERUSER_PASSWORD)
    ours = os.path.join(workdir, 'ours.yml')
    with open(ours, 'w') as handle:
        handle.write('- hosts: all\n  gather_facts: false\n  tasks:\n'
                     '  - appcare.maintenance.pg_health_info:\n      %s' % conn)
    community = os.path.join(workdir, 'community.yml')
    with open(community, 'w') as handle:
        handle.write('- hosts: all\n  gather_facts: false\n  tasks:\n'
                     '  - community.postgresql.postgresql_ping:\n      %s' % conn)
        for name, query in check_queries():
            indented = '\n'.join('        ' + line for line in query.strip().splitlines())
            handle.write('  - name: %s\n    community.postgresql.postgresql_query:\n      %s'
                         '      query: |\n%s\n' % (name, conn, indented))
    floor_sql = os.path.join(workdir, 'floor.sql')
    with open(floor_sql, 'w') as handle:
        for _name, query in check_queries():
            handle.write(query.strip() + ';\n')
    return ours, community, floor_sql


def timed(argv, env):
    started = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit('benchmark command failed: %s\n%s' % (' '.join(argv), proc.stdout[-3000:]))
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hosts', type=int, nargs='+', default=[1, 20])
    parser.add_argument('--repeat', type=int, default=3, help='runs per figure; the median is reported')
    parser.add_argument('--forks', type=int, default=10)
    parser.add_argument('--smoke', action='store_true',
                        help='smallest run of the whole code path (1 target, one run of each); no target is checked')
    opts = parser.parse_args()
    if opts.smoke:
        opts.hosts, opts.repeat = [1], 1

    community_path = ensure_community_postgresql(collection_only=opts.smoke)
    versions = available_versions()
    server = PgServer(versions['18'], settings={'max_connections': 100})
    server.start()
    workdir = tempfile.mkdtemp(prefix='appcare-bench-')
    try:
        print(load(server.port))
        ours, community, floor_sql = write_playbooks(workdir)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH='%s:%s' % (os.path.join(REPO, 'collections'), community_path),
                   ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false', ANSIBLE_FORKS=str(opts.forks),
                   ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_NOCOLOR='1', PGPASSWORD=SUPERUSER_PASSWORD)
        if opts.smoke:  # the run report of a smoke run goes with its temporary files, not into reports/
            env['APPCARE_REPORT_DIR'] = os.path.join(workdir, 'reports')
        playbook_bin = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
        psql = os.path.join(server.bindir, 'psql')
        rows = []
        for hosts in opts.hosts:
            inventory = os.path.join(workdir, 'hosts-%d.yml' % hosts)
            write_inventory(inventory, hosts, server.port)
            floor_cmd = ['bash', '-c', 'for i in $(seq %d); do %s -X -q -h 127.0.0.1 -p %d -U postgres -d ims '
                         '-f %s >/dev/null || exit 1; done' % (hosts, psql, server.port, floor_sql)]
            figures = {}
            for label, argv in (('ours', [playbook_bin, '-i', inventory, ours]),
                                ('community', [playbook_bin, '-i', inventory, community]),
                                ('floor', floor_cmd)):
                figures[label] = statistics.median([timed(argv, env) for _run in range(opts.repeat)])
            rows.append((hosts, figures))
        print()
        header = ('hosts', 'ours (s)', 'community (s)', 'floor (s)', 'ours / community', 'ours / floor')
        print('%-6s %10s %12s %9s %18s %14s' % header)
        for hosts, f in rows:
            line = (hosts, f['ours'], f['community'], f['floor'], f['ours'] / f['community'], f['ours'] / f['floor'])
            print('%-6d %10.2f %12.2f %9.2f %18.3f %14.1f' % line)
        print('\n%d checks; community.postgresql needs %d tasks per host, ours 1; forks=%d; median of %d runs'
              % (len(H.ALL_CHECKS), len(check_queries()) + 1, opts.forks, opts.repeat))
        if opts.smoke:
            print('smoke run: every run succeeded; figures this small are not compared with the target')
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
