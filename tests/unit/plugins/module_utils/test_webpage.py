# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""web_page_info's pure logic: CLS session windows, TBT from long tasks, medians, option checks, findings."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import webpage as W
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError, DependencyError

# --- CLS: session windows (web-vitals: a gap below 1 s joins the window, a window is below 5 s long) ---------------


@pytest.mark.parametrize('shifts, expected', [
    ([], 0.0),
    ([(100, 0.05)], 0.05),
    # Three shifts 500 ms apart: one window.
    ([(100, 0.05), (600, 0.05), (1100, 0.05)], 0.15),
    # A gap of exactly 1 s starts a new window (the gap must be below 1 s); the larger window counts.
    ([(100, 0.05), (1100, 0.02), (1500, 0.02)], 0.05),
    ([(100, 0.01), (1100, 0.04), (1500, 0.04)], 0.08),
    # Shifts every 900 ms: the window closes once it would reach 5 s from its first shift.
    ([(i * 900.0, 0.01) for i in range(12)], 0.06),
    # Order of arrival does not matter.
    ([(1100, 0.05), (100, 0.05), (600, 0.05)], 0.15),
    # Two bursts far apart: the worse burst, not the sum of both.
    ([(100, 0.2), (200, 0.1), (8000, 0.25)], 0.3),
])
def test_cls_session_windows(shifts, expected):
    assert W.cls_from_shifts(shifts) == pytest.approx(expected)


# --- TBT: the part beyond 50 ms of each long task, clipped to [FCP, end] --------------------------------------------

@pytest.mark.parametrize('tasks, start, end, expected', [
    ([], 100, 5000, 0.0),
    ([(1000, 400)], 100, 5000, 350.0),
    ([(1000, 50)], 100, 5000, 0.0),  # exactly 50 ms blocks nothing
    ([(1000, 60), (2000, 120), (3000, 30)], 100, 5000, 80.0),
    # A task that began before FCP counts from FCP on (Lighthouse clips it).
    ([(0, 300)], 100, 5000, 150.0),
    ([(0, 140)], 100, 5000, 0.0),
    # ... and one that ends after the end of the measurement up to the end.
    ([(4800, 400)], 100, 5000, 150.0),
    ([(6000, 400)], 100, 5000, 0.0),
])
def test_tbt_from_long_tasks(tasks, start, end, expected):
    assert W.tbt_from_tasks(tasks, start, end) == pytest.approx(expected)


def test_tbt_unknown_without_fcp():
    assert W.tbt_from_tasks([(100, 400)], None, 5000) is None


@pytest.mark.parametrize('values, expected', [
    ([], None),
    ([None, None], None),
    ([3, 1, 2], 2),
    ([4, 1, 2, 3], 2.5),
    ([10, 30], 20),  # an integer median of integers stays an integer
    ([1.5, None, 2.5, 9.0], 2.5),
    ([0.1, 0.3333, 0.2], 0.2),
])
def test_median(values, expected):
    assert W.median(values) == expected


def test_summarize_uses_measured_runs_only():
    runs = [dict(measured=True, lcp_ms=100.0, cls=0.0, requests=3),
            dict(measured=True, lcp_ms=300.0, cls=0.2, requests=5),
            dict(measured=True, lcp_ms=200.0, cls=0.1, requests=4),
            dict(measured=False, lcp_ms=9999.0, cls=9.0, requests=1)]
    summary = W.summarize(runs)
    assert summary['runs'] == 3
    assert summary['lcp_ms'] == 200.0 and summary['cls'] == 0.1 and summary['requests'] == 4
    assert summary['tbt_ms'] is None


def test_figures_from_raw_entries_keep_only_numbers():
    vitals = {'fcp': 120.0, 'lcp': 800.25, 'ttfb': 30.04, 'load': 900.0, 'now': 2000.0,
              'shifts': [[300, 0.2], [400, 0.1], ['x', 1], [500], True], 'tasks': [[1000, 400], [1, 'a']],
              'lcpElement': 'img https://example.org/hero.png'}
    figures = W.figures_from(vitals, None)
    assert figures['cls'] == pytest.approx(0.3)
    assert figures['tbt_ms'] == 350.0
    assert figures['lcp_ms'] == 800.2 or figures['lcp_ms'] == 800.3
    assert figures['ttfb_ms'] == 30.0 and figures['load_ms'] == 900.0
    assert figures['lcp_element'] == 'img https://example.org/hero.png'
    # A page that broke the getter's answer: figures unknown, not a crash.
    broken = W.figures_from({'fcp': 'soon', 'shifts': 'many'}, None)
    assert broken['fcp_ms'] is None and broken['cls'] == 0.0 and broken['tbt_ms'] is None


