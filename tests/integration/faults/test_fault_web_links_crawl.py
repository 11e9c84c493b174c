# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults web_links_info survives, each named after the fault, against the local application site
(demo/appsite.py) and plain sockets:

- an unreachable start URL (nothing listens) is a critical links_start_url finding, not a failed task;
- a connection reset in the middle of a body is a broken target with error kind ``reset``, and the crawl goes on;
- a server that accepts and never answers is a ``timeout`` after O(timeout), never a hang;
- a page far larger than O(max_page_size) is read up to the cap only (and parsed so far), in bounded time;
- malformed HTML gives the links a browser would see, nothing from comments or scripts, and no crash;
- a redirect loop, and a chain longer than O(max_redirects), are broken targets with their hops.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from urllib.parse import urlsplit

import pytest

from modrunner import REPO_ROOT, run_module

sys.path.insert(0, os.path.join(REPO_ROOT, 'demo'))
import appsite  # noqa: E402


def crawl(start, **options):
    args = dict(start_urls=[start], rate_limit=0, timeout=5, time_budget=60)
    args.update(options)
    result = run_module('web_links_info', args, )
    assert not result.failed, result.raw
    return result


def checks(result):
    return dict((c['name'], c) for c in result['checks'])


def by_path(result):
    return dict((urlsplit(b['url']).path, b) for b in result['broken'])


def write(root, name, text):
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as handle:
        handle.write(text)


@pytest.fixture
def site(tmp_path):
    root = str(tmp_path)
    write(root, 'ok.html', '<html><body><p>' + 'fine ' * 400 + '</p></body></html>')
    server = appsite.start(root=root)
    server.root_dir = root
    yield server
    server.stop()


def test_fault_web_links_unreachable_start_url():
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    result = crawl('http://127.0.0.1:%d/' % port)
    assert [b['error_kind'] for b in result['broken']] == ['refused']
    assert result['broken'][0]['kinds'] == ['start']
    finding = checks(result)['links_start_url']
    assert finding['status'] == 'critical' and 'refused' in finding['message']
    assert result['status'] == 'critical'


def test_fault_web_links_connection_reset_mid_body(site):
    write(site.root_dir, 'index.html', '<a href="/reset/ok.html">cut</a> <a href="ok.html">fine</a> '
                                       '<a href="gone.html">gone</a>')
    result = crawl(site.url)
    broken = by_path(result)
    assert set(broken) == {'/reset/ok.html', '/gone.html'}
    assert broken['/reset/ok.html']['error_kind'] == 'reset' and broken['/reset/ok.html']['status'] is None
    assert site.count('/ok.html') == 1 and result['links_checked'] == 4


def test_fault_web_links_server_never_answers(site):
    write(site.root_dir, 'index.html', '<a href="/hang/forever">stuck</a> <img src="/hang/image.png"> '
                                       '<a href="ok.html">fine</a>')
    started = time.monotonic()
    result = crawl(site.url, timeout=1)
    assert time.monotonic() - started < 10
    broken = by_path(result)
    assert set(broken) == {'/hang/forever', '/hang/image.png'}
    assert all(b['error_kind'] == 'timeout' and 'in time' in b['error'] for b in broken.values())
    assert checks(result)['links_crawl_incomplete']['status'] == 'ok'


def test_fault_web_links_start_url_never_answers_within_the_budget(site):
    started = time.monotonic()
    result = crawl(site.url + 'hang/start', timeout=30, time_budget=2)
    assert time.monotonic() - started < 10
    # Cut by the budget, not by its own timeout: not checked (no verdict), and said so.
    assert result['broken'] == [] and result['budget_spent'] and result['not_checked'] == 1
    assert checks(result)['links_crawl_incomplete']['status'] == 'warning'


def test_fault_web_links_huge_page_read_up_to_the_cap(site):
    write(site.root_dir, 'index.html', '<a href="/huge/200">a 200 MiB page</a>')
    started = time.monotonic()
    result = crawl(site.url, max_page_size='1MB')
    assert time.monotonic() - started < 20
    assert [urlsplit(u).path for u in result['pages_truncated']] == ['/huge/200']
    assert result['broken'] == [] and result['pages_crawled'] == 2
    finding = checks(result)['links_crawl_incomplete']
    assert finding['status'] == 'info' and 'size cap' in finding['message']


