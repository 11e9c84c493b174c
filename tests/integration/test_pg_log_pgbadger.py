# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_log_info cross-checked with pgBadger: real PostgreSQL 18 and 15 servers write known errors to stderr, csvlog and
jsonlog files at once (tests/pglogs.py), and both tools read the same files. Totals per severity and every pattern's
count must agree with each other *and* with what the generator raised, so that both tools being wrong the same way
fails too.

pgBadger 12 (Debian 12) reads all three formats: ``-f jsonlog`` understands PostgreSQL 15+'s own jsonlog (its
``error_severity``, ``message``, ``state_code`` fields). Where its normalisation differs from ours, the difference is
spelt out below (``OURS`` / ``pglogs.KNOWN``'s ``pgbadger`` column) rather than hidden by a looser comparison.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

import pglogs
from modrunner import run_module

FORMATS = ('stderr', 'csvlog', 'jsonlog')

# Our pattern for each generated error. It is pgBadger's normalize_error text (pglogs.KNOWN[...].pgbadger) except
# where we normalise more: numbers outside quotes become N, so that RAISE messages with an order or item number are
# one pattern for us and one pattern per number for pgBadger (which keeps bare numbers). PGBADGER_SPLIT maps them.
OURS = {
    'division_by_zero': 'division by zero',
    'unique_violation': 'duplicate key value violates unique constraint "..."',
    'undefined_table': 'relation "..." does not exist',
    'invalid_text': 'invalid input syntax for type integer: ...',
    'undefined_column': 'column "..." does not exist',
    'raise_exception': 'order N failed',
    'syntax_error': 'syntax error at or near "..."',
    'deadlock': 'deadlock detected',
    'statement_timeout': 'canceling statement due to statement timeout',
    'auth_failed': 'password authentication failed for user "..."',
    'no_database': 'database "..." does not exist',
    'no_transaction': 'there is no transaction in progress',
    'raise_warning': 'low stock for item N',
}
PGBADGER_SPLIT = {
    'raise_exception': ['order %d failed' % n for n in pglogs.RAISE_NUMBERS['raise_exception']],
    'raise_warning': ['low stock for item %d' % n for n in pglogs.RAISE_NUMBERS['raise_warning']],
}


@pytest.fixture(scope='module')
def logs(spawn_server):
    if shutil.which('pgbadger') is None:
        pytest.fail('pgbadger is required for the cross-check (Debian packages pgbadger and libjson-xs-perl; '
                    'make test installs them)')
    return pglogs.generate(spawn_server)


@pytest.fixture(scope='module')
def ours(logs):
    """pg_log_info's result for each format of the same server's log."""
    results = {}
    for fmt in FORMATS:
        result = run_module('pg_log_info', {'log_path': logs.files[fmt], 'log_format': fmt, 'read_settings': False,
                                            'log_line_prefix': logs.prefix, 'log_timezone': 'UTC', 'top': 50})
        assert result.rc == 0 and not result.failed, result.raw
        results[fmt] = result
    return results


@pytest.fixture(scope='module')
def theirs(logs, tmp_path_factory):
    """pgBadger's JSON report for each format."""
    out = tmp_path_factory.mktemp('pgbadger')
    return dict((fmt, pglogs.run_pgbadger(logs.files[fmt], fmt, str(out / ('%s.json' % fmt)))) for fmt in FORMATS)


def our_patterns(result):
    """{(severity, pattern): row} of our top errors."""
    rows = {}
    for row in result['top_errors']:
        key = (row['severity'], row['pattern'])
        assert key not in rows, 'pattern %s listed twice' % (key,)
        rows[key] = row
    return rows


def test_the_generated_files_are_real_server_logs(logs):
    """The three destinations exist and carry the same reports (a guard for the generator itself)."""
    assert sorted(logs.files) == sorted(FORMATS)
    for fmt, path in logs.files.items():
        assert os.path.getsize(path) > 0, fmt
    with open(logs.files['stderr']) as handle:
        text = handle.read()
    for known in pglogs.KNOWN:
        example = re.escape(known.example)
        assert len(re.findall(r' %s:  %s' % (known.severity, example), text)) >= 1, known.key


@pytest.mark.parametrize('fmt', FORMATS)
def test_totals_per_severity_agree_with_pgbadger_and_the_generator(logs, ours, theirs, fmt):
    expected = pglogs.severity_totals()
    assert expected == {'PANIC': 0, 'FATAL': 5, 'ERROR': 32, 'WARNING': 5}
    assert ours[fmt]['severities'] == expected
    # pgBadger's error report also holds LOG lines it promotes to ERROR (here the four "still waiting for" lock waits
    # and "database system was shut down at ..."); pglogs.pgbadger_severities leaves them out - see PGBADGER_EVENTS.
    assert pglogs.pgbadger_severities(theirs[fmt]) == expected
    promoted = sum(item['count'] for per_db in theirs[fmt]['error_info'].values() for key, item in per_db.items()
                   if any(event in key for event in pglogs.PGBADGER_EVENTS))
    assert promoted == logs.events['lock_waits'] + 1


@pytest.mark.parametrize('fmt', FORMATS)
def test_every_pattern_count_agrees_with_pgbadger_and_the_generator(logs, ours, theirs, fmt):
    mine = our_patterns(ours[fmt])
    badger = pglogs.pgbadger_patterns(theirs[fmt])
    for known in pglogs.KNOWN:
        row = mine.get((known.severity, OURS[known.key]))
        assert row is not None, '%s: no pattern %r among %s' % (known.key, OURS[known.key], sorted(mine))
        assert row['count'] == known.count, known.key
        if known.pgbadger is not None:
            assert known.pgbadger == OURS[known.key], 'the two normalisations agree on %s' % known.key
            assert badger.get((known.severity, known.pgbadger)) == known.count, (known.key, badger)
        else:
            # pgBadger keeps the number: one pattern per value, each seen once; together they are our one pattern.
            split = dict((text, badger.get((known.severity, text))) for text in PGBADGER_SPLIT[known.key])
            assert split == dict.fromkeys(PGBADGER_SPLIT[known.key], 1), (known.key, badger)
            assert sum(split.values()) == row['count']
        if fmt != 'stderr':  # the stderr prefix has no %e: the SQLSTATE is in the csvlog and jsonlog records only
            assert row['sqlstate'] == known.sqlstate, known.key
    # Nothing else: every error the servers wrote is one the generator raised.
    assert ours[fmt]['patterns_total'] == len(pglogs.KNOWN)
    assert len(badger) == len(pglogs.KNOWN) - len(PGBADGER_SPLIT) + sum(len(v) for v in PGBADGER_SPLIT.values())


@pytest.mark.parametrize('fmt', FORMATS)
def test_the_ranked_patterns_are_the_same(ours, theirs, fmt):
    """Both rankings, pattern by pattern, once pgBadger's split patterns are added up as PGBADGER_SPLIT says."""
    mapped = {}
    for (severity, text), count in pglogs.pgbadger_patterns(theirs[fmt]).items():
        key = next((k for k, texts in PGBADGER_SPLIT.items() if text in texts), None)
        text = OURS[key] if key else text
        mapped[(severity, text)] = mapped.get((severity, text), 0) + count
    mine = [(row['count'], row['severity'], row['pattern']) for row in ours[fmt]['top_errors']]
    assert sorted(mine, reverse=True) == sorted(((c, s, t) for (s, t), c in mapped.items()), reverse=True)
    assert [count for count, _severity, _pattern in mine] == sorted((c for c, _s, _p in mine), reverse=True)
    assert [count for count, _severity, _pattern in mine[:4]] == [7, 5, 4, 4]


@pytest.mark.parametrize('fmt', FORMATS)
def test_who_and_where_of_a_pattern(logs, ours, fmt):
    rows = our_patterns(ours[fmt])
    deadlock = rows[('ERROR', OURS['deadlock'])]
    assert deadlock['databases'] == [pglogs.APP_DB] and deadlock['users'] == [pglogs.APP_USER]
    assert deadlock['clients'] == ['127.0.0.1']
    assert deadlock['first_seen'] <= deadlock['last_seen']
    auth = rows[('FATAL', OURS['auth_failed'])]
    assert sorted(auth['users']) == sorted([pglogs.APP_USER, 'ghost'])
    assert sorted(auth['databases']) == sorted([pglogs.APP_DB, 'postgres'])


@pytest.mark.parametrize('fmt', FORMATS)
def test_lock_waits_deadlocks_and_temporary_files_agree_with_pgbadger(logs, ours, theirs, fmt):
    events = ours[fmt]['events']
    assert events['deadlocks'] == logs.events['deadlocks']
    assert events['lock_waits']['count'] == logs.events['lock_waits']
    assert events['lock_waits']['max_ms'] >= pglogs.DEADLOCK_TIMEOUT_MS
    assert events['temp_files']['count'] == logs.events['temp_files']
    locks = sum(lock['count'] for per_db in theirs[fmt]['lock_info'].values() for lock in per_db.values())
    assert locks == logs.events['lock_waits']
    temp = sum(per_db['count'] for per_db in theirs[fmt]['tempfile_info'].values())
    assert temp == logs.events['temp_files']
    assert sum(per_db['size'] for per_db in theirs[fmt]['tempfile_info'].values()) == events['temp_files']['total_bytes']


def test_the_three_formats_give_the_same_review(ours):
    """stderr (through the prefix), csvlog and jsonlog of one server: the same patterns, counts and severities."""
    def summary(result):
        return (result['severities'], sorted((r['severity'], r['pattern'], r['count']) for r in result['top_errors']))

    assert summary(ours['csvlog']) == summary(ours['stderr'])
    assert summary(ours['jsonlog']) == summary(ours['stderr'])
