# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app_review role in the tiers as users run them: weekly.yml and monthly.yml (their app_review and report roles,
``--tags app_review,report``: the database roles are the other tier tests') against the local application site
(demo/appsite.py, started here on a free port) - the weekly run measures the pages in headless Chromium and audits
the dependencies, the monthly run crawls the links and adds npm outdated; each part shows in the findings, the run
report and the dashboard, and a target without the application's settings is skipped with a message, not failed.

The dependency audit runs the real npm on a copy of tests/fixtures/dependency_audit/npm-vulnerable against the
tests' local registry front (advisories from its file, package metadata from the public registry)."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from modrunner import REPO_ROOT, run_playbook

sys.path.insert(0, os.path.join(REPO_ROOT, 'demo'))
import appsite  # noqa: E402

FIXTURES = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'dependency_audit')
sys.path.insert(0, FIXTURES)
from advisory_registry import AdvisoryRegistry  # noqa: E402

BROWSER = next((shutil.which(name) for name in ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
                if shutil.which(name)), None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason='no Chromium or Chrome on PATH for web_page_info '
                                                           '(apt-get install chromium)')
needs_npm = pytest.mark.skipif(shutil.which('npm') is None, reason='npm is not installed (apt-get install nodejs npm)')
# The broken targets planted in demo/site outside /perf/ (tests/integration/test_web_links_info.py has their details).
PLANTED = ['/img/hero-xl.png', '/img/missing-photo.png', '/js/old-widget.js', '/missing-page.html',
           '/products/retired-model.html', '/soft404/summer-offer']


@pytest.fixture(scope='module')
def site():
    server = appsite.start(root=os.path.join(REPO_ROOT, 'demo', 'site'))
    yield server
    server.stop()


@pytest.fixture(scope='module')
def registry():
    with AdvisoryRegistry() as front:
        yield front


@pytest.fixture
def checkout(tmp_path):
    """A copy of the vulnerable npm project (the tools must not write into the repository)."""
    dest = str(tmp_path / 'checkout')
    shutil.copytree(os.path.join(FIXTURES, 'npm-vulnerable'), dest)
    return dest


def pages(site):
    return [{'name': 'clean', 'url': site.url + 'perf/clean.html'}, {'name': 'slow', 'url': site.url + 'perf/slow.html'},
            site.url + 'perf/shift.html']


def inventory(tmp_path, **shop):
    common = {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}'}
    hosts = {'shop': dict(shop), 'db': {}}
    path = tmp_path / 'hosts.json'
    path.write_text(json.dumps({'all': {'children': {'postgres_targets': {'vars': common, 'hosts': hosts}}}}))
    return str(path)


def tier(tmp_path, name, inv):
    proc = run_playbook(os.path.join(REPO_ROOT, 'playbooks', name + '.yml'), inv, options=['--tags', 'app_review,report'],
                        env={'APPCARE_REPORT_DIR': str(tmp_path / 'reports')}, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:]
    report = json.loads((tmp_path / 'reports' / 'latest.json').read_text())
    page = (tmp_path / 'reports' / 'latest.html').read_text()
    return proc, dict((t['name'], t) for t in report['targets']), page


def said(proc):
    """The run's output with its line wrapping undone (the stdout callback folds long messages)."""
    return ' '.join(proc.stdout.split())


def statuses(target, name):
    return dict((c['object'], c['status']) for c in target['checks'] if c['name'] == name)


def section(page, name):
    return page.split('<section id="%s">' % name)[1].split('</section>')[0]


@needs_browser
def test_weekly_measures_the_pages_and_not_the_links(tmp_path, site):
    inv = inventory(tmp_path, app_review_pages=pages(site), app_review_page_runs=1,
                    app_review_links_start_urls=[site.url])
    proc, targets, page = tier(tmp_path, 'weekly', inv)
    shop = targets['shop']
    measured = shop['web_pages']['pages']
    assert [p['name'] for p in measured] == ['clean', 'slow', site.url + 'perf/shift.html']
    assert measured[0]['status'] == 'ok' and measured[1]['lcp_ms'] > 2500 and measured[2]['cls'] > 0.25
    assert statuses(shop, 'page_lcp') == {'page=clean': 'ok', 'page=slow': 'warning',
                                          'page=%sperf/shift.html' % site.url: 'ok'}
    assert statuses(shop, 'page_cls')['page=%sperf/shift.html' % site.url] == 'critical'
    assert 'performance' in shop['categories']
    # weekly: no crawl although a start URL is set, no dependency audit without a checkout (and it says so)
    assert 'web_links' not in shop and 'dependencies' not in shop
    assert 'no dependency audit (set app_review_checkout_path' in said(proc)
    # the target without the application's settings: skipped with the variables that would turn it on
    assert 'app_review: nothing to review on db in this weekly run (pages, dependencies)' in said(proc)
    assert targets['db']['checks'] == [] and 'web_pages' not in targets['db']
    timings = section(page, 'pages')
    assert '<td>shop</td><td>slow' in timings and 'Needs improvement' in timings and 'Poor' in timings
    assert '<section id="links">' not in page


