# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""web_page_info survives what the browser does to it: no browser at all, one that dies at start, one that
starts and never answers, one killed in the middle of a run, a page whose main thread never returns, and the
module's own deadline passing while a page is still loading. Each ends in a clear result, never a hang."""

from __future__ import annotations

import os
import shutil
import sys
import time

import pytest

from modrunner import REPO_ROOT, run_module
from webserver import LocalServer, Route

sys.path.insert(0, os.path.join(REPO_ROOT, 'demo'))
import appsite  # noqa: E402

SITE = os.path.join(REPO_ROOT, 'demo', 'site')
BROWSER = next((found for found in (shutil.which(name) for name in
                                    ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'))
                if found), None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason='no Chromium on PATH (apt-get install chromium)')


@pytest.fixture(scope='module')
def site():
    server = appsite.start(root=SITE)
    yield server
    server.stop()


def script(path, text):
    path.write_text('#!/bin/sh\n' + text)
    path.chmod(0o755)
    return str(path)


def timed(args, env=None):
    started = time.monotonic()
    result = run_module('web_page_info', args, env=env)
    return result, time.monotonic() - started


def test_no_browser_on_path_names_what_to_install(tmp_path):
    # The module runs with an absolute interpreter path: an empty PATH leaves it without any browser.
    result, elapsed = timed({'urls': ['http://127.0.0.1/']}, env={'PATH': str(tmp_path)})
    assert result.failed and elapsed < 20
    assert result['msg'] == ('web page measurement failed: no Chromium or Chrome browser found on PATH (looked for '
                             'chromium, chromium-browser, google-chrome, google-chrome-stable); install it with '
                             '"apt-get install chromium" (Debian, Ubuntu) or give browser_path')


def test_browser_path_that_is_not_a_program(tmp_path):
    text = tmp_path / 'chromium'
    text.write_text('not a program')
    result = run_module('web_page_info', {'urls': ['http://127.0.0.1/'], 'browser_path': str(text)})
    assert result.failed and 'is not an executable file' in result['msg'] and 'apt-get install chromium' in result['msg']


def test_browser_that_dies_at_start_is_a_clear_failure(tmp_path):
    broken = script(tmp_path / 'chromium', 'echo "cannot open shared object file: libnss3.so" >&2\nexit 3\n')
    result, elapsed = timed({'urls': ['http://127.0.0.1/'], 'browser_path': broken})
    assert result.failed and elapsed < 20
    assert result['msg'].startswith('web page measurement failed: the browser %s did not start: '
                                    'the browser exited with status 3' % broken), result['msg']
    assert 'libnss3.so' in result['msg']


def test_browser_that_never_answers_ends_by_the_deadline(tmp_path):
    # Starts, keeps the pipe open and says nothing: the launch waits until the module's deadline, no longer.
    silent = script(tmp_path / 'chromium', 'exec sleep 600\n')
    result, elapsed = timed({'urls': ['http://127.0.0.1/'], 'browser_path': silent, 'deadline': 4})
    assert result.failed and elapsed < 15, (elapsed, result.raw)
    assert 'did not start: Browser.getVersion got no answer' in result['msg']


@needs_browser
def test_browser_killed_mid_run_is_reported_and_started_again(site, tmp_path):
    # The first browser is killed (SIGKILL) 2 s into the slow page (its image takes 3.2 s); the next page gets a
    # new browser.
    marker = tmp_path / 'killed-once'
    wrapper = script(tmp_path / 'chromium', 'if [ ! -e "%s" ]; then\n  : > "%s"\n  (sleep 2; kill -9 $$) &\nfi\n'
                                            'exec "%s" "$@"\n' % (marker, marker, BROWSER))
    result, elapsed = timed({'urls': [{'name': 'slow', 'url': site.url + 'perf/slow.html'},
                                      {'name': 'clean', 'url': site.url + 'perf/clean.html'}],
                             'browser_path': wrapper, 'runs': 2, 'cache': 'cold', 'timeout': 20})
    assert not result.failed, result.raw
    assert elapsed < 45, elapsed
    slow, clean = result['pages']
    assert slow['error'] == 'the browser was killed by signal 9 (SIGKILL)', slow
    availability = [c for c in result['checks'] if c['object'] == 'page=slow']
    assert [(c['name'], c['status']) for c in availability] == [('page_availability', 'critical')]
    assert 'killed by signal 9' in availability[0]['message']
    assert clean['status'] == 'ok' and clean['cold']['runs'] == 2


@needs_browser
def test_page_whose_main_thread_never_returns(tmp_path):
    # An endless script: no load event, and the page cannot even answer for its figures. Both are bounded.
    html = '<!doctype html><html><body><h1>Busy</h1><script>while (true) {}</script></body></html>'
    with LocalServer({'/busy': Route(200, html, headers={'Content-Type': 'text/html'}),
                      '/fine': Route(200, '<!doctype html><h1>Fine</h1>', headers={'Content-Type': 'text/html'})}) \
            as server:
        result, elapsed = timed({'urls': [{'name': 'busy', 'url': server.url + '/busy'},
                                          {'name': 'fine', 'url': server.url + '/fine'}],
                                 'runs': 3, 'cache': 'both', 'timeout': 3, 'deadline': 60})
    assert not result.failed, result.raw
    assert elapsed < 40, elapsed
    busy = dict((c['name'], c) for c in result['checks'] if c['object'] == 'page=busy')
    assert busy['page_availability']['status'] == 'critical', busy
    assert len(result['pages'][0]['runs']) == 1  # the remaining runs were skipped
    assert result['pages'][1]['status'] == 'ok'


@needs_browser
def test_deadline_passing_while_a_page_loads(site):
    # The page would wait 60 s for its image and the page timeout is 30 s, but the module's deadline is 6 s: the
    # loading page is reported, the next one is not measured, and the module returns soon after the deadline.
    result, elapsed = timed({'urls': [{'name': 'never', 'url': site.url + 'perf/never.html'},
                                      {'name': 'clean', 'url': site.url + 'perf/clean.html'}],
                             'runs': 3, 'timeout': 30, 'deadline': 6})
    assert not result.failed, result.raw
    assert elapsed < 6 + 12, elapsed
    never, clean = result['pages']
    assert never['runs'][0]['error'] == "no load event before the module's deadline"
    assert clean['error'] == 'not measured: the deadline of 6 s passed' and clean['runs'] == []
    found = dict(((c['object'], c['name']), c['status']) for c in result['checks'])
    assert found[('page=never', 'page_availability')] == 'critical'
    assert found[('page=clean', 'page_availability')] == 'unknown'
    assert result['status'] == 'critical'
