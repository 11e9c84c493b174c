# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The slowest statements of the database from pg_stat_statements, read the same way by pg_health_info and
pg_inspect_info.

The column names follow the extension's version, not the server's: 1.8 (PostgreSQL 13) renamed
``total_time``/``mean_time``/``max_time`` to ``total_exec_time``/``mean_exec_time``/``max_exec_time``, and
1.9 added the ``pg_stat_statements_info`` view with the time of the last reset. The extension's schema and
columns enter the SQL as identifiers.
"""

from __future__ import annotations

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by postgres.require_psycopg2()
    sql = None

LOCATE_SQL = """
SELECT n.nspname AS schema,
       EXISTS (SELECT 1 FROM pg_class v JOIN pg_attribute a ON a.attrelid = v.oid
                WHERE v.relname = 'pg_stat_statements' AND v.relnamespace = n.oid
                  AND a.attname = 'mean_exec_time') AS exec_columns,
       EXISTS (SELECT 1 FROM pg_class v WHERE v.relname = 'pg_stat_statements_info'
                AND v.relnamespace = n.oid) AS has_info
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pg_stat_statements'
"""

# The module's own reads of pg_stat_statements and the collection's sessions are not the application's work.
TOP_SQL = """
SELECT s.queryid::text AS queryid, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 500) AS query,
       r.rolname AS role, s.calls, s.rows,
       round({total}::numeric, 2)::float AS total_ms, round({mean}::numeric, 2)::float AS mean_ms,
       round({max}::numeric, 2)::float AS max_ms,
       CASE WHEN s.shared_blks_hit + s.shared_blks_read > 0
            THEN round(100.0 * s.shared_blks_hit / (s.shared_blks_hit + s.shared_blks_read), 1)::float END
         AS hit_percent
  FROM {schema}.pg_stat_statements s LEFT JOIN pg_roles r ON r.oid = s.userid
 WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.calls > 0
   AND s.query !~* 'pg_stat_statements|appcare.maintenance'
 ORDER BY {order} DESC
 LIMIT %s
"""

ORDERS = ('mean', 'total')


def locate(session):
    """``{'schema', 'exec_columns', 'has_info'}`` of the extension in this database, or None when it is not
    installed."""
    return session.one(LOCATE_SQL)


def _column(ext, name):
    return sql.SQL('s.{}').format(sql.Identifier('%s_exec_time' % name if ext['exec_columns'] else '%s_time' % name))


def top(session, ext, order, limit):
    """The ``limit`` statements of this database with the highest ``order`` (``mean`` or ``total``) execution
    time: ``queryid``, ``query`` (whitespace folded, 500 characters), ``role``, ``calls``, ``rows``, ``total_ms``,
    ``mean_ms``, ``max_ms``, ``hit_percent`` (share of shared-buffer hits)."""
    if order not in ORDERS:
        raise ValueError('order must be one of %s' % ', '.join(ORDERS))
    query = sql.SQL(TOP_SQL).format(schema=sql.Identifier(ext['schema']), total=_column(ext, 'total'),
                                    mean=_column(ext, 'mean'), max=_column(ext, 'max'), order=_column(ext, order))
    return session.query(query, (limit,))


def stats_reset(session, ext):
    """When pg_stat_statements was last reset (ISO 8601), or None when unknown (extension before 1.9)."""
    if not ext['has_info']:
        return None
    row = session.one(sql.SQL('SELECT stats_reset FROM {}.pg_stat_statements_info').format(sql.Identifier(ext['schema'])))
    return row['stats_reset'].isoformat() if row and row['stats_reset'] else None
