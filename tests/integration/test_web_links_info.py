# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""web_links_info against the local application site (demo/appsite.py serving demo/site) and sites written
for one test: the planted broken set is found exactly and nothing else, every check fires in one case and
stays quiet on a clean site, robots.txt, depth and page limits, the per-host rate limit (the server's own
request times), external links only when asked (HEAD, then GET when HEAD is refused), the time budget on an
endless site, a TLS site with a bad certificate, and the cross-check with Debian's linkchecker."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from modrunner import REPO_ROOT, run_module
from webserver import CertificateAuthority

sys.path.insert(0, os.path.join(REPO_ROOT, 'demo'))
import appsite  # noqa: E402

SITE = os.path.join(REPO_ROOT, 'demo', 'site')
# demo/site/perf/ holds web_page_info's slow pages (another module's test pages): left out here.
NOT_PERF = ['/perf/']
SOFT = 'Page not found'

# The broken targets planted in demo/site: path -> (element kinds, HTTP status, pages that contain them).
PLANTED = {
    '/missing-page.html': (['a'], 404, {'/', '/index.html', '/about.html'}),
    '/img/missing-photo.png': (['img'], 404, {'/about.html'}),
    '/img/hero-xl.png': (['srcset'], 404, {'/', '/index.html'}),
    '/js/old-widget.js': (['script'], 404, {'/contact.html'}),
    '/products/retired-model.html': (['a'], 404, {'/products/widget.html'}),  # only reachable at depth 3
}
PLANTED_SOFT = {'/soft404/summer-offer': (['a'], 200, {'/', '/index.html'})}


def path_of(url):
    return urlsplit(url).path


def broken_paths(result):
    return dict((path_of(b['url']), (b['kinds'], b['status'], set(path_of(p) for p in b['found_on'])))
                for b in result['broken'])


def checks(result):
    return dict((c['name'], c) for c in result['checks'])


def crawl(start, **options):
    args = dict(start_urls=[start] if isinstance(start, str) else start, rate_limit=0, timeout=5, time_budget=60)
    args.update(options)
    result = run_module('web_links_info', args)
    assert not result.failed, result.raw
    return result


@pytest.fixture
def site():
    server = appsite.start(root=SITE)
    yield server
    server.stop()


def write_site(root, pages):
    for name, text in pages.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            handle.write(text)


def page(*body):
    return '<!doctype html><html><head><title>t</title></head><body>%s</body></html>\n' % '\n'.join(body)


@pytest.fixture
def clean_site(tmp_path):
    root = str(tmp_path / 'clean')
    os.makedirs(os.path.join(root, 'img'))
    shutil.copy(os.path.join(SITE, 'img', 'logo.png'), os.path.join(root, 'img', 'logo.png'))
    shutil.copytree(os.path.join(SITE, 'css'), os.path.join(root, 'css'))
    write_site(root, {
        'index.html': page('<link rel="stylesheet" href="css/style.css">', '<a href="a.html">a</a>',
                           '<img src="img/logo.png" srcset="img/logo.png 1x, img/logo.png 2x">',
                           '<a href="redirect/1/a.html">one redirect is fine</a>'),
        'a.html': page('<a href="index.html">home</a>', '<a href="sub/b.html">b</a>'),
        'sub/b.html': page('<a href="../a.html">a</a>', '<img src="/img/logo.png">'),
    })
    server = appsite.start(root=root)
    yield server
    server.stop()


