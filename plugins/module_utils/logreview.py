# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_log_info's run: which files, from where (the incremental state), in how many processes, and the findings.

The state file remembers, per log file, its device and inode, how far it was read and a digest of its first bytes
(as pgBadger's incremental mode remembers its last parsed line): the next run reads only what was appended. A file
whose inode or first bytes changed was rotated (or replaced) and is read from its start; a file shorter than the
offset was truncated and is read from its start. A file renamed by rotation (``postgresql.log`` to
``postgresql.log.1``) is found by its inode. The state also holds the error patterns seen before, so a run can say
which patterns are new. Nothing read from the state may hide a finding: a state file that is malformed, too large,
dated in the future or names offsets that cannot be is discarded (every file read from the start of the window,
every pattern counted as new) and the run says so.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import multiprocessing
import os
import re

from ansible_collections.appcare.maintenance.plugins.module_utils import authlog as AL
from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import pglog as PL
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, parse_iso
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.files import write_json_atomic

STATE_VERSION = 1
MAX_STATE_BYTES = 8 * 1024 * 1024
MAX_KNOWN_PATTERNS = 10000
HEAD_BYTES = 256
CLOCK_SKEW = datetime.timedelta(minutes=5)
CHUNK_MIN_BYTES = 8 * 1024 * 1024   # below this a file is read by one process
KEY = re.compile(r'^[0-9a-f]{16}$')
GIB = 1024 ** 3

DEFAULT_THRESHOLDS = {
    'log_panic': {'warning': None, 'critical': 0, 'direction': C.ABOVE, 'unit': 'count'},
    'log_fatal': {'warning': None, 'critical': 0, 'direction': C.ABOVE, 'unit': 'count'},
    'log_error_rate': {'warning': 60, 'critical': 600, 'direction': C.ABOVE, 'unit': 'errors/h'},
    'log_new_patterns': {'warning': 0, 'critical': None, 'direction': C.ABOVE, 'unit': 'count'},
    'log_deadlocks': {'warning': 0, 'critical': 10, 'direction': C.ABOVE, 'unit': 'count'},
    'log_lock_waits': {'warning': 10, 'critical': 100, 'direction': C.ABOVE, 'unit': 'count'},
    'log_temp_files': {'warning': GIB, 'critical': 10 * GIB, 'direction': C.ABOVE, 'unit': 'bytes'},
    'log_checkpoints': {'warning': 0, 'critical': None, 'direction': C.ABOVE, 'unit': 'count'},
    'log_autovacuum': {'warning': 600, 'critical': 3600, 'direction': C.ABOVE, 'unit': 'seconds'},
    'log_auth_failures': {'warning': 10, 'critical': 50, 'direction': C.ABOVE, 'unit': 'count'},
    'log_restarts': {'warning': None, 'critical': 0, 'direction': C.ABOVE, 'unit': 'count'},
}
CHECKS = sorted(DEFAULT_THRESHOLDS) + ['log_read', 'log_settings', 'log_state']
CRASH_KINDS = ('crash', 'crash_recovery', 'immediate_shutdown', 'panic')

# the server settings the review reads, and what each should be for the review to see everything
SETTINGS = ('log_line_prefix', 'log_destination', 'logging_collector', 'log_directory', 'data_directory',
            'log_timezone', 'log_lock_waits', 'log_temp_files', 'log_checkpoints', 'log_autovacuum_min_duration',
            'log_connections', 'log_min_messages', 'log_min_error_statement', 'lc_messages')
SETTINGS_SQL = "SELECT name, setting FROM pg_settings WHERE name IN (%s)" % ', '.join("'%s'" % s for s in SETTINGS)
MESSAGE_LEVELS = ('debug5', 'debug4', 'debug3', 'debug2', 'debug1', 'info', 'notice', 'warning', 'error', 'log',
                  'fatal', 'panic')


# -- state --------------------------------------------------------------------------------------------------
def empty_state():
    return {'version': STATE_VERSION, 'files': {}, 'patterns': {}}


def _valid_file_entry(entry):
    ints = ('dev', 'ino', 'offset', 'size')
    return (isinstance(entry, dict) and all(isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool)
                                            and entry[k] >= 0 for k in ints)
            and entry['offset'] <= entry['size'] and isinstance(entry.get('head'), str)
            and re.match(r'^[0-9a-f]{64}$', entry['head']) is not None)


