# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL server log: one streaming parser, and the error-pattern review built on it.

Formats (PostgreSQL's "Error Reporting and Logging" chapter, section "Where to Log" and "Using CSV-Format Log
Output" / "Using JSON-Format Log Output"):

- ``stderr`` with any ``log_line_prefix``: the prefix is compiled into a regular expression (every escape of the
  documentation: ``%a %u %d %r %h %L %b %p %P %t %m %n %i %e %c %l %s %v %x %q %Q %%`` and padding such as
  ``%-10u``). Without a known prefix a loose reader finds the ``LEVEL:  `` mark (PostgreSQL writes two spaces after
  the colon) and takes the time, process and client address from what precedes it. Message lines of one report
  (``DETAIL``, ``HINT``, ``CONTEXT``, ``STATEMENT``, and lines that start with a tab) belong to the entry before.
- ``csvlog`` (the column list of PostgreSQL 13-18; ``backend_type``, ``leader_pid`` and ``query_id`` since 14).
- ``jsonlog`` (PostgreSQL 15+), one object per line.
- plain and gzip-compressed files (``.gz``); a directory's files in modification order.

The parser works on bytes and decodes only what it keeps: the memory it needs is bounded by the number of distinct
error patterns (capped at ``MAX_PATTERNS``), not by the size of the log. ``Review`` turns entries into the weekly
error review: patterns (normalised as pgBadger's ``normalize_error`` does, and numbers besides), severities, the
hourly error rate, and the events a DBA reads in the same pass - deadlocks, lock waits, temporary files, checkpoint
warnings, slow autovacuum runs, connection and authentication failures (``authlog.FailedLogins``, fed from here),
restarts and crashes.
"""

from __future__ import annotations

import csv
import datetime
import fnmatch
import gzip
import hashlib
import json
import os
import re

try:
    from zoneinfo import ZoneInfo
except ImportError:  # pragma: no cover - Python < 3.9
    ZoneInfo = None

FORMATS = ('auto', 'stderr', 'csvlog', 'jsonlog')
ERROR_LEVELS = ('PANIC', 'FATAL', 'ERROR', 'WARNING')
LEVELS = ('DEBUG5', 'DEBUG4', 'DEBUG3', 'DEBUG2', 'DEBUG1', 'INFO', 'NOTICE', 'WARNING', 'ERROR', 'LOG', 'FATAL',
          'PANIC')
FOLLOW_LEVELS = ('DETAIL', 'HINT', 'CONTEXT', 'STATEMENT', 'QUERY', 'LOCATION')
MAX_PATTERNS = 5000     # distinct patterns kept; more are counted in ``patterns_dropped``
MAX_LABELS = 10         # databases / users / clients remembered per pattern
MAX_EXAMPLE = 500       # characters of an example line
_FOLLOW_BYTES = frozenset(level.encode('ascii') for level in FOLLOW_LEVELS)
MAX_PIDS = 20000        # client addresses remembered per process (log_connections), oldest forgotten first

_LEVEL_ALT = '|'.join(LEVELS + FOLLOW_LEVELS)
_TS = r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?'
_TZ = r'(?: (?:[A-Za-z][A-Za-z0-9/_+-]*|[+-]\d\d(?::?\d\d)?))?'
LOOSE = re.compile((r'^(?P<prefix>.*?)\b(?P<level>%s):  (?P<message>.*)' % _LEVEL_ALT).encode(), re.S)
LOOSE_TS = re.compile((r'(?P<ts>%s)(?P<tz> (?:[A-Za-z][A-Za-z0-9/_+-]*|[+-]\d\d(?::?\d\d)?))?' % _TS).encode())
LOOSE_PID = re.compile(rb'\[(\d+)\]')
LOOSE_HOST = re.compile(rb'(?:^|[\s@(])((?:\d{1,3}\.){3}\d{1,3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]+|\[local\])'
                        rb'(?:\(\d+\))?(?=\s|$|\))')
CSV_START = re.compile((r'^%s' % _TS).encode())

# log_line_prefix escapes -> regular expression pieces (named groups are what the review reads)
PREFIX_ESCAPES = {
    'a': r'(?P<application>.*?)',
    'u': r'(?P<user>\S*?)',
    'd': r'(?P<database>\S*?)',
    'r': r'(?P<client>\S*?)(?:\(\d+\))?',
    'h': r'(?P<client>\S*?)',
    'L': r'\S*?',
    'b': r'(?P<backend_type>.*?)',
    'p': r'(?P<pid>\d+)',
    'P': r'\d*',
    't': r'(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?P<tz> [A-Za-z+\-][A-Za-z0-9/_+:-]*)?',
    'm': r'(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)(?P<tz> [A-Za-z+\-][A-Za-z0-9/_+:-]*)?',
    'n': r'(?P<epoch>\d+(?:\.\d+)?)',
    'i': r'.*?',
    'e': r'(?P<sqlstate>[0-9A-Z]{5})',
    'c': r'[0-9a-f]+\.[0-9a-f]+',
    'l': r'\d+',
    's': r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: \S+)?',
    'v': r'\S*?',
    'x': r'\d+',
    'Q': r'-?\d+',
}

# LOG messages the review reads (the rest - statements, durations, connections authorised - are skipped unread)
LOG_MARKERS = (b'connection received', b'checkpoints are occurring too frequently', b'automatic vacuum',
               b'automatic analyze', b'temporary file', b'still waiting for', b'database system is ready',
               b'shutdown request', b'terminated by signal', b'terminated by exception', b'exited with exit code',
               b'was interrupted', b'not properly shut down', b'all server processes terminated')

# Restarts and crashes (src/backend/postmaster/postmaster.c, xlog.c messages)
RESTART_KINDS = (
    ('terminated by signal', 'crash'), ('terminated by exception', 'crash'), ('exited with exit code', 'crash'),
    ('all server processes terminated; reinitializing', 'crash'), ('not properly shut down', 'crash_recovery'),
    ('was interrupted', 'crash_recovery'), ('received immediate shutdown request', 'immediate_shutdown'),
    ('received fast shutdown request', 'shutdown'), ('received smart shutdown request', 'shutdown'),
    ('database system is ready to accept connections', 'start'))

# FATAL messages of connection attempts that never became sessions (src/backend/utils/init/postinit.c, libpq/auth.c)
CONNECTION_FAILURES = ('too many clients already', 'remaining connection slots are reserved',
                       'the database system is starting up', 'the database system is shutting down',
                       'the database system is in recovery mode', 'does not exist', 'no pg_hba.conf entry',
                       'authentication failed for user', 'is not permitted to log in',
                       'too many connections for', 'canceling authentication due to timeout',
                       'is not currently accepting connections')

LOCK_WAIT = re.compile(r'process \d+ still waiting for .* after (\d+(?:\.\d+)?) ms')
TEMP_FILE = re.compile(r'temporary file: path ".*", size (\d+)')
ELAPSED = re.compile(r'elapsed: (\d+(?:\.\d+)?) s')
AUTOVACUUM_TABLE = re.compile(r'automatic (vacuum|analyze) of table "([^"]*)"')


class LogFormatError(ValueError):
    """A log line prefix or format option that cannot be used."""


# -- time ---------------------------------------------------------------------------------------------------
def zone_of(name):
    """The tzinfo of ``log_timezone``; UTC when empty or unknown."""
    if ZoneInfo is None or not name:
        return datetime.timezone.utc
    try:
        return ZoneInfo(name)
    except Exception:  # pylint: disable=broad-except
        return datetime.timezone.utc


def parse_timestamp(text, tz_text, log_zone):
    """A log timestamp as an aware datetime; an abbreviation other than UTC/GMT is read with ``log_timezone``."""
    try:
        moment = datetime.datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]),
                                   int(text[14:16]), int(text[17:19]))
    except (TypeError, ValueError):
        raise ValueError('not a log timestamp: %r' % text) from None
    if len(text) > 20 and text[19] == '.':
        moment = moment.replace(microsecond=int((text[20:26] + '000000')[:6]))
    elif len(text) != 19 or text[4] != '-' or text[10] != ' ':
        raise ValueError('not a log timestamp: %r' % text)
    tz_text = (tz_text or '').strip()
    if tz_text and tz_text[0] in '+-':
        digits = tz_text.replace(':', '')
        hours = int(digits[1:3])
        minutes = int(digits[3:5]) if len(digits) > 3 else 0
        offset = datetime.timedelta(hours=hours, minutes=minutes)
        return moment.replace(tzinfo=datetime.timezone(offset if tz_text[0] == '+' else -offset))
    if tz_text in ('UTC', 'GMT', 'Z'):
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.replace(tzinfo=log_zone)


class _Clock(object):
    """Timestamps parsed once per second of log (a log has many lines per second)."""

    def __init__(self, zone):
        self.zone = zone
        self.key = None
        self.base = None

    def at(self, ts, tz):
        if not ts:
            return None
        key = (ts[:19], tz)
        if key != self.key:
            try:
                self.base = parse_timestamp(ts[:19], tz, self.zone)
            except ValueError:
                return None
            self.key = key
        if len(ts) > 20 and ts[19] == '.':
            try:
                return self.base + datetime.timedelta(microseconds=int((ts[20:] + '000000')[:6]))
            except ValueError:
                return self.base
        return self.base


# -- entries ------------------------------------------------------------------------------------------------
class Entry(object):
    """One log report: the primary line and what follows it."""
    __slots__ = ('when', 'pid', 'severity', 'sqlstate', 'message', 'detail', 'hint', 'context', 'statement',
                 'database', 'user', 'client', 'application', 'backend_type', 'offset')

    def __init__(self, when=None, severity='LOG', message='', pid=None, sqlstate=None, detail=None, hint=None,
                 context=None, statement=None, database=None, user=None, client=None, application=None,
                 backend_type=None, offset=0):
        self.when = when
        self.severity = severity
        self.message = message
        self.pid = pid
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint
        self.context = context
        self.statement = statement
        self.database = database
        self.user = user
        self.client = client
        self.application = application
        self.backend_type = backend_type
        self.offset = offset


_LOG_MARKER = re.compile(b'|'.join(re.escape(marker) for marker in LOG_MARKERS))
# the LOG messages most lines of a busy log carry, none of which the review reads: rejected before any search
_LOG_ROUTINE = (b'duration:', b'statement:', b'connection authorized', b'execute ', b'parameters:',
                b'disconnection:', b'checkpoint starting', b'checkpoint complete')


def _wanted(level, message_bytes):
    """Whether the review reads a report of ``level`` (str) with this message (bytes)."""
    if level in ERROR_LEVELS:
        return True
    if level != 'LOG' or message_bytes.startswith(_LOG_ROUTINE):
        return False
    return _LOG_MARKER.search(message_bytes, 0, 120) is not None


def compile_prefix(prefix):
    """``log_line_prefix`` as a bytes regex that matches the prefix, the level and the message of a line."""
    if prefix is None:
        return None
    pieces, optional_from, i, seen = [], None, 0, set()
    while i < len(prefix):
        char = prefix[i]
        if char != '%':
            pieces.append(re.escape(char))
            i += 1
            continue
        j = i + 1
        while j < len(prefix) and (prefix[j] in '-0123456789'):
            j += 1
        if j >= len(prefix):
            raise LogFormatError('log_line_prefix %r ends inside an escape' % prefix)
        escape, padded = prefix[j], j > i + 1
        i = j + 1
        if escape == '%':
            pieces.append('%')
        elif escape == 'q':
            optional_from = len(pieces)
        elif escape in PREFIX_ESCAPES:
            piece = PREFIX_ESCAPES[escape]
            for name in ('application', 'user', 'database', 'client', 'backend_type', 'pid', 'ts', 'tz', 'epoch',
                         'sqlstate'):
                if '?P<%s>' % name in piece:
                    if name in seen:
                        piece = piece.replace('?P<%s>' % name, '?:')
                    seen.add(name)
            pieces.append(r'\s*' + piece + r'\s*' if padded else piece)
        else:
            raise LogFormatError('log_line_prefix %r has an unknown escape %%%s' % (prefix, escape))
    if optional_from is not None:
        pieces = pieces[:optional_from] + ['(?:'] + pieces[optional_from:] + [')?']
    body = ''.join(pieces)
    return re.compile(('^' + body + r'(?P<level>%s):  (?P<message>.*)' % _LEVEL_ALT).encode(), re.S)


def prefix_lacks(prefix):
    """What a ``log_line_prefix`` leaves out that the review needs: a list of (escape, why)."""
    lacks = []
    if prefix is None:
        return lacks
    if not any(esc in prefix for esc in ('%m', '%t', '%n')):
        lacks.append(('%m', 'no time on the lines: the time window, first/last seen and the hourly error rate '
                            'need it'))
    if '%p' not in prefix and '%c' not in prefix:
        lacks.append(('%p', 'no process id: DETAIL/STATEMENT lines and client addresses cannot be tied to their '
                            'error'))
    if '%d' not in prefix or '%u' not in prefix:
        lacks.append(('%u@%d', 'no user or database: errors cannot be attributed'))
    if '%h' not in prefix and '%r' not in prefix:
        lacks.append(('%h', 'no client address on the line (log_connections fills it in for failed logins only)'))
    return lacks


def _text(value):
    return value.decode('utf-8', 'replace') if value is not None else None


class Reader(object):
    """Streams the entries of one file (or a byte range of it) that the review reads."""

    def __init__(self, fmt, prefix=None, zone=None, keep_all=False):
        if fmt not in ('stderr', 'csvlog', 'jsonlog'):
            raise LogFormatError('log_format must be stderr, csvlog or jsonlog, got %r' % fmt)
        self.fmt = fmt
        self.regex = compile_prefix(prefix)
        self.prefix = prefix
        self.clock = _Clock(zone or datetime.timezone.utc)
        self.keep_all = keep_all   # yield every entry (tests), not only those the review reads
        self.lines = 0
        self.bytes = 0
        self.unparsed = 0          # lines that neither matched the prefix nor continued an entry
        self.prefix_mismatch = 0   # lines read by the loose reader because the given prefix did not match
        self.end_offset = 0        # offset after the last complete line consumed

    # -- stderr -------------------------------------------------------------------------------------------
    def _stderr_head(self, raw):
        """(entry or None, level) of a primary line; level None when the line is not one."""
        match = self.regex.match(raw) if self.regex is not None else None
        loose = match is None
        if loose:
            # no prefix given, or a line written with another prefix (the setting changed): the loose reader
            match = LOOSE.match(raw)
            if match is None:
                return None, None
            if self.regex is not None:
                self.prefix_mismatch += 1
        level = match.group('level')
        if level in _FOLLOW_BYTES:
            return None, level
        message = match.group('message')
        if not self.keep_all and not _wanted(level.decode('ascii'), message):
            return None, b'SKIP'
        entry = Entry(severity=level.decode('ascii'), message=message.rstrip(b'\r\n').decode('utf-8', 'replace'))
        groups = None if loose else match.groupdict()
        if groups is not None:
            ts = groups.get('ts')
            if ts is not None:
                entry.when = self.clock.at(ts.decode('ascii'), _text(groups.get('tz')))
            elif groups.get('epoch'):
                entry.when = datetime.datetime.fromtimestamp(float(groups['epoch']), datetime.timezone.utc)
            entry.pid = _text(groups.get('pid'))
            entry.user = _text(groups.get('user')) or None
            entry.database = _text(groups.get('database')) or None
            client = _text(groups.get('client'))
            entry.client = client if client and client != '[local]' else None
            entry.application = _text(groups.get('application')) or None
            entry.backend_type = _text(groups.get('backend_type')) or None
            entry.sqlstate = _text(groups.get('sqlstate'))
        else:
            prefix = match.group('prefix')
            stamp = LOOSE_TS.search(prefix)
            if stamp:
                entry.when = self.clock.at(stamp.group('ts').decode('ascii'), _text(stamp.group('tz')))
                prefix = prefix[:stamp.start()] + prefix[stamp.end():]
            pid = LOOSE_PID.search(prefix)
            if pid:
                entry.pid = pid.group(1).decode('ascii')
                prefix = prefix.replace(pid.group(0), b'')
            host = LOOSE_HOST.search(prefix)
            if host and host.group(1) != b'[local]':
                entry.client = host.group(1).decode('ascii')
        return entry, level

    def _attach(self, entry, level, raw):
        match = (self.regex.match(raw) if self.regex is not None else None) or LOOSE.match(raw)
        text = match.group('message').rstrip(b'\r\n').decode('utf-8', 'replace') if match else ''
        name = level.decode('ascii').lower()
        if name == 'query':
            name = 'statement'
        if name in ('detail', 'hint', 'context', 'statement'):
            setattr(entry, name, text if getattr(entry, name) is None else getattr(entry, name) + '\n' + text)
        return name

    def stderr(self, handle, start=0, end=None):
        current, last, offset = None, None, start
        skipping = False
        for raw in handle:
            if not raw.endswith(b'\n'):
                break  # a line still being written: read it next time
            at = offset
            offset += len(raw)
            if end is None or at < end:
                self.lines += 1  # a line at or after ``end`` is counted by the range that starts there
            if raw[:1] == b'\t':
                if current is not None and last is not None:
                    text = raw[1:].rstrip(b'\r\n').decode('utf-8', 'replace')
                    if last == 'message':
                        current.message += '\n' + text
                    elif getattr(current, last, None) is not None:
                        setattr(current, last, getattr(current, last) + '\n' + text)
                self.end_offset = offset
                continue
            mark = raw.find(b' LOG:  ', 0, 400)
            if mark > 0 and not self.keep_all and raw.startswith(_LOG_ROUTINE, mark + 7) \
                    and raw.find(b':  ', 0, mark) < 0:  # no level mark before it: it is the line's own level
                entry, level = None, b'SKIP'   # the bulk of a busy log, rejected without the prefix regex
            else:
                entry, level = self._stderr_head(raw)
            if level is None:
                self.unparsed += 1
                self.end_offset = offset
                continue
            if entry is None and level != b'SKIP':
                # DETAIL/HINT/STATEMENT of the report before (skipped reports keep skipping)
                if current is not None and not skipping:
                    last = self._attach(current, level, raw)
                self.end_offset = offset
                continue
            if end is not None and at >= end:
                break
            if current is not None:
                yield current
            self.end_offset = offset
            if entry is None:
                current, last, skipping = None, None, True
                continue
            entry.offset = at
            current, last, skipping = entry, 'message', False
        if current is not None:
            yield current

    # -- csvlog -------------------------------------------------------------------------------------------
    def csvlog(self, handle, start=0, end=None):
        offset, pending, pending_at = start, [], start
        for raw in handle:
            if not raw.endswith(b'\n'):
                break
            if not pending:
                if end is not None and offset >= end:
                    break
                pending_at = offset
            offset += len(raw)
            self.lines += 1
            pending.append(raw)
            if sum(part.count(b'"') for part in pending) % 2:
                continue  # a quoted field goes on over the next line
            record = b''.join(pending)
            pending = []
            self.end_offset = offset
            entry = self._csv_entry(record, pending_at)
            if entry is not None:
                yield entry

    def _csv_entry(self, record, at):
        # error_severity is the 12th column; skip LOG rows the review does not read before decoding the row
        if not self.keep_all and b',LOG,' in record[:400] and not any(m in record for m in LOG_MARKERS):
            return None
        try:
            row = next(csv.reader([record.decode('utf-8', 'replace')]))
        except (csv.Error, StopIteration):
            self.unparsed += 1
            return None
        if len(row) < 23:
            self.unparsed += 1
            return None
        level = row[11]
        if not self.keep_all and not _wanted(level, row[13].encode('utf-8', 'replace')):
            return None
        stamp = row[0]
        tz = stamp[stamp.rfind(' '):] if stamp.count(' ') >= 2 else None
        client = row[4].rsplit(':', 1)[0] if row[4] else None
        return Entry(when=self.clock.at(stamp.split(' ')[0] + ' ' + stamp.split(' ')[1], tz) if ' ' in stamp else None,
                     user=row[1] or None, database=row[2] or None, pid=row[3] or None,
                     client=client if client and client != '[local]' else None, severity=level,
                     sqlstate=row[12] or None, message=row[13], detail=row[14] or None, hint=row[15] or None,
                     context=row[18] or None, statement=row[19] or None, application=row[22] or None,
                     backend_type=row[23] if len(row) > 23 and row[23] else None, offset=at)

    # -- jsonlog ------------------------------------------------------------------------------------------
    def jsonlog(self, handle, start=0, end=None):
        offset = start
        for raw in handle:
            if not raw.endswith(b'\n'):
                break
            at = offset
            if end is not None and at >= end:
                break
            offset += len(raw)
            self.lines += 1
            self.end_offset = offset
            if not self.keep_all and b'"error_severity":"LOG"' in raw and not any(m in raw for m in LOG_MARKERS):
                continue
            try:
                item = json.loads(raw)
            except ValueError:
                self.unparsed += 1
                continue
            if not isinstance(item, dict):
                self.unparsed += 1
                continue
            level = str(item.get('error_severity') or '')
            message = str(item.get('message') or '')
            if not self.keep_all and not _wanted(level, message.encode('utf-8', 'replace')):
                continue
            stamp = str(item.get('timestamp') or '')
            parts = stamp.split(' ')
            when = self.clock.at(parts[0] + ' ' + parts[1], parts[2] if len(parts) > 2 else None) \
                if len(parts) >= 2 else None
            client = item.get('remote_host')
            yield Entry(when=when, severity=level, message=message, pid=str(item['pid']) if 'pid' in item else None,
                        sqlstate=item.get('state_code'), detail=item.get('detail'), hint=item.get('hint'),
                        context=item.get('context'), statement=item.get('statement'), database=item.get('dbname'),
                        user=item.get('user'), client=client if client and client != '[local]' else None,
                        application=item.get('application_name') or None, backend_type=item.get('backend_type'),
                        offset=at)

    def read(self, handle, start=0, end=None):
        return getattr(self, self.fmt)(handle, start, end)


def detect_format(path, head=b''):
    """``csvlog``/``jsonlog``/``stderr`` from the file name, else from its first line."""
    name = path[:-3] if path.endswith('.gz') else path
    if name.endswith('.csv'):
        return 'csvlog'
    if name.endswith('.json'):
        return 'jsonlog'
    stripped = head.lstrip()
    if stripped.startswith(b'{'):
        return 'jsonlog'
    if CSV_START.match(stripped) and stripped[23:40].count(b',') >= 1 and b'",' in stripped[:200]:
        return 'csvlog'
    return 'stderr'


def list_files(path, pattern='*', since=None):
    """The file ``path``, or the files of directory ``path`` whose names match ``pattern`` and that were modified
    since ``since`` (a datetime), oldest first."""
    if not os.path.isdir(path):
        return [path]
    found = []
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if not fnmatch.fnmatch(name, pattern) or not os.path.isfile(full):
            continue
        mtime = os.path.getmtime(full)
        if since is None or mtime >= since.timestamp():
            found.append((mtime, full))
    return [full for _mtime, full in sorted(found)]


def open_log(path):
    """A binary handle; gzip files are decompressed on the fly."""
    if path.endswith('.gz'):
        return gzip.open(path, 'rb')
    return open(path, 'rb')


# -- normalisation ------------------------------------------------------------------------------------------
_NORMALISE = [
    (re.compile(r' at character \d+.*', re.S), ''),
    (re.compile(r'(byte sequence for encoding).*', re.S), r'\1'),
    (re.compile(r'"[^"]+"'), '"..."'),
    (re.compile(r'""\.\.\.""'), '"..."'),
    (re.compile(r'\([^)]+\)'), '(...)'),
    (re.compile(r'column .* does not exist'), 'column "..." does not exist'),
    (re.compile(r'(database system was.* at (?:log time )?).*'), r'\1 ...'),
    (re.compile(r'[0-9A-F]{24}'), '...'),
    (re.compile(r'( for)? PID \d+'), ''),
    (re.compile(r' TIMELINE \d+'), ' TIMELINE n'),
    (re.compile(r' [0-9A-F]+/[0-9A-F]+ '), ' x/x '),
    (re.compile(r'(transaction|relation|database|process) \d+'), r'\1 ...'),
    (re.compile(r'after \d+\.\d+'), 'after ...'),
    (re.compile(r'\[[^\]]+\]'), '...'),
    (re.compile(r'(invalid input syntax for [^:]+:).*'), r'\1 ...'),
    (re.compile(r'(permission denied for [^\s]+) .*'), r'\1 ...'),
    # beyond pgBadger: single-quoted literals and remaining numbers
    (re.compile(r"'[^']*'"), "'...'"),
    (re.compile(r'(?<![\w.])-?\d+(?:\.\d+)?(?![\w])'), 'N'),
]


def normalize(message):
    """The pattern of an error message: the rules of pgBadger's ``normalize_error`` (identifiers in double quotes,
    parenthesised values, object numbers, WAL positions, "at character N"), then single-quoted literals and any
    remaining number. Only the first line of the message counts."""
    text = message.split('\n', 1)[0].strip()
    for regex, replacement in _NORMALISE:
        text = regex.sub(replacement, text)
    return text[:300]


def pattern_key(severity, pattern):
    return hashlib.sha256(('%s\0%s' % (severity, pattern)).encode('utf-8')).hexdigest()[:16]


# -- aggregation --------------------------------------------------------------------------------------------
def _iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ') if moment else None


def _add_label(bucket, value):
    if value and value not in bucket and len(bucket) < MAX_LABELS:
        bucket.append(value)


class Patterns(object):
    """Error patterns by (severity, normalised message): counts, first and last seen, who and where."""

    def __init__(self, known=None, max_patterns=MAX_PATTERNS):
        self.known = set(known or ())
        self.items = {}
        self.max_patterns = max_patterns
        self.dropped = 0

    def add(self, entry):
        pattern = normalize(entry.message)
        key = pattern_key(entry.severity, pattern)
        item = self.items.get(key)
        if item is None:
            if len(self.items) >= self.max_patterns:
                self.dropped += 1
                return key
            example = entry.message.split('\n', 1)[0][:MAX_EXAMPLE]
            item = self.items[key] = {'key': key, 'pattern': pattern, 'severity': entry.severity, 'sqlstate': None,
                                      'count': 0, 'first': entry.when, 'last': entry.when, 'databases': [],
                                      'users': [], 'clients': [], 'example': example,
                                      'statement': (entry.statement or '')[:MAX_EXAMPLE] or None}
        item['count'] += 1
        if entry.sqlstate and not item['sqlstate']:
            item['sqlstate'] = entry.sqlstate
        if entry.when is not None:
            if item['first'] is None or entry.when < item['first']:
                item['first'] = entry.when
            if item['last'] is None or entry.when > item['last']:
                item['last'] = entry.when
        _add_label(item['databases'], entry.database)
        _add_label(item['users'], entry.user)
        _add_label(item['clients'], entry.client)
        return key

    def merge(self, other):
        for key, theirs in other.items.items():
            mine = self.items.get(key)
            if mine is None:
                if len(self.items) >= self.max_patterns:
                    self.dropped += theirs['count']
                    continue
                self.items[key] = dict(theirs, databases=list(theirs['databases']), users=list(theirs['users']),
                                       clients=list(theirs['clients']))
                continue
            mine['count'] += theirs['count']
            mine['sqlstate'] = mine['sqlstate'] or theirs['sqlstate']
            for edge, pick in (('first', min), ('last', max)):
                values = [v for v in (mine[edge], theirs[edge]) if v is not None]
                mine[edge] = pick(values) if values else None
            if theirs['first'] is not None and mine['first'] == theirs['first']:
                mine['example'] = theirs['example']
            for label in ('databases', 'users', 'clients'):
                for value in theirs[label]:
                    _add_label(mine[label], value)
        self.dropped += other.dropped

    def keys(self):
        return set(self.items)

    def _row(self, item):
        row = dict(item, first_seen=_iso(item['first']), last_seen=_iso(item['last']),
                   new=item['key'] not in self.known)
        del row['first'], row['last']
        return row

    def rows(self, top=None, severities=None):
        """Patterns, most frequent first (severity breaks ties, worst first)."""
        items = [i for i in self.items.values() if severities is None or i['severity'] in severities]
        items.sort(key=lambda i: (-i['count'], ERROR_LEVELS.index(i['severity'])
                                  if i['severity'] in ERROR_LEVELS else 9, i['pattern']))
        return [self._row(i) for i in (items if top is None else items[:top])]

    def new_rows(self, limit=50):
        return [row for row in self.rows() if row['new']][:limit]


class Review(object):
    """Everything the weekly log review reads from the entries of a time window."""

    def __init__(self, since=None, until=None, known=None, failed_logins=None):
        self.since = since
        self.until = until
        self.patterns = Patterns(known)
        self.severities = dict((level, 0) for level in ERROR_LEVELS)
        self.hourly = {}
        self.entries = 0
        self.undated = 0
        self.future = 0
        self.deadlocks = 0
        self.lock_waits = {'count': 0, 'max_ms': 0.0}
        self.temp_files = {'count': 0, 'total_bytes': 0, 'max_bytes': 0}
        self.checkpoints_too_frequent = 0
        self.autovacuum = {'count': 0, 'max_seconds': 0.0, 'slowest': []}
        self.connection_failures = {}
        self.restarts = []
        self.fatal_other = 0
        self.failed_logins = failed_logins

    def feed(self, entry):
        when = entry.when
        if when is None:
            self.undated += 1
        else:
            if self.since is not None and when < self.since:
                return
            if self.until is not None and when > self.until:
                self.future += 1
                return
        self.entries += 1
        level = entry.severity
        message = entry.message
        if self.failed_logins is not None:
            self.failed_logins.feed_entry(entry)
        if level == 'LOG':
            self._log_event(entry, message)
            return
        if level not in ERROR_LEVELS:
            return
        self.severities[level] += 1
        self.patterns.add(entry)
        if level != 'WARNING' and when is not None:
            hour = when.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:00:00Z')
            self.hourly[hour] = self.hourly.get(hour, 0) + 1
        if entry.sqlstate == '40P01' or message.startswith('deadlock detected'):
            self.deadlocks += 1
        if level == 'FATAL':
            failure = next((f for f in CONNECTION_FAILURES if f in message), None)
            if failure:
                key = 'authentication failed' if 'authentication failed' in failure else failure
                self.connection_failures[key] = self.connection_failures.get(key, 0) + 1
            elif not message.startswith('terminating connection due to administrator command'):
                self.fatal_other += 1
        if level == 'PANIC':
            self.restarts.append({'when': _iso(when), 'kind': 'panic', 'message': message[:200]})

    def _log_event(self, entry, message):
        if 'still waiting for' in message:
            match = LOCK_WAIT.search(message)
            self.lock_waits['count'] += 1
            if match:
                self.lock_waits['max_ms'] = max(self.lock_waits['max_ms'], float(match.group(1)))
        elif message.startswith('temporary file'):
            match = TEMP_FILE.search(message)
            if match:
                size = int(match.group(1))
                self.temp_files['count'] += 1
                self.temp_files['total_bytes'] += size
                self.temp_files['max_bytes'] = max(self.temp_files['max_bytes'], size)
        elif 'checkpoints are occurring too frequently' in message:
            self.checkpoints_too_frequent += 1
        elif message.startswith('automatic vacuum') or message.startswith('automatic analyze'):
            elapsed = ELAPSED.search(message)
            table = AUTOVACUUM_TABLE.search(message)
            self.autovacuum['count'] += 1
            if elapsed:
                seconds = float(elapsed.group(1))
                self.autovacuum['max_seconds'] = max(self.autovacuum['max_seconds'], seconds)
                self._slowest({'table': table.group(2) if table else None,
                               'kind': table.group(1) if table else 'vacuum', 'seconds': seconds,
                               'when': _iso(entry.when)})
        else:
            kind = next((k for text, k in RESTART_KINDS if text in message), None)
            if kind:
                self.restarts.append({'when': _iso(entry.when), 'kind': kind, 'message': message[:200]})

    def _slowest(self, row):
        rows = self.autovacuum['slowest']
        rows.append(row)
        rows.sort(key=lambda r: -r['seconds'])
        del rows[5:]

    def merge(self, other):
        self.patterns.merge(other.patterns)
        for level, count in other.severities.items():
            self.severities[level] += count
        for hour, count in other.hourly.items():
            self.hourly[hour] = self.hourly.get(hour, 0) + count
        for name in ('entries', 'undated', 'future', 'deadlocks', 'checkpoints_too_frequent', 'fatal_other'):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.lock_waits['count'] += other.lock_waits['count']
        self.lock_waits['max_ms'] = max(self.lock_waits['max_ms'], other.lock_waits['max_ms'])
        self.temp_files['count'] += other.temp_files['count']
        self.temp_files['total_bytes'] += other.temp_files['total_bytes']
        self.temp_files['max_bytes'] = max(self.temp_files['max_bytes'], other.temp_files['max_bytes'])
        self.autovacuum['count'] += other.autovacuum['count']
        self.autovacuum['max_seconds'] = max(self.autovacuum['max_seconds'], other.autovacuum['max_seconds'])
        for row in other.autovacuum['slowest']:
            self._slowest(row)
        for key, count in other.connection_failures.items():
            self.connection_failures[key] = self.connection_failures.get(key, 0) + count
        self.restarts.extend(other.restarts)
        if self.failed_logins is not None and other.failed_logins is not None:
            self.failed_logins.merge(other.failed_logins)

    def hourly_rows(self):
        return [{'hour': hour, 'errors': count} for hour, count in sorted(self.hourly.items())]

    def events(self):
        return {
            'deadlocks': self.deadlocks,
            'lock_waits': dict(self.lock_waits),
            'temp_files': dict(self.temp_files),
            'checkpoints_too_frequent': self.checkpoints_too_frequent,
            'autovacuum_slow': {'count': self.autovacuum['count'], 'max_seconds': self.autovacuum['max_seconds'],
                                'slowest': list(self.autovacuum['slowest'])},
            'connection_failures': dict(sorted(self.connection_failures.items(), key=lambda kv: -kv[1])),
            'auth_failures': self.failed_logins.by_address()[:50] if self.failed_logins is not None else [],
            'restarts': sorted(self.restarts, key=lambda r: r['when'] or '')[-50:],
        }
