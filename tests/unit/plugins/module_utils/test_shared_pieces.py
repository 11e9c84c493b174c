# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The helpers every module shares: the findings collector, renamed thresholds, the certificate expiry finding,
the TLS client context, the database error text and the pg_stat_statements columns."""

from __future__ import annotations

import datetime
import ssl

import psycopg2
import pytest
from psycopg2 import sql

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import health as H
from ansible_collections.appcare.maintenance.plugins.module_utils import probe as P
from ansible_collections.appcare.maintenance.plugins.module_utils import statements as ST
from ansible_collections.appcare.maintenance.plugins.module_utils import tlsinfo as T
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ThresholdError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import db_error_text

THRESHOLDS = C.merge_thresholds({'lag': {'warning': 10, 'critical': 60, 'direction': C.ABOVE, 'unit': 'seconds'}}, {})


def test_findings_collector_defaults_the_object_and_judges_with_the_thresholds():
    found = C.Findings(THRESHOLDS, 'db=ims')
    found.ok('lint', 'nothing to lint')
    found.add('role', C.WARNING, 'role x is odd', obj='role=x')
    judged = found.judge('lag', 30, 'lag {value} s')
    found.unknown('lag', 'cannot read the lag')
    assert [f['name'] for f in found] == ['lint', 'role', 'lag', 'lag']
    assert found[0] == C.finding('lint', C.OK, 'nothing to lint', value=0, unit='count', obj='db=ims')
    assert found[1]['object'] == 'role=x'
    assert judged is found[2] and judged['status'] == C.WARNING and judged['unit'] == 'seconds'
    assert judged['message'] == 'lag 30 s (warning threshold: above 10)' and judged['object'] == 'db=ims'
    assert found[3]['status'] == C.UNKNOWN and found[3]['warning'] == 10 and found[3]['critical'] == 60
    assert found.status == C.WARNING and isinstance(found, list)


def test_judge_and_unknown_are_the_collector_s_rules():
    assert C.judge(THRESHOLDS, 'lag', 61, 'lag {value} s', 'server') == C.evaluate(
        'lag', 61, 10, 60, C.ABOVE, 'seconds', 'server', 'lag {value} s')
    assert C.unknown({}, 'other', 'no way to tell')['unit'] is None


def test_renamed_thresholds_are_accepted_with_a_notice_and_not_twice():
    overrides, notices = C.renamed_thresholds({'days_left': {'warning': 45}, 'other': {}}, T.RENAMED_THRESHOLDS)
    assert overrides == {'tls_expiry': {'warning': 45}, 'other': {}}
    assert len(notices) == 1 and 'thresholds.days_left is now thresholds.tls_expiry' in notices[0]
    assert C.renamed_thresholds({'tls_expiry': {}}, T.RENAMED_THRESHOLDS) == ({'tls_expiry': {}}, [])
    with pytest.raises(ThresholdError, match='not both'):
        C.renamed_thresholds({'certificate': {}, 'tls_expiry': {}}, P.RENAMED_THRESHOLDS)


@pytest.mark.parametrize('renamed, defaults, prefix', [
    (T.RENAMED_THRESHOLDS, T.DEFAULT_THRESHOLDS, 'tls_'),
    (P.RENAMED_THRESHOLDS, P.DEFAULT_THRESHOLDS, None),
    (H.RENAMED_THRESHOLDS, H.DEFAULT_THRESHOLDS, None),
])
def test_every_renamed_threshold_leads_to_a_check_with_thresholds(renamed, defaults, prefix):
    for old, new in renamed.items():
        assert new in defaults and old not in defaults, (old, new)
    if prefix:
        assert all(name.startswith(prefix) for name in defaults)


def test_http_findings_are_http_or_tls():
    assert all(name.startswith('http_') or name == T.EXPIRY for name in P.DEFAULT_THRESHOLDS)


def test_one_expiry_finding_for_both_modules():
    assert T.EXPIRY in P.DEFAULT_THRESHOLDS and P.DEFAULT_THRESHOLDS[T.EXPIRY] == T.DEFAULT_THRESHOLDS[T.EXPIRY]
    thresholds = C.merge_thresholds(T.DEFAULT_THRESHOLDS, {})
    soon = T.expiry_finding(thresholds, 5.5, '2026-12-01T00:00:00+00:00', 'the certificate of app', 'endpoint=app')
    assert soon['name'] == 'tls_expiry' and soon['status'] == C.CRITICAL and soon['unit'] == 'days'
    assert soon['message'].startswith('the certificate of app expires in 5.5 days, on 2026-12-01T00:00:00+00:00')
    fine = T.expiry_finding(thresholds, 90, 'later', 'the certificate of app', 'endpoint=app')
    assert fine['status'] == C.OK
    # expired: critical whatever the thresholds say, and said plainly
    lax = C.merge_thresholds(T.DEFAULT_THRESHOLDS, {'tls_expiry': {'warning': None, 'critical': None}})
    gone = T.expiry_finding(lax, -2.0, '2026-01-01T00:00:00+00:00', 'the certificate of app', 'endpoint=app')
    assert gone['status'] == C.CRITICAL and gone['message'] == 'the certificate of app expired on 2026-01-01T00:00:00+00:00'
    assert gone['value'] == -2.0


def test_days_left():
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    assert T.days_left(now + datetime.timedelta(days=3, hours=12), now) == 3.5
    assert T.days_left(now - datetime.timedelta(days=1), now) == -1.0


def test_client_context():
    strict = T.client_context()
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    chain_only = T.client_context(check_hostname=False)
    assert chain_only.verify_mode == ssl.CERT_REQUIRED and not chain_only.check_hostname
    relaxed = T.client_context(verify=False)
    assert relaxed.verify_mode == ssl.CERT_NONE and not relaxed.check_hostname


class PgError(psycopg2.Error):
    def __init__(self, message, code):
        super().__init__(message)
        self.message, self.code = message, code

    @property
    def pgerror(self):
        return self.message

    @property
    def pgcode(self):
        return self.code


def test_db_error_text_names_the_timeout_that_cancelled():
    cancelled = PgError('ERROR:  canceling statement due to statement timeout\n', '57014')
    assert db_error_text(cancelled) == 'ERROR: canceling statement due to statement timeout'
    assert db_error_text(cancelled, 'operation_timeout') == ('cancelled after operation_timeout: ERROR: canceling '
                                                             'statement due to statement timeout')
    assert db_error_text(PgError('ERROR:  permission denied\n', '42501'), 'operation_timeout') == \
        'ERROR: permission denied'


class Recorder(object):
    def __init__(self):
        self.queries = []

    def query(self, query, args=None):
        self.queries.append((query, args))
        return []


def identifiers(composed):
    found = []
    for part in getattr(composed, 'seq', []):
        if isinstance(part, sql.Identifier):
            found.append(part.strings)
        else:
            found.extend(identifiers(part))
    return found


@pytest.mark.parametrize('exec_columns, mean, total, maximum', [
    (True, 'mean_exec_time', 'total_exec_time', 'max_exec_time'),
    (False, 'mean_time', 'total_time', 'max_time'),
])
def test_statements_columns_follow_the_extension_version(exec_columns, mean, total, maximum):
    session = Recorder()
    ST.top(session, {'schema': 'Monitoring', 'exec_columns': exec_columns, 'has_info': False}, 'total', 7)
    query, args = session.queries[0]
    names = identifiers(query)
    assert ('Monitoring',) in names  # the schema is an identifier, never pasted text
    assert (total,) in names and (mean,) in names and (maximum,) in names
    assert args == (7,)
    assert ST.stats_reset(session, {'schema': 'x', 'has_info': False}) is None
    with pytest.raises(ValueError):
        ST.top(session, {'schema': 'x', 'exec_columns': True}, 'calls', 1)
