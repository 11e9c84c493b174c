#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pgbackrest_restore_drill
short_description: Prove a pgBackRest point-in-time restore - restore a stanza to a time into a scratch cluster, check it, remove it
version_added: 0.1.0
description:
  - The disaster-recovery drill of a pgBackRest stanza. Restores the stanza into a scratch data directory with
    C(pgbackrest restore --type=time --target=<target_time> --target-action=promote) (or C(--type=default), all WAL
    the archive holds, without O(target_time)), from the newest backup that ended before the target (C(--set)), with
    every tablespace inside the scratch directory (C(--tablespace-map-all)).
  - Starts the restored cluster with C(pg_ctl) of the backup's PostgreSQL major version as the database OS account,
    as a private server - no TCP listener (C(listen_addresses='')), a Unix socket inside the scratch directory,
    local C(trust) only, C(archive_mode=off) so the drill never archives into the repository - and waits until
    recovery has ended (C(pg_is_in_recovery()) false).
  - Proves the point in time with O(present_queries) (each must return a row - a marker committed before the target)
    and O(absent_queries) (each must return none - a marker committed after it), exact row counts (O(expect_rows))
    and smoke queries (O(smoke_queries)).
  - Measures the RTO - from the start of the restore until the cluster accepts connections out of recovery - against
    O(rto_minutes), and the achieved RPO - the time from the target (or, without one, from the start of the drill)
    back to the last transaction the restored cluster replayed (C(pg_last_xact_replay_timestamp())) - against
    O(rpo_minutes).
  - Before anything is restored, compares the free space of O(scratch_dir) with the backup's size (times
    O(free_space_factor), at least O(min_free_bytes)) and fails clearly when it is short.
  - The scratch cluster is always stopped (immediately) and removed - when the drill fails, and when the task is
    stopped (SIGTERM, SIGINT, SIGHUP). A drill killed outright (SIGKILL, a host crash) leaves its directory and maybe
    a running server; the next run stops that server and removes the directory. The module creates a uniquely named
    child of O(scratch_dir) with a marker file that it locks while it runs, and only ever removes children that
    carry the marker and whose lock is free - never anything else in O(scratch_dir).
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.pgbackrest
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Reads the repository, checks the free space and lists the leftovers it would remove; restores
      nothing, removes nothing, and returns the restore command in RV(planned).
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  scratch_dir:
    description:
      - The directory the drill's scratch clusters go in (created, mode 0700 and owned by O(os_user), when missing).
        Each drill creates a child C(pitr-drill-<12 hex digits>) holding the marker file C(.appcare-pitr-drill),
        the data directory, the tablespaces, the socket and the server log, and removes it afterwards.
      - It needs room for the whole restored cluster. The account of O(os_user) must be able to reach it (a
        directory under C(/root) is not).
      - Its path must be short enough for a Unix socket inside the child (at most about 65 characters).
    type: path
    default: /var/tmp/appcare-pitr-drill
  target_time:
    description:
      - The point in time to restore to, ISO 8601 (V(2026-12-04T13:00:00Z), V(2026-12-04 14:00:00+01:00)); a time
        without zone is UTC. Recovery stops after the last transaction committed at or before it and promotes.
      - Not set - the newest point the archive holds (the newest backup and all WAL after it).
      - It must lie after the end of the oldest backup; a target beyond the archived WAL fails the drill with the
        server's message (C(recovery ended before configured recovery target was reached)).
    type: str
  pg_bin_dir:
    description:
      - Directory with C(pg_ctl) and C(postgres) of the backup's PostgreSQL major version.
      - Default - C(/usr/lib/postgresql/<major>/bin) (Debian, Ubuntu) or C(/usr/pgsql-<major>/bin) (PGDG RPMs), with
        the major version read from C(pgbackrest info). A directory of another major version is refused.
    type: path
  port:
    description:
      - Port of the scratch server; it only names its Unix socket (there is no TCP listener). A free port by
        default.
    type: int
  scratch_user:
    description:
      - The database role the checks connect as (through the scratch server's private socket, with C(trust)) - a
        role of the backed-up cluster that can read what the queries read.
    type: str
    default: postgres
  database:
    description:
      - The database of the restored cluster the queries and row counts run in.
    type: str
    default: postgres
  present_queries:
    description:
      - Queries that must each return at least one row in the restored cluster - typically a marker row committed
        before O(target_time). A query string or a dict with C(query) and C(name). Run read-only.
      - A failing one makes C(pitr_markers) critical.
    type: list
    elements: raw
    default: []
  absent_queries:
    description:
      - Queries that must each return no row - typically a marker row committed after O(target_time). A query
        string or a dict with C(query) and C(name). Run read-only.
      - A failing one (or one that errors) makes C(pitr_markers) critical.
    type: list
    elements: raw
    default: []
  expect_rows:
    description:
      - Exact row counts, a dict of table name (C(schema.table), or C(table) in C(public)) to its number of rows,
        checked in O(database); any difference makes C(pitr_row_counts) critical.
    type: dict
    default: {}
  smoke_queries:
    description:
      - Queries run read-only in O(database), as pg_backup_verify's - each C(query) with an optional C(name) and
        either C(expect) (the first column of the first row must equal it) or C(min_rows) (default 1).
      - Any failure makes C(pitr_smoke_queries) critical.
    type: list
    elements: dict
    default: []
  settings:
    description:
      - "Further server settings for the scratch cluster, as C({shared_buffers: 128MB, max_connections: 20}) - for a
        production configuration too large for a second server on the host."
      - The settings the drill owns (port, listen and socket addresses, C(hba_file), archiving, recovery) cannot be
        set.
    type: dict
    default: {}
  rto_minutes:
    description:
      - The recovery time objective. C(pitr_restore_time) is C(warning) above 80 % of it, C(critical) above it.
    type: float
    default: 60
  rpo_minutes:
    description:
      - The recovery point objective. C(pitr_rpo_achieved) is C(warning) above half of it, C(critical) above it.
    type: float
    default: 60
  free_space_factor:
    description:
      - Free space needed in O(scratch_dir), as a multiple of the backup's size (the restored cluster plus the WAL
        recovery fetches).
    type: float
    default: 1.2
  min_free_bytes:
    description:
      - Free space needed in O(scratch_dir) at least, in bytes, whatever the backup's size.
    type: int
    default: 0
  timeout:
    description:
      - Seconds a pgBackRest command may run, and seconds from the start of the restore until recovery must have
        ended; also the statement timeout of the checks.
    default: 3600
