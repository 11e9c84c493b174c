# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: pg_inspect_info against the same reports run one psql process each, by database size.

For each size (100, 1,000 and 5,000 tables by default) a database is built on an embedded PostgreSQL 18:
every table has a primary key, one secondary index and a foreign key to the previous table (every other
foreign key has no index), a few rows, statistics (ANALYZE) and some scans recorded. Then, alternating
in one invocation:

* ours     -- the whole ``appcare.maintenance.pg_inspect_info`` review (all nine sections) run the way
              Ansible runs it (its own Python process, one session), with ``min_table_size: 0`` and
              ``min_cache_blocks: 0`` so that every table and index goes through every section;
* defaults -- the same with the module's default options (small tables left out of bloat, seq_scans
              and cache);
* separate -- the same reports the way the Supabase CLI's ``inspect db`` commands produce them: one
              report per command, each its own ``psql -X -q -f report.sql`` process and connection
              (table, index and total sizes, index usage, unused indexes, sequential scans, bloat,
              vacuum statistics, cache hit, outliers and calls from pg_stat_statements, role
              connections, unindexed foreign keys, duplicate and invalid indexes, database stats).
              The SQL is ours, written to compute what those reports compute, over the same schemas.

Prints the medians, the ratio ours / separate, and how each time grows from one size to the next
against the growth of the object count. Targets: ours faster than separate at every size, and growth
no worse than linear. ``--sections`` also times each section alone at the largest size. Run by hand::

    .venv/bin/python benchmarks/inspect_scaling.py --sizes 100,1000,5000 --repeat 3 --sections

``--smoke`` is the smallest run of the same code (10 and 20 tables, one round, ``--sections``) for
``make test``: it fails when a run or the review's check fails and compares no figure with a target.
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

from ansible_collections.appcare.maintenance.plugins.module_utils.review import SECTIONS  # noqa: E402
from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import (  # noqa: E402
    SUPABASE_SCHEMAS,
    SchemaFilter,
)
from modrunner import run_module  # noqa: E402
from pgserver import SUPERUSER_PASSWORD, PgServer, available_versions  # noqa: E402

BATCH = 250  # tables per DO block (one transaction each, to keep the lock table small)

BUILD_SQL = """
DO $build$
DECLARE
    i int;
BEGIN
    FOR i IN %(first)d..%(last)d LOOP
        EXECUTE format('CREATE TABLE public.%%I (id int PRIMARY KEY, parent_id int REFERENCES public.%%I (id), '
                       'name text NOT NULL, created_at timestamptz NOT NULL, amount numeric(12, 2))',
                       'bench_' || i, 'bench_' || greatest(i - 1, 1));
        IF i %% 2 = 0 THEN
            EXECUTE format('CREATE INDEX ON public.%%I (parent_id)', 'bench_' || i);
        ELSE
            EXECUTE format('CREATE INDEX ON public.%%I (created_at)', 'bench_' || i);
        END IF;
        EXECUTE format('INSERT INTO public.%%I SELECT g, CASE WHEN %%s = 1 THEN NULL ELSE g END, ''item '' || g, '
                       'now() - g * interval ''1 hour'', g * 1.25 FROM generate_series(1, 8) g', 'bench_' || i, i);
    END LOOP;
END
$build$
"""

# Some statements for pg_stat_statements and some index and sequential scans for the statistics.
WORKLOAD_SQL = """
DO $work$
DECLARE
    i int;
    n bigint;
BEGIN
    FOR i IN 1..%(tables)d BY greatest(%(tables)d / 50, 1) LOOP
        EXECUTE format('SELECT count(*) FROM public.%%I WHERE id = 3', 'bench_' || i) INTO n;
        EXECUTE format('SELECT count(*) FROM public.%%I WHERE name LIKE ''item%%%%''', 'bench_' || i) INTO n;
    END LOOP;
END
$work$
"""

# -- the separate reports, one psql process each -----------------------------------------------------
# Our own SQL, computing what the Supabase CLI's inspect reports compute; :exclude is the schema filter.
USER_SCHEMAS = "n.nspname !~ ALL(ARRAY[%s]::text[])"

