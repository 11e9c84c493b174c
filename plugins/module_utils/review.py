# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_inspect_info: the weekly performance review of one database, read-only, over one session.

Each section returns its data (sorted, cut to ``top_n`` where long) and findings. The catalogue and
statistics are read with a handful of set-based queries, so the cost grows with the number of objects,
not with one round trip per object.

The performance lints of Supabase's linter (splinter) are covered with splinter's names where ours had none:
``no_primary_key``, ``auth_rls_initplan``, ``multiple_permissive_policies``, and its ``table_bloat`` rule as
``table_bloat_excessive`` (``table_bloat`` is our own estimate, with thresholds, older than the lint).
``unindexed_foreign_key``, ``unused_index`` and ``duplicate_index`` are splinter's ``unindexed_foreign_keys``,
``unused_index`` and ``duplicate_index``, stricter where splinter's are loose. The queries are our own.
"""

from __future__ import annotations

import math
import re

from ansible_collections.appcare.maintenance.plugins.module_utils import bloat as BL
from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import indexes as IX
from ansible_collections.appcare.maintenance.plugins.module_utils import statements as ST
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import db_error_text
from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import (
    SPLINTER_EXCLUDED_SCHEMAS,
    SchemaFilter,
    qualified,
)

try:
    import psycopg2
except ImportError:  # pragma: no cover - reported by require_psycopg2()
    psycopg2 = None

SECTIONS = ['slow_queries', 'index_usage', 'seq_scans', 'sizes', 'bloat', 'vacuum', 'foreign_keys', 'primary_keys',
            'policies', 'cache', 'connections']

# auth_rls_initplan also reads the policies of realtime.messages (Realtime Authorization): the application's own.
SPLINTER_INITPLAN_EXCLUDED_SCHEMAS = [s for s in SPLINTER_EXCLUDED_SCHEMAS if s != 'realtime']

# splinter's table_bloat rule: the table holds more than 70 times the pages its statistics call for, and more than
# 20 MB of them are waste.
EXCESSIVE_BLOAT_RATIO = 70.0
EXCESSIVE_BLOAT_BYTES = 20 * 1024 * 1024

# The table c is not an extension's (created by CREATE EXTENSION: the extension's to maintain, not the application's).
NOT_EXTENSION_OWNED = ("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
                       "AND d.objid = c.oid AND d.deptype = 'e')")

DEFAULT_THRESHOLDS = {
    'slow_queries': {'warning': 2000, 'critical': None, 'direction': C.ABOVE, 'unit': 'ms'},
    'seq_scans': {'warning': 50, 'critical': None, 'direction': C.ABOVE, 'unit': 'percent'},
    'table_bloat': {'warning': 30, 'critical': 60, 'direction': C.ABOVE, 'unit': 'percent'},
    'index_bloat': {'warning': 30, 'critical': 60, 'direction': C.ABOVE, 'unit': 'percent'},
    'table_cache_hit': {'warning': 90, 'critical': None, 'direction': C.BELOW, 'unit': 'percent'},
    'role_connections': {'warning': 80, 'critical': 95, 'direction': C.ABOVE, 'unit': 'percent'},
}

HEAP_PAGE_HEADER = 24
HEAP_TUPLE_HEADER = 23
LINE_POINTER = 4

TABLES_SQL = """
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind, c.reltuples::float AS reltuples, c.reloptions,
       c.relpages::bigint AS relpages, coalesce(am.amname = 'heap', false) AS heap_am,
       pg_relation_size(c.oid) AS heap_bytes, pg_indexes_size(c.oid) AS index_bytes,
       pg_table_size(c.oid) AS table_bytes, has_table_privilege(c.oid, 'SELECT') AS readable,
       coalesce(s.seq_scan, 0) AS seq_scan, coalesce(s.seq_tup_read, 0) AS seq_tup_read,
       coalesce(s.idx_scan, 0) AS idx_scan, coalesce(s.n_live_tup, 0) AS live, coalesce(s.n_dead_tup, 0) AS dead,
       coalesce(s.n_mod_since_analyze, 0) AS modified,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float AS vacuum_age,
       extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze))::float AS analyze_age,
       coalesce(io.heap_blks_hit, 0) AS heap_hit, coalesce(io.heap_blks_read, 0) AS heap_read
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
LEFT JOIN pg_statio_all_tables io ON io.relid = c.oid
LEFT JOIN pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname !~ ALL(%(exclude)s)
"""

INDEXES_SQL = """
SELECT i.indexrelid AS oid, n.nspname AS schema, ic.relname AS name, t.relname AS table_name, i.indrelid,
       am.amname AS method, i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS valid,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS backs_constraint,
       EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = t.oid
               AND d.deptype = 'e') AS extension_owned,
       coalesce(s.idx_scan, 0) AS scans, pg_relation_size(i.indexrelid) AS size, ic.reltuples::float AS reltuples,
       t.reltuples::float AS table_reltuples, ic.reloptions,
       i.indkey::text AS key, i.indclass::text AS opclasses, i.indcollation::text AS collations,
       i.indoption::text AS key_options, i.indnkeyatts AS key_columns, i.indimmediate AS immediate,
       -- UNIQUE ... NULLS NOT DISTINCT (PostgreSQL 15+; read through to_jsonb so older servers answer false)
       coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false) AS nulls_not_distinct,
       coalesce(pg_get_expr(i.indexprs, i.indrelid), '') AS exprs,
       coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS pred
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
WHERE ic.relkind = 'i' AND n.nspname !~ ALL(%(exclude)s)
"""

COLUMN_WIDTHS_SQL = """
SELECT c.oid, sum(coalesce(s.avg_width, CASE WHEN a.attlen > 0 THEN a.attlen END) * (1 - coalesce(s.null_frac, 0)))::float
         AS width,
       bool_or(coalesce(s.null_frac, 0) > 0) AS has_nulls, count(*) AS columns,
       count(*) FILTER (WHERE s.avg_width IS NULL AND a.attlen < 0) AS unknown,
       -- what splinter's table_bloat estimate reads: only the columns with statistics
       count(s.attname) AS stats_columns, coalesce(sum((1 - s.null_frac) * s.avg_width), 0)::float AS stats_width,
       coalesce(max(s.null_frac), 0)::float AS max_null_frac,
       count(*) FILTER (WHERE s.null_frac <> 0) AS null_columns
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
     AND NOT s.inherited
