#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pgbackrest_backup
short_description: Run a pgBackRest backup (full, diff or incr) and optionally verify the repository
version_added: 0.1.0
description:
  - Runs C(pgbackrest backup --type=full|diff|incr) for one stanza and reports what pgBackRest did - the new backup's
    label, type, start and end, size, size in the repository and duration - read back from
    C(pgbackrest info --output=json) (a backup that exits 0 but does not show there fails the task).
  - pgBackRest turns an incremental or differential backup without a prior full backup into a full one; the module
    then warns and reports the type taken.
  - With O(verify), runs C(pgbackrest verify) afterwards (the monthly tier) - it checks the checksums of every backup
    file and WAL segment in the repository - and returns the C(pgbackrest_verify) finding, C(critical) when it
    reports problems. C(verify) is a public command from pgBackRest 2.39; older releases fail the task clearly.
  - pgBackRest's exit codes become messages that name the cause and what to do - for example 37 (a stanza with no
    section in the configuration, or an encrypted repository without passphrase), 50 (another backup holds the
    lock), 55 (missing configuration file), 56 (cannot connect to PostgreSQL), 62 (pgBackRest stopped),
    82 (WAL not archived in time - a broken C(archive_command)), 87 (C(archive_mode) off), 95 (wrong passphrase).
  - Before pgBackRest runs, checks that it supports the server's PostgreSQL version (2.45 supports up to 15, 2.46 16,
    2.53.1 17, 2.55.0 18) and that the stanza exists, so those fail with a clear message instead of pgBackRest's
    connection error.
  - Connects to the database (one read-only session) for the server version; pgBackRest itself connects through
    the configuration's C(pg1-socket-path)/C(pg1-port) as C(pg1-user).
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.connection
  - appcare.maintenance.pgbackrest
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Takes no backup and runs no verify; returns the commands it would run in RV(planned) and
      RV(planned_verify).
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  type:
    description:
      - The backup type - V(full), V(diff) (changes since the last full) or V(incr) (changes since the last backup).
        The tiers take an incremental daily and a full weekly.
      - V(none) takes no backup; use it with O(verify) to verify the repository alone.
    type: str
    choices: [full, diff, incr, none]
    default: incr
  verify:
    description:
      - Run C(pgbackrest verify) after the backup (or alone with O(type=none)).
    type: bool
    default: false
  timeout:
    default: 86400
notes:
  - pgBackRest must run as the account that owns the data directory - use C(become_user) (or O(os_user)).
  - Exit codes are those of pgBackRest's C(src/build/error/error.yaml) (C(build/error.yaml) in newer releases).
  - Retention (C(repo1-retention-full) and friends) is pgBackRest's own, set in its configuration; C(backup) expires
    old backups itself.
seealso:
  - name: pgBackRest user guide
    description: Backups, backup types, retention and verify.
    link: https://pgbackrest.org/user-guide.html
  - name: pgBackRest command reference
    description: The backup and verify commands.
    link: https://pgbackrest.org/command.html
  - module: appcare.maintenance.pgbackrest_info
'''

EXAMPLES = r'''
- name: Daily incremental backup
  appcare.maintenance.pgbackrest_backup:
    stanza: main
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres
  register: pgbr

- name: Weekly full backup
  appcare.maintenance.pgbackrest_backup:
    stanza: main
    type: full
  become: true
  become_user: postgres

- name: Monthly - verify the whole repository (no new backup)
  appcare.maintenance.pgbackrest_backup:
    stanza: main
    type: none
    verify: true
  become: true
  become_user: postgres
'''

RETURN = r'''
backup:
  description: The backup this run took, read back from C(pgbackrest info) - C(label), C(type), C(started_at),
    C(finished_at), C(seconds) (pgBackRest's start to stop), C(command_seconds) (wall time of the command),
    C(size_bytes), C(delta_bytes), C(repo_size_bytes), C(repo_delta_bytes), C(repo), C(prior), C(error),
    C(wal_start), C(wal_stop).
  returned: when a backup was taken
  type: dict
  sample: {label: 20261130-020000F_20261130-020000I, type: incr, started_at: "2026-11-30T02:00:00.000000Z",
           finished_at: "2026-11-30T02:00:09.000000Z", seconds: 9, command_seconds: 9.8, size_bytes: 22992643,
           delta_bytes: 8457, repo_size_bytes: 3057121, repo_delta_bytes: 430, repo: 1,
           prior: 20261123-020000F, error: false, wal_start: "000000010000000000000003",
           wal_stop: "000000010000000000000004"}
planned:
  description: In check mode, the backup command that would run.
  returned: check mode, unless O(type=none)
  type: str
  sample: /usr/bin/pgbackrest --stanza=main --type=incr backup
planned_verify:
  description: In check mode with O(verify), the verify command that would run.
  returned: check mode with O(verify)
  type: str
pgbackrest:
  description: The pgBackRest that ran - C(version), C(executable).
  returned: success
  type: dict
  sample: {version: "2.45", executable: /usr/bin/pgbackrest}
checks:
  description: Findings in the collection's uniform shape - C(pgbackrest_verify) when O(verify) ran; empty otherwise.
  returned: success
  type: list
  elements: dict
status:
  description: Worst status of RV(checks).
  returned: success
  type: str
  sample: ok
report:
  description: What the run report shows - the C(pitr) section with C(stanza), C(last_backup) (C(label), C(type),
    C(finished_at), C(seconds), C(size_bytes), C(repo_size_bytes)) and, when verify ran, C(verify) (C(status), C(at)).
  returned: success
  type: dict
  sample: {pitr: {stanza: main, last_backup: {label: 20261130-020000F, type: full,
                  finished_at: "2026-11-30T02:00:41.000000Z", seconds: 41, size_bytes: 22992644,
                  repo_size_bytes: 3057122}}}
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
    make_interruptible,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(B.pgbackrest_argument_spec(default_timeout=86400))
    argument_spec.update(
        type=dict(type='str', default='incr', choices=['full', 'diff', 'incr', 'none']),
        verify=dict(type='bool', default=False),
    )
    argument_spec.update(C.severity_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        B.validate_options(params)
        C.validate_severity(params['severity'])
        connect_kwargs(params, 'validation only')
        if params['type'] == 'none' and not params['verify']:
            raise ConfigurationError('type=none takes no backup; set verify=true to verify the repository, or a type')
    except ConfigurationError as exc:
        module.fail_json(msg=failure_message('pgbackrest backup', exc))
    make_interruptible()
    result = dict(changed=False, checks=[])
    try:
        warnings = B.run_backup(params, module.check_mode, result)
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('pgbackrest backup', exc), **result)
    for warning in warnings:
        module.warn(warning)
    C.finish(module, result)


if __name__ == '__main__':
    main()
