# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The log parser's pure parts: log_line_prefix compilation, the three formats, multi-line reports, gzip,
normalisation, pattern aggregation and merging. Real servers' logs are read in tests/integration."""

from __future__ import annotations

import datetime
import gzip
import io
import json

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import pglog as PL

UTC = datetime.timezone.utc


def entries(text, fmt='stderr', prefix=None, keep_all=False, zone=None):
    reader = PL.Reader(fmt, prefix, zone, keep_all=keep_all)
    data = text.encode('utf-8') if isinstance(text, str) else text
    found = list(reader.read(io.BytesIO(data)))
    return found, reader


@pytest.mark.parametrize('prefix, line, expect', [
    ('%m [%p] %q%u@%d %h ', '2026-12-03 10:00:00.123 UTC [42] app@crm 10.0.0.5 ERROR:  boom\n',
     {'pid': '42', 'user': 'app', 'database': 'crm', 'client': '10.0.0.5'}),
    ('%m [%p] %q%u@%d %h ', '2026-12-03 10:00:00.123 UTC [7] ERROR:  boom\n',   # %q: no session part
     {'pid': '7', 'user': None, 'database': None}),
    ('%t:%r:%u@%d:[%p]: ', '2026-12-03 10:00:00 CET:192.0.2.1(5432):app@crm:[9]: ERROR:  boom\n',
     {'pid': '9', 'client': '192.0.2.1', 'user': 'app'}),
    ('%n %e %-10u|', '1764756000.500 23505 app       |ERROR:  boom\n', {'sqlstate': '23505', 'user': 'app'}),
    ('%m %a [%p] ', '2026-12-03 10:00:00.123 UTC my app name [5] ERROR:  boom\n',
     {'application': 'my app name', 'pid': '5'}),
    ('%%%m [%p] %r ', '%2026-12-03 10:00:00.123 UTC [5] [local] ERROR:  boom\n', {'client': None, 'pid': '5'}),
])
def test_prefix_escapes(prefix, line, expect):
    found, reader = entries(line, prefix=prefix, zone=PL.zone_of('Europe/Berlin'))
    assert len(found) == 1 and found[0].message == 'boom'
    for name, value in expect.items():
        assert getattr(found[0], name) == value, name
    assert found[0].when is not None and reader.prefix_mismatch == 0


def test_prefix_times_and_zones():
    found, _reader = entries('2026-12-03 10:00:00 CET [1] ERROR:  x\n2026-12-03 10:00:00.5 +02 [1] ERROR:  y\n'
                             '1764756000.25 [1] ERROR:  z\n',
                             prefix='%t [%p] ', zone=PL.zone_of('Europe/Berlin'))
    assert found[0].when == datetime.datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    # the second line does not match %t (fraction): read by the loose reader, still with its offset
    assert found[1].when == datetime.datetime(2026, 12, 3, 8, 0, 0, 500000, tzinfo=UTC)
    found, _reader = entries('1764756000.25 [1] ERROR:  z\n', prefix='%n [%p] ')
    assert found[0].when == datetime.datetime.fromtimestamp(1764756000.25, UTC)


def test_prefix_errors():
    with pytest.raises(PL.LogFormatError, match='unknown escape %z'):
        PL.compile_prefix('%m %z ')
    with pytest.raises(PL.LogFormatError, match='ends inside an escape'):
        PL.compile_prefix('%m %')


def test_stderr_multiline_report_and_skipped_lines():
    text = ('2026-12-03 10:00:00.000 UTC [1] LOG:  duration: 5 ms  statement: SELECT\n'
            '\t1\n'
            '2026-12-03 10:00:00.000 UTC [1] DETAIL:  not attached to anything read\n'
            '2026-12-03 10:00:01.000 UTC [2] ERROR:  duplicate key value violates unique constraint "t_pkey"\n'
            '2026-12-03 10:00:01.000 UTC [2] DETAIL:  Key (id)=(1) already exists.\n'
            '2026-12-03 10:00:01.000 UTC [2] STATEMENT:  INSERT INTO t\n'
            '\tVALUES (1)\n'
            'garbage line\n'
            '2026-12-03 10:00:02.000 UTC [3] WARNING:  there is no transaction in progress\n'
            '2026-12-03 10:00:03.000 UTC [3] ERROR:  still being writ')
    found, reader = entries(text, prefix='%m [%p] ')
    assert [e.severity for e in found] == ['ERROR', 'WARNING']
    assert found[0].detail == 'Key (id)=(1) already exists.'
    assert found[0].statement == 'INSERT INTO t\nVALUES (1)'
    assert reader.unparsed == 1 and reader.lines == 9
    assert reader.end_offset == len(text) - len('2026-12-03 10:00:03.000 UTC [3] ERROR:  still being writ')