def load_state(path, now):
    """(state, problem): the validated state, or an empty one and why the file was not used (None when there
    was no file: the first run)."""
    if not path or not os.path.exists(path):
        return empty_state(), None
    try:
        if os.path.getsize(path) > MAX_STATE_BYTES:
            return empty_state(), 'it is larger than %d bytes' % MAX_STATE_BYTES
        with open(path, 'r', encoding='utf-8') as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        return empty_state(), 'it cannot be read as JSON (%s)' % exc
    if not isinstance(data, dict) or data.get('version') != STATE_VERSION:
        return empty_state(), 'it is not a version %d state file' % STATE_VERSION
    try:
        updated = parse_iso(data.get('updated_at'))
    except (TypeError, ValueError):
        return empty_state(), 'its updated_at is missing or not a time'
    if updated > now + CLOCK_SKEW:
        return empty_state(), 'it is dated in the future (%s)' % data['updated_at']
    files, patterns = data.get('files'), data.get('patterns')
    if not isinstance(files, dict) or not all(isinstance(k, str) and _valid_file_entry(v) for k, v in files.items()):
        return empty_state(), 'its file offsets are malformed'
    if not isinstance(patterns, dict) or not all(KEY.match(str(k)) and isinstance(v, dict)
                                                 for k, v in patterns.items()):
        return empty_state(), 'its known patterns are malformed'
    for item in patterns.values():
        try:
            if parse_iso(item.get('last_run')) > now + CLOCK_SKEW:
                return empty_state(), 'a known pattern is dated in the future (%s)' % item.get('last_run')
        except (TypeError, ValueError):
            return empty_state(), 'a known pattern has no valid last_run'
    return {'version': STATE_VERSION, 'files': files, 'patterns': patterns, 'updated_at': data['updated_at']}, None


def head_digest(path, length):
    with PL.open_log(path) as handle:
        return hashlib.sha256(handle.read(min(length, HEAD_BYTES))).hexdigest()


def resume_offset(path, stat, state):
    """(offset, reset) for a plain file: where to start, and 'rotated'/'truncated'/None."""
    entry = state['files'].get(path)
    if entry is None or (entry['dev'], entry['ino']) != (stat.st_dev, stat.st_ino):
        moved = next((e for e in state['files'].values() if (e['dev'], e['ino']) == (stat.st_dev, stat.st_ino)), None)
        if moved is None:
            return 0, 'rotated' if entry is not None else None
        entry = moved
    if stat.st_size < entry['offset']:
        return 0, 'truncated'
    if entry['offset'] and head_digest(path, entry['offset']) != entry['head']:
        return 0, 'rotated'
    return entry['offset'], None


# -- reading ------------------------------------------------------------------------------------------------
def _new_review(since, until, known, zone_name):
    failed = AL.FailedLogins(since, zone_name)
    return PL.Review(since, until, known, failed)


def _seek_line(handle, start):
    """Position ``handle`` at the first line that starts at or after ``start``; returns that offset."""
    if start == 0:
        handle.seek(0)
        return 0
    handle.seek(start - 1)
    skipped = handle.readline()
    return start - 1 + len(skipped)


def read_range(job):
    """Review one byte range of one file (a worker of ``processes``; also the one-process path)."""
    path, fmt, prefix, zone_name, since, until, known, start, end = job
    zone = PL.zone_of(zone_name)
    review = _new_review(since, until, known, zone_name)
    reader = PL.Reader(fmt, prefix if fmt == 'stderr' else None, zone)
    with PL.open_log(path) as handle:
        begin = _seek_line(handle, start) if not path.endswith('.gz') else 0
        for entry in reader.read(handle, begin, end):
            review.feed(entry)
        stats = {'lines': reader.lines, 'end': max(reader.end_offset, begin), 'unparsed': reader.unparsed,
                 'prefix_mismatch': reader.prefix_mismatch}
    return review, stats


def split_ranges(start, size, processes):
    if processes <= 1 or size - start < CHUNK_MIN_BYTES * 2:
        return [(start, None)]
    step = (size - start) // processes
    bounds = [start + i * step for i in range(processes)] + [None]
    return [(bounds[i], bounds[i + 1]) for i in range(processes)]