REPORTS = {
    'table_sizes': """
SELECT n.nspname AS schema, c.relname AS name, pg_size_pretty(pg_table_size(c.oid)) AS size
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p') AND {user}
ORDER BY pg_table_size(c.oid) DESC, 1, 2;
""",
    'table_index_sizes': """
SELECT n.nspname AS schema, c.relname AS name, pg_size_pretty(pg_indexes_size(c.oid)) AS index_size
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p') AND {user}
ORDER BY pg_indexes_size(c.oid) DESC, 1, 2;
""",
    'total_table_sizes': """
SELECT n.nspname AS schema, c.relname AS name, pg_size_pretty(pg_total_relation_size(c.oid)) AS total_size
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p') AND {user}
ORDER BY pg_total_relation_size(c.oid) DESC, 1, 2;
""",
    'index_sizes': """
SELECT n.nspname AS schema, c.relname AS name, pg_size_pretty(pg_relation_size(c.oid)) AS size
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'i' AND {user}
ORDER BY pg_relation_size(c.oid) DESC, 1, 2;
""",
    'index_usage': """
SELECT s.schemaname AS schema, s.relname AS name,
       CASE WHEN coalesce(s.seq_scan, 0) + coalesce(s.idx_scan, 0) = 0 THEN NULL
            ELSE round(100.0 * coalesce(s.idx_scan, 0) / (coalesce(s.seq_scan, 0) + coalesce(s.idx_scan, 0)), 1)
       END AS percent_index_used, s.n_live_tup AS live_rows
FROM pg_stat_all_tables s JOIN pg_namespace n ON n.oid = (SELECT relnamespace FROM pg_class WHERE oid = s.relid)
WHERE {user}
ORDER BY s.n_live_tup DESC, 1, 2;
""",
    'unused_indexes': """
SELECT s.schemaname AS schema, s.relname AS table_name, s.indexrelname AS index_name,
       pg_size_pretty(pg_relation_size(s.indexrelid)) AS size, s.idx_scan AS scans
FROM pg_stat_all_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
JOIN pg_namespace n ON n.nspname = s.schemaname
WHERE {user} AND NOT i.indisunique AND NOT i.indisprimary AND s.idx_scan < 50
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY pg_relation_size(s.indexrelid) DESC, 1, 2, 3;
""",
    'seq_scans': """
SELECT s.schemaname AS schema, s.relname AS name, s.seq_scan, s.seq_tup_read, s.idx_scan
FROM pg_stat_all_tables s JOIN pg_namespace n ON n.nspname = s.schemaname
WHERE {user}
ORDER BY s.seq_scan DESC, 1, 2;
""",
    'bloat': """
WITH block AS (SELECT current_setting('block_size')::int AS size),
stats AS MATERIALIZED (
    SELECT s.schemaname, s.tablename, s.attname, s.avg_width, s.null_frac FROM pg_stats s WHERE NOT s.inherited
),
heap AS (
    SELECT c.oid, n.nspname AS schema, c.relname AS name, c.reltuples, c.relpages,
           sum(coalesce(s.avg_width, 0) * (1 - coalesce(s.null_frac, 0))) AS width,
           bool_or(coalesce(s.null_frac, 0) > 0) AS nullable, count(*) AS columns
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
    WHERE c.relkind IN ('r', 'm') AND {user}
    GROUP BY 1, 2, 3, 4, 5
),
btree AS (
    SELECT ic.oid, n.nspname AS schema, ic.relname AS name, ic.reltuples, ic.relpages,
           sum(coalesce(s.avg_width, 0) * (1 - coalesce(s.null_frac, 0))) AS width,
           bool_or(coalesce(s.null_frac, 0) > 0) AS nullable
    FROM (SELECT i.indexrelid, i.indrelid, unnest(i.indkey::int2[]) AS attnum FROM pg_index i) k
    JOIN pg_class ic ON ic.oid = k.indexrelid
    JOIN pg_class t ON t.oid = k.indrelid
    JOIN pg_namespace n ON n.oid = ic.relnamespace
    JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
    LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
    LEFT JOIN stats s ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname
    WHERE {user}
    GROUP BY 1, 2, 3, 4, 5
),
estimates AS (
    SELECT 'table' AS kind, schema, name, relpages,
           ceil(reltuples * (32 + CASE WHEN nullable THEN ceil(columns / 8.0) ELSE 0 END + width)
                / ((SELECT size FROM block) - 24)) AS expected
    FROM heap
    UNION ALL
    SELECT 'index', schema, name, relpages,
           ceil(reltuples * (12 + CASE WHEN nullable THEN 4 ELSE 0 END + width)
                / (((SELECT size FROM block) - 40) * 0.9)) + 1
    FROM btree
)
SELECT kind, schema, name,
       round((CASE WHEN relpages > 0 THEN 100.0 * greatest(relpages - expected, 0) / relpages ELSE 0 END)::numeric, 1)
           AS bloat_percent,
       pg_size_pretty((greatest(relpages - expected, 0) * (SELECT size FROM block))::bigint) AS waste
FROM estimates
ORDER BY greatest(relpages - expected, 0) DESC, 2, 3;
""",
    'vacuum_stats': """
WITH setting AS (
    SELECT max(setting::float) FILTER (WHERE name = 'autovacuum_vacuum_threshold') AS base,
           max(setting::float) FILTER (WHERE name = 'autovacuum_vacuum_scale_factor') AS scale
    FROM pg_settings WHERE name IN ('autovacuum_vacuum_threshold', 'autovacuum_vacuum_scale_factor')
), tables AS (
    SELECT n.nspname AS schema, c.relname AS name, c.reltuples, s.n_dead_tup, s.last_vacuum, s.last_autovacuum,
           s.last_analyze, s.last_autoanalyze,
           coalesce((SELECT option_value::float FROM pg_options_to_table(c.reloptions)
                     WHERE option_name = 'autovacuum_vacuum_threshold'), (SELECT base FROM setting)) AS base,
           coalesce((SELECT option_value::float FROM pg_options_to_table(c.reloptions)
                     WHERE option_name = 'autovacuum_vacuum_scale_factor'), (SELECT scale FROM setting)) AS scale
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
    WHERE c.relkind IN ('r', 'm') AND {user}
)
SELECT schema, name, to_char(greatest(last_vacuum, last_autovacuum), 'YYYY-MM-DD HH24:MI') AS last_vacuum,
       to_char(greatest(last_analyze, last_autoanalyze), 'YYYY-MM-DD HH24:MI') AS last_analyze,
       n_dead_tup AS dead_rows, round(base + scale * greatest(reltuples, 0)) AS autovacuum_threshold,
       n_dead_tup > base + scale * greatest(reltuples, 0) AS expect_autovacuum
FROM tables
ORDER BY n_dead_tup DESC NULLS LAST, 1, 2;
""",
    'cache_hit': """
SELECT 'table hit rate' AS name,
       round(sum(heap_blks_hit)::numeric / nullif(sum(heap_blks_hit) + sum(heap_blks_read), 0), 4) AS ratio
FROM pg_statio_all_tables s JOIN pg_namespace n ON n.nspname = s.schemaname WHERE {user}
UNION ALL
SELECT 'index hit rate',
       round(sum(idx_blks_hit)::numeric / nullif(sum(idx_blks_hit) + sum(idx_blks_read), 0), 4)
FROM pg_statio_all_indexes s JOIN pg_namespace n ON n.nspname = s.schemaname WHERE {user};
SELECT s.schemaname AS schema, s.relname AS name, s.heap_blks_hit + s.heap_blks_read AS reads,
       round(100.0 * s.heap_blks_hit / nullif(s.heap_blks_hit + s.heap_blks_read, 0), 2) AS hit_percent
FROM pg_statio_all_tables s JOIN pg_namespace n ON n.nspname = s.schemaname WHERE {user}
ORDER BY 4 NULLS LAST, 1, 2;
""",
    'outliers': """
SELECT interval '1 millisecond' * s.total_exec_time AS total_time,
       round((100 * s.total_exec_time / sum(s.total_exec_time) OVER ())::numeric, 2) AS prop_exec_time,
       s.calls, round(s.mean_exec_time::numeric, 2) AS mean_ms, r.rolname AS role,
       left(regexp_replace(s.query, '\\s+', ' ', 'g'), 200) AS query
FROM pg_stat_statements s LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.total_exec_time DESC LIMIT 20;
""",
    'calls': """
SELECT s.calls, interval '1 millisecond' * s.total_exec_time AS total_time,
       round((100 * s.total_exec_time / sum(s.total_exec_time) OVER ())::numeric, 2) AS prop_exec_time,
       round(100.0 * s.shared_blks_hit / nullif(s.shared_blks_hit + s.shared_blks_read, 0), 1) AS hit_percent,
       left(regexp_replace(s.query, '\\s+', ' ', 'g'), 200) AS query
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.calls DESC LIMIT 20;
""",
    'role_connections': """
SELECT r.rolname AS role, count(a.pid) AS connections,
       CASE WHEN r.rolconnlimit < 0 THEN current_setting('max_connections')::int ELSE r.rolconnlimit END AS max_connections
FROM pg_roles r LEFT JOIN pg_stat_activity a ON a.usename = r.rolname
GROUP BY r.rolname, r.rolconnlimit
ORDER BY 2 DESC, 1;
SELECT coalesce(usename, '(background)') AS role, coalesce(state, 'background') AS state, count(*)
FROM pg_stat_activity GROUP BY 1, 2 ORDER BY 1, 2;
""",
    'unindexed_foreign_keys': """
SELECT n.nspname AS schema, c.relname AS table_name, k.conname AS constraint_name,
       k.confrelid::regclass AS referenced, pg_size_pretty(pg_relation_size(c.oid)) AS table_size
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype = 'f' AND {user}
  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = k.conrelid
                  AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey
                  AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] <@ k.conkey)
ORDER BY 1, 2, 3;
""",
    'duplicate_indexes': """
SELECT n.nspname AS schema, t.relname AS table_name, array_agg(ic.relname ORDER BY ic.relname) AS indexes,
       pg_size_pretty(sum(pg_relation_size(i.indexrelid))::bigint) AS size
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE {user}
GROUP BY n.nspname, t.relname, i.indrelid, ic.relam, i.indkey::text, i.indclass::text,
         coalesce(pg_get_expr(i.indexprs, i.indrelid), ''), coalesce(pg_get_expr(i.indpred, i.indrelid), '')
HAVING count(*) > 1
ORDER BY 1, 2;
SELECT n.nspname AS schema, ic.relname AS invalid_index
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE NOT i.indisvalid AND {user};
""",
    'db_stats': """
SELECT pg_size_pretty(pg_database_size(current_database())) AS database_size,
       d.stats_reset, d.blks_hit, d.blks_read,
       round(100.0 * d.blks_hit / nullif(d.blks_hit + d.blks_read, 0), 2) AS hit_percent,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm', 'p') AND {user}) AS tables
FROM pg_stat_database d WHERE d.datname = current_database();
""",
}