def test_planted_broken_set_found_exactly_and_every_check_fires(site):
    result = crawl(site.url, exclude=NOT_PERF, soft_404_pattern=SOFT)
    found = broken_paths(result)
    assert found == dict(PLANTED, **PLANTED_SOFT)
    by = dict((path_of(b['url']), b) for b in result['broken'])
    assert by['/missing-page.html']['error'] == 'HTTP 404' and by['/missing-page.html']['error_kind'] == 'http_status'
    assert by['/soft404/summer-offer']['soft_404'] and by['/soft404/summer-offer']['error_kind'] == 'soft_404'
    c = checks(result)
    assert (c['links_broken']['status'], c['links_broken']['value']) == ('warning', 2)
    assert (c['links_images_broken']['status'], c['links_images_broken']['value']) == ('warning', 2)
    assert (c['links_assets_broken']['status'], c['links_assets_broken']['value']) == ('warning', 1)
    assert (c['links_soft_404']['status'], c['links_soft_404']['value']) == ('warning', 1)
    assert (c['links_redirect_chains']['status'], c['links_redirect_chains']['value']) == ('info', 1)
    assert c['links_start_url']['status'] == 'ok'
    assert c['links_crawl_incomplete']['status'] == 'ok'
    assert result['status'] == 'warning'
    # The 3-hop redirect chain, hop by hop.
    chain = [r for r in result['redirects'] if path_of(r['url']) == '/redirect/3/about.html']
    assert len(chain) == 1 and chain[0]['hops'] == 3 and chain[0]['final_status'] == 200
    assert [path_of(u) for u in chain[0]['chain']] == ['/redirect/2/about.html', '/redirect/1/about.html', '/about.html']
    assert chain[0]['statuses'] == [302, 302, 301]
    # robots.txt (/private/), exclude (/perf/) and the external link are not requested.
    assert result['not_requested'] == {'robots': 1, 'excluded': 1, 'external': 1}
    assert site.count('/private/admin.html') == 0 and site.count('/perf/index.html') == 0
    # <base href="/"> on blog/index.html: its relative links resolve against the site's root.
    assert site.count('/blog/first-post.html') == 1 and site.count('/blog/blog/first-post.html') == 0
    # Each target once: the page linked from three pages, and the image in both img src and srcset.
    assert site.count('/missing-page.html') == 1 and site.count('/img/hero-small.png') == 1
    # Non-HTTP links are skipped, not reported.
    assert not [b for b in result['broken'] if not b['url'].startswith('http://127.0.0.1')]
    assert result['pages_crawled'] == 8 and result['broken_count'] == 6
    section = result['report']['web_links']
    assert set(section) == {'finished_at', 'start_urls', 'pages_crawled', 'links_checked', 'broken_count', 'broken'}
    assert section['start_urls'] == [site.url] and len(section['broken']) == 6


def test_soft_404_is_not_reported_without_a_pattern(site):
    result = crawl(site.url, exclude=NOT_PERF)
    assert broken_paths(result) == PLANTED
    assert checks(result)['links_soft_404']['status'] == 'ok'


def test_every_check_stays_quiet_on_a_clean_site(clean_site):
    result = crawl(clean_site.url, soft_404_pattern=SOFT)
    assert result['broken'] == [] and result['status'] == 'ok', result['checks']
    assert set(c['status'] for c in result['checks']) == {'ok'}
    assert result['pages_crawled'] == 4  # /, a.html, sub/b.html and /index.html (linked back from a.html)
    assert [r['hops'] for r in result['redirects']] == [1]  # one hop is no chain


def test_robots_txt_is_honoured_unless_told_not_to(site):
    honoured = crawl(site.url, exclude=NOT_PERF)
    assert '/private/old-report.html' not in broken_paths(honoured)
    assert site.count('/private/admin.html') == 0
    ignored = crawl(site.url, exclude=NOT_PERF, respect_robots=False)
    assert broken_paths(ignored)['/private/old-report.html'] == (['a'], 404, {'/private/admin.html'})
    assert ignored['not_requested']['robots'] == 0


def test_robots_txt_matches_the_user_agent(tmp_path):
    root = str(tmp_path)
    write_site(root, {'robots.txt': 'User-agent: strictbot\nDisallow: /\n',
                      'index.html': page('<a href="gone.html">x</a>')})
    server = appsite.start(root=root)
    try:
        other = crawl(server.url, user_agent='friendlybot')
        assert [path_of(b['url']) for b in other['broken']] == ['/gone.html']
        strict = crawl(server.url, user_agent='strictbot')
        assert strict['broken'] == [] and strict['links_checked'] == 0 and strict['not_requested']['robots'] == 1
    finally:
        server.stop()


@pytest.mark.parametrize('depth', [0, 1, 2, 3])
def test_depth_limit(site, depth):
    result = crawl(site.url, exclude=NOT_PERF, max_depth=depth)
    found = broken_paths(result)
    assert ('/products/retired-model.html' in found) == (depth >= 3)
    assert site.count('/products/retired-model.html') == (1 if depth >= 3 else 0)
    assert ('/missing-page.html' in found) == (depth >= 1)
    assert ('/img/missing-photo.png' in found) == (depth >= 2)  # on about.html, one link away
    if depth == 0:
        assert result['links_checked'] == 1 and result['pages_crawled'] == 0
    assert checks(result)['links_crawl_incomplete']['status'] == 'ok'  # a depth limit is a choice, not a failure