def choose_files(path, pattern, fmt, since):
    """[(path, format)] to read and [(path, why)] left out: in a directory holding the same log in several formats
    (log_destination 'stderr,csvlog') only one format is read, the richest (jsonlog, then csvlog, then stderr)."""
    files = PL.list_files(path, pattern, since)
    typed = []
    for name in files:
        try:
            with PL.open_log(name) as handle:
                head = handle.read(512)
        except OSError:
            head = b''
        typed.append((name, fmt if fmt != 'auto' else PL.detect_format(name, head)))
    if fmt != 'auto' or not os.path.isdir(path):
        return typed, []
    present = set(kind for _name, kind in typed)
    chosen = next((kind for kind in ('jsonlog', 'csvlog', 'stderr') if kind in present), None)
    kept = [(name, kind) for name, kind in typed if kind == chosen]
    left = [(name, 'the same log is read in %s format' % chosen) for name, kind in typed if kind != chosen]
    return kept, left


# -- settings advice ----------------------------------------------------------------------------------------
def settings_advice(settings, prefix, fmt_used):
    """[{setting, value, advice, level}] - what the log lacks for the review, and the change that fixes it."""
    advice = []

    def add(setting, value, text, level=C.INFO):
        advice.append({'setting': setting, 'value': value, 'advice': text, 'level': level})

    if 'stderr' in fmt_used and prefix is not None:
        for escape, why in PL.prefix_lacks(prefix):
            add('log_line_prefix', prefix, '%s: add %s (for example log_line_prefix = \'%%m [%%p] %%q%%u@%%d %%h \')'
                % (why, escape), C.WARNING if escape in ('%m', '%p') else C.INFO)
    if not settings:
        return advice
    if settings.get('log_lock_waits') == 'off':
        add('log_lock_waits', 'off', 'lock waits longer than deadlock_timeout are not logged: set log_lock_waits = on')
    if settings.get('log_temp_files') == '-1':
        add('log_temp_files', '-1', 'temporary files are not logged: set log_temp_files = 0 (or a size in kB)')
    if settings.get('log_checkpoints') == 'off':
        add('log_checkpoints', 'off', 'checkpoints are not logged: set log_checkpoints = on')
    if settings.get('log_autovacuum_min_duration') == '-1':
        add('log_autovacuum_min_duration', '-1', 'autovacuum runs are not logged: set log_autovacuum_min_duration '
            '(for example 10s)')
    if settings.get('log_connections') == 'off' and 'stderr' in fmt_used and prefix is not None \
            and '%h' not in prefix and '%r' not in prefix:
        add('log_connections', 'off', 'failed logins have no client address: set log_connections = on or add %h '
            'to log_line_prefix')
    level = (settings.get('log_min_messages') or '').lower()
    if level in MESSAGE_LEVELS and MESSAGE_LEVELS.index(level) > MESSAGE_LEVELS.index('error'):
        add('log_min_messages', level, 'ERROR reports are not written to the log: set log_min_messages = warning',
            C.WARNING)
    statement = (settings.get('log_min_error_statement') or '').lower()
    if statement in MESSAGE_LEVELS and MESSAGE_LEVELS.index(statement) > MESSAGE_LEVELS.index('error'):
        add('log_min_error_statement', statement, 'the statement that caused an error is not logged: set '
            'log_min_error_statement = error')
    messages = settings.get('lc_messages') or ''
    if messages and messages not in ('C', 'POSIX') and not messages.lower().startswith('en'):
        add('lc_messages', messages, 'messages are translated: patterns, the event detection and pgBadger need '
            'lc_messages = \'C\'', C.WARNING)
    return advice


def default_log_path(settings):
    """The server's log directory when the logging collector writes one (log_directory is relative to the data
    directory unless absolute)."""
    if settings.get('logging_collector') != 'on' or not settings.get('log_directory'):
        return None
    directory = settings['log_directory']
    if not os.path.isabs(directory) and settings.get('data_directory'):
        directory = os.path.join(settings['data_directory'], directory)
    return directory


# -- findings -----------------------------------------------------------------------------------------------
SHARED_CHECKS = ('log_panic', 'log_fatal', 'log_error_rate', 'log_new_patterns')