# --- the network record of a load ---------------------------------------------------------------------------------

def test_load_counts_bytes_failures_and_ignores_cancels_and_favicon():
    load = W.Load()
    events = [
        ('Network.requestWillBeSent', {'requestId': 'doc', 'type': 'Document', 'request': {'url': 'https://a/'}}),
        ('Network.requestWillBeSent', {'requestId': 'doc', 'type': 'Document', 'request': {'url': 'https://a/home'},
                                       'redirectResponse': {'status': 301, 'encodedDataLength': 100}}),
        ('Network.responseReceived', {'requestId': 'doc', 'response': {'status': 200}}),
        ('Network.loadingFinished', {'requestId': 'doc', 'encodedDataLength': 5000}),
        ('Network.requestWillBeSent', {'requestId': 'img', 'type': 'Image', 'request': {'url': 'https://a/x.png'}}),
        ('Network.responseReceived', {'requestId': 'img', 'response': {'status': 404}}),
        ('Network.loadingFinished', {'requestId': 'img', 'encodedDataLength': 300}),
        ('Network.requestWillBeSent', {'requestId': 'js', 'type': 'Script', 'request': {'url': 'https://b/a.js'}}),
        ('Network.loadingFailed', {'requestId': 'js', 'errorText': 'net::ERR_NAME_NOT_RESOLVED'}),
        ('Network.requestWillBeSent', {'requestId': 'gone', 'type': 'Image', 'request': {'url': 'https://a/y.png'}}),
        ('Network.loadingFailed', {'requestId': 'gone', 'errorText': 'net::ERR_ABORTED', 'canceled': True}),
        ('Network.requestWillBeSent', {'requestId': 'data', 'type': 'Image', 'request': {'url': 'data:image/png;x'}}),
        ('Network.requestWillBeSent', {'requestId': 'fav', 'type': 'Other', 'request': {'url': 'https://a/favicon.ico'}}),
        ('Network.requestWillBeSent', {'requestId': 'slow', 'type': 'Image', 'request': {'url': 'https://a/slow'}}),
        ('Runtime.consoleAPICalled', {'type': 'error', 'args': [{'type': 'string', 'value': 'boom'},
                                                                {'type': 'object', 'description': 'Object'}]}),
        ('Runtime.consoleAPICalled', {'type': 'log', 'args': [{'type': 'string', 'value': 'fine'}]}),
        ('Runtime.exceptionThrown', {'exceptionDetails': {'text': 'Uncaught', 'url': 'https://a/app.js',
                                                          'exception': {'description': 'TypeError: x\n    at y'}}}),
        ('Log.entryAdded', {'entry': {'level': 'error', 'source': 'network', 'text': 'Failed to load resource'}}),
        ('Log.entryAdded', {'entry': {'level': 'error', 'source': 'security', 'text': 'CSP blocked'}}),
    ]
    for method, params in events:
        load.on_event(method, params)
    load.document_id = 'doc'
    assert load.count == 6  # the redirect hop is a request of its own; data: and the favicon are not counted
    assert load.transfer_bytes() == 5400
    assert load.document_status() == 200
    assert sorted((f['url'], f['error']) for f in load.failed()) == [
        ('https://a/x.png', 'HTTP 404'), ('https://b/a.js', 'net::ERR_NAME_NOT_RESOLVED')]
    assert load.pending() == ['https://a/slow'] and load.inflight == 1 and not load.quiet()
    assert [c['message'] for c in load.console] == ['boom Object', 'TypeError: x', 'CSP blocked']


# --- options ------------------------------------------------------------------------------------------------------

def test_normalize_urls():
    pages = W.normalize_urls(['https://a.example/', {'url': 'http://b.example/x', 'name': 'b'}])
    assert pages == [{'url': 'https://a.example/', 'name': 'https://a.example/'},
                     {'url': 'http://b.example/x', 'name': 'b'}]


