#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pg_log_info
short_description: Review PostgreSQL server logs - error patterns, new errors, lock waits, temp files, crashes
version_added: 0.1.0
description:
  - The weekly error-log review of the maintenance guides, on the host that holds the log. Reads PostgreSQL's
    C(stderr) logs with any C(log_line_prefix), C(csvlog) and C(jsonlog) (PostgreSQL 15+), plain or
    gzip-compressed, one file or the files of a directory that were written to inside the time window.
  - Streams the log; memory is bounded by the number of distinct error patterns (at most 5000 are kept; more are
    counted in RV(patterns_dropped)), not by the size of the log. O(processes) reads a large file in parallel.
  - Groups PANIC, FATAL, ERROR and WARNING reports into patterns - quoted names, parenthesised values, object
    numbers and WAL positions normalised as pgBadger's C(normalize_error) does, then single-quoted literals and
    remaining numbers - with count, first and last seen, SQLSTATE (csvlog/jsonlog, or C(%e) in the prefix),
    databases, users, client addresses and one example line; the top O(top); the hourly error rate.
  - "With O(state_file) the review is incremental (as pgBadger's C(--incremental --last-parsed)): each file is
    read from where the last run stopped. A file whose inode or first bytes changed was rotated and is read from
    its start, as is one shorter than the remembered offset (truncated); a file renamed by rotation is found by its
    inode. The state also remembers every error pattern seen, so later runs report the B(new) ones. A state file
    that is malformed, dated in the future or names impossible offsets is not used: every file is read from the
    start of the window, every pattern counts as new, and C(log_state) says why."
  - "In the same pass: deadlocks, lock waits (C(log_lock_waits)), temporary files (C(log_temp_files)),
    \"checkpoints are occurring too frequently\", autovacuum runs (C(log_autovacuum_min_duration)) with the
    longest, connection failures by cause, failed authentications per client address (the same parser as
    M(appcare.maintenance.pg_audit_info)'s C(failed_logins)), server starts, crashes and immediate shutdowns."
  - Says what the log lacks for the review - a C(log_line_prefix) without time or process, C(log_lock_waits) or
    C(log_temp_files) off, translated messages - and which setting to change (RV(log_settings)).
  - With O(read_settings) the module connects (the C(postgresql) action group's connection options) to read
    C(log_line_prefix), C(log_timezone), the logging settings and, when O(log_path) is not given, the server's log
    directory. A connection that fails is reported in C(log_settings) and the log is still read.
  - Checks (findings); each can be tuned with O(thresholds) and O(severity).
  - "C(log_panic): PANIC reports (critical above 0)."
  - "C(log_fatal): FATAL reports other than connection and authentication failures and terminations by an
    administrator (critical above 0)."
  - "C(log_error_rate): the most ERROR, FATAL and PANIC reports in one hour of the window, errors/h (warning above
    60, critical above 600)."
  - "C(log_new_patterns): error patterns not seen by an earlier run (needs O(state_file); the first run records
    the baseline; warning above 0)."
  - "C(log_deadlocks): deadlocks (warning above 0, critical above 10)."
  - "C(log_lock_waits): waits longer than C(deadlock_timeout) (warning above 10, critical above 100)."
  - "C(log_temp_files): bytes of temporary files written (warning above 1 GiB, critical above 10 GiB)."
  - "C(log_checkpoints): \"checkpoints are occurring too frequently\" (warning above 0)."
  - "C(log_autovacuum): the longest logged autovacuum or autoanalyze run, seconds (warning above 600, critical
    above 3600)."
  - "C(log_auth_failures): failed authentications per client address (warning above 10, critical above 50); one
    finding per address that fires."
  - "C(log_restarts): crashes (a server process terminated by a signal, crash recovery), PANICs and immediate
    shutdowns (critical above 0); clean restarts are advice (V(info))."
  - "C(log_settings): what the log lacks (advice, or a warning when the prefix has no time or process, ERRORs are
    not logged or messages are translated); V(unknown) when the settings could not be read."
  - "C(log_read): a file that could not be read (V(unknown)), lines that match no format, entries without a time
    or dated in the future."
  - "C(log_state): the state file was not used (warning)."
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.connection
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Reads and reports as in a normal run, and does not write O(state_file).
options:
  log_path:
    description:
      - A log file, or a directory of log files (only the files modified inside the window are read, oldest
        first).
      - Omitted, the server's own log directory (C(log_directory), relative to C(data_directory)) when
        C(logging_collector) is on and O(read_settings) is true.
    type: path
  file_pattern:
    description:
      - The names of the files to read in a directory, a shell glob such as C(postgresql-*.log*).
    type: str
    default: '*'
  log_format:
    description:
      - The log's format. V(auto) takes it from the file name (C(.csv), C(.json), optionally C(.gz)) or its first
        line. In a directory that holds the same log in several formats (C(log_destination = 'stderr,csvlog')),
        V(auto) reads only the richest - jsonlog, then csvlog, then stderr - and lists the others in RV(left_out).
    type: str
    choices: [auto, stderr, csvlog, jsonlog]
    default: auto
  log_line_prefix:
    description:
      - The server's C(log_line_prefix) for C(stderr) logs, every escape of PostgreSQL's documentation supported
        (C(%m [%p] %q%u@%d %h) and so on, with padding such as C(%-10u)).
      - Omitted, the server's setting (O(read_settings)); without either, a loose reader finds the time, process
        and client address before the C(LEVEL:) mark of each line. Lines written with another prefix (the setting
        changed) are read by the loose reader too.
    type: str
  log_timezone:
    description:
      - The time zone of timestamps written with an abbreviation other than UTC/GMT (C(CET)). Omitted, the
        server's C(log_timezone), else UTC.
    type: str
  read_settings:
    description:
      - Connect to the server to read its logging settings. Set V(false) to review a copied log without a
        server.
    type: bool
    default: true
  window_hours:
    description:
      - Only entries of the last O(window_hours) hours count.
    type: float
    default: 168
  state_file:
    description:
      - A JSON file that remembers how far each file was read and the error patterns seen (one per target);
        created when missing (the first run records the baseline of patterns). Not written in check mode.
    type: path
  top:
    description:
      - How many patterns RV(top_errors) lists.
    type: int
    default: 10
  processes:
    description:
      - Worker processes that read one large file in parallel (files over 16 MiB of new data are split).
    type: int
    default: 1
  thresholds:
    description:
      - "Per check, C(warning) and C(critical) levels replacing the defaults listed above, for example
        C({log_error_rate: {warning: 10, critical: 100}}). C(null) disables a level."
    type: dict
    default: {}