def test_loose_reader_without_prefix():
    found, _reader = entries('2026-12-03 11:00:00 CET [7] app@ims 192.0.2.44(50312) FATAL:  password '
                             'authentication failed for user "app"\n', zone=PL.zone_of('Europe/Berlin'))
    assert found[0].client == '192.0.2.44' and found[0].pid == '7'
    assert found[0].when == datetime.datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


CSV = ('2026-12-03 10:00:00.123 UTC,"app","crm",4242,"10.0.0.5:5000",6761a2f0.1092,3,"INSERT",'
       '2026-12-03 09:59:00 UTC,3/4,0,ERROR,23505,"duplicate key value violates unique constraint ""t_pkey""",'
       '"Key (id)=(1) already exists.",,,,,"INSERT INTO t\nVALUES (1)",,,"psql","client backend",,0\n'
       '2026-12-03 10:00:01.000 UTC,,,1,,6761a2f0.1,1,,2026-12-03 09:00:00 UTC,,0,LOG,00000,"duration: 1 ms",'
       ',,,,,,,,"","client backend",,0\n')


def test_csvlog_columns_and_quoted_newlines():
    found, reader = entries(CSV, fmt='csvlog')
    assert len(found) == 1 and reader.lines == 3
    entry = found[0]
    assert (entry.user, entry.database, entry.pid, entry.client, entry.sqlstate, entry.application) == \
        ('app', 'crm', '4242', '10.0.0.5', '23505', 'psql')
    assert entry.message == 'duplicate key value violates unique constraint "t_pkey"'
    assert entry.statement == 'INSERT INTO t\nVALUES (1)'
    assert entry.when == datetime.datetime(2026, 12, 3, 10, 0, 0, 123000, tzinfo=UTC)


def test_jsonlog_and_bad_lines():
    lines = [{'timestamp': '2026-12-03 10:00:00.000 UTC', 'user': 'app', 'dbname': 'crm', 'pid': 5,
              'remote_host': '10.0.0.9', 'error_severity': 'ERROR', 'state_code': '22012',
              'message': 'division by zero', 'statement': 'select 1/0'},
             {'timestamp': '2026-12-03 10:00:00.000 UTC', 'pid': 5, 'error_severity': 'LOG',
              'message': 'duration: 1 ms'}]
    text = '\n'.join(json.dumps(line, separators=(',', ':')) for line in lines) + '\n{not json\n[1]\n'
    found, reader = entries(text, fmt='jsonlog')
    assert [(e.severity, e.sqlstate, e.client, e.database) for e in found] == [('ERROR', '22012', '10.0.0.9', 'crm')]
    assert reader.unparsed == 2


def test_gzip_and_format_detection(tmp_path):
    path = tmp_path / 'postgresql.csv.gz'
    with gzip.open(str(path), 'wb') as handle:
        handle.write(CSV.encode())
    assert PL.detect_format(str(path)) == 'csvlog'
    assert PL.detect_format('x.log', b'{"timestamp":1}') == 'jsonlog'
    assert PL.detect_format('x.log', b'2026-12-03 10:00:00.123 UTC [1] LOG:  x') == 'stderr'
    with PL.open_log(str(path)) as handle:
        found = list(PL.Reader('csvlog').read(handle))
    assert found[0].sqlstate == '23505'


