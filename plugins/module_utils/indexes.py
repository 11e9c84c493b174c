# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Invalid indexes, found the same way by every module (pg_health_info, pg_inspect_info, pg_reindex).

An index is invalid (``pg_index.indisvalid`` false) while ``CREATE INDEX CONCURRENTLY`` or ``REINDEX
CONCURRENTLY`` builds it, and stays invalid when that build fails - then PostgreSQL still maintains it on
every write and never uses it. Only the failed ones are findings: an index whose build is running (its OID
is the ``index_relid`` of a ``pg_stat_progress_create_index`` row) is not, nor is a ``_ccnew``/``_ccold`` copy
on a table a ``REINDEX CONCURRENTLY`` is working on right now (the copy it builds and the original it swaps
out; the progress row names one index at a time). Partitioned indexes are left out: one is invalid until an
index of every partition is attached to it, by design (``CREATE INDEX ON ONLY``), and has no storage to
maintain. Other roles' builds show only to a role with ``pg_read_all_stats`` (``pg_monitor``).
"""

from __future__ import annotations

import re

from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import qualified

# The names REINDEX CONCURRENTLY gives its copies: <index>_ccnew[N] (the new one) and <index>_ccold[N] (the old).
COPY_RE = re.compile(r'_cc(new|old)[0-9]*$')

INVALID_INDEXES_SQL = """
SELECT n.nspname AS schema, c.relname AS name, t.relname AS table_name, i.indexrelid AS oid,
       i.indrelid AS table_oid
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT i.indisvalid AND c.relkind = 'i'
   AND n.nspname !~ ALL(%(exclude)s)
   AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
                    WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
                      AND (p.index_relid = i.indexrelid
                           OR (p.relid = i.indrelid AND p.command = 'REINDEX CONCURRENTLY'
                               AND c.relname ~ %(copy)s)))
 ORDER BY 1, 2
"""


def is_copy_name(name):
    """Whether ``name`` is one REINDEX CONCURRENTLY gives the copies it builds and swaps out."""
    return bool(COPY_RE.search(name))


def invalid_indexes(session, exclude_regexes):
    """The invalid indexes whose build is not running (see the module docstring), outside the excluded schemas
    (``SchemaFilter.regexes``), sorted by schema and name. Each row: ``schema``, ``name``, ``table_name``, ``oid``,
    ``table_oid``, ``index`` and ``table`` (qualified names) and ``cause`` (what most likely left it)."""
    rows = session.query(INVALID_INDEXES_SQL, {'exclude': list(exclude_regexes), 'copy': COPY_RE.pattern})
    for row in rows:
        row['index'] = qualified(row['schema'], row['name'])
        row['table'] = qualified(row['schema'], row['table_name'])
        row['cause'] = ('a copy left by a failed REINDEX CONCURRENTLY' if is_copy_name(row['name'])
                        else 'a failed CREATE INDEX CONCURRENTLY or REINDEX')
    return rows