WHERE c.oid = ANY(%s)
GROUP BY c.oid
"""

UNINDEXED_FK_SQL = """
SELECT k.conname, n.nspname AS schema, c.relname AS table_name, f.relname AS references,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.pos)::text[] AS columns,
       pg_relation_size(c.oid) AS table_bytes,
       -- supported: a valid, non-partial index whose leading key columns are the foreign key's, in its order
       -- (a partial index serves only the rows its predicate covers; INCLUDE columns are not searchable keys)
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = k.conrelid AND i.indisvalid AND i.indpred IS NULL
               AND i.indnkeyatts >= cardinality(k.conkey)
               AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] = k.conkey) AS indexed
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class f ON f.oid = k.confrelid
WHERE k.contype = 'f' AND n.nspname !~ ALL(%%(exclude)s) AND %s
ORDER BY 2, 3, 1
""" % NOT_EXTENSION_OWNED

NO_PRIMARY_KEY_SQL = """
SELECT n.nspname AS schema, c.relname AS name, c.reltuples::float AS reltuples, pg_relation_size(c.oid) AS bytes
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname !~ ALL(%%(exclude)s) AND %s
  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
ORDER BY 1, 2
""" % NOT_EXTENSION_OWNED

# The policies of the tables with row level security on, their expressions as text. Read with search_path set to
# pg_catalog alone, so that every function outside it is printed schema-qualified (auth.uid(), never uid()).
RLS_POLICIES_SQL = """
SELECT n.nspname AS schema, c.relname AS table_name, p.polname AS name,
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE'
                     ELSE 'ALL' END AS command,
       pg_get_expr(p.polqual, p.polrelid) AS using_expr, pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr
FROM pg_policy p
JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relrowsecurity AND n.nspname !~ ALL(%(exclude)s)
ORDER BY 1, 2, 3
"""

# Per table, role and action, the permissive policies that apply: a policy for PUBLIC applies to every role, FOR ALL
# to the four actions. Roles that bypass row level security, PostgreSQL's pg_* roles and Supabase's
# supabase*admin roles are left out, as splinter does.
PERMISSIVE_POLICIES_SQL = """
SELECT n.nspname AS schema, c.relname AS table_name, r.rolname AS role, a.action,
       array_agg(p.polname::text ORDER BY p.polname) AS policies