def error_findings(findings, severities, fatal_other, hourly, new_rows, new_mode, hours, patterns_total, note='',
                   rows=()):
    """The findings both log reviews share (``SHARED_CHECKS``; server logs and Supabase's postgres_logs): PANIC,
    FATAL, the peak hourly error rate and new patterns. ``new_mode`` is 'baseline' (first run: nothing is new yet),
    'state' (new since the last run) or 'none' (no state file: not judged). ``note`` ends every message (what
    limits the figures); ``rows`` (the patterns) give the PANIC finding an example."""
    panic = next((row['example'] for row in rows if row['severity'] == 'PANIC'), None)
    findings.judge('log_panic', severities.get('PANIC', 0), '{value} PANIC reports in the last %s h%s%s' % (
        hours, (': %s - the server crashed or stopped; read the log around it' % panic[:200]) if panic else '', note))
    findings.judge('log_fatal', fatal_other, '{value} FATAL reports in the last %s h besides connection and '
                   'authentication failures and terminations by an administrator%s%s'
                   % (hours, ': see top_errors' if fatal_other else '', note))
    peak = max(hourly, key=lambda row: (row['errors'], row['hour'])) if hourly else None
    findings.judge('log_error_rate', peak['errors'] if peak else 0,
                   ('at most {value} errors (ERROR, FATAL, PANIC) in one hour, at %s; %d patterns in the last %s h%s'
                    % (peak['hour'], patterns_total, hours, note)) if peak else
                   'no errors in the last %s h%s' % (hours, note))
    if new_mode == 'none':
        findings.ok('log_new_patterns', 'not compared with earlier runs: set state_file to be told of error patterns '
                    'not seen before%s' % note)
    elif new_mode == 'baseline':
        findings.ok('log_new_patterns', 'first run: %d error patterns recorded; the next run reports patterns not '
                    'seen before%s' % (patterns_total, note))
    elif new_mode == 'state':
        listing = '; '.join('%s %s (x%d)' % (row['severity'], row['pattern'][:120], row['count'])
                            for row in new_rows[:5])
        findings.judge('log_new_patterns', len(new_rows), '{value} error patterns not seen before%s%s'
                       % (': ' + listing if listing else '', note), patterns=[row['key'] for row in new_rows[:50]])


def event_findings(findings, review, hours):
    events = review.events()
    findings.judge('log_deadlocks', events['deadlocks'], '{value} deadlocks in the last %s h%s' % (
        hours, ': the DETAIL of each names the processes and statements; take locks in one order' if
        events['deadlocks'] else ''))
    waits = events['lock_waits']
    findings.judge('log_lock_waits', waits['count'], '{value} lock waits longer than deadlock_timeout in the last '
                   '%s h (longest logged wait %.0f ms)' % (hours, waits['max_ms']))
    temp = events['temp_files']
    findings.judge('log_temp_files', temp['total_bytes'], '%d temporary files, %s in all (largest %s) in the last %s '
                   'h%s' % (temp['count'], C.human_bytes(temp['total_bytes']), C.human_bytes(temp['max_bytes']),
                            hours, ': raise work_mem for the statements that write them' if temp['count'] else ''),
                   files=temp['count'])
    frequent = events['checkpoints_too_frequent']
    findings.judge('log_checkpoints', frequent, '{value} "checkpoints are occurring too frequently" warnings in the '
                   'last %s h%s' % (hours, ': raise max_wal_size' if frequent else ''))
    vacuum = events['autovacuum_slow']
    slowest = vacuum['slowest'][0] if vacuum['slowest'] else None
    findings.judge('log_autovacuum', vacuum['max_seconds'], '%d logged autovacuum/autoanalyze runs; the longest took '
                   '{value} s%s' % (vacuum['count'], ' (%s of %s)' % (slowest['kind'], slowest['table'])
                                    if slowest else ''))
    before = len(findings)
    AL.failed_login_findings(findings, 'log_auth_failures', events['auth_failures'], hours, review.entries,
                             'failed authentications')
    for item in findings[before:]:
        item['category'] = 'security'
    crashes = [r for r in events['restarts'] if r['kind'] in CRASH_KINDS]
    starts = [r for r in events['restarts'] if r['kind'] == 'start']
    if starts and not crashes:
        findings.info('log_restarts', 'no crash; the server started %d times in the last %s h (clean restarts)'
                      % (len(starts), hours), value=0, unit='count')
    else:
        findings.judge('log_restarts', len(crashes), '{value} crashes or immediate shutdowns in the last %s h%s; %d '
                       'server starts' % (hours, ' (%s)' % ', '.join('%s at %s' % (r['kind'], r['when'])
                                                                     for r in crashes[:5]) if crashes else '',
                                          len(starts)))