def test_fault_web_links_malformed_html(site):
    write(site.root_dir, 'index.html', '\n'.join([
        '<html><head><title>broken <b>markup</title>',
        '<base href="/sub/">',  # base inside an unclosed head: still the base
        '<body><div><p><a href=one.html>unquoted</a>',
        '<a href="two.html" href="ignored.html">duplicate attribute: the first wins</a>',
        '<a href = "  three.html  ">spaces</a>',
        '<a href="fo\nur.html">newline inside</a>',
        '<a>no href</a><a href="">empty</a><a href="#top">fragment</a>',
        '<!-- <a href="commented.html">in a comment</a> -->',
        '<script>document.write(\'<a href="scripted.html">x</a>\');</script>',
        '<img src=missing.png alt=x>',
        '<img srcset="a.png 1x,b.png 2x,  ,c.png">',
        '<img srcset="data:image/png;base64,AAAA 1x, d.png 2x">',
        '<table><tr><td><a href="five.html">in a table never closed',
        '<a href="six.html"<a href="seven.html">two tags run together',
        '<div <<<>>> <p unclosed="',
    ]))
    for name in ('one', 'two', 'three', 'four', 'five'):
        write(site.root_dir, 'sub/%s.html' % name, '<p>%s</p>' % name)
    for name in ('a', 'b', 'c', 'd'):
        write(site.root_dir, 'sub/%s.png' % name, 'png')
    result = crawl(site.url, max_depth=1)
    requested = set(p for _t, _m, p in site.requests)
    assert requested >= {'/sub/one.html', '/sub/two.html', '/sub/three.html', '/sub/four.html', '/sub/five.html',
                         '/sub/missing.png', '/sub/a.png', '/sub/b.png', '/sub/c.png', '/sub/d.png'}
    assert not requested & {'/sub/ignored.html', '/sub/commented.html', '/sub/scripted.html'}
    assert '/sub/missing.png' in by_path(result)
    assert not [p for p in by_path(result) if p.startswith('/sub/') and p[5:] in
                ('one.html', 'two.html', 'three.html', 'four.html', 'five.html', 'a.png', 'b.png', 'c.png', 'd.png')]


def test_fault_web_links_redirect_loop_and_long_chain(site):
    write(site.root_dir, 'index.html', '<a href="/loop/a">loop</a> <a href="/redirect/4/ok.html">4 hops</a> '
                                       '<a href="/redirect/2/ok.html">2 hops</a>')
    result = crawl(site.url, max_redirects=3)
    broken = by_path(result)
    assert set(broken) == {'/loop/a', '/redirect/4/ok.html'}
    assert broken['/loop/a']['error_kind'] == 'redirect' and 'redirect loop' in broken['/loop/a']['error']
    assert [urlsplit(u).path for u in broken['/loop/a']['redirects']] == ['/loop/a-b', '/loop/a']
    assert 'more than 3 redirects' in broken['/redirect/4/ok.html']['error']
    loops = [r for r in result['redirects'] if r['loop']]
    assert [urlsplit(r['url']).path for r in loops] == ['/loop/a']
    chain = checks(result)['links_redirect_chains']
    assert chain['status'] == 'info' and chain['value'] == 1  # the 2-hop chain; the broken ones are in links_broken
    assert site.count('/loop/a') == 1 and site.count('/loop/a-b') == 1


def test_fault_crawl_result_read_as_skipped_by_ansible(tmp_path):
    """The result once had a top-level ``skipped`` key (targets not requested, by reason): Ansible reads a non-empty
    ``skipped`` as "this task was skipped", so in a playbook the crawl showed as skipping, its findings were never
    collected and the report had no broken links. The key is ``not_requested`` now."""
    from modrunner import run_playbook  # noqa: PLC0415 - the one test here that runs a playbook
    site = appsite.start(port=0, root=os.path.join(REPO_ROOT, 'demo', 'site'))
    try:
        playbook = tmp_path / 'crawl.yml'
        playbook.write_text(
            '- hosts: localhost\n  gather_facts: false\n  tasks:\n'
            '    - appcare.maintenance.web_links_info:\n        start_urls: ["%s/"]\n        exclude: ["/perf/"]\n'
            '      register: crawl\n'
            '    - ansible.builtin.assert:\n        that: [crawl is not skipped, crawl.broken_count > 0]\n' % site.url)
        proc = run_playbook(str(playbook), inventory='localhost,', options=['-c', 'local'],
                            extra_vars={'ansible_python_interpreter': sys.executable})
        assert proc.returncode == 0, proc.stdout[-2000:]
        assert 'skipping:' not in proc.stdout
    finally:
        site.stop()