def test_page_limit(site):
    result = crawl(site.url, exclude=NOT_PERF, max_pages=2)
    assert result['pages_crawled'] == 2 and result['page_limit_reached']
    assert result['pages_not_parsed'] > 0
    finding = checks(result)['links_crawl_incomplete']
    assert finding['status'] == 'warning' and 'page limit' in finding['message']


def test_rate_limit_per_host_is_respected(site):
    result = crawl(site.url, exclude=NOT_PERF, rate_limit=5, concurrency=8)
    times = sorted(t for t, _method, _path in site.requests)
    assert len(times) == result['requests'] >= 25
    # Starts spaced by 1 / 5 s, so never 6 in one second (the server's clock, which sees a request a little
    # after it was sent: slack for scheduling on a busy machine).
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) > 0.05, gaps   # never a burst (ideally 0.2 s apart; a late-scheduled server thread shrinks one)
    assert all(times[i + 5] - times[i] >= 0.7 for i in range(len(times) - 5))
    assert result['elapsed_seconds'] >= (len(times) - 1) / 5.0 * 0.9


def test_concurrency_without_rate_limit(tmp_path):
    root = str(tmp_path)
    write_site(root, dict([('index.html', page(*['<a href="/delay/300/p%d.html">%d</a>' % (i, i) for i in range(16)]))]
                          + [('p%d.html' % i, page('page %d' % i)) for i in range(16)]))
    server = appsite.start(root=root)
    try:
        result = crawl(server.url, concurrency=8, max_depth=1)
        assert result['broken'] == [] and result['links_checked'] == 17
        # 16 pages of 0.3 s each with 8 workers: two rounds, not sixteen.
        assert result['elapsed_seconds'] < 3.0, result['elapsed_seconds']  # sixteen in a row would take 4.8 s
    finally:
        server.stop()


@pytest.fixture
def external(tmp_path):
    root = str(tmp_path / 'external')
    write_site(root, {'ok.html': page('<a href="deeper.html">never crawled</a>'),
                      'deeper.html': page('deeper')})
    server = appsite.start(root=root)
    yield server
    server.stop()


def test_external_links_checked_only_when_asked(tmp_path, external):
    root = str(tmp_path / 'main')
    write_site(root, {'index.html': page(
        '<a href="%sok.html">external page</a>' % external.url,
        '<a href="%shead-refused/ok.html">HEAD refused</a>' % external.url,
        '<img src="%smissing.png">' % external.url,
        '<a href="%sstatus/503">down</a>' % external.url)})
    server = appsite.start(root=root)
    try:
        quiet = crawl(server.url)
        assert quiet['broken'] == [] and quiet['not_requested']['external'] == 4
        assert external.requests == []
        asked = crawl(server.url, check_external=True)
        assert broken_paths(asked) == {'/missing.png': (['img'], 404, {'/'}), '/status/503': (['a'], 503, {'/'})}
        methods = dict(((m, p), 0) for _t, m, p in external.requests)
        for _t, m, p in external.requests:
            methods[(m, p)] += 1
        # HEAD first; GET only where HEAD was refused (405); never crawled (deeper.html not requested).
        assert methods == {('HEAD', '/ok.html'): 1, ('HEAD', '/head-refused/ok.html'): 1,
                           ('GET', '/head-refused/ok.html'): 1, ('HEAD', '/missing.png'): 1, ('HEAD', '/status/503'): 1}
        assert checks(asked)['links_broken']['value'] == 1 and checks(asked)['links_images_broken']['value'] == 1
    finally:
        server.stop()


def test_time_budget_stops_a_crawl_of_an_endless_site(site):
    started = time.monotonic()
    result = crawl(site.url + 'endless/1', max_depth=1000, max_pages=1000000, time_budget=2, concurrency=4)
    took = time.monotonic() - started
    assert result['budget_spent'] and result['not_checked'] > 0
    assert result['elapsed_seconds'] < 2 + 2.5, result['elapsed_seconds']
    assert took < 15, took
    finding = checks(result)['links_crawl_incomplete']
    assert finding['status'] == 'warning' and 'time budget' in finding['message']
    assert result['broken'] == []


