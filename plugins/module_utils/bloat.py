# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bloat of btree indexes: an estimate from catalogue statistics, or a measurement with pgstattuple.

The estimate needs no extension and reads no index page: from the index's row count (pg_class.reltuples)
and the average width and null share of each indexed column (pg_stats) it computes how many pages a
freshly built index would need at its fillfactor, and compares that with the index's real size. Like
every statistics-based estimate it is only as fresh as the last VACUUM/ANALYZE, and it ignores btree
deduplication (PostgreSQL 13+), so it under-states the bloat of indexes with many duplicate keys rather
than over-stating it.
"""

from __future__ import annotations

import math

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by postgres.require_psycopg2()
    sql = None

PAGE_HEADER = 24       # PageHeaderData
BTREE_SPECIAL = 16     # BTPageOpaqueData
INDEX_TUPLE_HEADER = 8  # IndexTupleData
LINE_POINTER = 4       # ItemIdData
NULL_BITMAP = 4        # IndexAttributeBitMapData (INDEX_MAX_KEYS bits)
MAXALIGN = 8
DEFAULT_BTREE_FILLFACTOR = 90

# One row per column stored in the leaf tuples of each btree index (key and INCLUDE columns), with the
# statistics of the table column, or of the index expression (ANALYZE stores those under the index).
COLUMN_STATS_SQL = """
SELECT c.oid, c.pos, coalesce(s.avg_width, CASE WHEN c.attlen > 0 THEN c.attlen END) AS avg_width,
       coalesce(s.null_frac, 0)::float AS null_frac
FROM (
  SELECT i.indexrelid AS oid, k.pos, ia.attlen, n.nspname AS schema,
         -- a plain column's statistics are the table's; an expression's are stored under the index
         CASE WHEN k.attnum > 0 THEN t.relname ELSE ic.relname END AS stats_table,
         CASE WHEN k.attnum > 0 THEN ta.attname ELSE ia.attname END AS stats_column
  FROM pg_index i
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, pos)
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = ic.relnamespace
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_attribute ia ON ia.attrelid = i.indexrelid AND ia.attnum = k.pos
  LEFT JOIN pg_attribute ta ON ta.attrelid = i.indrelid AND ta.attnum = k.attnum AND k.attnum > 0
  WHERE i.indexrelid = ANY(%s)
) c
LEFT JOIN pg_stats s ON s.schemaname = c.schema AND s.tablename = c.stats_table AND s.attname = c.stats_column
     AND NOT s.inherited
ORDER BY 1, 2
"""


def maxalign(value):
    return int(math.ceil(value / float(MAXALIGN)) * MAXALIGN)


def reloption(options, key, default):
    """The value of storage parameter ``key`` in ``pg_class.reloptions`` (``['fillfactor=70', ...]``), as text."""
    for option in options or []:
        name, _sep, value = option.partition('=')
        if name == key:
            return value
    return default


def fillfactor_of(reloptions, default=DEFAULT_BTREE_FILLFACTOR):
    try:
        return int(reloption(reloptions, 'fillfactor', default))
    except ValueError:
        return default


def expected_btree_pages(tuples, columns, block_size, fillfactor):
    """Pages a freshly built btree needs for ``tuples`` rows whose leaf tuples hold ``columns`` (a list of
    ``(avg_width, null_frac)``); None when a width is unknown."""
    if tuples is None or tuples < 0 or not columns or any(width is None for width, _nf in columns):
        return None
    data = sum(width * (1.0 - (null_frac or 0.0)) for width, null_frac in columns)
    header = INDEX_TUPLE_HEADER + (NULL_BITMAP if any(nf for _w, nf in columns) else 0)
    per_tuple = maxalign(header) + maxalign(data) + LINE_POINTER
    usable = (block_size - PAGE_HEADER - BTREE_SPECIAL) * fillfactor / 100.0
    leaf = int(math.ceil(tuples * per_tuple / usable)) if tuples else 1
    # Inner pages hold one downlink per child page; a fresh index has about leaf / fan-out of them.
    fanout = max(2, int((block_size - PAGE_HEADER - BTREE_SPECIAL) / per_tuple))
    inner, level = 0, leaf
    while level > 1:
        level = int(math.ceil(level / float(fanout)))
        inner += level
    return leaf + inner + 1  # + the metapage


def estimate(size_bytes, tuples, columns, block_size, fillfactor):
    """``(bloat_bytes, bloat_percent)`` of an index, or ``(None, None)`` when it cannot be estimated."""
    expected = expected_btree_pages(tuples, columns, block_size, fillfactor)
    if expected is None or not size_bytes:
        return None, None
    wasted = max(0, size_bytes - expected * block_size)
    return wasted, round(100.0 * wasted / size_bytes, 1)


def estimate_indexes(session, indexes):
    """Fill ``bloat_bytes``, ``bloat_percent`` and ``bloat_method`` of btree index dicts (keys ``oid``,
    ``size``, ``reltuples``, ``table_reltuples``, ``reloptions``) from statistics."""
    btree = [ix for ix in indexes if ix['method'] == 'btree']
    if not btree:
        return
    block_size = int(session.one("SELECT current_setting('block_size') AS b")['b'])
    columns = {}
    for row in session.query(COLUMN_STATS_SQL, ([ix['oid'] for ix in btree],)):
        columns.setdefault(row['oid'], []).append((row['avg_width'], row['null_frac']))
    for ix in btree:
        tuples = ix['reltuples'] if ix['reltuples'] is not None and ix['reltuples'] >= 0 else ix['table_reltuples']
        wasted, percent = estimate(ix['size'], tuples, columns.get(ix['oid']), block_size,
                                   fillfactor_of(ix['reloptions']))
        ix.update(bloat_bytes=wasted, bloat_percent=percent, bloat_method='estimate')


def pgstattuple_schema(session):
    """Schema of the pgstattuple extension in this database, or None when it is not installed."""
    row = session.one("SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                      "WHERE e.extname = 'pgstattuple'")
    return row['schema'] if row else None


def measure_indexes(session, indexes, schema):
    """Fill the bloat of btree index dicts with pgstattuple's pgstatindex() (reads every page):
    the share of leaf space not used, relative to the fillfactor."""
    query = sql.SQL('SELECT avg_leaf_density, leaf_pages FROM {}.pgstatindex(%s::regclass)').format(sql.Identifier(schema))
    for ix in indexes:
        if ix['method'] != 'btree':
            continue
        row = session.one(query, (ix['oid'],))
        density = row['avg_leaf_density']
        if density is None or math.isnan(float(density)):  # NaN for an empty index
            ix.update(bloat_bytes=0, bloat_percent=0.0, bloat_method='pgstattuple')
            continue
        fillfactor = fillfactor_of(ix['reloptions'])
        share = max(0.0, 1.0 - float(density) / fillfactor)
        ix.update(bloat_percent=round(100.0 * share, 1), bloat_bytes=int(ix['size'] * share),
                  bloat_method='pgstattuple')