# -- the run ------------------------------------------------------------------------------------------------
def review_logs(params, settings, now, settings_error=None, write_state=True):
    """The whole review: a result dict for the module (without ``changed``)."""
    since = now - datetime.timedelta(hours=params['window_hours'])
    hours = '%g' % params['window_hours']
    until = now + CLOCK_SKEW
    thresholds = C.merge_thresholds(DEFAULT_THRESHOLDS, params['thresholds'])
    findings = C.Findings(thresholds)
    log_path = params['log_path'] or default_log_path(settings)
    if not log_path:
        raise ConfigurationError('log_path is not set and the server has no log directory of its own '
                                 '(logging_collector is %s)' % (settings.get('logging_collector') or 'unknown'))
    if not os.path.exists(log_path):
        raise ConfigurationError('log_path %s does not exist' % log_path)
    if not os.access(log_path, os.R_OK):
        raise ConfigurationError('log_path %s is not readable by the user the module runs as (uid %d)'
                                 % (log_path, os.getuid()))
    prefix = params['log_line_prefix']
    if prefix is None and settings.get('log_line_prefix') is not None:
        prefix = settings['log_line_prefix']
    zone_name = params['log_timezone'] or settings.get('log_timezone')
    state_path = params['state_file']
    state, state_problem = load_state(state_path, now)
    if state_problem:
        findings.add('log_state', C.WARNING, 'the state file %s was not used: %s; every file is read from the start '
                     'of the window and every pattern counts as new' % (state_path, state_problem))
    first_run = bool(state_path) and not state_problem and not os.path.exists(state_path)
    known = set(state['patterns'])
    new_mode = 'none' if not state_path else ('baseline' if first_run else 'state')
    total = _new_review(since, until, known, zone_name)
    files, left_out = choose_files(log_path, params['file_pattern'], params['log_format'],
                                   since)
    read_files, lines, unparsed, mismatched = [], 0, 0, 0
    new_state_files = {}
    processes = params['processes']
    for path, fmt in files:
        try:
            stat = os.stat(path)
            compressed = path.endswith('.gz')
            start, reset = (0, None) if compressed else resume_offset(path, stat, state)
            if compressed:
                previous = state['files'].get(path)
                if previous and (previous['dev'], previous['ino'], previous['size']) == \
                        (stat.st_dev, stat.st_ino, stat.st_size):
                    new_state_files[path] = previous
                    read_files.append({'path': path, 'format': fmt, 'size': stat.st_size, 'start': previous['offset'],
                                       'end': previous['offset'], 'reset': None, 'compressed': True, 'lines': 0})
                    continue
            jobs = [(path, fmt, prefix, zone_name, since, until, known, a, b)
                    for a, b in (split_ranges(start, stat.st_size, processes) if not compressed else [(0, None)])]
            if len(jobs) > 1:
                context = multiprocessing.get_context('fork')
                with context.Pool(len(jobs)) as pool:
                    parts = pool.map(read_range, jobs)
            else:
                parts = [read_range(jobs[0])]
        except OSError as exc:
            findings.unknown('log_read', 'cannot read %s: %s' % (path, exc.strerror or exc), obj='file=%s' % path)
            continue
        file_lines = 0
        for review, stats in parts:
            total.merge(review)
            file_lines += stats['lines']
            unparsed += stats['unparsed']
            mismatched += stats['prefix_mismatch']
        lines += file_lines
        end = parts[-1][1]['end'] if not compressed else stat.st_size
        read_files.append({'path': path, 'format': fmt, 'size': stat.st_size, 'start': start, 'end': end,
                           'reset': reset, 'compressed': compressed, 'lines': file_lines})
        new_state_files[path] = {'dev': stat.st_dev, 'ino': stat.st_ino, 'offset': min(end, stat.st_size),
                                 'size': stat.st_size, 'head': head_digest(path, end) if not compressed else
                                 hashlib.sha256(b'').hexdigest()}
    top_rows = total.patterns.rows(params['top'])
    if new_mode != 'state':
        for row in top_rows:
            row['new'] = False
    new_rows = total.patterns.new_rows() if new_mode == 'state' else []
    severities = dict(total.severities)
    hourly = total.hourly_rows()
    patterns_total = len(total.patterns.items)
    error_findings(findings, severities, total.fatal_other, hourly, new_rows, new_mode, hours, patterns_total,
                   rows=total.patterns.rows(20, ('PANIC',)))
    event_findings(findings, total, hours)
    fmt_used = set(kind for _path, kind in files)
    advice = settings_advice(settings, prefix, fmt_used)
    if settings_error:
        findings.unknown('log_settings', 'could not read the server\'s logging settings: %s' % settings_error)
    worst = C.worst_status([a['level'] for a in advice]) if advice else C.OK
    if advice:
        findings.add('log_settings', worst, 'the log lacks what the review needs: %s'
                     % '; '.join('%s (%s)' % (a['setting'], a['advice']) for a in advice), value=len(advice),
                     unit='count')
    elif not settings_error:
        findings.ok('log_settings', 'the log has time, process, user, database and client on every line, and the '
                    'server logs lock waits, temporary files, checkpoints and autovacuum runs')
    if unparsed and lines and unparsed * 10 > lines:
        findings.add('log_read', C.WARNING, '%d of %d lines matched no log format: is log_format/log_line_prefix '
                     'right (prefix %r)?' % (unparsed, lines, prefix), value=unparsed, unit='count')
    if total.undated:
        findings.info('log_read', '%d entries have no time (the prefix has no %%m or %%t): they were counted whatever '
                      'their age' % total.undated, value=total.undated, unit='count')
    if total.future:
        findings.add('log_read', C.WARNING, '%d entries are dated after now (%s): a wrong clock or time zone; they '
                     'were left out' % (total.future, iso(now)), value=total.future, unit='count')
    events = total.events()
    result = {
        'log_path': log_path,
        'files': read_files,
        'left_out': [{'path': p, 'reason': why} for p, why in left_out],
        'window': {'start': iso(since), 'end': iso(now), 'hours': params['window_hours']},
        'lines': lines,
        'entries': total.entries,
        'severities': severities,
        'patterns_total': patterns_total,
        'patterns_dropped': total.patterns.dropped,
        'top_errors': top_rows,
        'new_patterns': new_rows,
        'hourly': hourly,
        'events': events,
        'log_settings': {'prefix': prefix, 'missing': advice},
        'checks': list(findings),
    }
    result['report'] = {'log_review': {
        'source': 'postgresql', 'finished_at': iso(now), 'window': result['window'], 'severities': severities,
        'top_errors': top_rows, 'new_patterns': len(new_rows), 'patterns_total': patterns_total,
        'events': {'deadlocks': events['deadlocks'], 'lock_waits': events['lock_waits']['count'],
                   'temp_files': events['temp_files']['count'], 'temp_bytes': events['temp_files']['total_bytes'],
                   'checkpoints_too_frequent': events['checkpoints_too_frequent'],
                   'autovacuum_max_seconds': events['autovacuum_slow']['max_seconds'],
                   'auth_failures': sum(r['failures'] for r in events['auth_failures']),
                   'restarts': len(events['restarts'])},
        'missing_settings': [dict((k, a[k]) for k in ('setting', 'value', 'advice')) for a in advice]}}
    if state_path and write_state:
        save_state(state_path, state, new_state_files, total.patterns, now)
        result['state_written'] = True
    return result


def save_state(path, state, files, patterns, now):
    known = dict(state['patterns'])
    stamp = iso(now)
    for key, item in patterns.items.items():
        known[key] = {'severity': item['severity'], 'pattern': item['pattern'][:200],
                      'first_run': known.get(key, {}).get('first_run', stamp), 'last_run': stamp}
    if len(known) > MAX_KNOWN_PATTERNS:
        keep = sorted(known.items(), key=lambda kv: kv[1]['last_run'], reverse=True)[:MAX_KNOWN_PATTERNS]
        known = dict(keep)
    write_json_atomic(path, {'version': STATE_VERSION, 'updated_at': stamp, 'files': files, 'patterns': known})