notes:
  - "pgBadger's documentation lists the settings a complete log review needs (C(log_line_prefix) with time and
    process, C(log_lock_waits), C(log_temp_files = 0), C(log_checkpoints), C(log_autovacuum_min_duration),
    C(lc_messages = 'C')); the module checks the same ones."
seealso:
  - name: PostgreSQL error reporting and logging
    description: log_line_prefix escapes, csvlog and jsonlog columns.
    link: https://www.postgresql.org/docs/current/runtime-config-logging.html
  - name: pgBadger
    description: The PostgreSQL log analyser this review is cross-checked against.
    link: https://pgbadger.darold.net/documentation.html
  - module: appcare.maintenance.pg_audit_info
'''

EXAMPLES = r'''
- name: Review last week's log of a self-hosted server, incrementally
  appcare.maintenance.pg_log_info:
    login_user: monitor
    log_path: /var/log/postgresql
    file_pattern: postgresql-*.log*
    state_file: /var/lib/appcare/log_review/crm-production.json
  register: log_review

- name: A copied csvlog, without a server
  appcare.maintenance.pg_log_info:
    log_path: /srv/incident/postgresql-2026-12-01.csv
    read_settings: false
    window_hours: 720
    top: 25

- name: Quieter error-rate thresholds for a busy server
  appcare.maintenance.pg_log_info:
    log_path: /var/log/postgresql/postgresql-15-main.log
    log_line_prefix: '%m [%p] %q%u@%d '
    thresholds:
      log_error_rate: {warning: 600, critical: 6000}
    severity:
      log_checkpoints: info
'''

RETURN = r'''
log_path:
  description: The file or directory read (O(log_path), or the server's log directory).
  returned: always
  type: str
files:
  description: Each file read - format, size, the byte range read (C(start) from the state file), C(reset)
    (V(rotated), V(truncated) or null), whether it is compressed, and lines read.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/var/log/postgresql/postgresql-15-main.log", "format": "stderr", "size": 1048576,
            "start": 524288, "end": 1048576, "reset": null, "compressed": false, "lines": 4096}]
left_out:
  description: Files of the directory not read, and why (the same log in another format).
  returned: always
  type: list
  elements: dict
window:
  description: The time window (C(start), C(end), C(hours)).
  returned: always
  type: dict
lines:
  description: Lines read.
  returned: always
  type: int
entries:
  description: Log entries inside the window that the review read (errors and the events it looks for).
  returned: always
  type: int
severities:
  description: Reports per level inside the window.
  returned: always
  type: dict
  sample: {"PANIC": 0, "FATAL": 3, "ERROR": 120, "WARNING": 4}
patterns_total:
  description: Distinct error patterns inside the window.
  returned: always
  type: int
patterns_dropped:
  description: Reports not grouped because 5000 patterns were already kept.
  returned: always
  type: int
