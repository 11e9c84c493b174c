#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pg_health_info
short_description: Daily health check of a PostgreSQL database
version_added: 0.1.0
description:
  - Checks one PostgreSQL server and database over a single read-only session and returns uniform
    findings (O(checks)) with the worst status.
  - "Checks and their default thresholds (a larger value is worse unless noted):
    C(database_connection) round-trip latency in ms (warning 250, critical 1000);
    C(connections_used) share of usable connections (max_connections minus reserved) in percent (80, 95);
    C(long_running_queries) longest active query in seconds (60, 300);
    C(idle_in_transaction) longest idle-in-transaction session in seconds (60, 600);
    C(blocked_sessions) longest lock wait of a session blocked by another session, in seconds (10, 60);
    C(cache_hit_ratio) share of block reads served from shared buffers in the database, in percent,
    a smaller value is worse (95, 90);
    C(database_size) share of O(size_quota) in percent (85, 95), informational without a quota;
    C(xid_wraparound) age of the oldest unfrozen transaction ID as a share of the 2^31 limit, in percent (50, 75);
    C(sequence_exhaustion) highest share of a sequence's range used, bounded by the type of the column
    that owns it, in percent (75, 90);
    C(replication_lag) replay lag of the furthest standby (or of this standby) in bytes (64 MiB, 1 GiB),
    critical on a standby that is not streaming from its primary;
    C(replication_slots) WAL retained by the largest inactive slot in bytes (1 GiB, 10 GiB), critical when
    a slot lost WAL;
    C(wal_archiver) critical when WAL archiving is failing (no thresholds);
    C(invalid_indexes) number of invalid indexes not being built right now (warning above 0);
    C(data_checksum_failures) data checksum failures (critical above 0), C(ok) with a note when checksums are off;
    C(slow_queries) highest mean execution time of a statement in pg_stat_statements for the database,
    in ms (warning 2000), C(unknown) when the extension is not installed."
  - Works for a non-superuser role that has C(pg_monitor). A check the role cannot read comes back
    C(unknown) with a message naming the missing privilege.
  - An unreachable server or a failed login fails the task with the host, port, user and cause,
    unless O(fail_on_unreachable=false).
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.connection
  - appcare.maintenance.schemas
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
options:
  checks:
    description:
      - The checks to run. All of them by default.
    type: list
    elements: str
    choices: [database_connection, connections_used, long_running_queries, idle_in_transaction, blocked_sessions,
              cache_hit_ratio, database_size, xid_wraparound, sequence_exhaustion, replication_lag,
              replication_slots, wal_archiver, invalid_indexes, data_checksum_failures, slow_queries]
  thresholds:
    description:
      - "Overrides of the default thresholds, as C({check_name: {warning: N, critical: N}})."
      - Either level may be left out (the default stays) or set to V(null) (that level never fires).
      - Unknown check names and a warning threshold beyond the critical one are rejected before connecting.
      - The earlier names C(connection) (now C(database_connection)) and C(checksum_failures) (now
        C(data_checksum_failures)) are still accepted, with a deprecation warning.
    type: dict
    default: {}
  size_quota:
    description:
      - Size the database may grow to, such as the disk of your plan (V(8GB), V(500MB) or a number of
        bytes). With it, C(database_size) judges the share used; without it, the size is only reported.
    type: str
  fail_on_unreachable:
    description:
      - When V(true), a server that cannot be reached or refuses the login fails the task.
      - When V(false), the module returns a C(critical) C(database_connection) finding instead, so a report can
        show the target as down.
    type: bool
    default: true
notes:
  - O(exclude_schemas) applies to the object-level checks (C(sequence_exhaustion), C(invalid_indexes)).
  - Thresholds are crossed when the value passes them strictly (C(>) for "larger is worse", C(<) for
    "smaller is worse").
  - The status order from best to worst is C(ok), C(unknown), C(warning), C(critical).
seealso:
  - name: PostgreSQL monitoring statistics
    description: The views this module reads.
    link: https://www.postgresql.org/docs/current/monitoring-stats.html
'''

EXAMPLES = r'''
- name: Check the application database with a monitoring role
  appcare.maintenance.pg_health_info:
    login_host: db.internal
    login_user: monitor
    login_password: "{{ vault_monitor_password }}"
    login_db: ims
    size_quota: 8GB
  register: health

- name: Only the connection checks, with stricter limits
  appcare.maintenance.pg_health_info:
    login_host: db.internal
    login_db: ims
    checks: [database_connection, connections_used, blocked_sessions]
    thresholds:
      connections_used: {warning: 70, critical: 90}
      blocked_sessions: {warning: 5}

- name: Report a down server as a critical finding instead of failing
  appcare.maintenance.pg_health_info:
    login_host: db.internal
    fail_on_unreachable: false
  register: health

- name: Set the connection once for every database module of the collection
  module_defaults:
    group/appcare.maintenance.postgresql:
      login_host: db.internal
      login_user: monitor
      login_password: "{{ vault_monitor_password }}"
  block:
    - name: Health check
      appcare.maintenance.pg_health_info:
        login_db: ims
