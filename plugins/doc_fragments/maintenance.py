# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The session safety options of pg_reindex and pg_vacuum (plugins/module_utils/maintenance.py).
    DOCUMENTATION = r'''
options:
  lock_timeout:
    description:
      - Seconds a maintenance statement may wait for a lock (or for a transaction it must wait for) before it
        gives up; set as C(lock_timeout) on the maintenance session only. Production queries queued behind a
        waiting maintenance statement wait at most this long.
      - Before each attempt, transactions open longer than this that hold a lock on the table (or a snapshot
        the statement would wait for) count as a failed attempt, so nothing is started that would wait on them.
    type: float
    default: 5
  lock_retries:
    description:
      - How many times an attempt that could not get its locks is retried, after O(lock_retry_delay) seconds,
        doubled after every attempt. After the last one the object is reported as C(postponed).
    type: int
    default: 3
  lock_retry_delay:
    description:
      - Seconds to wait before the first retry; the wait doubles after every attempt.
    type: float
    default: 5
  operation_timeout:
    description:
      - C(statement_timeout) in seconds of each maintenance statement (REINDEX, DROP INDEX, VACUUM, ANALYZE);
        0 for no limit. O(statement_timeout) applies to the catalogue reads.
    type: int
    default: 3600
  max_duration:
    description:
      - Time budget of the run in seconds; 0 for no limit. Once it is used up nothing new is started (a
        running statement finishes), and what was not started is reported as C(postponed).
    type: int
    default: 3600
  parallel_workers:
    description:
      - C(max_parallel_maintenance_workers) of the maintenance session. The default 0 builds indexes and vacuums
        with one process, so the work does not take extra cores from the application; raise it in a maintenance
        window to finish sooner.
    type: int
    default: 0
notes:
  - One run per database at a time. A session advisory lock taken at the start makes a second concurrent run
    of the same module against the same database fail with the holder's pid and application name.
  - Check mode reads the catalogues only (no advisory lock, no maintenance statement) and returns the plan
    with the SQL each action would run.
  - The login role must own the tables (on PostgreSQL 17 and later, C(MAINTAIN) on them or membership of
    C(pg_maintain) is enough); objects it may not maintain are reported in C(skipped_indexes) or C(skipped_tables). Membership of
    C(pg_monitor) lets the module see other sessions' transactions (without it long transactions are noticed
    only through O(lock_timeout)).
'''
