# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: crawl a generated 500-page site with web_links_info and with Debian's linkchecker.

The script writes a site of ``--pages`` HTML pages (an index, sections of about 24 pages each, every page
linking to its section, the index, three siblings, a stylesheet and two images; every 25th page also links
to a missing page and every 50th shows a missing image), serves it with the local application site server
(demo/appsite.py) on 127.0.0.1, and crawls it, alternating in each round:

* web_links_info -- the module run as Ansible runs it on a host (its own Python process),
                    ``concurrency`` N, ``max_depth`` 3, no rate limit;
* linkchecker    -- ``linkchecker -t N -r 3 --no-status -o csv``, with ``maxrequestspersecond`` at 1000
                    and the server sending the ``LinkChecker`` header that lifts its per-host throttle (without
                    it linkchecker waits 0.1 to 0.6 s between requests to one host, whatever is asked).

Both must find exactly the planted broken set (the missing pages and images; linkchecker's CSV parsed), every
page must have been crawled by ours, and the server must have answered each. Prints the median wall time of
each, the ratio web_links_info / linkchecker and whether the target (at most 1.0: ours within linkchecker's
time) is met. Run by hand::

    .venv/bin/python benchmarks/link_crawl.py --repeat 3

``--smoke`` is the smallest run of the same code (50 pages, one round) for ``make test``: every check above
still applies and fails the run, but the ratio is not compared with the target. Needs ``linkchecker``
(Debian: ``apt-get install -y linkchecker``).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, 'tests'), os.path.join(REPO, 'collections'), os.path.join(REPO, 'demo')]

import appsite  # noqa: E402
from modrunner import run_module  # noqa: E402

TARGET = 1.0
SECTION_SIZE = 24
PNG = (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde\x00'
       b'\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82')


def page(title, body):
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>%s</title>'
            '<link rel="stylesheet" href="/css/site.css"></head>\n<body>\n<h1>%s</h1>\n%s\n</body></html>\n'
            % (title, title, body))