@pytest.mark.parametrize('message, pattern', [
    ('duplicate key value violates unique constraint "orders_pkey"',
     'duplicate key value violates unique constraint "..."'),
    ('relation "nope" does not exist at character 15', 'relation "..." does not exist'),
    ('column "x" does not exist', 'column "..." does not exist'),
    ('invalid input syntax for type integer: "abc"', 'invalid input syntax for type integer: ...'),
    ('permission denied for table secrets', 'permission denied for table ...'),
    ('value too long for type character varying(20)', 'value too long for type character varying(...)'),
    ('could not serialize access due to concurrent update', 'could not serialize access due to concurrent update'),
    ("canceling statement due to statement timeout after 30000 ms", 'canceling statement due to statement timeout '
                                                                    'after N ms'),
    ("invalid value 'abc' for parameter", "invalid value '...' for parameter"),
])
def test_normalize(message, pattern):
    assert PL.normalize(message) == pattern


def entry(message, when_minute=0, severity='ERROR', **kw):
    return PL.Entry(when=datetime.datetime(2026, 12, 3, 10, when_minute, tzinfo=UTC), severity=severity,
                    message=message, **kw)


def test_patterns_group_count_and_merge():
    first, second = PL.Patterns(), PL.Patterns()
    first.add(entry('relation "a" does not exist', 1, database='crm', user='app'))
    first.add(entry('relation "b" does not exist', 5, database='ims', user='app'))
    second.add(entry('relation "c" does not exist', 0, database='crm', user='bot'))
    second.add(entry('relation "c" does not exist', 0, severity='FATAL'))
    first.merge(second)
    rows = first.rows()
    assert [(r['severity'], r['count']) for r in rows] == [('ERROR', 3), ('FATAL', 1)]
    assert rows[0]['first_seen'] == '2026-12-03T10:00:00Z' and rows[0]['last_seen'] == '2026-12-03T10:05:00Z'
    assert rows[0]['databases'] == ['crm', 'ims'] and rows[0]['users'] == ['app', 'bot']
    assert rows[0]['example'] == 'relation "c" does not exist'  # the earliest example


def test_patterns_memory_is_bounded_and_known_patterns_are_not_new():
    patterns = PL.Patterns(max_patterns=3)
    for i in range(10):
        patterns.add(entry('error number %s' % ('x' * i)))
    assert len(patterns.items) == 3 and patterns.dropped == 7
    known = PL.Patterns(known=[PL.pattern_key('ERROR', 'division by zero')])
    known.add(entry('division by zero'))
    known.add(entry('out of memory'))
    assert [(r['pattern'], r['new']) for r in known.rows()] == [('division by zero', False), ('out of memory', True)]
    assert [r['pattern'] for r in known.new_rows()] == ['out of memory']


def test_review_window_events_and_future_entries():
    since = datetime.datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    review = PL.Review(since, datetime.datetime(2026, 12, 3, 11, 0, tzinfo=UTC))
    review.feed(PL.Entry(when=datetime.datetime(2026, 12, 3, 8, 0, tzinfo=UTC), severity='PANIC', message='old'))
    review.feed(PL.Entry(when=datetime.datetime(2026, 12, 4, 8, 0, tzinfo=UTC), severity='ERROR', message='future'))
    review.feed(entry('deadlock detected', sqlstate='40P01'))
    review.feed(entry('process 12 still waiting for ShareLock on transaction 7 after 1500.5 ms', severity='LOG'))
    review.feed(entry('temporary file: path "base/pgsql_tmp/pgsql_tmp1.0", size 2048', severity='LOG'))
    review.feed(entry('server process (PID 77) was terminated by signal 9: Killed', severity='LOG'))
    review.feed(entry('terminating connection due to administrator command', severity='FATAL'))
    review.feed(entry('could not open file "base/1/2": No such file or directory', severity='FATAL'))
    assert review.severities == {'PANIC': 0, 'FATAL': 2, 'ERROR': 1, 'WARNING': 0}
    assert review.future == 1 and review.fatal_other == 1
    events = review.events()
    assert events['deadlocks'] == 1 and events['lock_waits'] == {'count': 1, 'max_ms': 1500.5}
    assert events['temp_files']['total_bytes'] == 2048
    assert [r['kind'] for r in events['restarts']] == ['crash']
    assert review.hourly_rows() == [{'hour': '2026-12-03T10:00:00Z', 'errors': 3}]