def write_reports(directory):
    exclude = ', '.join("'%s'" % r for r in SchemaFilter(SUPABASE_SCHEMAS).regexes)
    user = USER_SCHEMAS % exclude
    paths = []
    for name, sql in REPORTS.items():
        path = os.path.join(directory, name + '.sql')
        with open(path, 'w') as handle:
            handle.write(sql.replace('{user}', user))
        paths.append(path)
    return paths


def build(server, dbname, tables):
    server.execute('CREATE DATABASE %s' % dbname)
    server.execute('CREATE EXTENSION pg_stat_statements', dbname)
    for first in range(1, tables + 1, BATCH):
        server.execute(BUILD_SQL % {'first': first, 'last': min(first + BATCH - 1, tables)}, dbname)
    server.execute('ANALYZE', dbname)
    server.execute(WORKLOAD_SQL % {'tables': tables}, dbname)
    server.execute('CHECKPOINT')  # so that no checkpoint of the build runs during the measurements
    time.sleep(1.5)  # let the backends flush their statistics (PostgreSQL 15+ flushes at most once a second)


ALL_OBJECTS = {'min_table_size': '0', 'min_cache_blocks': 0}


def run_ours(login, extra):
    result = run_module('pg_inspect_info', dict(login, **extra))
    if result.failed:
        raise SystemExit('pg_inspect_info failed: %s' % result.get('msg'))
    return result