notes:
  - The module runs on the database host (or any host with the repository, pgBackRest and the PostgreSQL server
    binaries) as root with O(os_user) set, or as the database OS account (C(become_user)); PostgreSQL refuses to run
    as root.
  - The restored cluster's C(restore_command) is pgBackRest's C(archive-get); the scratch server runs with
    pgBackRest's environment, so O(cipher_pass) and O(options) reach it too.
  - A configuration kept outside the data directory (Debian's C(/etc/postgresql)) is not in the backup; the scratch
    server then runs with PostgreSQL's defaults plus O(settings).
  - The achieved RPO is an upper bound of the changes lost; a source that commits nothing for a while looks worse
    than it is. With C(archive_timeout=60) on a busy source it stays under two minutes.
seealso:
  - name: pgBackRest user guide - point-in-time recovery
    description: Restores to a time, target actions, and the recovery settings pgBackRest writes.
    link: https://pgbackrest.org/user-guide.html#pitr
  - module: appcare.maintenance.pgbackrest_info
  - module: appcare.maintenance.pgbackrest_backup
  - module: appcare.maintenance.pg_backup_verify
'''

EXAMPLES = r'''
- name: Quarterly DR test - restore to the newest point and check the application's tables
  appcare.maintenance.pgbackrest_restore_drill:
    stanza: main
    os_user: postgres
    scratch_dir: /var/tmp/appcare-pitr-drill
    database: appdb
    smoke_queries:
      - name: orders readable
        query: SELECT count(*) FROM public.orders
    rto_minutes: 30
    rpo_minutes: 5
  become: true
  register: drill

- name: Point-in-time drill - a marker committed before the target is there, one after it is not
  appcare.maintenance.pgbackrest_restore_drill:
    stanza: main
    os_user: postgres
    target_time: "{{ dr_marker_time }}"
    database: appdb
    present_queries:
      - name: committed before the target
        query: SELECT 1 FROM dr_marker WHERE label = 'before-{{ dr_run_id }}'
    absent_queries:
      - name: committed after the target
        query: SELECT 1 FROM dr_marker WHERE label = 'after-{{ dr_run_id }}'
    expect_rows:
      public.dr_marker: 2
  become: true
'''

RETURN = r'''
drill:
  description: What the drill did - C(stanza), C(backup) (the label restored), C(backup_type), C(pg_version),
    C(pg_bin_dir), C(port), C(target) (ISO time or V(newest)), C(free_bytes), C(needed_bytes), C(scratch) (the
    child directory), C(restore_seconds), C(start_seconds) (start and recovery), C(rto_seconds), C(timeline),
    C(recovered_to) (the last replayed commit, or the end of the backup), C(recovered_to_source), C(rpo_seconds),
    C(result) (V(ok) or V(failed)), C(server_stopped), C(scratch_removed).
  returned: success (without the scratch and timing keys in check mode)
  type: dict
  sample: {stanza: main, backup: 20261204-020000F, backup_type: full, pg_version: 15,
           pg_bin_dir: /usr/lib/postgresql/15/bin, port: 41234, target: "2026-12-04T13:00:00.000000Z",
           free_bytes: 80123456789, needed_bytes: 27591172, scratch: /var/tmp/appcare-pitr-drill/pitr-drill-0a1b2c3d4e5f,
           restore_seconds: 2.1, start_seconds: 1.4, rto_seconds: 3.5, timeline: 2,
           recovered_to: "2026-12-04T12:59:58.120000Z", recovered_to_source: the last transaction replayed,
           rpo_seconds: 1.9, result: ok, server_stopped: true, scratch_removed: true}
cleaned:
  description: Leftovers of killed drills removed before this one (in check mode - that would be removed), each
    C(path), C(stanza), C(started_at), C(server_running) (a server of it was still running and was stopped).
  returned: success
  type: list
  elements: dict
busy:
  description: Scratch children of drills running now (their lock is held); left alone.
  returned: success
  type: list
  elements: str
planned:
  description: In check mode, the restore command that would run.
  returned: check mode
  type: str
  sample: /usr/bin/pgbackrest --stanza=main --pg1-path=<scratch>/data --set=20261204-020000F --type=default restore
mismatches:
  description: With O(expect_rows), the tables whose count differs, each with C(expected), C(restored) and, when the
    count failed, C(error).
  returned: when O(expect_rows) was checked
  type: dict
pgbackrest:
  description: The pgBackRest that ran - C(version), C(executable).
  returned: success
  type: dict
checks:
  description:
    - Findings in the collection's uniform shape.
    - C(pitr_drill) - the restore, start and end of recovery (C(critical) with the cause - pgBackRest's error or the
      server log - when any failed); C(pitr_restore_time) - RTO in minutes against O(rto_minutes);
      C(pitr_rpo_achieved) - seconds against O(rpo_minutes); C(pitr_markers) (with O(present_queries) or
      O(absent_queries), C(results) per query), C(pitr_row_counts) (with O(expect_rows)), C(pitr_smoke_queries)
      (with O(smoke_queries)).
  returned: success
  type: list
  elements: dict
status:
  description: Worst status of RV(checks).
  returned: success
  type: str
  sample: ok
report:
  description: What the run report shows - the C(pitr_drill) section with C(stanza), C(finished_at), C(result),
    C(backup), C(target), C(recovered_to), C(rto_seconds), C(rpo_seconds).
  returned: when a drill ran (not in check mode)
  type: dict
  sample: {pitr_drill: {stanza: main, finished_at: "2026-12-04T13:00:09.000000Z", result: ok,
                        backup: 20261204-020000F, target: newest, recovered_to: "2026-12-04T12:59:58.120000Z",
                        rto_seconds: 3.5, rpo_seconds: 1.9}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import pgbackrest as B
from ansible_collections.appcare.maintenance.plugins.module_utils import pitrdrill as D
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    failure_message,
    make_interruptible,
    require_psycopg2,
)


def main():
    argument_spec = B.pgbackrest_argument_spec(default_timeout=3600)
    argument_spec.update(D.drill_argument_spec())
    argument_spec.update(C.severity_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        D.validate(params)
        C.validate_severity(params['severity'])
    except ConfigurationError as exc:
        module.fail_json(msg=failure_message('pgbackrest restore drill', exc))
    make_interruptible()
    D.hold_signals_as_exit()
    result = dict(changed=False, checks=[], cleaned=[], busy=[])
    try:
        require_psycopg2()
        warnings = D.Drill(params, result).run(module.check_mode)
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('pgbackrest restore drill', exc), **result)
    for warning in warnings:
        module.warn(warning)
    C.finish(module, result)


if __name__ == '__main__':
    main()
