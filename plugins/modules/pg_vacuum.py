#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pg_vacuum
short_description: VACUUM and ANALYZE the tables that need it, without blocking production
version_added: 0.1.0
description:
  - Finds the tables of one database that need maintenance and processes them one at a time.
  - "Tables whose dead tuples are more than O(dead_tuple_percent) of their rows (and at least
    O(min_dead_tuples)) get C(VACUUM (ANALYZE, SKIP_LOCKED)). Tables never analysed, or with more rows
    modified since their last ANALYZE than O(analyze_percent) of their rows (and at least O(min_modified_rows)),
    get C(ANALYZE (SKIP_LOCKED)). The tables in O(tables) get C(VACUUM (ANALYZE, SKIP_LOCKED)) whatever
    their figures."
  - C(SKIP_LOCKED) means a table locked by another session is passed over instead of waited for; the module
    notices it (the table's vacuum or analyze counter did not move), retries with backoff and reports the
    table as C(postponed) when it stays locked.
  - "C(VACUUM FULL) only with O(allow_full=true) and only for the tables in O(tables): it rewrites the table
    and B(holds an ACCESS EXCLUSIVE lock for the whole rewrite, blocking every read and write of the table).
    It waits at most O(lock_timeout) for that lock and is not started while a long transaction uses the table."
  - Figures come from PostgreSQL's cumulative statistics (C(pg_stat_all_tables)), which sessions publish when
    they go idle, at most about a second late.
  - Partitioned parent tables are processed only when listed in O(tables) (VACUUM and ANALYZE of a parent
    cover its partitions); their partitions are judged like any table.
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
    description: Reads the statistics only and returns the planned RV(actions) with their SQL.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  tables:
    description:
      - Tables to vacuum and analyse whatever their figures, as C(name) or C(schema.name) (an unqualified name
        must be unambiguous). They are processed even in O(exclude_schemas). A name that does not exist fails
        the task before anything is done.
    type: list
    elements: str
    default: []
  allow_full:
    description:
      - Run C(VACUUM (FULL, ANALYZE)) on the tables in O(tables) (and only those). Locks each table against
        reads and writes while it is rewritten. Refused without O(tables).
    type: bool
    default: false
  dead_tuple_percent:
    description:
      - Vacuum a table whose dead tuples are more than this share of its rows (live plus dead), in percent.
      - Also the warning threshold of the C(dead_tuples) check.
    type: float
    default: 20
  min_dead_tuples:
    description:
      - A table needs at least this many dead tuples to be vacuumed for them (small tables are left to autovacuum).
    type: int
    default: 1000
  analyze_percent:
    description:
      - Analyse a table when more rows than this share of its rows were inserted, updated or deleted since its
        last ANALYZE, in percent.
    type: float
    default: 10
  min_modified_rows:
    description:
      - A table needs at least this many modified rows since its last ANALYZE to be analysed for them.
    type: int
    default: 1000
notes:
  - O(exclude_schemas) applies to the tables picked automatically and to the C(dead_tuples) finding; tables listed
    in O(tables) are processed wherever they are.
seealso:
  - module: appcare.maintenance.pg_reindex
  - name: Routine vacuuming
    description: PostgreSQL documentation of why and when tables need VACUUM and ANALYZE.
    link: https://www.postgresql.org/docs/current/routine-vacuuming.html
'''

EXAMPLES = r'''
- name: Monthly vacuum/analyse of what needs it
  appcare.maintenance.pg_vacuum:
    login_host: db.internal
    login_user: ims_owner
    login_password: "{{ vault_ims_owner_password }}"
    login_db: ims
    dead_tuple_percent: 20
    max_duration: 1800
  register: vacuum

- name: The seeds' VACUUM ANALYZE of the busiest tables, whatever their figures
  appcare.maintenance.pg_vacuum:
    login_db: ims
    tables:
      - applications
      - public.documents

- name: Reclaim disk space of one table in a maintenance window (blocks the table while it runs)
  appcare.maintenance.pg_vacuum:
    login_db: ims
    tables: [audit_log]
    allow_full: true
    lock_timeout: 2
'''

RETURN = r'''
actions:
  description:
    - What was planned and done, one entry per table in the order handled (listed tables first, then by
      dead tuples).
    - C(reason) is V(requested), V(dead_tuples), V(never_analyzed) or V(stale_statistics); C(operation) is
      V(vacuum), V(analyze) or V(vacuum_full).
    - C(result) is V(planned) (check mode), V(done), V(failed) or V(postponed).
  returned: always
  type: list
  elements: dict
  sample:
    - table: public.applications
      reason: dead_tuples
      detail: 48000 dead tuples, 40.0% of the table
      operation: vacuum
      sql: VACUUM (ANALYZE, SKIP_LOCKED) "public"."applications"
      dead_tuples_before: 48000
      dead_tuples_after: 0
      dead_percent_before: 40.0
      size_before: 9609216
      size_after: 9609216
      seconds: 0.412
      attempts: 1
      result: done
      message: "vacuumed and analysed: dead tuples 48000 -> 0"
skipped_tables:
  description: Tables that needed work but were not touched, with C(skip_reason).
  returned: always
  type: list
  elements: dict
  sample: []
checks:
  description:
    - C(vacuum_failures) (critical above 0), C(vacuum_postponed) (warning above 0), and C(dead_tuples) - the
      highest dead-tuple share of a table after the run (warning above O(dead_tuple_percent)); when it stays
      high after a VACUUM, the message names the oldest open transaction that keeps VACUUM from removing them.
  returned: always
  type: list
  elements: dict
  sample:
    - name: dead_tuples
      status: ok
      value: 0.0
      unit: percent
      warning: 20
      critical: null
      object: db=ims
      message: no table has 1000 or more dead tuples
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: ok
report:
  description:
    - What this run adds to the run report of the P(appcare.maintenance.maintenance_report#callback) callback (the
      callback's C(report) convention) - section C(actions), appended to the target's maintenance actions.
  returned: always
  type: dict
  contains:
    actions:
      description:
        - RV(actions) with the keys the report keeps - C(index) (always V(null) here), C(table), C(operation),
          C(result), C(message), C(seconds).
      returned: always
      type: list
      elements: dict
  sample:
    actions:
      - index: null
        table: public.applications
        operation: vacuum
        result: done
        message: "vacuumed and analysed: dead tuples 48000 -> 0"
        seconds: 0.412
'''

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import maintenance as M
from ansible_collections.appcare.maintenance.plugins.module_utils import vacuum as V


def main():
    M.module_main(V.Vacuumer, dict(
        tables=dict(type='list', elements='str', default=[]),
        allow_full=dict(type='bool', default=False),
        dead_tuple_percent=dict(type='float', default=20),
        min_dead_tuples=dict(type='int', default=1000),
        analyze_percent=dict(type='float', default=10),
        min_modified_rows=dict(type='int', default=1000),
    ), V.validate, dict(changed=False, actions=[], skipped_tables=[], checks=[], status=C.OK))


if __name__ == '__main__':
    main()