@pytest.mark.parametrize('urls, text', [
    ([], 'at least one'),
    (['ftp://a/'], 'not an http'),
    (['/relative'], 'not an http'),
    ([{'url': 'https://a/', 'name': 'x'}, {'url': 'https://b/', 'name': 'x'}], 'used twice'),
    ([{'url': 'https://a/', 'label': 'x'}], 'unknown key'),
    ([42], 'must be a URL'),
])
def test_normalize_urls_refuses(urls, text):
    with pytest.raises(ConfigurationError, match=text):
        W.normalize_urls(urls)


@pytest.mark.parametrize('kwargs, text', [
    (dict(runs=0), 'runs'),
    (dict(runs=21), 'runs'),
    (dict(cache='hot'), 'cache'),
    (dict(timeout=0), 'timeout'),
    (dict(deadline=-1), 'deadline'),
    (dict(viewport={'width': 10}), 'viewport.width'),
    (dict(viewport={'depth': 10}), 'unknown key'),
    (dict(headers={'X-A': {'nested': 1}}), 'extra_headers'),
])
def test_validate_options_refuses(kwargs, text):
    options = dict(runs=3, cache='both', timeout=30, deadline=600, viewport={}, headers={})
    options.update(kwargs)
    with pytest.raises(ConfigurationError, match=text):
        W.validate_options(**options)


def test_validate_options_viewport_default_is_lighthouse_desktop():
    assert W.validate_options(3, 'both', 30, 600, {}, {}) == {'width': 1350, 'height': 940}
    assert W.validate_options(1, 'cold', 5, 60, {'width': 390, 'height': 844}, None) == {'width': 390, 'height': 844}


