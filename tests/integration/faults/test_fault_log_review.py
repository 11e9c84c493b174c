# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults pg_log_info survives: a state file tampered with, truncated or dated in the future (never hides a
pattern), a log truncated or rotated under its name, a line still being written, log lines dated in the future,
a corrupt compressed log, an unreachable server, a missing log and a prefix PostgreSQL would not accept."""

from __future__ import annotations

import datetime
import gzip
import json
import os

from modrunner import run_module
from pgserver import free_port

PREFIX = '%m [%p] %q%u@%d '


def line(message, minutes_ago=30, pid=1, severity='ERROR'):
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes_ago)
    return '%s UTC [%d] app@crm %s:  %s\n' % (moment.strftime('%Y-%m-%d %H:%M:%S.000'), pid, severity, message)


def review(path, state=None, **args):
    base = {'log_path': str(path), 'read_settings': False, 'log_line_prefix': PREFIX}
    if state:
        base['state_file'] = str(state)
    base.update(args)
    return run_module('pg_log_info', base)


def check(result, name):
    return [c for c in result['checks'] if c['name'] == name]


def test_fault_state_dated_in_the_future_counts_every_pattern_as_new(tmp_path):
    log, state = tmp_path / 'pg.log', tmp_path / 'state.json'
    log.write_text(line('division by zero'))
    assert not review(log, state).failed
    data = json.loads(state.read_text())
    data['updated_at'] = '2099-01-01T00:00:00.000000Z'
    state.write_text(json.dumps(data))
    result = review(log, state)
    assert 'dated in the future' in check(result, 'log_state')[0]['message']
    assert [row['pattern'] for row in result['new_patterns']] == ['division by zero']
    assert check(result, 'log_new_patterns')[0]['status'] == 'warning'
    assert result['files'][0]['start'] == 0   # its offsets were not trusted either


def test_fault_state_truncated_mid_write(tmp_path):
    log, state = tmp_path / 'pg.log', tmp_path / 'state.json'
    log.write_text(line('division by zero'))
    review(log, state)
    state.write_text(state.read_text()[:40])
    result = review(log, state)
    assert not result.failed and 'cannot be read as JSON' in check(result, 'log_state')[0]['message']
    assert result['severities']['ERROR'] == 1 and result['new_patterns']
    # the run wrote a good state again: the next run uses it
    assert check(review(log, state), 'log_state') == []


def test_fault_state_offset_beyond_the_file(tmp_path):
    log, state = tmp_path / 'pg.log', tmp_path / 'state.json'
    log.write_text(line('division by zero'))
    review(log, state)
    data = json.loads(state.read_text())
    entry = data['files'][str(log)]
    entry['offset'] = entry['size'] = 10 ** 9
    state.write_text(json.dumps(data))
    result = review(log, state)
    assert result['files'][0]['reset'] == 'truncated' and result['severities']['ERROR'] == 1


def test_fault_log_truncated_in_place(tmp_path):
    log, state = tmp_path / 'pg.log', tmp_path / 'state.json'
    log.write_text(line('division by zero') * 5)
    review(log, state)
    log.write_text(line('out of memory'))   # copytruncate: same inode, shorter
    result = review(log, state)
    assert result['files'][0]['reset'] == 'truncated'
    assert [row['pattern'] for row in result['new_patterns']] == ['out of memory']


def test_fault_log_rotated_under_its_name(tmp_path):
    log, state = tmp_path / 'pg.log', tmp_path / 'state.json'
    log.write_text(line('division by zero') * 5)
    review(log, state)
    os.rename(str(log), str(tmp_path / 'old.log'))
    log.write_text(line('out of memory') * 7)   # a new, longer file under the old name
    result = review(log, state)
    assert result['files'][0]['reset'] == 'rotated' and result['severities']['ERROR'] == 7


def test_fault_line_still_being_written_is_read_next_time(tmp_path):
    log, state = tmp_path / 'pg.log', tmp_path / 'state.json'
    whole = line('division by zero') + line('relation "x" does not exist')
    log.write_text(whole[:-20])
    first = review(log, state)
    assert first['severities']['ERROR'] == 1 and first['files'][0]['end'] == len(line('division by zero'))
    log.write_text(whole)
    second = review(log, state)
    assert second['severities']['ERROR'] == 1
    assert second['top_errors'][0]['example'] == 'relation "x" does not exist'


def test_fault_log_lines_dated_in_the_future(tmp_path):
    log = tmp_path / 'pg.log'
    log.write_text(line('division by zero') + line('PANIC from the future', minutes_ago=-24 * 60, severity='PANIC'))
    result = review(log)
    assert result['severities']['PANIC'] == 0
    assert any('dated after now' in c['message'] and c['status'] == 'warning' for c in check(result, 'log_read'))


def test_fault_corrupt_compressed_log_is_named_and_the_rest_read(tmp_path):
    (tmp_path / 'postgresql-1.log.gz').write_bytes(b'not gzip at all\n')
    with gzip.open(str(tmp_path / 'postgresql-2.log.gz'), 'wt') as handle:
        handle.write(line('division by zero'))
    (tmp_path / 'postgresql-3.log').write_text(line('out of memory'))
    result = review(tmp_path)
    unknown = [c for c in check(result, 'log_read') if c['status'] == 'unknown']
    assert len(unknown) == 1 and 'postgresql-1.log.gz' in unknown[0]['message']
    assert 'gzip' in unknown[0]['message'].lower()
    assert result['severities']['ERROR'] == 2


def test_fault_unreachable_server_still_reviews_the_log(tmp_path):
    log = tmp_path / 'pg.log'
    log.write_text(line('division by zero'))
    result = run_module('pg_log_info', {'log_path': str(log), 'login_host': '127.0.0.1', 'login_port': free_port(),
                                        'login_user': 'postgres', 'login_password': 'secret-not-shown',
                                        'connect_timeout': 3})
    assert not result.failed
    settings = check(result, 'log_settings')[0]
    assert settings['status'] == 'unknown' and 'refused' in settings['message'].lower()
    assert result['severities']['ERROR'] == 1
    assert 'secret-not-shown' not in json.dumps(result)


def test_fault_missing_log_and_bad_options(tmp_path):
    missing = review(tmp_path / 'nope.log')
    assert missing.failed and missing['msg'] == 'invalid options: log_path %s does not exist' % (tmp_path / 'nope.log')
    bad = review(tmp_path, log_line_prefix='%m %Z ')
    assert bad.failed and 'unknown escape %Z' in bad['msg']
    window = review(tmp_path, window_hours=0)
    assert window.failed and 'window_hours must be more than 0' in window['msg']
    nothing = run_module('pg_log_info', {'read_settings': False})
    assert nothing.failed and 'log_path is required' in nothing['msg']


def test_fault_audit_as_monitor_wrote_permission_errors_into_the_log(spawn_server):
    """The weekly audit, run as a pg_monitor role, used to try pg_authid and pg_hba_file_rules and let them fail:
    each run wrote "permission denied" ERRORs into the server log, which the log review then reported as the
    application's errors. It now asks first (has_table_privilege / has_function_privilege)."""
    server = spawn_server(settings={'logging_collector': 'on', 'log_directory': "'log'",
                                    'log_line_prefix': "'%m [%p] %q%u@%d '", 'lc_messages': "'C'"})
    server.execute("CREATE ROLE auditor LOGIN PASSWORD 'auditor-pw' IN ROLE pg_monitor")
    audit = run_module('pg_audit_info', server.login_args('postgres', user='auditor', password='auditor-pw'))
    assert not audit.failed, audit.get('msg')
    assert [c['status'] for c in audit['checks'] if c['name'] == 'password_hashes'] == ['unknown']
    result = run_module('pg_log_info', server.login_args('postgres'))
    assert not result.failed, result.get('msg')
    assert [row['example'] for row in result['top_errors'] if 'permission denied' in row['pattern']] == []


def test_fault_error_quoting_a_routine_log_line_was_dropped(tmp_path):
    """The fast path that skips routine LOG lines (durations, statements) looked for ' LOG:  duration:' anywhere in
    the first 400 bytes, so an ERROR whose message quoted such text was dropped unread; pgBadger counted it."""
    log = tmp_path / 'pg.log'
    log.write_text(line('relation "x LOG:  duration: 5" does not exist') + line('division by zero'))
    result = review(log)
    assert result['severities']['ERROR'] == 2
    assert sorted(row['pattern'] for row in result['top_errors']) == ['division by zero', 'relation "..." does not exist']
