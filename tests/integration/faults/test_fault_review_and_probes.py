# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults pg_inspect_info, http_health_info and tls_cert_info survive, each named after the fault, against real
PostgreSQL 18 and 15 servers and real local HTTP(S) servers:

- pg_inspect_info with only a critical level (``{warning: null, critical: N}``) for seq_scans, table_bloat or
  table_cache_hit reports the table past that level, never a critical "all is fine" summary (nor a message
  with "None" for the level);
- pg_inspect_info does not report two indexes as duplicates when they differ only in collation or sort order;
- http_health_info's JSON expectation keeps the JSON types apart (``true`` is not ``1``, ``false`` is not ``0``);
- http_health_info refuses an endpoint whose latency levels contradict the module's (``latency_critical_ms``
  below the default warning level) as invalid options, before any request, instead of failing after the probes;
- tls_cert_info refuses port 0 instead of probing the default port.
"""

from __future__ import annotations

import pytest

from conftest import wait_until
from modrunner import run_module
from webserver import LocalServer, Route

SMALL = dict(min_table_size='1MB', min_cache_blocks=100)


def by_object(result, name):
    return dict((c['object'], c) for c in result['checks'] if c['name'] == name)


def checks_of(result, endpoint):
    return dict((c['name'], c) for c in result['checks'] if c['object'] == 'endpoint=%s' % endpoint)


def no_none_in_messages(result):
    return [c['message'] for c in result['checks'] if 'None' in c['message']]


# --- pg_inspect_info: a critical level without a warning level ------------------------------------------

def test_fault_seq_scans_with_only_a_critical_level(target):
    """A table read only by sequential scans, with ``seq_scans: {warning: null, critical: 50}``: the table is
    the critical finding; no "no table is read mostly by sequential scans" summary comes out critical."""
    target.sql('CREATE TABLE scanned (id int, payload text)')
    target.sql("INSERT INTO scanned SELECT g, md5(g::text) || md5(g::text) FROM generate_series(1, 30000) g")
    target.sql('ANALYZE scanned')
    for _scan in range(3):
        target.sql("SELECT count(*) FROM scanned WHERE payload LIKE 'abc%'")
    assert wait_until(lambda: target.sql("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'scanned'")[0][0] >= 3)
    result = target.run('pg_inspect_info', sections=['seq_scans'], thresholds={'seq_scans': {'warning': None, 'critical': 50}},
                        **SMALL)
    assert result.rc == 0, result.raw
    found = by_object(result, 'seq_scans')
    assert list(found) == ['table=public.scanned'], found
    check = found['table=public.scanned']
    assert check['status'] == 'critical' and check['value'] == 100.0 and 'critical threshold: above 50' in check['message']
    # the quiet side: below the critical level, the summary is ok
    quiet = target.run('pg_inspect_info', sections=['seq_scans'],
                       thresholds={'seq_scans': {'warning': None, 'critical': 100}}, **SMALL)
    assert [c['status'] for c in quiet['checks'] if c['name'] == 'seq_scans'] == ['ok'], quiet['checks']


def test_fault_table_bloat_with_only_a_critical_level(target):
    """A table with most of its pages dead space, with ``table_bloat: {warning: null, critical: 50}``: the table
    is the critical finding, and no message says "more than None% bloated"."""
    target.sql('CREATE TABLE churn (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false)')
    target.sql("INSERT INTO churn SELECT g, repeat('x', 100) FROM generate_series(1, 80000) g")
    target.sql('DELETE FROM churn WHERE id % 5 <> 0')
    target.sql('VACUUM ANALYZE churn')  # dead space stays in the pages: the table keeps its size
    result = target.run('pg_inspect_info', sections=['bloat'], **dict(SMALL, thresholds={
        'table_bloat': {'warning': None, 'critical': 50}, 'index_bloat': {'warning': None, 'critical': 99.9}}))
    assert result.rc == 0, result.raw
    tables = by_object(result, 'table_bloat')
    assert list(tables) == ['table=public.churn'], tables
    assert tables['table=public.churn']['status'] == 'critical' and tables['table=public.churn']['value'] > 50
    indexes = [c for c in result['checks'] if c['name'] == 'index_bloat']
    assert [c['status'] for c in indexes] == ['ok'], indexes  # no index is 99.9 % bloated: the summary names the level
    assert 'is more than 99.9% bloated' in indexes[0]['message'], indexes
    assert not no_none_in_messages(result), no_none_in_messages(result)


def test_fault_table_cache_hit_with_only_a_critical_level(spawn_server):
    """A table that cannot stay in shared buffers, with ``table_cache_hit: {warning: null, critical: 60}`` (below
    is bad): the table is the critical finding; no "every table is served from shared buffers" summary comes out
    critical."""
    srv = spawn_server(settings={'shared_buffers': "'1MB'"})
    srv.execute('CREATE TABLE big (id int, payload text)')
    srv.execute("INSERT INTO big SELECT g, md5(g::text) || md5(g::text) FROM generate_series(1, 100000) g")
    srv.execute('ANALYZE')
    srv.execute('SELECT pg_stat_reset()')
    for _scan in range(3):
        srv.execute("SELECT count(*) FROM big WHERE payload LIKE 'abc%'")
    assert wait_until(lambda: srv.execute("SELECT heap_blks_read FROM pg_statio_user_tables WHERE relname = 'big'")[0][0]
                      >= 100)
    result = run_module('pg_inspect_info', dict(srv.login_args(), sections=['cache'], **dict(SMALL, thresholds={
        'table_cache_hit': {'warning': None, 'critical': 60}})))
    assert result.rc == 0, result.raw
    found = by_object(result, 'table_cache_hit')
    assert 'table=public.big' in found, found
    assert found['table=public.big']['status'] == 'critical' and found['table=public.big']['value'] < 60
    assert 'critical threshold: below 60' in found['table=public.big']['message']
    assert all(obj.startswith('table=') for obj in found), found  # no summary next to the tables that fired


# --- pg_inspect_info: duplicate indexes ------------------------------------------------------------------

def test_fault_indexes_differing_in_collation_or_order_are_not_duplicates(target):
    """Indexes on the same column with another collation (COLLATE "C") or sort order (DESC, NULLS FIRST) serve
    other queries: not duplicates. A true duplicate next to them is still reported."""
    target.sql('CREATE TABLE people (id int PRIMARY KEY, name text, age int)')
    target.sql('CREATE INDEX people_name ON people (name)')
    target.sql('CREATE INDEX people_name_c ON people (name COLLATE "C")')
    target.sql('CREATE INDEX people_age ON people (age)')
    target.sql('CREATE INDEX people_age_desc ON people (age DESC)')
    target.sql('CREATE INDEX people_age_nulls_first ON people (age NULLS FIRST)')
    target.sql('CREATE INDEX people_age_desc_again ON people (age DESC)')
    result = target.run('pg_inspect_info', sections=['index_usage'])
    assert result.rc == 0, result.raw
    duplicates = by_object(result, 'duplicate_index')
    assert list(duplicates) == ['index=public.people_age_desc_again'], duplicates
    assert result['sections']['index_usage']['duplicates'] == [
        {'keep': 'public.people_age_desc', 'redundant': ['public.people_age_desc_again'], 'bytes': 8192}]


# --- http_health_info ------------------------------------------------------------------------------------

@pytest.fixture
def app():
    routes = {'/flags': Route(200, {'ok': True, 'count': 0, 'nested': {'items': [1, False]}})}
    with LocalServer(routes) as server:
        yield server


def test_fault_json_expectation_keeps_true_apart_from_1(app):
    """``json: {ok: 1}`` does not accept ``{"ok": true}``, ``json: {count: false}`` not ``{"count": 0}``, and the
    same within arrays; the expectations of the right types are met."""
    url = app.url + '/flags'
    result = run_module('http_health_info', {'endpoints': [
        {'name': 'one_for_true', 'url': url, 'json': {'ok': 1}},
        {'name': 'false_for_zero', 'url': url, 'json': {'count': False}},
        {'name': 'nested', 'url': url, 'json': {'nested.items': [True, 0]}},
        {'name': 'typed', 'url': url, 'json': {'ok': True, 'count': 0, 'nested.items': [1.0, False]}},
    ]})
    assert result.rc == 0, result.raw
    expected = {'one_for_true': 'ok is true, expected 1', 'false_for_zero': 'count is 0, expected false',
                'nested': 'nested.items is [1, false], expected [true, 0]'}
    for name, problem in expected.items():
        content = checks_of(result, name)['http_content']
        assert content['status'] == 'critical' and problem in content['message'], content
    assert checks_of(result, 'typed')['http_content']['status'] == 'ok'


@pytest.mark.parametrize('endpoint, thresholds, message', [
    ({'latency_critical_ms': 90}, {},
     'warning threshold 500 is above the critical threshold 90.0'),
    ({'latency_warning_ms': 200}, {'http_latency': {'warning': None, 'critical': 100}},
     'warning threshold 200.0 is above the critical threshold 100'),
], ids=['critical_below_the_default_warning', 'warning_above_the_module_critical'])
def test_fault_endpoint_latency_levels_contradicting_the_module_are_invalid_options(app, endpoint, thresholds, message):
    """An endpoint's own latency level that contradicts the module's other level fails as invalid options that
    name the endpoint, before any request; it does not pass validation and then fail after the probes."""
    result = run_module('http_health_info', {'thresholds': thresholds, 'endpoints': [
        dict({'name': 'tight', 'url': app.url + '/flags'}, **endpoint)]})
    assert result.failed, result.raw
    assert result['msg'].startswith('invalid options: ') and message in result['msg'], result['msg']
    assert 'endpoint tight' in result['msg'] and 'thresholds.http_latency' in result['msg'], result['msg']
    assert app.requests == []
    # levels consistent with the module's are accepted, and the endpoint is probed
    fine = run_module('http_health_info', {'thresholds': thresholds, 'endpoints': [
        {'name': 'tight', 'url': app.url + '/flags', 'latency_warning_ms': 50, 'latency_critical_ms': 90}]})
    assert fine.rc == 0 and checks_of(fine, 'tight')['http_latency']['critical'] == 90, fine.raw
    assert len(app.requests) == 1


# --- tls_cert_info -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('endpoint', ['https://127.0.0.1:0', 'postgresql://127.0.0.1:0', '127.0.0.1:0'])
def test_fault_tls_port_0_is_refused_not_the_default_port(endpoint):
    """An explicit port 0 is refused as invalid options; it is not read as "no port" and the default port probed."""
    result = run_module('tls_cert_info', {'endpoints': [endpoint]})
    assert result.failed, result.raw
    assert result['msg'].startswith('invalid options: %s: port 0 ' % endpoint), result['msg']
    assert 'use 1 to 65535' in result['msg']
    assert 'certificates' not in result


@pytest.mark.parametrize('url', ['http://127.0.0.1:0/health', 'https://127.0.0.1:0/', 'http://127.0.0.1:99999/'])
def test_fault_http_port_0_is_refused_not_the_default_port(url):
    """http_health_info refuses an explicit port 0 (or one out of range) before probing, like tls_cert_info."""
    result = run_module('http_health_info', {'endpoints': [{'name': 'bad', 'url': url}]})
    assert result.failed, result.raw
    assert result['msg'].startswith('invalid options: endpoints[0] (bad): url %s has no valid port' % url), result['msg']
    assert 'endpoints' not in result