@needs_npm
def test_weekly_audits_the_dependencies(tmp_path, registry, checkout):
    inv = inventory(tmp_path, app_review_checkout_path=checkout, app_review_npm_registry=registry.url)
    proc, targets, page = tier(tmp_path, 'weekly', inv)
    shop = targets['shop']
    deps = shop['dependencies']
    assert deps['path'] == checkout and deps['npm']['counts']['critical'] >= 1
    assert {'minimist', 'lodash'} <= set(p['name'] for p in deps['vulnerable'])
    assert statuses(shop, 'dependency_vulnerabilities') == {'npm=' + checkout: 'critical'}
    assert 'dependency_outdated' not in [c['name'] for c in shop['checks']]  # npm outdated is monthly
    assert 'security' in shop['categories']
    assert 'no page speed (set app_review_pages' in said(proc)
    assert registry.url not in json.dumps(shop)
    vulnerable = section(page, 'dependencies')
    assert 'minimist' in vulnerable and 'lodash' in vulnerable and 'critical' in vulnerable
    assert '<section id="pages">' not in page


@needs_npm
def test_monthly_crawls_the_links_and_adds_npm_outdated(tmp_path, site, registry, checkout):
    inv = inventory(tmp_path, app_review_pages=pages(site), app_review_links_start_urls=[site.url],
                    app_review_links_exclude=['/perf/'], app_review_links_soft_404_pattern='Page not found',
                    app_review_checkout_path=checkout, app_review_npm_registry=registry.url,
                    app_review_thresholds={'links_broken': {'warning': 5, 'critical': 10}, 'page_lcp': {'warning': 1}})
    proc, targets, page = tier(tmp_path, 'monthly', inv)
    shop = targets['shop']
    links = shop['web_links']
    assert sorted(b['url'][len(site.url) - 1:] for b in links['broken']) == PLANTED
    assert links['pages_crawled'] == 8 and links['broken_count'] == 6
    site_object = 'site=' + site.url.rstrip('/')
    # app_review_thresholds: links_broken (2 broken links) stays under its raised warning level
    assert statuses(shop, 'links_broken') == {site_object: 'ok'}
    assert statuses(shop, 'links_images_broken') == {site_object: 'warning'}
    assert statuses(shop, 'links_soft_404') == {site_object: 'warning'}
    # npm outdated with the audit: mkdirp 0.5.1 is three majors behind 3.x. npm outdated asks the real registry for
    # the latest versions: when the network fails it, the run must say so (unknown), never report nothing outdated.
    if shop['dependencies']['outdated_major'] is None:
        assert 'unknown' in statuses(shop, 'dependency_audit').values(), shop['checks']
        assert 'dependency_outdated' not in [c['name'] for c in shop['checks'] if c['status'] == 'ok']
    else:
        assert shop['dependencies']['outdated_major'] >= 1
        assert statuses(shop, 'dependency_outdated') == {'npm=' + checkout: 'warning'}
    # monthly: no page timings although pages are set
    assert 'web_pages' not in shop and 'page_lcp' not in [c['name'] for c in shop['checks']]
    assert 'app_review: nothing to review on db in this monthly run (links, dependencies, outdated)' in said(proc)
    broken = section(page, 'links')
    assert '/products/retired-model.html' in broken and '/products/widget.html' in broken and 'HTTP 404' in broken
    assert 'a major version or more behind' in section(page, 'dependencies')


def test_a_bad_setting_fails_in_the_preflight(tmp_path):
    inv = inventory(tmp_path, app_review_pages=['ftp://shop.example.org/'])
    proc = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'weekly.yml'), inv, options=['--tags', 'app_review'],
                        env={'APPCARE_REPORT_DIR': str(tmp_path / 'reports')}, cwd=REPO_ROOT)
    assert proc.returncode == 2 and 'pages and start URLs that are http:// or https:// URLs' in said(proc)