def write_site(root, pages):
    """A site of ``pages`` pages; returns the planted broken paths."""
    os.makedirs(os.path.join(root, 'img'))
    os.makedirs(os.path.join(root, 'css'))
    os.makedirs(os.path.join(root, 'pages'))
    with open(os.path.join(root, 'css', 'site.css'), 'w') as handle:
        handle.write('body { font-family: sans-serif; }\n')
    for name in ('logo.png', 'photo.png'):
        with open(os.path.join(root, 'img', name), 'wb') as handle:
            handle.write(PNG)
    sections = max(1, (pages - 1) // (SECTION_SIZE + 1))
    leaves = pages - 1 - sections
    planted = set()
    files = {'index.html': page('Home', '<img src="/img/logo.png" alt="">\n' + '\n'.join(
        '<a href="/sec%03d.html">Section %d</a>' % (s, s) for s in range(sections)))}
    per_section = [[] for unused in range(sections)]
    for number in range(leaves):
        per_section[number % sections].append(number)
    for section, numbers in enumerate(per_section):
        files['sec%03d.html' % section] = page('Section %d' % section, '<a href="/">Home</a>\n' + '\n'.join(
            '<a href="/pages/p%04d.html">Page %d</a>' % (n, n) for n in numbers))
        for position, number in enumerate(numbers):
            siblings = [numbers[(position + k) % len(numbers)] for k in (1, 2, 3)]
            links = ['<a href="/">Home</a>', '<a href="/sec%03d.html">Section</a>' % section,
                     '<img src="/img/logo.png" alt="">', '<img src="../img/photo.png" alt="">']
            links += ['<a href="p%04d.html">Page %d</a>' % (s, s) for s in siblings]
            if number % 25 == 0:
                links.append('<a href="/pages/missing-%04d.html">gone</a>' % number)
                planted.add('/pages/missing-%04d.html' % number)
            if number % 50 == 0:
                links.append('<img src="/img/missing-%04d.png" alt="">' % number)
                planted.add('/img/missing-%04d.png' % number)
            files['pages/p%04d.html' % number] = page('Page %d' % number, '\n'.join(links))
    for name, text in files.items():
        with open(os.path.join(root, name), 'w') as handle:
            handle.write(text)
    return planted, len(files)


def run_ours(url, concurrency):
    started = time.monotonic()
    result = run_module('web_links_info', dict(start_urls=[url], max_depth=3, max_pages=100000, concurrency=concurrency,
                                               rate_limit=0, timeout=10, time_budget=600))
    elapsed = time.monotonic() - started
    if result.failed:
        raise SystemExit('web_links_info failed: %s' % result.raw[-3000:])
    return elapsed, result


def run_linkchecker(binary, url, concurrency, config, workdir):
    argv = [binary, '-f', config, '--no-status', '-o', 'csv', '-r', '3', '-t', str(concurrency), url]
    started = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workdir,
                          timeout=3600, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit('linkchecker failed (rc %d):\n%s' % (proc.returncode, proc.stderr[-3000:]))
    lines = [line for line in proc.stdout.splitlines() if line and not line.startswith('#')]
    broken = set()
    for row in csv.DictReader(io.StringIO('\n'.join(lines)), delimiter=';'):
        if row['valid'] == 'False':
            broken.add(urlsplit(row['url']).path)
    return elapsed, broken


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--pages', type=int, default=500)
    parser.add_argument('--concurrency', type=int, default=8, help='our concurrency and linkchecker -t')
    parser.add_argument('--repeat', type=int, default=3, help='runs of each; the median is reported')
    parser.add_argument('--smoke', action='store_true',
                        help='smallest run of the whole code path (50 pages, one round); no target is checked')
    opts = parser.parse_args()
    if opts.smoke:
        opts.pages, opts.repeat = 50, 1
    binary = shutil.which('linkchecker')
    if binary is None:
        raise SystemExit('linkchecker is not installed (Debian: apt-get install -y linkchecker)')

    workdir = tempfile.mkdtemp(prefix='appcare-link-bench-')
    # linkchecker run as root drops to user nobody: its configuration and working directory must be readable.
    os.chmod(workdir, 0o755)
    server = None
    try:
        root = os.path.join(workdir, 'site')
        planted, written = write_site(root, opts.pages)
        config = os.path.join(workdir, 'linkcheckerrc')
        with open(config, 'w') as handle:
            handle.write('[checking]\nmaxrequestspersecond=1000\n')
        os.chmod(config, 0o644)
        server = appsite.start(root=root, headers={'LinkChecker': 'unthrottled'})
        runs = {'web_links_info': [], 'linkchecker': []}
        for round_ in range(opts.repeat):
            sides = ['web_links_info', 'linkchecker'] if round_ % 2 == 0 else ['linkchecker', 'web_links_info']
            for label in sides:
                server.reset_records()
                if label == 'web_links_info':
                    elapsed, result = run_ours(server.url, opts.concurrency)
                    found = set(urlsplit(b['url']).path for b in result['broken'])
                    problem = None
                    if result['pages_crawled'] != written:
                        problem = 'crawled %d pages of %d' % (result['pages_crawled'], written)
                    elif result['broken_count'] != len(found):
                        problem = 'broken list capped (%d of %d)' % (len(found), result['broken_count'])
                else:
                    elapsed, found = run_linkchecker(binary, server.url, opts.concurrency, config, workdir)
                    problem = None
                if problem is None and found != planted:
                    problem = 'found %d broken (%d planted); missed %s, extra %s' % (
                        len(found), len(planted), sorted(planted - found)[:5], sorted(found - planted)[:5])
                answered = len(server.requests)
                if problem is None and answered < written:
                    problem = 'the server answered %d requests for %d pages' % (answered, written)
                if problem:
                    raise SystemExit('%s: %s' % (label, problem))
                runs[label].append(elapsed)
                print('  round %d  %-15s %7.2f s  (%d requests, %d broken found)'
                      % (round_ + 1, label, elapsed, answered, len(found)))
        med = dict((label, statistics.median(times)) for label, times in runs.items())
        ratio = med['web_links_info'] / med['linkchecker']
        print('\n%d pages (%d broken targets planted), concurrency %d, depth 3, median of %d alternating runs:'
              % (written, len(planted), opts.concurrency, opts.repeat))
        print('  web_links_info   %7.2f s' % med['web_links_info'])
        print('  linkchecker      %7.2f s' % med['linkchecker'])
        print('  both found the same broken set: %d targets' % len(planted))
        if opts.smoke:
            print('  ratio web_links_info / linkchecker: %.2f' % ratio)
            print('smoke run: both crawls found the planted set; figures this small are not compared with the target')
        else:
            print('  ratio web_links_info / linkchecker: %.2f  (target at most %.1f: %s)'
                  % (ratio, TARGET, 'met' if ratio <= TARGET else 'NOT met'))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