'''

RETURN = r'''
checks:
  description: One finding per check that ran.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Stable id of the check.
      type: str
      sample: connections_used
    status:
      description: V(ok), V(warning), V(critical) or V(unknown).
      type: str
      sample: warning
    value:
      description: The measured figure, or V(null) when it could not be measured.
      type: float
      sample: 83.5
    unit:
      description: Unit of RV(checks[].value) (V(percent), V(seconds), V(ms), V(bytes), V(count)).
      type: str
      sample: percent
    warning:
      description: Warning threshold that applied.
      type: float
      sample: 80
    critical:
      description: Critical threshold that applied.
      type: float
      sample: 95
    object:
      description: What the finding is about (database, session, sequence, index, slot).
      type: str
      sample: server
    message:
      description: What was found, with the threshold that was crossed.
      type: str
      sample: "83.5% of usable connections in use (162 of 194; max_connections 200 minus 6 reserved)"
    sessions:
      description:
        - For C(long_running_queries), C(idle_in_transaction) and C(blocked_sessions) that found sessions, up to 10
          of them, longest first - C(pid), C(user), C(database), C(application_name), C(client_addr) (V(null) for a
          Unix socket), C(seconds), the first 200 characters of C(query), and C(blocked_by) (the blocking pids) for
          blocked ones.
      type: list
      elements: dict
      returned: when such sessions were found
    blockers:
      description:
        - For C(blocked_sessions), the sessions holding the locks - C(pid), C(user), C(database),
          C(application_name), C(client_addr) and C(state) (no query text), so the person on call can tell who
          holds them.
      type: list
      elements: dict
      returned: when sessions are blocked
  sample:
    - name: database_connection
      status: ok
      value: 0.41
      unit: ms
      warning: 250
      critical: 1000
      object: db=ims
      message: "connected in 4 ms; round trip 0.41 ms"
status:
  description: The worst status of RV(checks) (V(ok) < V(unknown) < V(warning) < V(critical)).
  returned: always
  type: str
  sample: ok
server:
  description: Facts about the server.
  returned: when the server could be reached
  type: dict
  contains:
    version:
      description: Server version string.
      type: str
      sample: "18.1"
    version_num:
      description: Server version number.
      type: int
      sample: 180001
    uptime_seconds:
      description: Seconds since the server started.
      type: float
      sample: 86400.5
    in_recovery:
      description: Whether the server is a standby.
      type: bool
      sample: false
    data_checksums:
      description: Whether data checksums are enabled.
      type: bool
      sample: true
    database:
      description: The database the module connected to.
      type: str
      sample: ims
    role:
      description: The role the module logged in as.
      type: str
      sample: monitor
    max_connections:
      description: The server's max_connections.
      type: int
      sample: 100
databases:
  description: Databases that accept connections, with their size (V(null) when the role may not connect)
    and transaction ID age.
  returned: when the server could be reached
  type: list
  elements: dict
  sample: [{name: ims, size_bytes: 9876543, xid_age: 1234}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import (
    ConfigurationError,
    ConnectionFailure,
)
from ansible_collections.appcare.maintenance.plugins.module_utils.health import (
    ALL_CHECKS,
    DEFAULT_THRESHOLDS,
    RENAMED_THRESHOLDS,
    HealthCheck,
)
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    Session,
    connect_kwargs,
    connection_argument_spec,
    failure_message,
)
from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import exclude_schemas_spec


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(exclude_schemas_spec())
    argument_spec.update(
        checks=dict(type='list', elements='str', choices=ALL_CHECKS),
        thresholds=dict(type='dict', default={}),
        size_quota=dict(type='str'),
        fail_on_unreachable=dict(type='bool', default=True),
    )
    argument_spec.update(C.severity_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    try:
        overrides, renamed = C.renamed_thresholds(params['thresholds'], RENAMED_THRESHOLDS)
        thresholds = C.merge_thresholds(DEFAULT_THRESHOLDS, overrides)
        size_quota = C.parse_size(params['size_quota'], 'size_quota', allow_zero=False)
        C.validate_severity(params['severity'])
        connect_kwargs(params, 'validation only')
    except ConfigurationError as exc:
        module.fail_json(msg='invalid options: %s' % exc)
    selected = params['checks'] or ALL_CHECKS
    for notice in renamed:
        module.deprecate(notice, version='1.0.0', collection_name='appcare.maintenance')

    try:
        with Session(params, 'appcare.maintenance.pg_health_info', read_only=True) as session:
            health = HealthCheck(session, thresholds, params['exclude_schemas'], size_quota)
            findings = health.run(selected)
            result = dict(changed=False, checks=findings, status=C.worst_status(findings),
                          server=health.facts(), databases=health.databases())
    except ConnectionFailure as exc:
        if params['fail_on_unreachable']:
            module.fail_json(msg=str(exc))
        spec = thresholds['database_connection']
        down = C.finding('database_connection', C.CRITICAL, str(exc), unit='ms', warning=spec['warning'],
                         critical=spec['critical'], obj='db=%s' % params['login_db'])
        C.finish(module, dict(changed=False, checks=[down]))
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('health check', exc))
    C.finish(module, result)


if __name__ == '__main__':
    main()