FROM pg_policy p
JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_roles r ON r.oid = ANY(p.polroles) OR p.polroles = '{0}'::oid[]
CROSS JOIN LATERAL unnest(CASE p.polcmd WHEN 'r' THEN ARRAY['SELECT'] WHEN 'a' THEN ARRAY['INSERT']
                                         WHEN 'w' THEN ARRAY['UPDATE'] WHEN 'd' THEN ARRAY['DELETE']
                                         ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'] END) AS a(action)
WHERE c.relkind = 'r' AND p.polpermissive AND n.nspname !~ ALL(%%(exclude)s) AND %s
  AND NOT r.rolbypassrls AND r.rolname !~ '^pg_' AND r.rolname !~ '^supabase.*admin$'
GROUP BY 1, 2, 3, 4
HAVING count(*) > 1
ORDER BY 1, 2, 3, array_position(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'], a.action)
""" % NOT_EXTENSION_OWNED

# A call splinter's auth_rls_initplan looks for: auth.uid(), auth.jwt(), auth.role(), auth.email(), current_setting().
PER_ROW_CALL_RE = re.compile(r'\b(auth\.(?:uid|jwt|role|email)\(\)|current_setting\()')
# ... and one evaluated once per statement: the whole target of a sub-select, "(SELECT auth.uid() ...)".
WRAPPED_CALL_RE = re.compile(r'\bselect\s+\(*\s*$')

CONNECTIONS_SQL = """
SELECT coalesce(a.usename, '(background)') AS role, coalesce(a.state, 'background') AS state, count(*) AS sessions
FROM pg_stat_activity a WHERE a.datname = current_database() OR a.datname IS NULL
GROUP BY 1, 2 ORDER BY 1, 2
"""

ROLE_LIMITS_SQL = """
SELECT r.rolname AS role, r.rolconnlimit AS limit,
       (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname) AS sessions
FROM pg_roles r WHERE r.rolconnlimit >= 0 AND r.rolcanlogin
"""


def uniqueness_mode(ix):
    """How a unique index enforces uniqueness beyond its key: ``NULLS NOT DISTINCT`` (PostgreSQL 15+) and a deferrable
    check (``indimmediate`` false) enforce something else than a plain unique index. '' for a plain unique index and
    for a non-unique one: a non-unique index is redundant beside a unique one on the same key."""
    if not ix['is_unique']:
        return ''
    return ' '.join(word for word, flag in (('nulls not distinct', ix.get('nulls_not_distinct')),
                                            ('deferrable', ix.get('immediate') is False)) if flag)


def duplicate_key(ix):
    """What makes two indexes duplicates: the same table, access method, columns (and which of them are key columns,
    not INCLUDE ones), operator classes, collations, sort order (``DESC``, ``NULLS FIRST``: ``indoption``),
    expressions (``indexprs``), predicate (``indpred``) and uniqueness mode (uniqueness_mode)."""
    return (ix['indrelid'], ix['method'], ix['key'], ix.get('key_columns'), ix['opclasses'], ix.get('collations'),
            ix.get('key_options'), ix['exprs'], ix['pred'], uniqueness_mode(ix))


def per_row_calls(expression):
    """The calls of ``expression`` (a policy's USING or WITH CHECK, as pg_get_expr prints it) that splinter's
    auth_rls_initplan looks for and that PostgreSQL evaluates once per row: every auth.uid(), auth.jwt(),
    auth.role(), auth.email() or current_setting() that is not the target of its own sub-select. One wrapped call
    does not excuse another that is not."""
    calls = []
    for match in PER_ROW_CALL_RE.finditer(expression or ''):
        if not WRAPPED_CALL_RE.search(expression[:match.start()].lower()):
            calls.append('current_setting()' if match.group(1) == 'current_setting(' else match.group(1))
    return calls


def splinter_bloat(table, stats, block):
    """splinter's table_bloat estimate of ``table`` (``relpages``, ``reltuples``) from the statistics of its columns
    (``stats_width``: the sum of avg_width * (1 - null_frac) of the columns with statistics, ``max_null_frac``,
    ``null_columns``): ``(ratio, wasted_bytes)`` - the table's pages over the pages the estimate expects, and the
    bytes of the pages beyond those - or ``(None, None)`` when it has no statistics.

    The estimate: a tuple is a 23-byte header plus the data, aligned to 4 bytes, plus the null bitmap (one bit per
    column with nulls, aligned to 4 bytes) weighted by the largest null share, plus a 4-byte line pointer; pages hold
    the block size minus 20 bytes of those."""
    if stats is None or not stats.get('stats_columns') or table.get('relpages') is None or table['reltuples'] is None \
            or table['reltuples'] < 0:
        return None, None

    def align4(value):
        return math.ceil(value / 4.0) * 4

    data = align4(stats['stats_width'] + align4(HEAP_TUPLE_HEADER))
    null_bitmap = stats['max_null_frac'] * align4(HEAP_TUPLE_HEADER + 1 + stats['null_columns'] // 8)
    expected = math.ceil(table['reltuples'] * (data + null_bitmap + LINE_POINTER) / float(block - 20))
    pages = table['relpages']
    ratio = round(pages / float(expected), 1) if expected > 0 else 0.0
    return ratio, (0 if pages < expected else int(block * (pages - expected)))


def keep_order(ix):
    """Sort key of a duplicate group, the copy to keep first: one that backs a constraint (primary key, unique,
    exclusion, or the key a foreign key references: ``pg_constraint.conindid``), else one that enforces uniqueness,
    else the most scanned, else the first by name."""
    return (not (ix['backs_constraint'] or ix['is_primary']), not ix['is_unique'], -ix['scans'], ix['name'])


def keep_reason(kept, other):
    """Why ``kept`` is kept rather than ``other`` (both of one duplicate group, ``kept`` first by keep_order)."""
    if kept['backs_constraint'] or kept['is_primary']:
        return 'it backs a constraint'
    if kept['is_unique'] and not other['is_unique']:
        return 'it enforces uniqueness'
    if kept['scans'] > other['scans']:
        return '%d scan(s) against %d' % (kept['scans'], other['scans'])
    return 'first by name, neither is used more'


def duplicate_groups(indexes):
    """Groups of two or more valid indexes with the same definition (duplicate_key), each ordered by keep_order:
    the first is the one to keep, the others the ones to drop. An invalid index is never part of a group (it is
    reported by invalid_indexes): it is never used, so keeping it instead of a valid copy would leave no usable one."""
    groups = {}
    for ix in indexes:
        if ix['valid']:
            groups.setdefault(duplicate_key(ix), []).append(ix)
    return sorted((sorted(group, key=keep_order) for group in groups.values() if len(group) > 1),
                  key=lambda group: (group[0]['schema'], group[0]['table_name'], group[0]['name']))


class Inspection(object):
    """Runs the selected sections over one session."""

    def __init__(self, session, params, thresholds):
        self.session = session
        self.params = params
        self.thresholds = thresholds
        self.exclude = SchemaFilter(params['exclude_schemas'])
        # the lints named after splinter's: its schemas and the user's both left out
        self.splinter_exclude = SchemaFilter(list(params['exclude_schemas'] or []) + SPLINTER_EXCLUDED_SCHEMAS)
        self.initplan_exclude = SchemaFilter(list(params['exclude_schemas'] or []) + SPLINTER_INITPLAN_EXCLUDED_SCHEMAS)
        self.top = params['top_n']
        self.min_table_bytes = params['_min_table_bytes']
        self.obj = 'db=%s' % params['login_db']
        self.findings = C.Findings(thresholds, self.obj)
        self.data = {}
        self.metrics = {}
        self._tables = None
        self._indexes = None
        self._settings = None

    # -- helpers ----------------------------------------------------------------------------------
    def tables(self):
        if self._tables is None:
            self._tables = self.session.query(TABLES_SQL, {'exclude': self.exclude.regexes})
            for table in self._tables:  # table (heap + TOAST) plus indexes: what pg_total_relation_size adds up
                table['total_bytes'] = table['table_bytes'] + table['index_bytes']
        return self._tables

    def indexes(self):
        if self._indexes is None:
            self._indexes = self.session.query(INDEXES_SQL, {'exclude': self.exclude.regexes})
        return self._indexes

    def settings(self):
        if self._settings is None:
            rows = self.session.query(
                "SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'autovacuum_vacuum_threshold', "
                "'autovacuum_vacuum_scale_factor', 'autovacuum_analyze_threshold', 'autovacuum_analyze_scale_factor', "
                "'block_size', 'max_connections')")
            self._settings = dict((r['name'], r['setting']) for r in rows)
        return self._settings

    def run(self, sections):
        row = self.session.one("SELECT pg_database_size(current_database()) AS size, "
                               "(SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS reset")
        self.metrics['database_size'] = row['size']
        self.data['stats_reset'] = row['reset'].isoformat() if row['reset'] else None
        for section in sections:
            getattr(self, 'section_' + section)()
        return self.findings

    # -- sections ---------------------------------------------------------------------------------
    def section_slow_queries(self):
        ext = ST.locate(self.session)
        if ext is None:
            self.findings.add('slow_queries', C.UNKNOWN, 'pg_stat_statements is not installed in database %s (add it to '
                              'shared_preload_libraries and CREATE EXTENSION pg_stat_statements)' % self.params['login_db'])
            self.data['slow_queries'] = None
            return
        try:
            by_total = ST.top(self.session, ext, 'total', self.top)
            by_mean = ST.top(self.session, ext, 'mean', self.top)
            reset = ST.stats_reset(self.session, ext)
        except psycopg2.Error as exc:
            self.findings.add('slow_queries', C.UNKNOWN, 'cannot read pg_stat_statements: %s' % db_error_text(exc))
            return
        self.data['slow_queries'] = {'by_total_time': by_total, 'by_mean_time': by_mean, 'stats_reset': reset}
        slow = [q for q in by_mean if C.past_first_limit(self.thresholds['slow_queries'], q['mean_ms'])]
        self.metrics['slow_queries'] = len(slow)
        for query in slow:
            self.findings.judge('slow_queries', query['mean_ms'], 'statement %s averages {value} ms over %d call(s) (max %s ms): '
                                '%s' % (query['queryid'], query['calls'], query['max_ms'], query['query'][:200]),
                                obj='queryid=%s' % query['queryid'])
        if not slow:
            worst = by_mean[0]['mean_ms'] if by_mean else 0
            self.findings.judge('slow_queries', worst, 'the slowest statement averages {value} ms%s'
                                % (' (statistics since %s)' % reset if reset else ''))

    def section_index_usage(self):
        # an extension's tables are the extension's to index, as splinter's unused_index and duplicate_index say
        indexes = [ix for ix in self.indexes() if not ix.get('extension_owned')]
        unused = [ix for ix in indexes if ix['scans'] == 0 and ix['valid'] and not ix['is_unique']
                  and not ix['is_primary'] and not ix['backs_constraint'] and ix['size'] >= self.params['_min_index_bytes']]
        duplicates = duplicate_groups(indexes)
        group_of = dict((ix['oid'], group) for group in duplicates for ix in group)
        invalid = IX.invalid_indexes(self.session, self.exclude.regexes)
        since = self.data.get('stats_reset')
        self.data['index_usage'] = {
            'unused': [self._index_row(ix) for ix in sorted(unused, key=lambda ix: -ix['size'])[:self.top]],
            'duplicates': [{'keep': qualified(g[0]['schema'], g[0]['name']),
                            'redundant': [qualified(ix['schema'], ix['name']) for ix in g[1:]],
                            'bytes': sum(ix['size'] for ix in g[1:])} for g in duplicates],
            'invalid': [ix['index'] for ix in invalid],
        }
        for ix in unused:
            name = qualified(ix['schema'], ix['name'])
            group = group_of.get(ix['oid'])
            if group is None:
                advice = 'it costs %s and slows every write - DROP INDEX CONCURRENTLY %s if nothing needs it' % (
                    C.human_bytes(ix['size']), name)
            elif group[0] is not ix:
                # one recommendation per object: the same advice as duplicate_index, never a second one
                advice = 'it is a duplicate of %s, the copy kept: drop it (see duplicate_index)' % qualified(
                    group[0]['schema'], group[0]['name'])
            else:
                # the copy duplicate_index keeps: dropping it as well would drop every copy of the key
                advice = ('it is the copy duplicate_index keeps of its duplicates (%s): drop those, not this one; '
                          'once they are gone it is the last copy, review it then'
                          % ', '.join(qualified(other['schema'], other['name']) for other in group[1:]))
            self.findings.add('unused_index', C.WARNING, 'index %s on %s has not been used since the statistics were reset%s; '
                              '%s' % (name, ix['table_name'], ' (%s)' % since if since else '', advice),
                              obj='index=%s' % name, value=ix['size'], unit='bytes')
        if not unused:
            self.findings.ok('unused_index', 'every index has been used (or backs a constraint)')
        for group in duplicates:
            keep = qualified(group[0]['schema'], group[0]['name'])
            for ix in group[1:]:
                name = qualified(ix['schema'], ix['name'])
                if ix['backs_constraint'] or ix['is_primary']:
                    drop = '; it backs a constraint too: drop that constraint, not the index, if %s enforces the same' % keep
                else:
                    drop = ' and DROP INDEX CONCURRENTLY %s' % name
                self.findings.add('duplicate_index', C.WARNING, 'index %s duplicates %s (same table, same key definition); '
                                  'keep %s (%s)%s' % (name, keep, keep, keep_reason(group[0], ix), drop),
                                  obj='index=%s' % name, value=ix['size'], unit='bytes')
        if not duplicates:
            self.findings.ok('duplicate_index', 'no duplicate indexes')
        for ix in invalid:
            self.findings.add('invalid_indexes', C.WARNING, 'index %s is invalid (%s), still maintained on every write but '
                              'never used; rebuild or drop it (appcare.maintenance.pg_reindex does)' % (ix['index'], ix['cause']),
                              obj='index=%s' % ix['index'])
        if not invalid:
            self.findings.ok('invalid_indexes', 'no invalid indexes')

    def _index_row(self, ix):
        return {'index': qualified(ix['schema'], ix['name']), 'table': qualified(ix['schema'], ix['table_name']),
                'scans': ix['scans'], 'bytes': ix['size']}

    def section_seq_scans(self):
        rows = []
        for table in self.tables():
            scans = table['seq_scan'] + table['idx_scan']
            if table['relkind'] == 'p' or table['table_bytes'] < self.min_table_bytes or not scans:
                continue
            share = round(100.0 * table['seq_scan'] / scans, 1)
            rows.append({'table': qualified(table['schema'], table['name']), 'seq_scans': table['seq_scan'],
                         'index_scans': table['idx_scan'], 'seq_percent': share, 'rows_read_by_seq': table['seq_tup_read'],
                         'bytes': table['table_bytes']})
        rows.sort(key=lambda r: (-r['rows_read_by_seq'], r['table']))
        self.data['seq_scans'] = rows[:self.top]
        fired = [r for r in rows if C.past_first_limit(self.thresholds['seq_scans'], r['seq_percent'])]
        for row in fired:
            self.findings.judge('seq_scans', row['seq_percent'], '{value}%% of the scans of %s (%s) read the whole table '
                                '(%d sequential, %d index scans, %d rows read sequentially); an index on its filter columns '
                                'may help' % (row['table'], C.human_bytes(row['bytes']), row['seq_scans'], row['index_scans'],
                                              row['rows_read_by_seq']), obj='table=%s' % row['table'])
        if not fired:
            self.findings.judge('seq_scans', max([r['seq_percent'] for r in rows] or [0]),
                                'no table of %s or more is read mostly by sequential scans' % C.human_bytes(self.min_table_bytes))

    def section_sizes(self):
        tables = sorted(self.tables(), key=lambda t: -t['total_bytes'])
        rows = [{'table': qualified(t['schema'], t['name']), 'heap_bytes': t['heap_bytes'],
                 'index_bytes': t['index_bytes'], 'toast_bytes': max(0, t['table_bytes'] - t['heap_bytes']),
                 'total_bytes': t['total_bytes']} for t in tables]
        self.data['sizes'] = {'database_bytes': self.metrics['database_size'], 'tables': rows[:self.top],
                              'table_count': len(rows)}
        self.metrics['table_count'] = len(rows)
        self.metrics['largest_tables'] = dict((r['table'], r['total_bytes']) for r in rows[:10])
        self.findings.add('database_size', C.OK, 'database %s is %s in %d table(s); the largest is %s' % (
            self.params['login_db'], C.human_bytes(self.metrics['database_size']), len(rows),
            ('%s (%s)' % (rows[0]['table'], C.human_bytes(rows[0]['total_bytes']))) if rows else 'none'),
            value=self.metrics['database_size'], unit='bytes')

    def section_bloat(self):
        block = int(self.settings().get('block_size') or 8192)
        candidates = [t for t in self.tables() if t['relkind'] in ('r', 'm') and t['heap_bytes'] >= self.min_table_bytes]
        # splinter's table_bloat reads heap tables of any size past its waste limit, whatever min_table_size says
        excessive = [t for t in self.tables() if t['relkind'] == 'r' and t.get('heap_am')
                     and (t.get('relpages') or 0) * block > EXCESSIVE_BLOAT_BYTES]
        widths = {}
        oids = sorted(set(t['oid'] for t in candidates + excessive))
        if oids:
            for row in self.session.query(COLUMN_WIDTHS_SQL, (oids,)):
                widths[row['oid']] = row
        table_rows = []
        for table in candidates:
            width = widths.get(table['oid'])
            wasted, share = self._table_bloat(table, width, block)
            if wasted is None:
                continue
            table_rows.append({'table': qualified(table['schema'], table['name']), 'bytes': table['heap_bytes'],
                               'wasted_bytes': wasted, 'wasted_percent': share})
        btree = [dict(ix) for ix in self.indexes() if ix['method'] == 'btree' and ix['valid']
                 and ix['size'] >= self.min_table_bytes]
        BL.estimate_indexes(self.session, btree)
        index_rows = [{'index': qualified(ix['schema'], ix['name']), 'bytes': ix['size'],
                       'wasted_bytes': ix['bloat_bytes'], 'wasted_percent': ix['bloat_percent']}
                      for ix in btree if ix.get('bloat_percent') is not None]
        table_rows.sort(key=lambda r: -r['wasted_bytes'])
        index_rows.sort(key=lambda r: -r['wasted_bytes'])
        excessive_rows, unestimated = [], []
        for table in excessive:
            ratio, wasted = splinter_bloat(table, widths.get(table['oid']), block)
            if ratio is None:
                unestimated.append(qualified(table['schema'], table['name']))
            elif ratio > EXCESSIVE_BLOAT_RATIO and wasted > EXCESSIVE_BLOAT_BYTES:
                excessive_rows.append({'table': qualified(table['schema'], table['name']), 'pages': table['relpages'],
                                       'ratio': ratio, 'wasted_bytes': wasted})
        excessive_rows.sort(key=lambda r: -r['wasted_bytes'])
        self.data['bloat'] = {'method': 'estimate from statistics', 'tables': table_rows[:self.top],
                              'indexes': index_rows[:self.top], 'excessive': excessive_rows[:self.top]}
        for row in excessive_rows:
            self.findings.info('table_bloat_excessive', 'table %s holds %s times the pages its statistics call for (%d '
                               'pages), about %s of waste - splinter\'s table_bloat rule (more than %d times, more than %s '
                               'wasted); VACUUM FULL (it locks the table out) or pg_repack reclaims it, and a more eager '
                               'autovacuum for the table keeps it from coming back'
                               % (row['table'], ('%.1f' % row['ratio']), row['pages'], C.human_bytes(row['wasted_bytes']),
                                  EXCESSIVE_BLOAT_RATIO, C.human_bytes(EXCESSIVE_BLOAT_BYTES)),
                               obj='table=%s' % row['table'], value=row['ratio'], unit='ratio')
        if unestimated:
            self.findings.unknown('table_bloat_excessive', 'cannot apply splinter\'s table_bloat rule to %d table(s) '
                                  'of more than %s (%s): they have no column statistics - never analysed, or the login '
                                  'role may not SELECT them (pg_stats shows only those)'
                                  % (len(unestimated), C.human_bytes(EXCESSIVE_BLOAT_BYTES), ', '.join(unestimated[:5])))
        elif not excessive_rows:
            self.findings.ok('table_bloat_excessive', 'no table holds more than %d times the pages its statistics call '
                             'for with more than %s wasted (splinter\'s table_bloat rule)'
                             % (EXCESSIVE_BLOAT_RATIO, C.human_bytes(EXCESSIVE_BLOAT_BYTES)))
        # pg_stats shows a column's statistics (its common values are data) only to a role that may SELECT it: the
        # bloat of a table the login role cannot read cannot be estimated, and must not pass for none.
        hidden = set(t['oid'] for t in self.tables() if not t.get('readable', True))
        estimated = set(r['table'] for r in table_rows)
        unseen = {'table_bloat': [name for name in (qualified(t['schema'], t['name']) for t in candidates
                                                    if t['oid'] in hidden) if name not in estimated],
                  'index_bloat': [qualified(ix['schema'], ix['name']) for ix in btree
                                  if ix['indrelid'] in hidden and ix.get('bloat_percent') is None]}
        for kind, rows in (('table_bloat', table_rows), ('index_bloat', index_rows)):
            spec = self.thresholds[kind]
            fired = [r for r in rows if C.past_first_limit(spec, r['wasted_percent'])]
            key = 'table' if kind == 'table_bloat' else 'index'
            if unseen[kind]:
                self.findings.unknown(kind, 'cannot estimate the bloat of %d %s (%s): pg_stats shows column '
                                      'statistics only to roles that may SELECT the table, and %s may not'
                                      % (len(unseen[kind]), 'table(s)' if key == 'table' else 'index(es)',
                                         ', '.join(unseen[kind][:5]), self.params.get('login_user') or 'the login role'))
            for row in fired:
                self.findings.judge(kind, row['wasted_percent'], 'an estimated {value}%% of %s %s (%s of %s) is wasted space; '
                                    '%s' % (key, row[key], C.human_bytes(row['wasted_bytes']), C.human_bytes(row['bytes']),
                                            'VACUUM FULL or pg_repack reclaims it' if key == 'table'
                                            else 'appcare.maintenance.pg_reindex rebuilds it'),
                                    obj='%s=%s' % (key, row[key]))
            if not fired and not unseen[kind]:
                limit = C.first_limit(spec)
                self.findings.judge(kind, max([r['wasted_percent'] for r in rows] or [0]),
                                    ('no %s of %s or more is more than %s%% bloated (estimate)'
                                     % (key, C.human_bytes(self.min_table_bytes), limit)) if limit is not None
                                    else 'the most bloated %s of %s or more wastes an estimated {value}%% '
                                    '(no threshold set)' % (key, C.human_bytes(self.min_table_bytes)))

    def _table_bloat(self, table, width, block):
        tuples = table['reltuples']
        if width is None or width['unknown'] or width['width'] is None or tuples is None or tuples < 0:
            return None, None
        header = HEAP_TUPLE_HEADER + (int(math.ceil(width['columns'] / 8.0)) if width['has_nulls'] else 0)
        per_tuple = BL.maxalign(header) + BL.maxalign(width['width']) + LINE_POINTER
        fillfactor = int(BL.reloption(table['reloptions'], 'fillfactor', 100))
        usable = (block - HEAP_PAGE_HEADER) * fillfactor / 100.0
        expected = max(1, int(math.ceil(tuples * per_tuple / usable)))
        wasted = max(0, table['heap_bytes'] - expected * block)
        return wasted, round(100.0 * wasted / table['heap_bytes'], 1) if table['heap_bytes'] else 0.0

    def section_vacuum(self):
        settings = self.settings()
        rows = []
        for table in self.tables():
            if table['relkind'] == 'p':
                continue
            enabled = BL.reloption(table['reloptions'], 'autovacuum_enabled', 'true').lower() not in ('false', 'off', '0')
            base = float(BL.reloption(table['reloptions'], 'autovacuum_vacuum_threshold',
                                      settings.get('autovacuum_vacuum_threshold', 50)))
            scale = float(BL.reloption(table['reloptions'], 'autovacuum_vacuum_scale_factor',
                                       settings.get('autovacuum_vacuum_scale_factor', 0.2)))
            threshold = int(base + scale * max(table['reltuples'], 0))
            rows.append({'table': qualified(table['schema'], table['name']), 'dead_tuples': table['dead'],
                         'autovacuum_threshold': threshold, 'autovacuum_enabled': enabled,
                         'last_vacuum_hours': round(table['vacuum_age'] / 3600.0, 1) if table['vacuum_age'] else None,
                         'last_analyze_hours': round(table['analyze_age'] / 3600.0, 1) if table['analyze_age'] else None,
                         'modified_since_analyze': table['modified']})
        rows.sort(key=lambda r: -(r['dead_tuples'] - r['autovacuum_threshold']))
        self.data['vacuum'] = {'autovacuum': settings.get('autovacuum'), 'tables': rows[:self.top]}
        self.metrics['dead_tuples'] = sum(r['dead_tuples'] for r in rows)
        overdue = [r for r in rows if r['dead_tuples'] > r['autovacuum_threshold']]
        disabled = [r for r in rows if not r['autovacuum_enabled']]
        for row in overdue:
            self.findings.add('vacuum_overdue', C.WARNING, '%s has %d dead tuples, past its autovacuum threshold of %d%s; '
                              'check for long transactions, or run appcare.maintenance.pg_vacuum'
                              % (row['table'], row['dead_tuples'], row['autovacuum_threshold'],
                                 ' (autovacuum is disabled for it)' if not row['autovacuum_enabled'] else ''),
                              obj='table=%s' % row['table'], value=row['dead_tuples'], unit='count')
        if not overdue:
            self.findings.ok('vacuum_overdue', 'no table is past its autovacuum threshold')
        for row in disabled:
            self.findings.add('autovacuum_disabled', C.WARNING, 'autovacuum is disabled for %s (autovacuum_enabled = false); '
                              'its dead tuples and statistics depend on manual VACUUM/ANALYZE' % row['table'],
                              obj='table=%s' % row['table'])
        if settings.get('autovacuum') == 'off':
            self.findings.add('autovacuum_disabled', C.CRITICAL, 'autovacuum is off for the whole server', obj='server')
        elif not disabled:
            self.findings.ok('autovacuum_disabled', 'autovacuum is on for every table')

    def section_foreign_keys(self):
        rows = self.session.query(UNINDEXED_FK_SQL, {'exclude': self.exclude.regexes})
        missing = [r for r in rows if not r['indexed']]
        self.data['foreign_keys'] = [{'constraint': r['conname'], 'table': qualified(r['schema'], r['table_name']),
                                      'columns': list(r['columns']), 'references': r['references'],
                                      'table_bytes': r['table_bytes']} for r in missing]
        for row in missing:
            table = qualified(row['schema'], row['table_name'])
            columns = ', '.join(row['columns'])
            self.findings.add('unindexed_foreign_key', C.WARNING, 'foreign key %s on %s (%s) has no index that starts with '
                              'its columns in their order and covers every row (no predicate): deletes and updates in %s '
                              'scan %s; CREATE INDEX CONCURRENTLY ON %s (%s)'
                              % (row['conname'], table, columns, row['references'], table, table, columns),
                              obj='constraint=%s.%s' % (table, row['conname']))
        if not missing:
            self.findings.add('unindexed_foreign_key', C.OK, 'all %d foreign key(s) have a supporting index' % len(rows),
                              value=0, unit='count')

    def section_primary_keys(self):
        rows = self.session.query(NO_PRIMARY_KEY_SQL, {'exclude': self.splinter_exclude.regexes})
        self.data['primary_keys'] = {'without': [{'table': qualified(r['schema'], r['name']), 'bytes': r['bytes']}
                                                 for r in rows]}
        for row in rows:
            table = qualified(row['schema'], row['name'])
            self.findings.info('no_primary_key', 'table %s has no primary key: nothing identifies its rows, so '
                               'updates and deletes cannot be replicated logically (without REPLICA IDENTITY FULL) and '
                               'tools that edit rows by key cannot; add one (ALTER TABLE %s ADD PRIMARY KEY ...)'
                               % (table, table), obj='table=%s' % table, value=row['bytes'], unit='bytes')
        if not rows:
            self.findings.ok('no_primary_key', 'every table has a primary key')

    def section_policies(self):
        previous = self.session.one("SELECT current_setting('search_path') AS path")['path']
        self.session.query("SELECT set_config('search_path', 'pg_catalog', false)")
        try:
            policies = self.session.query(RLS_POLICIES_SQL, {'exclude': self.initplan_exclude.regexes})
        finally:
            self.session.query("SELECT set_config('search_path', %s, false)", (previous,))
        initplan = []
        for policy in policies:
            calls = per_row_calls(policy['using_expr']) + per_row_calls(policy['check_expr'])
            if calls:
                initplan.append({'policy': policy['name'], 'table': qualified(policy['schema'], policy['table_name']),
                                 'command': policy['command'], 'calls': sorted(set(calls))})
        groups = self.session.query(PERMISSIVE_POLICIES_SQL, {'exclude': self.splinter_exclude.regexes})
        self.data['policies'] = {
            'per_row_calls': initplan,
            'multiple_permissive': [{'table': qualified(g['schema'], g['table_name']), 'role': g['role'],
                                     'action': g['action'], 'policies': list(g['policies'])} for g in groups]}
        for row in initplan:
            self.findings.add('auth_rls_initplan', C.WARNING, 'policy %s on %s (%s) calls %s for every row it checks; '
                              'wrap each call in a sub-select - (select %s) - so that PostgreSQL evaluates it once per '
                              'statement' % (row['policy'], row['table'], row['command'], ', '.join(row['calls']),
                                             row['calls'][0].replace('()', '(...)') if row['calls'][0].startswith('current')
                                             else row['calls'][0]),
                              obj='policy=%s.%s' % (row['table'], row['policy']), value=len(row['calls']), unit='count')
        if not initplan:
            self.findings.ok('auth_rls_initplan', 'no policy of the %d on tables with row level security calls '
                             'auth.<function>() or current_setting() once per row' % len(policies))
        for row in self.data['policies']['multiple_permissive']:
            self.findings.add('multiple_permissive_policies', C.WARNING, 'table %s has %d permissive policies for role %s '
                              'and %s (%s): PostgreSQL evaluates every one of them for each row; merge them into one '
                              'policy (their conditions joined by OR)' % (row['table'], len(row['policies']), row['role'],
                                                                          row['action'], ', '.join(row['policies'])),
                              obj='table=%s,role=%s,action=%s' % (row['table'], row['role'], row['action']),
                              value=len(row['policies']), unit='count')
        if not groups:
            self.findings.ok('multiple_permissive_policies', 'no table has more than one permissive policy for one role '
                             'and action')

    def section_cache(self):
        rows = []
        for table in self.tables():
            reads = table['heap_hit'] + table['heap_read']
            if reads < self.params['min_cache_blocks']:
                continue
            rows.append({'table': qualified(table['schema'], table['name']),
                         'hit_percent': round(100.0 * table['heap_hit'] / reads, 2), 'blocks_read': reads})
        rows.sort(key=lambda r: (r['hit_percent'], r['table']))
        self.data['cache'] = rows[:self.top]
        db = self.session.one("SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()")
        total = (db['blks_hit'] or 0) + (db['blks_read'] or 0)
        self.metrics['cache_hit_ratio'] = round(100.0 * db['blks_hit'] / total, 2) if total else None
        fired = [r for r in rows if C.past_first_limit(self.thresholds['table_cache_hit'], r['hit_percent'])]
        for row in fired:
            self.findings.judge('table_cache_hit', row['hit_percent'], '{value}%% of the block reads of %s came from shared '
                                'buffers (%d reads); the table does not fit in memory or is scanned in full'
                                % (row['table'], row['blocks_read']), obj='table=%s' % row['table'])
        if not fired:
            self.findings.judge('table_cache_hit', min([r['hit_percent'] for r in rows] or [100.0]),
                                'every table with %d or more block reads is served at least {value}%% from shared buffers'
                                % self.params['min_cache_blocks'])

    def section_connections(self):
        rows = self.session.query(CONNECTIONS_SQL)
        self.data['connections'] = rows
        self.metrics['connections'] = sum(r['sessions'] for r in rows if r['state'] != 'background')
        limits = self.session.query(ROLE_LIMITS_SQL)
        fired = False
        for row in limits:
            if row['limit'] == 0:
                continue
            share = round(100.0 * row['sessions'] / row['limit'], 1)
            finding = C.judge(self.thresholds, 'role_connections', share, 'role %s uses {value}%% of its connection '
                              'limit (%d of %d)' % (row['role'], row['sessions'], row['limit']), 'role=%s' % row['role'])
            if finding['status'] != C.OK:
                fired = True
                self.findings.append(finding)
        if not fired:
            self.findings.add('role_connections', C.OK, 'no role is near its connection limit (%d role(s) have one)'
                              % len(limits), value=len(limits), unit='count')