def run_separate(psql, reports, env):
    for path in reports:
        proc = subprocess.run(psql + ['-f', path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              check=False)
        if proc.returncode != 0:
            raise SystemExit('%s failed: %s' % (os.path.basename(path), proc.stderr))


def timed(action, repeat):
    times = []
    for _round in range(repeat):
        began = time.monotonic()
        action()
        times.append(time.monotonic() - began)
    return times


def measure(server, tables, reports, env, repeat, sections):
    """Medians for one database size, and each section's alone when ``sections``."""
    dbname = 'bench_%d' % tables
    started = time.monotonic()
    build(server, dbname, tables)
    objects = server.execute("SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')), "
                             "(SELECT count(*) FROM pg_constraint WHERE contype = 'f'), "
                             "pg_size_pretty(pg_database_size(current_database()))", dbname)[0]
    print('%d tables: built in %.1f s (%d tables and indexes, %d foreign keys, %s)'
          % (tables, time.monotonic() - started, objects[0], objects[1], objects[2]), flush=True)
    login = server.login_args(dbname)
    psql = [server.bin('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', str(server.port),
            '-U', 'postgres', '-d', dbname]

    # Warm-up (not timed), and a check that the review saw the whole database.
    check = run_ours(login, ALL_OBJECTS)
    unindexed = [c for c in check['checks'] if c['name'] == 'unindexed_foreign_key' and c['status'] == 'warning']
    if check['sections']['sizes']['table_count'] != tables or len(unindexed) != tables // 2:
        raise SystemExit('unexpected review: %d tables, %d unindexed foreign keys'
                         % (check['sections']['sizes']['table_count'], len(unindexed)))
    run_separate(psql, reports, env)

    runs = {'ours': [], 'defaults': [], 'separate': []}
    actions = (('ours', lambda: run_ours(login, ALL_OBJECTS)), ('defaults', lambda: run_ours(login, {})),
               ('separate', lambda: run_separate(psql, reports, env)))
    for _round in range(repeat):  # alternating
        for label, action in actions:
            runs[label].extend(timed(action, 1))
    med = {label: statistics.median(times) for label, times in runs.items()}
    print('  ours %.3f s, ours (defaults) %.3f s, separate psql %.3f s'
          % (med['ours'], med['defaults'], med['separate']), flush=True)
    per_section = {}
    if sections:
        for section in SECTIONS:
            extra = dict(ALL_OBJECTS, sections=[section])
            per_section[section] = statistics.median(timed(lambda extra=extra: run_ours(login, extra), repeat))
    server.execute('DROP DATABASE %s' % dbname)
    return med, per_section


def growth(times, index):
    return '-' if index == 0 else 'x%.2f' % (times[index] / times[index - 1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', default='100,1000,5000', help='table counts, comma-separated')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--sections', action='store_true',
                        help='also time each section alone (sections: [one]) at the largest size')
    parser.add_argument('--smoke', action='store_true',
                        help='smallest run of the whole code path (10 and 20 tables, one round, --sections); '
                             'no target is checked')
    opts = parser.parse_args()
    if opts.smoke:
        opts.sizes, opts.repeat, opts.sections = '10,20', 1, True
    sizes = [int(s) for s in opts.sizes.split(',') if s.strip()]

    server = PgServer(available_versions()['18'], settings={'max_locks_per_transaction': 1024,
                                                            'shared_buffers': "'256MB'"})
    server.start()
    work = tempfile.mkdtemp(prefix='appcare-inspect-bench-')
    env = dict(os.environ, PGPASSWORD=SUPERUSER_PASSWORD)
    try:
        reports = write_reports(work)
        results = []
        section_times = {}
        for tables in sizes:
            med, per_section = measure(server, tables, reports, env, opts.repeat,
                                       opts.sections and tables == max(sizes))
            results.append((tables, med))
            section_times.update(per_section)
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)

    print('\nPostgreSQL %s, %d reports as separate psql processes, medians of %d runs:'
          % (server.version, len(reports), opts.repeat))
    print('| tables | ours (s) | ours, defaults (s) | separate psql (s) | ours / separate | objects growth '
          '| ours growth | defaults growth | separate growth |')
    print('|---|---|---|---|---|---|---|---|---|')
    counts = [tables for tables, _med in results]
    series = dict((label, [med[label] for _tables, med in results]) for label in ('ours', 'defaults', 'separate'))
    for index, (tables, med) in enumerate(results):
        objects = '-' if index == 0 else 'x%.2f' % (tables / counts[index - 1])
        print('| %d | %.3f | %.3f | %.3f | %.3f | %s | %s | %s | %s |'
              % (tables, med['ours'], med['defaults'], med['separate'], med['ours'] / med['separate'], objects,
                 growth(series['ours'], index), growth(series['defaults'], index), growth(series['separate'], index)))
    faster = [tables for tables, med in results if not (med['ours'] < med['separate'] and med['defaults'] < med['separate'])]
    superlinear = ['%s %d->%d' % (label, counts[i - 1], counts[i]) for label in ('ours', 'defaults')
                   for i in range(1, len(results)) if series[label][i] / series[label][i - 1] > counts[i] / counts[i - 1]]
    if not opts.smoke:
        print('\ntarget "ours faster than the separate reports at every size": %s'
              % ('met' if not faster else 'MISSED at %s tables' % ', '.join(str(t) for t in faster)))
        print('target "growth no worse than linear": %s'
              % ('met' if not superlinear else 'MISSED (%s)' % ', '.join(superlinear)))
    if section_times:
        print('\neach section alone at %d tables (min_table_size 0, min_cache_blocks 0; each run includes the '
              'process start and the first query), medians:' % max(sizes))
        for section, seconds in sorted(section_times.items(), key=lambda item: -item[1]):
            print('  %-14s %.3f s' % (section, seconds))
    if opts.smoke:
        print('\nsmoke run: every run succeeded; figures this small are not compared with the targets')


if __name__ == '__main__':
    main()