def test_tls_site_with_a_bad_certificate_gives_a_named_tls_error(tmp_path):
    ca = CertificateAuthority(str(tmp_path / 'ca'))
    bad_cert, bad_key = ca.issue('self', self_signed=True)
    good_cert, good_key = ca.issue('good')
    bad = appsite.start(root=SITE, certfile=bad_cert, keyfile=bad_key)
    good = appsite.start(root=SITE, certfile=good_cert, keyfile=good_key)
    try:
        result = crawl(bad.url, exclude=NOT_PERF, ca_cert=ca.ca_file)
        assert [b['error_kind'] for b in result['broken']] == ['tls']
        assert 'certificate' in result['broken'][0]['error'] and 'self-signed' in result['broken'][0]['error']
        assert checks(result)['links_start_url']['status'] == 'critical'
        assert result['status'] == 'critical'
        trusted = crawl(good.url, exclude=NOT_PERF, ca_cert=ca.ca_file)
        assert broken_paths(trusted) == PLANTED and checks(trusted)['links_start_url']['status'] == 'ok'
        unverified = crawl(bad.url, exclude=NOT_PERF, validate_certs=False)
        assert broken_paths(unverified) == PLANTED
    finally:
        bad.stop()
        good.stop()


def test_invalid_options_are_refused_before_any_request(site):
    for args, text in ((dict(exclude=['(']), 'exclude'), (dict(soft_404_pattern='['), 'soft_404_pattern'),
                       (dict(max_pages=0), 'max_pages'), (dict(thresholds={'links_brokn': {'warning': 1}}), 'links_brokn'),
                       (dict(max_page_size='lots'), 'max_page_size')):
        result = run_module('web_links_info', dict(start_urls=[site.url], **args))
        assert result.failed and result['msg'].startswith('invalid options:') and text in result['msg'], result['msg']
    result = run_module('web_links_info', dict(start_urls=['ftp://example.org/']))
    assert result.failed and 'start_urls[0]' in result['msg']
    assert site.requests == []


def test_thresholds_and_severity(site):
    result = crawl(site.url, exclude=NOT_PERF, thresholds={'links_broken': {'warning': 5, 'critical': 10},
                                                           'links_redirect_chains': {'warning': 0}},
                   severity={'links_images_broken': 'critical'})
    c = checks(result)
    assert c['links_broken']['status'] == 'ok' and c['links_broken']['value'] == 2
    assert c['links_redirect_chains']['status'] == 'warning'
    assert c['links_images_broken']['status'] == 'critical' and c['links_images_broken']['default_status'] == 'warning'


# ---------------------------------------------------------------------------------------------- linkchecker

LINKCHECKER = shutil.which('linkchecker')


def linkchecker_broken(url, depth=3, threads=8, ignore=()):
    """The broken URLs linkchecker reports (its CSV output, invalid URLs only) -> {path: parent paths}."""
    argv = [LINKCHECKER, '--no-status', '-o', 'csv', '-r', str(depth), '-t', str(threads)]
    for pattern in ignore:
        argv += ['--ignore-url', pattern]
    proc = subprocess.run(argv + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd='/tmp',
                          timeout=300, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line and not line.startswith('#')]
    found = {}
    for row in csv.DictReader(io.StringIO('\n'.join(lines)), delimiter=';'):
        if row['valid'] == 'False':
            found.setdefault(path_of(row['url']), set()).add(path_of(row['parentname']))
    return found


@pytest.mark.skipif(LINKCHECKER is None, reason='linkchecker is not installed (Debian: apt-get install -y linkchecker)')
def test_linkchecker_finds_the_same_broken_set(site):
    """linkchecker (Debian's 10.2) on the same site at the same depth finds the same broken targets.

    Differences, by design: linkchecker has no soft-404 check, so /soft404/summer-offer (200 with a "Page not
    found" body) is ours alone - it is left out of our side by running without soft_404_pattern. linkchecker
    lists one parent page per broken URL (the first it met), ours every page; so the pages are compared as
    "linkchecker's parent is among ours". Both read srcset candidates, honour robots.txt and skip external
    links by default."""
    ours = crawl(site.url, exclude=NOT_PERF, max_depth=3, concurrency=8)
    theirs = linkchecker_broken(site.url, depth=3, threads=8, ignore=NOT_PERF)
    assert set(theirs) == set(broken_paths(ours)) == set(PLANTED)
    for path, parents in theirs.items():
        assert parents <= broken_paths(ours)[path][2], (path, parents)
