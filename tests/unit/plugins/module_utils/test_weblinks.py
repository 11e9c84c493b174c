# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""weblinks: URL resolution, srcset parsing, link extraction, same-site rules, the rate limiter and the
findings of a crawl result."""

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import weblinks as W
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

PAGE = 'https://shop.example.org/products/widget.html'


@pytest.mark.parametrize('raw, expected', [
    ('specs.html', 'https://shop.example.org/products/specs.html'),
    ('../about.html', 'https://shop.example.org/about.html'),
    ('/img/a.png', 'https://shop.example.org/img/a.png'),
    ('//cdn.example.net/app.js', 'https://cdn.example.net/app.js'),
    ('http://Other.Example.ORG:80/x?y=1#frag', 'http://other.example.org/x?y=1'),
    ('https://shop.example.org:443', 'https://shop.example.org/'),
    ('https://shop.example.org:8443/a', 'https://shop.example.org:8443/a'),
    ('?page=2', 'https://shop.example.org/products/widget.html?page=2'),
    ('  spaced.html \n', 'https://shop.example.org/products/spaced.html'),
    ('li\nne\t.html', 'https://shop.example.org/products/line.html'),
    ('specs.html#part', 'https://shop.example.org/products/specs.html'),
    ('#top', None), ('', None), ('   ', None),
    ('mailto:shop@example.org', None), ('tel:+15550100', None), ('JavaScript:void(0)', None),
    ('data:image/png;base64,AAAA', None), ('ftp://files.example.org/a', None),
    ('http://[::1]:8080/x', 'http://[::1]:8080/x'),
    ('http://bad:port/', None),
])
def test_resolve(raw, expected):
    assert W.resolve(PAGE, raw) == expected


@pytest.mark.parametrize('value, expected', [
    ('a.png 1x, b.png 2x', ['a.png', 'b.png']),
    ('a.png 480w,b.png 1024w', ['a.png', 'b.png']),
    ('a.png', ['a.png']),
    ('a.png, b.png 2x', ['a.png', 'b.png']),  # a comma ending the URL separates
    ('a.png,b.png 2x', ['a.png,b.png']),  # one URL with a comma, as browsers read it (HTML's srcset parser)
    ('  , a.png 1x ,, b.png  ', ['a.png', 'b.png']),
    ('image,1.png 1x, image,2.png 2x', ['image,1.png', 'image,2.png']),  # commas inside a URL stay
    ('a.png (max-width: 1px, 2px) 1x, b.png 2x', ['a.png', 'b.png']),  # commas inside parentheses do not split
    ('data:image/png;base64,AAA= 1x, c.png 2x', ['data:image/png;base64,AAA=', 'c.png']),
    ('', []), (None, []),
])
def test_parse_srcset(value, expected):
    assert W.parse_srcset(value) == expected


def test_extract_links_kinds_base_and_skips():
    html = '''<html><head><base href="/root/"><link rel="stylesheet" href="s.css"><link rel="canonical" href="c.html">
    <link rel="icon" href="/favicon.ico"><link rel="preload" href="font.woff2" as="font">
    <script src="app.js"></script><script>var a = '<a href="no.html">';</script></head>
    <body><a href="page.html#x">p</a><area href="map.html"><a name="anchor">n</a>
    <img src="i.png" srcset="i.png 1x, i2.png 2x"><picture><source srcset="w.webp 1x"></picture>
    <!-- <a href="comment.html"> --><a href="mailto:x@example.org">m</a><img src="data:image/gif;base64,R0">
    </body></html>'''
    links = W.extract_links(html, 'http://site.test/dir/page.html')
    assert links == [
        ('link', 'http://site.test/root/s.css'), ('link', 'http://site.test/favicon.ico'),
        ('link', 'http://site.test/root/font.woff2'), ('script', 'http://site.test/root/app.js'),
        ('a', 'http://site.test/root/page.html'), ('a', 'http://site.test/root/map.html'),
        ('img', 'http://site.test/root/i.png'), ('srcset', 'http://site.test/root/i.png'),
        ('srcset', 'http://site.test/root/i2.png'), ('srcset', 'http://site.test/root/w.webp'),
    ]


def test_extract_links_without_base_and_with_only_the_first_base():
    assert W.extract_links('<a href="x.html">', 'http://site.test/a/b.html') == [('a', 'http://site.test/a/x.html')]
    html = '<base href="http://other.test/"><base href="/ignored/"><a href="x.html">'
    assert W.extract_links(html, 'http://site.test/a/b.html') == [('a', 'http://other.test/x.html')]


def test_extract_links_survives_garbage():
    assert W.extract_links('<a href="ok.html"<<<<>>><img src=>&#xffffffff;<p', 'http://s.test/') == [
        ('a', 'http://s.test/ok.html')]
    assert W.extract_links('\x00\xff<a href=x.html>', 'http://s.test/') == [('a', 'http://s.test/x.html')]


@pytest.mark.parametrize('url, same', [
    ('http://site.test/x', True), ('http://site.test:80/x', True), ('http://SITE.test/x', True),
    ('https://site.test/x', False),  # other scheme: other site
    ('http://site.test:8080/x', False),  # other port
    ('http://www.site.test/x', False),  # sub-domain
    ('http://other.test/x', False),
])
def test_same_site(url, same):
    assert W.same_site(url, {W.site_of('http://site.test/')}) is same


def test_clean_url_and_start_urls():
    assert W.clean_url('HTTP://Site.Test') == 'http://site.test/'
    assert W.normalize_start_urls(['http://a.test/#x', 'http://a.test/', 'https://b.test:8443']) == [
        'http://a.test/', 'https://b.test:8443/']
    for bad in ([], ['ftp://a.test/'], ['/relative'], ['http://']):
        with pytest.raises(ConfigurationError):
            W.normalize_start_urls(bad)


def test_decode_and_is_html():
    assert W.decode('é'.encode('latin-1'), 'text/html; charset=ISO-8859-1') == 'é'
    assert W.decode(b'\xff', 'text/html; charset=nonsense') == '\ufffd'
    assert W.is_html('text/html; charset=utf-8') and W.is_html('application/xhtml+xml')
    assert not W.is_html('image/png') and not W.is_html(None)


def test_rate_limiter_spaces_starts_per_host():
    limiter = W.RateLimiter(20)
    stop = threading.Event()
    starts = []
    lock = threading.Lock()

    def worker():
        for _attempt in range(3):
            limiter.wait('a', time.monotonic() + 10, stop)
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=worker) for unused in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts.sort()
    assert len(starts) == 12
    # 20 a second: turns 50 ms apart. A thread records its start only when it runs again, which on a busy machine can
    # be late and so shrink one gap; six turns (ideally 300 ms) never fit in 200 ms, and the whole run takes its time.
    assert all(starts[i + 6] - starts[i] >= 0.2 for i in range(len(starts) - 6)), starts
    assert starts[-1] - starts[0] >= 0.4, starts
    limiter.wait('b', time.monotonic() + 10, stop)  # another host does not wait for 'a'


def test_rate_limiter_refuses_a_turn_after_the_deadline():
    limiter = W.RateLimiter(1)
    stop = threading.Event()
    limiter.wait('a', time.monotonic() + 10, stop)
    with pytest.raises(W.BudgetSpent):
        limiter.wait('a', time.monotonic() + 0.5, stop)


def _result(broken=(), redirects=(), **extra):
    result = {'sites': ['http://s.test:80'], 'broken_all': list(broken), 'redirects_all': list(redirects),
              'links_checked': 10, 'pages_crawled': 3, 'elapsed_seconds': 0.5, 'budget_spent': False,
              'not_checked': 0, 'page_limit_reached': False, 'pages_not_parsed': 0, 'pages_truncated': []}
    result.update(extra)
    return result


def _broken(path, kinds, status=404, soft=False):
    return {'url': 'http://s.test' + path, 'kinds': kinds, 'status': status, 'error': 'HTTP %d' % status,
            'error_kind': 'soft_404' if soft else 'http_status', 'soft_404': soft, 'found_on': ['http://s.test/'],
            'found_on_count': 1, 'redirects': []}


def test_findings_families_and_thresholds():
    thresholds = C.merge_thresholds(W.DEFAULT_THRESHOLDS, {})
    broken = [_broken('/p%d' % i, ['a']) for i in range(11)]
    broken += [_broken('/i.png', ['img', 'a']), _broken('/s.js', ['script']), _broken('/soft', ['a'], 200, soft=True)]
    found = dict((f['name'], f) for f in W.findings_for(_result(broken), thresholds))
    assert (found['links_broken']['status'], found['links_broken']['value']) == ('critical', 12)
    assert (found['links_images_broken']['status'], found['links_images_broken']['value']) == ('warning', 1)
    assert (found['links_assets_broken']['status'], found['links_assets_broken']['value']) == ('warning', 1)
    assert (found['links_soft_404']['status'], found['links_soft_404']['value']) == ('warning', 1)
    assert 'and 7 more' in found['links_broken']['message']
    assert found['links_start_url']['status'] == 'ok'
    assert [f['name'] for f in W.findings_for(_result(), thresholds)] == [
        'links_start_url', 'links_broken', 'links_images_broken', 'links_assets_broken', 'links_soft_404',
        'links_redirect_chains', 'links_crawl_incomplete']
    assert set(f['status'] for f in W.findings_for(_result(), thresholds)) == {'ok'}


def test_findings_redirect_chains_and_incomplete():
    thresholds = C.merge_thresholds(W.DEFAULT_THRESHOLDS, {})
    redirects = [{'url': 'http://s.test/r', 'hops': 1, 'chain': ['http://s.test/r/'], 'final_status': 200, 'loop': False},
                 {'url': 'http://s.test/q', 'hops': 3, 'chain': ['a', 'b', 'http://s.test/z'], 'final_status': 200,
                  'loop': False}]
    found = dict((f['name'], f) for f in W.findings_for(_result(redirects=redirects), thresholds))
    assert (found['links_redirect_chains']['status'], found['links_redirect_chains']['value']) == ('info', 1)
    strict = C.merge_thresholds(W.DEFAULT_THRESHOLDS, {'links_redirect_chains': {'warning': 0}})
    found = dict((f['name'], f) for f in W.findings_for(_result(redirects=redirects), strict))
    assert found['links_redirect_chains']['status'] == 'warning'
    found = dict((f['name'], f) for f in W.findings_for(
        _result(budget_spent=True, not_checked=40, pages_truncated=['http://s.test/big']), thresholds))
    assert found['links_crawl_incomplete']['status'] == 'warning'
    assert 'time budget' in found['links_crawl_incomplete']['message'] and 'size cap' in found['links_crawl_incomplete']['message']
    found = dict((f['name'], f) for f in W.findings_for(_result(pages_truncated=['http://s.test/big']), thresholds))
    assert found['links_crawl_incomplete']['status'] == 'info'


def test_start_url_broken_is_critical():
    thresholds = C.merge_thresholds(W.DEFAULT_THRESHOLDS, {})
    entry = dict(_broken('/', ['start']), status=None, error='connection to s.test:80 refused', error_kind='refused',
                 found_on=[], found_on_count=0)
    found = dict((f['name'], f) for f in W.findings_for(_result([entry]), thresholds))
    assert found['links_start_url']['status'] == 'critical' and 'refused' in found['links_start_url']['message']


@pytest.mark.parametrize('option, value', [('max_pages', 0), ('concurrency', 0), ('max_depth', -1), ('timeout', 0),
                                           ('time_budget', -1), ('rate_limit', -1), ('max_redirects', -1)])
def test_crawl_refuses_bad_limits(option, value):
    with pytest.raises(ConfigurationError, match=option):
        W.Crawl(['http://s.test/'], None, **{option: value})


def test_compile_patterns():
    excluded, soft = W.compile_patterns(['/cart/', r'\?session='], 'not found')
    assert excluded[1].search('http://s.test/a?session=1') and soft.search('page not found')
    with pytest.raises(ConfigurationError, match='exclude'):
        W.compile_patterns(['('], None)
    with pytest.raises(ConfigurationError, match='soft_404_pattern'):
        W.compile_patterns([], '[')