def test_find_browser(tmp_path):
    with pytest.raises(DependencyError, match='apt-get install chromium'):
        W.find_browser(search_path=str(tmp_path))
    with pytest.raises(DependencyError, match='browser_path .* is not an executable file.*apt-get install chromium'):
        W.find_browser(str(tmp_path / 'nothing'))
    fake = tmp_path / 'chromium-browser'
    fake.write_text('#!/bin/sh\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert W.find_browser(search_path=str(tmp_path)) == str(fake)
    assert W.find_browser(str(fake)) == str(fake)
    os.chmod(str(fake), 0o644)
    with pytest.raises(DependencyError):
        W.find_browser(str(fake))


# --- findings -----------------------------------------------------------------------------------------------------

def _run(cache='cold', run=1, **figures):
    record = dict(cache=cache, run=run, measured=True, timed_out=False, error=None, document_status=200,
                  failed_requests=[], console_errors=[])
    for key in W.FIGURES:
        record[key] = figures.get(key)
    return record


GOOD = dict(ttfb_ms=20.0, fcp_ms=100.0, lcp_ms=300.0, cls=0.0, tbt_ms=0.0, load_ms=400.0, transfer_bytes=1000,
            requests=3)
THRESHOLDS = C.merge_thresholds(W.DEFAULT_THRESHOLDS, {})


def _statuses(result):
    return dict((c['name'], c['status']) for c in W.findings_for(result, THRESHOLDS))


def test_good_page_is_quiet_and_judged_on_cold_medians():
    runs = [_run('cold', 1, **{**GOOD, 'lcp_ms': 5000.0}), _run('cold', 2, **GOOD), _run('cold', 3, **GOOD),
            _run('warm', 1, **{**GOOD, 'lcp_ms': 9000.0}), _run('warm', 2, **{**GOOD, 'lcp_ms': 9000.0})]
    result = W.page_result({'url': 'https://a/', 'name': 'a'}, runs, 3, 'both')
    assert result['judged'] == 'cold' and result['lcp_ms'] == 300.0 and result['warm']['lcp_ms'] == 9000.0
    statuses = _statuses(result)
    assert set(statuses) == {W.AVAILABILITY, W.LOAD, W.LCP, W.CLS, W.TBT, W.TTFB, W.FAILED_REQUESTS,
                             W.CONSOLE_ERRORS}
    assert set(statuses.values()) == {'ok'}


@pytest.mark.parametrize('figures, check, status', [
    (dict(load_ms=3100.0), W.LOAD, 'warning'),
    (dict(lcp_ms=2600.0), W.LCP, 'warning'),
    (dict(lcp_ms=4100.0), W.LCP, 'critical'),
    (dict(cls=0.11), W.CLS, 'warning'),
    (dict(cls=0.3), W.CLS, 'critical'),
    (dict(tbt_ms=250.0), W.TBT, 'warning'),
    (dict(tbt_ms=700.0), W.TBT, 'critical'),
    (dict(ttfb_ms=900.0), W.TTFB, 'warning'),
    (dict(ttfb_ms=2000.0), W.TTFB, 'critical'),
    (dict(lcp_ms=2500.0, cls=0.1, tbt_ms=200.0, ttfb_ms=800.0, load_ms=3000.0), W.LCP, 'ok'),  # at the limit: Good
])
def test_each_threshold(figures, check, status):
    result = W.page_result({'url': 'https://a/', 'name': 'a'}, [_run(**dict(GOOD, **figures))], 1, 'cold')
    assert _statuses(result)[check] == status


def test_failed_requests_and_console_errors_counted_once_across_loads():
    first, second = _run(run=1, **GOOD), _run(run=2, **GOOD)
    for record in (first, second):
        record['failed_requests'] = [{'url': 'https://a/x.png', 'error': 'HTTP 404', 'status': 404}]
        record['console_errors'] = [{'source': 'console.error', 'message': 'boom', 'url': None}]
    second['failed_requests'].append({'url': 'https://a/y.js', 'error': 'net::ERR_FAILED', 'status': None})
    result = W.page_result({'url': 'https://a/', 'name': 'a'}, [first, second], 2, 'cold')
    assert [(f['url'], f['loads']) for f in result['failed_requests']] == [('https://a/x.png', 2), ('https://a/y.js', 1)]
    found = dict((c['name'], c) for c in W.findings_for(result, THRESHOLDS))
    assert found[W.FAILED_REQUESTS]['status'] == 'warning' and found[W.FAILED_REQUESTS]['value'] == 2
    assert 'https://a/x.png (HTTP 404)' in found[W.FAILED_REQUESTS]['message']
    assert found[W.CONSOLE_ERRORS]['value'] == 1 and 'boom' in found[W.CONSOLE_ERRORS]['message']


def test_unloadable_page_is_one_critical_availability_finding():
    failed = dict(_run(), measured=False, error='net::ERR_CONNECTION_REFUSED')
    result = W.page_result({'url': 'https://a/', 'name': 'a'}, [failed], 3, 'both')
    found = W.findings_for(result, THRESHOLDS)
    assert [(c['name'], c['status']) for c in found] == [(W.AVAILABILITY, 'critical')]
    assert 'net::ERR_CONNECTION_REFUSED' in found[0]['message'] and result['error'] == 'net::ERR_CONNECTION_REFUSED'


def test_timed_out_page_is_critical_with_what_was_still_loading_and_load_unknown():
    record = dict(_run(**{**GOOD, 'load_ms': None}), timed_out=True, error='no load event within 30 s',
                  pending=['https://a/never.png'])
    result = W.page_result({'url': 'https://a/', 'name': 'a'}, [record], 3, 'both')
    found = dict((c['name'], c) for c in W.findings_for(result, THRESHOLDS))
    assert found[W.AVAILABILITY]['status'] == 'critical'
    assert 'https://a/never.png' in found[W.AVAILABILITY]['message']
    assert found[W.LOAD]['status'] == 'unknown' and found[W.LCP]['status'] == 'ok'


def test_error_status_of_the_document_is_critical():
    record = dict(_run(**GOOD), document_status=503)
    result = W.page_result({'url': 'https://a/', 'name': 'a'}, [record], 1, 'cold')
    assert _statuses(result)[W.AVAILABILITY] == 'critical'


def test_page_not_measured_is_unknown():
    result = W.page_result({'url': 'https://a/', 'name': 'a'}, [], 3, 'both',
                           error='not measured: the deadline of 60 s passed')
    found = W.findings_for(result, THRESHOLDS)
    assert [(c['name'], c['status']) for c in found] == [(W.AVAILABILITY, 'unknown')]


def test_thresholds_and_units_are_documented_defaults():
    assert W.DEFAULT_THRESHOLDS[W.LCP]['warning'] == 2500 and W.DEFAULT_THRESHOLDS[W.LCP]['critical'] == 4000
    assert W.DEFAULT_THRESHOLDS[W.CLS]['warning'] == 0.1 and W.DEFAULT_THRESHOLDS[W.CLS]['critical'] == 0.25
    assert W.DEFAULT_THRESHOLDS[W.LOAD]['warning'] == 3000
    for name, spec in W.DEFAULT_THRESHOLDS.items():
        assert name.startswith('page_') and spec['unit'] in ('ms', 'score', 'count')