top_errors:
  description: The O(top) most frequent patterns; C(new) is true for a pattern no earlier run saw (O(state_file)).
  returned: always
  type: list
  elements: dict
  sample: [{"key": "8c1f0e3a9b2d4c5e", "pattern": "duplicate key value violates unique constraint \"...\"",
            "severity": "ERROR", "sqlstate": "23505", "count": 42, "first_seen": "2026-11-28T09:12:03Z",
            "last_seen": "2026-12-04T10:01:00Z", "databases": ["crm"], "users": ["app"], "clients": ["10.0.0.5"],
            "example": "duplicate key value violates unique constraint \"orders_pkey\"",
            "statement": "INSERT INTO orders VALUES (1)", "new": true}]
new_patterns:
  description: The patterns no earlier run saw (at most 50), in the shape of RV(top_errors). Empty without
    O(state_file) and on the first run.
  returned: always
  type: list
  elements: dict
hourly:
  description: ERROR, FATAL and PANIC reports per hour (UTC) that had any.
  returned: always
  type: list
  elements: dict
  sample: [{"hour": "2026-12-04T10:00:00Z", "errors": 17}]
events:
  description: "What the review found besides error patterns: C(deadlocks), C(lock_waits) (count, max_ms),
    C(temp_files) (count, total_bytes, max_bytes), C(checkpoints_too_frequent), C(autovacuum_slow) (count,
    max_seconds, the slowest five), C(connection_failures) by cause, C(auth_failures) per client address
    (address, failures, users, first, last) and C(restarts) (when, kind: start, shutdown, immediate_shutdown,
    crash, crash_recovery, panic)."
  returned: always
  type: dict
log_settings:
  description: The prefix used and C(missing) - each setting the review would need changed (setting, value,
    advice, level).
  returned: always
  type: dict
state_written:
  description: Whether O(state_file) was written.
  returned: when O(state_file) is set and not in check mode
  type: bool
report:
  description: The run report's C(log_review) section (source V(postgresql), finished_at, window, severities,
    top_errors, the number of new patterns, event counts, missing settings) for the dashboard's "Top errors".
  returned: always
  type: dict
checks:
  description: The findings, in the collection's uniform shape.
  returned: always
  type: list
  elements: dict
  sample:
    - name: log_new_patterns
      status: warning
      value: 1
      unit: count
      warning: 0
      critical: null
      object: null
      message: "1 error patterns not seen before: ERROR division by zero (x3) (warning threshold: above 0)"
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: warning
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import logreview as LR
from ansible_collections.appcare.maintenance.plugins.module_utils import pglog as PL
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    Session,
    connection_argument_spec,
    failure_message,
)


def validate(params):
    if params['window_hours'] <= 0:
        raise ConfigurationError('window_hours must be more than 0, got %s' % params['window_hours'])
    if params['top'] < 1:
        raise ConfigurationError('top must be at least 1, got %d' % params['top'])
    if not 1 <= params['processes'] <= 64:
        raise ConfigurationError('processes must be between 1 and 64, got %d' % params['processes'])
    if params['log_line_prefix'] is not None:
        PL.compile_prefix(params['log_line_prefix'])
    if params['log_timezone'] and PL.zone_of(params['log_timezone']) is PL.zone_of(None) \
            and params['log_timezone'] not in ('UTC', 'GMT', 'Etc/UTC'):
        raise ConfigurationError('log_timezone %r is not a time zone this host knows' % params['log_timezone'])
    C.merge_thresholds(LR.DEFAULT_THRESHOLDS, params['thresholds'])
    C.validate_severity(params['severity'])
    if not params['log_path'] and not params['read_settings']:
        raise ConfigurationError('log_path is required when read_settings is false')


def read_settings(params):
    """(settings, error): the server's logging settings, or why they could not be read."""
    try:
        with Session(params, 'appcare.maintenance.pg_log_info') as session:
            rows = session.query(LR.SETTINGS_SQL)
        return dict((row['name'], row['setting']) for row in rows), None
    except HANDLED_ERRORS as exc:
        return {}, failure_message('connecting', exc).split(' failed: ', 1)[-1]


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        log_path=dict(type='path'),
        file_pattern=dict(type='str', default='*'),
        log_format=dict(type='str', default='auto', choices=list(PL.FORMATS)),
        log_line_prefix=dict(type='str'),
        log_timezone=dict(type='str'),
        read_settings=dict(type='bool', default=True),
        window_hours=dict(type='float', default=168),
        state_file=dict(type='path'),
        top=dict(type='int', default=10),
        processes=dict(type='int', default=1),
        thresholds=dict(type='dict', default={}),
        **C.severity_spec()
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        validate(params)
    except (ConfigurationError, PL.LogFormatError) as exc:
        module.fail_json(msg='invalid options: %s' % exc)
    settings, settings_error = read_settings(params) if params['read_settings'] else ({}, None)
    try:
        result = LR.review_logs(params, settings, utcnow(), settings_error, write_state=not module.check_mode)
    except ConfigurationError as exc:
        module.fail_json(msg='invalid options: %s' % exc)
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('reviewing the log', exc))
    C.finish(module, dict(changed=False, **result))


if __name__ == '__main__':
    main()
