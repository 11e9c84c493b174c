# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""web_page_info survives what the network does to a page: an unreachable server, a TLS certificate the
browser does not trust, a server that accepts and never answers, a subresource that never ends, a connection
reset in the middle of the document. Each is reported for its page; the other pages are still measured."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time

import pytest

from modrunner import REPO_ROOT, run_module
from webserver import CertificateAuthority, LocalServer, Route

sys.path.insert(0, os.path.join(REPO_ROOT, 'demo'))
import appsite  # noqa: E402

SITE = os.path.join(REPO_ROOT, 'demo', 'site')
pytestmark = pytest.mark.skipif(
    not any(shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')),
    reason='no Chromium on PATH (apt-get install chromium)')
HTML = {'Content-Type': 'text/html'}


@pytest.fixture(scope='module')
def site():
    server = appsite.start(root=SITE)
    yield server
    server.stop()


def closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def measure(urls, **options):
    args = dict(urls=urls, runs=2, cache='both', timeout=5, deadline=120)
    args.update(options)
    started = time.monotonic()
    result = run_module('web_page_info', args)
    assert not result.failed, result.raw
    return result, time.monotonic() - started


def findings(result, name):
    return dict((c['name'], c) for c in result['checks'] if c['object'] == 'page=%s' % name)


def test_unreachable_server(site):
    result, elapsed = measure([{'name': 'down', 'url': 'http://127.0.0.1:%d/' % closed_port()},
                               {'name': 'clean', 'url': site.url + 'perf/clean.html'}])
    down = findings(result, 'down')
    assert list(down) == ['page_availability'] and down['page_availability']['status'] == 'critical'
    assert 'net::ERR_CONNECTION_REFUSED' in down['page_availability']['message']
    assert len(result['pages'][0]['runs']) == 1  # not retried: the next runs would fail the same way
    assert result['pages'][1]['status'] == 'ok'
    assert elapsed < 40, elapsed


def test_untrusted_certificate_and_validate_certs_false(tmp_path):
    ca = CertificateAuthority(str(tmp_path))
    with LocalServer({'/': Route(200, '<!doctype html><h1>Self-signed</h1>', headers=HTML)},
                     *ca.issue('self', self_signed=True)) as server:
        refused, unused = measure([{'name': 'tls', 'url': server.url + '/'}])
        accepted, unused = measure([{'name': 'tls', 'url': server.url + '/'}], validate_certs=False)
    check = findings(refused, 'tls')['page_availability']
    assert check['status'] == 'critical' and 'net::ERR_CERT_AUTHORITY_INVALID' in check['message'], check
    assert findings(accepted, 'tls')['page_availability']['status'] == 'ok'
    assert accepted['pages'][0]['lcp_ms'] is not None


def test_server_that_never_answers_the_document(site):
    # /hang/ accepts the connection and never sends a byte: the navigation itself times out.
    result, elapsed = measure([{'name': 'hang', 'url': site.url + 'hang/page.html'},
                               {'name': 'clean', 'url': site.url + 'perf/clean.html'}], timeout=3)
    hang = findings(result, 'hang')
    assert hang['page_availability']['status'] == 'critical'
    assert 'no answer to the request for the page within 3 s' in hang['page_availability']['message']
    assert result['pages'][1]['status'] == 'ok'
    assert elapsed < 40, elapsed


def test_subresource_that_never_ends(site):
    result, elapsed = measure([{'name': 'never', 'url': site.url + 'perf/never.html'}], timeout=3, runs=5)
    check = findings(result, 'never')['page_availability']
    assert check['status'] == 'critical' and 'still loading: %sdelay/60000/perf/hero.png' % site.url in check['message']
    assert elapsed < 20, elapsed  # one load of 3 s, the other runs skipped


def test_connection_reset_mid_document(site):
    result, elapsed = measure([{'name': 'reset', 'url': site.url + 'reset/perf/clean.html'}])
    # Half the document arrives, then a reset: the load is over at once (no waiting for the timeout), reported as
    # the page's own failed request and as a failed load.
    page = result['pages'][0]
    check = findings(result, 'reset')['page_availability']
    assert check['status'] == 'critical' and 'the page broke off: net::ERR_CONNECTION_RESET' in check['message'], check
    assert [f['error'] for f in page['failed_requests']] == ['net::ERR_CONNECTION_RESET']
    assert elapsed < 20, elapsed
