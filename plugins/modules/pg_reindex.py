#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pg_reindex
short_description: Rebuild invalid and bloated indexes with REINDEX CONCURRENTLY, without blocking production
version_added: 0.1.0
description:
  - Finds the indexes of one database worth rebuilding and rebuilds them one at a time with
    C(REINDEX INDEX CONCURRENTLY), which lets reads and writes go on while it works.
  - "Candidates, in the order they are handled: leftovers of failed C(REINDEX CONCURRENTLY) runs
    (C(<name>_ccnew[N]) and C(<name>_ccold[N]) indexes that are invalid, or valid exact duplicates of another
    index), which are dropped with C(DROP INDEX CONCURRENTLY); invalid indexes (a failed
    C(CREATE INDEX CONCURRENTLY)) that are not being built right now; the indexes listed in O(indexes); and
    btree indexes of at least O(min_index_size) whose bloat passes O(min_bloat_percent), largest waste first."
  - "Skipped, each with its reason in RV(skipped_indexes): exclusion-constraint indexes (C(REINDEX CONCURRENTLY)
    does not support them), system catalogs, schemas in O(exclude_schemas), partitioned indexes (their
    partitions are rebuilt one by one), tables on which an index is being built, and indexes the login role
    may not rebuild."
  - A role with C(MAINTAIN) (PostgreSQL 17+, C(pg_maintain)) may rebuild but not drop indexes, so leftovers and
    invalid indexes (whose rebuild may fail again and leave a copy) are skipped unless the login role owns the table.
  - After each rebuild the module checks that the index is valid. When a rebuild fails (for example a unique
    index over duplicate rows) it drops the invalid C(_ccnew) index the failure left, reports PostgreSQL's
    message, and goes on with the next index; the original index is left as it was.
  - A rebuild that cannot get its locks within O(lock_timeout) is retried O(lock_retries) times with backoff,
    and reported as C(postponed) after that.
  - "A rebuild that fails after it created its copy (a lock timeout while it waits for a writer transaction
    younger than O(lock_timeout), or an error) leaves that copy: an invalid C(<name>_ccnew) index (or, after the
    swap, C(<name>_ccold)). Its C(DROP INDEX CONCURRENTLY) waits for the same transactions, so a drop that times
    out after O(lock_timeout) is tried again after O(lock_retry_delay) (doubled each time, at most 60 seconds
    between tries) until what is left of O(max_duration) is used up, at most O(operation_timeout) (when both are
    0, O(lock_retries) times). The index is not rebuilt again in that run while its copy is there."
  - "A copy stays in the database only (1) when a transaction holding a lock on the table outlasts that wait, or
    (2) when the login role may not drop it (a C(MAINTAIN)-only role: the table's owner must drop it). The action
    then names it in C(leftovers_left), and its message and the C(invalid_indexes) finding name it and say who
    drops it: the next run, which drops it first, as a leftover of an earlier failed run (in a schema of
    O(exclude_schemas), the next run that lists it in O(indexes)). (3) A run that is stopped or loses its
    connection during the rebuild tries the drop once; what it could not drop is dropped the same way by the
    next run."
  - Bloat is estimated from catalogue statistics by default (see O(bloat_method)).
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.connection
  - appcare.maintenance.maintenance
  - appcare.maintenance.schemas
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Reads the catalogues only and returns the planned RV(actions) with their SQL.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  indexes:
    description:
      - Indexes to rebuild whatever their bloat, as C(name) or C(schema.name) (an unqualified name must be
        unambiguous). A partitioned index stands for all of its partitions' indexes.
      - Listed indexes are rebuilt even in O(exclude_schemas). A name that does not exist fails the task before
        anything is done.
    type: list
    elements: str
    default: []
  min_bloat_percent:
    description:
      - Rebuild a btree index whose bloat (wasted share of its size) is above this percentage.
    type: float
    default: 30
  min_index_size:
    description:
      - Only indexes at least this large are judged by bloat (small indexes are cheap to scan and their
        estimates are noisy). A size such as V(10MB), V(512kB), V(1GB), or a number of bytes.
    type: str
    default: 10MB
  bloat_method:
    description:
      - V(estimate) computes the size a freshly built btree would have from the index's row count and the
        columns' statistics (pg_class, pg_stats) and compares it with the real size. It reads no index page,
        is as fresh as the last ANALYZE, and under-states the bloat of indexes with many duplicate keys
        (btree deduplication), never over-states it. C(pg_stats) shows a column only to roles that may read it;
        for other columns only fixed-width types (integers, timestamps, uuid) can be estimated.
      - V(pgstattuple) measures the leaf density of each btree index of at least O(min_index_size) with
        C(pgstatindex()) from the C(pgstattuple) extension. Exact, but it reads every page of those indexes.
        When the extension is not installed in the database the estimate is used and a warning says so.
    type: str
    choices: [estimate, pgstattuple]
    default: estimate
notes:
  - O(exclude_schemas) applies to the indexes picked automatically (invalid, leftover, bloated) and to the
    C(invalid_indexes) finding; indexes listed in O(indexes) are rebuilt wherever they are.
seealso:
  - module: appcare.maintenance.pg_vacuum
  - module: appcare.maintenance.pg_health_info
  - name: REINDEX
    description: PostgreSQL documentation of REINDEX, including "Rebuilding Indexes Concurrently".
    link: https://www.postgresql.org/docs/current/sql-reindex.html
'''

EXAMPLES = r'''
- name: Monthly index maintenance of the application database
  appcare.maintenance.pg_reindex:
    login_host: db.internal
    login_user: ims_owner
    login_password: "{{ vault_ims_owner_password }}"
    login_db: ims
    indexes:
      - idx_applications_state
    min_bloat_percent: 30
    min_index_size: 10MB
    max_duration: 1800
  register: reindex

- name: What would be rebuilt, and with which SQL
  appcare.maintenance.pg_reindex:
    login_db: ims
  check_mode: true
  register: plan

- name: Exact bloat measurement with pgstattuple, careful locking on a busy server
  appcare.maintenance.pg_reindex:
    login_db: ims
    bloat_method: pgstattuple
    lock_timeout: 2
    lock_retries: 5
    lock_retry_delay: 10
'''

RETURN = r'''
actions:
  description:
    - What was planned and done, one entry per index in the order handled.
    - C(result) is V(planned) (check mode), V(done), V(failed) (PostgreSQL's error is in C(message)) or
      V(postponed) (locks not available after the retries, or the time budget used up).
    - A rebuild also returns C(leftovers_dropped), the copies its failed attempts left that it dropped, and
      C(leftovers_left), those still in the database (C(message) says why, and who drops them).
  returned: always
  type: list
  elements: dict
  sample:
    - index: public.idx_applications_state
      table: public.applications
      reason: bloat
      detail: 62.5% estimated bloat (28.1 MB of 45.0 MB)
      operation: reindex
      sql: REINDEX INDEX CONCURRENTLY "public"."idx_applications_state"
      size_before: 47185920
      size_after: 17694720
      bloat_percent: 62.5
      bloat_bytes: 29491200
      seconds: 4.21
      attempts: 1
      result: done
      message: "rebuilt: 45.0 MB -> 16.9 MB"
      leftovers_dropped: []
      leftovers_left: []
skipped_indexes:
  description:
    - Candidates that were not touched, with C(skip_reason). (Not called C(skipped), which Ansible reads as "the task
      was skipped".)
  returned: always
  type: list
  elements: dict
  sample:
    - index: public.bookings_room_during_excl
      table: public.bookings
      reason: invalid
      skip_reason: "exclusion-constraint index: REINDEX CONCURRENTLY does not support it (a plain REINDEX would
        block writes)"
checks:
  description:
    - C(reindex_failures) (critical above 0), C(reindex_postponed) (warning above 0) and C(invalid_indexes)
      (invalid indexes left after the run, warning above 0), in the collection's uniform shape.
  returned: always
  type: list
  elements: dict
  sample:
    - name: reindex_failures
      status: ok
      value: 0
      unit: count
      warning: null
      critical: 0
      object: null
      message: no index action(s) failed
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: ok
notes:
  description: Remarks about the run, such as a fallback from O(bloat_method=pgstattuple).
  returned: always
  type: list
  elements: str
  sample: []
report:
  description:
    - What this run adds to the run report of the P(appcare.maintenance.maintenance_report#callback) callback (the
      callback's C(report) convention) - section C(actions), appended to the target's maintenance actions.
  returned: always
  type: dict
  contains:
    actions:
      description:
        - RV(actions) with the keys the report keeps - C(index), C(table), C(operation), C(result), C(message),
          C(seconds).
      returned: always
      type: list
      elements: dict
  sample:
    actions:
      - index: public.idx_applications_state
        table: public.applications
        operation: reindex
        result: done
        message: "rebuilt: 45.0 MB -> 16.9 MB"
        seconds: 4.21
'''

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import maintenance as M
from ansible_collections.appcare.maintenance.plugins.module_utils import reindex as R


def main():
    M.module_main(R.Reindexer, dict(
        indexes=dict(type='list', elements='str', default=[]),
        min_bloat_percent=dict(type='float', default=30),
        min_index_size=dict(type='str', default='10MB'),
        bloat_method=dict(type='str', default='estimate', choices=list(R.BLOAT_METHODS)),
    ), R.validate, dict(changed=False, actions=[], skipped_indexes=[], checks=[], status=C.OK, notes=[]))


if __name__ == '__main__':
    main()
