#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pgbackrest_info
short_description: Watch pgBackRest - stanza status, backup ages, WAL archiving and the recoverable window
version_added: 0.1.0
description:
  - Reads C(pgbackrest info --output=json) for one stanza and the server's C(pg_stat_archiver), and returns uniform
    findings (RV(checks)) with the worst status, the backups, and the window a point-in-time restore can reach.
  - "Findings (a larger value is worse): C(pgbackrest_stanza) the stanza's status code with pgBackRest's message over
    every repository - C(ok) for code 0, C(critical) for 2 (no valid backups), 3 (missing stanza data), 5 (database
    mismatch across repos) and 99 (other, with pgBackRest's error, such as a wrong repository passphrase), C(warning)
    for 4 (different across repos); a running backup is named in the message;
    C(full_backup_age) hours since the newest full backup ended (warning 192, critical 336);
    C(backup_age) hours since the newest backup of any type ended (warning 26, critical 48);
    C(backup_future_dated) backups that end in the future (a wrong clock; warning) - never counted as fresh;
    C(pgbackrest_backup_errors) backups in which pgBackRest found page checksum errors (warning);
    C(wal_archiver) critical while WAL archiving fails (the check of M(appcare.maintenance.pg_health_info));
    C(archive_age) seconds since the newest WAL segment reached the archive, judged only while WAL waits to be
    archived (warning twice C(archive_timeout), or 600 when it is 0; critical 3600), critical at once while archiving
    fails or when C(archive_mode) is off;
    C(pitr_rpo) the changes in seconds a restore from the repository would lose now - 0 when the repository holds all
    WAL written, else the time since the end of the recoverable window (warning 1800, critical 3600, the guides'
    RPO under one hour), critical when there is no usable backup."
  - The recoverable window runs from the end of the oldest usable backup (a restore cannot stop inside a backup) to
    the time the newest WAL segment in the repository was archived - C(pg_stat_archiver.last_archived_time), when
    the repository's newest segment (C(archive[].max)) is at or past C(last_archived_wal) - else to the end of the
    newest backup.
  - Trusts nothing it reads back - output that is not complete JSON, a backup without integer start and stop times
    or stopping before it started fails the task; a backup or archived segment dated in the future is not fresh.
  - A stanza that does not exist (status code 1, missing stanza path, or no section for it in the configuration)
    fails the task with what to run. A PostgreSQL release newer than the installed pgBackRest supports fails the
    task naming the pgBackRest release that does (pgBackRest 2.45 supports PostgreSQL up to 15, 2.46 16, 2.53.1 17,
    2.55.0 18).
  - Connects to the database (one read-only session) for C(pg_stat_archiver), C(archive_timeout) and the server
    version; a role with C(pg_monitor) is enough.
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.connection
  - appcare.maintenance.pgbackrest
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
options:
  thresholds:
    description:
      - "Overrides of the default thresholds, as C({check_name: {warning: N, critical: N}}), for C(full_backup_age),
        C(backup_age) (hours), C(archive_age) and C(pitr_rpo) (seconds). V(null) disables a level."
      - Unknown names and a warning threshold beyond the critical one are rejected before anything runs.
    type: dict
    default: {}
  timeout:
    default: 300
notes:
  - pgBackRest must run as the account that owns the data directory (it reads the repository and its lock files with
    that account's permissions) - use C(become_user) (or O(os_user)).
  - Status codes and JSON fields are those of C(src/command/info/info.c) in pgBackRest 2.45 to 2.59; the exit codes
    named in failures are those of C(src/build/error/error.yaml) (C(build/error.yaml) in newer releases).
seealso:
  - name: pgBackRest user guide
    description: Configuration, stanza-create, backups, archiving and the info command's output.
    link: https://pgbackrest.org/user-guide.html
  - name: pgBackRest command reference
    description: The info, backup and verify commands and their options.
    link: https://pgbackrest.org/command.html
  - module: appcare.maintenance.pgbackrest_backup
  - module: appcare.maintenance.pg_health_info
'''

EXAMPLES = r'''
- name: Watch pgBackRest on the database host (as the data directory owner)
  appcare.maintenance.pgbackrest_info:
    stanza: main
    login_unix_socket: /var/run/postgresql
    login_user: postgres
  become: true
  become_user: postgres
  register: pitr

- name: An encrypted repository whose passphrase is not in the configuration file, stricter RPO
  appcare.maintenance.pgbackrest_info:
    stanza: main
    config: /etc/pgbackrest/pgbackrest.conf
    cipher_pass: "{{ vault_pgbackrest_cipher_pass }}"
    thresholds:
      pitr_rpo: {warning: 600, critical: 900}
  become: true
  become_user: postgres

- name: Show the recoverable window
  ansible.builtin.debug:
    msg: "restore possible from {{ pitr.window.start }} to {{ pitr.window.end }}"
'''

RETURN = r'''
checks:
  description: One finding per check, in the collection's uniform shape (see M(appcare.maintenance.pg_health_info)).
  returned: success
  type: list
  elements: dict
  sample:
    - name: archive_age
      status: ok
      value: 12.5
      unit: seconds
      warning: 120
      critical: 3600
      object: server
      message: "no WAL waits to be archived (last archived 000000010000000000000004, 12.5 s ago)"
status:
  description: The worst status of RV(checks).
  returned: success
  type: str
  sample: ok
pgbackrest:
  description: The pgBackRest that ran.
  returned: success
  type: dict
  sample: {version: "2.45", executable: /usr/bin/pgbackrest}
stanza:
  description: The stanza's status - C(code) and C(message) as pgBackRest gives them, C(cipher), per repository
    C(key), C(cipher), C(code) and C(message), C(backup_running), and the clusters (C(db)) the stanza has held.
  returned: success
  type: dict
  sample: {name: main, code: 0, message: ok, cipher: none, repos: [{key: 1, cipher: none, code: 0, message: ok}],
           backup_running: false, db: [{id: 1, version: "15", system-id: 7315425337236930467, repo-key: 1}]}
backups:
  description: The usable backups (not dated in the future), oldest first - C(label), C(type), C(started_at),
    C(finished_at), C(seconds), C(size_bytes) (database size), C(delta_bytes), C(repo_size_bytes) and
    C(repo_delta_bytes) (in the repository, compressed), C(repo), C(prior), C(error), C(wal_start), C(wal_stop).
  returned: success
  type: list
  elements: dict
newest:
  description: The newest backup of each type (C(full), C(diff), C(incr)), or V(null).
  returned: success
  type: dict
window:
  description: The recoverable window - C(start), C(end), C(end_source) (V(last archived WAL) or V(newest backup)),
    C(oldest_backup), C(newest_backup), C(wal_min), C(wal_max); V(null) without a usable backup.
  returned: success
  type: dict
  sample: {start: "2026-11-23T02:00:41.000000Z", end: "2026-11-30T09:12:03.000000Z", end_source: last archived WAL,
           oldest_backup: 20261123-020000F, newest_backup: 20261130-020000F_20261130-020000I,
           wal_min: "000000010000000000000002", wal_max: "00000001000000000000003A"}
archiver:
  description: The server's archiving - C(archive_mode), C(archive_command), C(archive_timeout), C(last_archived_wal),
    C(last_archived_time), C(failed_count), C(last_failed_wal), C(last_failed_time), C(current_wal), C(wal_waiting),
    C(failing), C(server_version_num).
  returned: success
  type: dict
report:
  description: What the run report shows (the C(appcare.maintenance.maintenance_report) callback merges it) - the
    C(pitr) section - C(stanza), C(window_start), C(window_end), C(window_end_source), C(newest_backup) (C(label),
    C(type), C(finished_at), C(size_bytes), C(repo_size_bytes)), C(last_archived_wal), C(last_archived_time),
    C(archive_failed_count), C(backup_running) and C(finished_at) (of the newest backup; the report adds its age).
  returned: success
  type: dict
  sample: {pitr: {stanza: main, window_start: "2026-11-23T02:00:41.000000Z", window_end: "2026-11-30T09:12:03.000000Z",
                  window_end_source: last archived WAL, newest_backup: {label: 20261130-020000F_20261130-020000I,
                  type: incr, finished_at: "2026-11-30T02:00:09.000000Z", size_bytes: 22992643,
                  repo_size_bytes: 3057121}, last_archived_wal: "00000001000000000000003A",
                  last_archived_time: "2026-11-30T09:12:03.000000Z", archive_failed_count: 0, backup_running: false,
                  finished_at: "2026-11-30T02:00:09.000000Z"}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import pgbackrest as B
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    connect_kwargs,
    connection_argument_spec,
    failure_message,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(B.pgbackrest_argument_spec(default_timeout=300))
    argument_spec.update(thresholds=dict(type='dict', default={}))
    argument_spec.update(C.severity_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        thresholds = C.merge_thresholds(B.DEFAULT_THRESHOLDS, params['thresholds'])
        B.validate_options(params)
        C.validate_severity(params['severity'])
        connect_kwargs(params, 'validation only')
    except ConfigurationError as exc:
        module.fail_json(msg=failure_message('pgbackrest_info', exc))
    result = dict(changed=False)
    try:
        warnings = B.watch(params, thresholds, result)
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('pgbackrest_info', exc))
    for warning in warnings:
        module.warn(warning)
    C.finish(module, result)


if __name__ == '__main__':
    main()
