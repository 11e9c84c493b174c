#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: web_page_info
short_description: Measure page speed and Core Web Vitals of web pages in headless Chromium
version_added: 0.1.0
description:
  - Loads each page of O(urls) in headless Chromium (or Chrome) O(runs) times, with a cold cache (a fresh browser
    context - no cache, no cookies) and a warm one (the page loaded again in that context, served from its cache as
    a returning visitor's is), and measures what the browser itself reports.
  - "Figures of a load: C(ttfb_ms) time to first byte (Navigation Timing C(responseStart): redirects, DNS, connect,
    TLS and the server's time); C(fcp_ms) First Contentful Paint; C(lcp_ms) Largest Contentful Paint (the last
    C(largest-contentful-paint) entry); C(cls) Cumulative Layout Shift (the largest session window of shifts
    without recent input, windows cut at a 1 s gap or 5 s length, as web-vitals defines it); C(tbt_ms) Total
    Blocking Time (the part beyond 50 ms of each long task between First Contentful Paint and the end of the
    measurement); C(load_ms) the load event (C(loadEventEnd)); C(transfer_bytes) bytes on the wire (0 for a cache
    hit); C(requests) the requests the page made. All times are in milliseconds from the start of the
    navigation. They come from buffered PerformanceObservers (C(paint), C(largest-contentful-paint),
    C(layout-shift), C(longtask)) installed before the page's own scripts; the network figures, failed requests
    and console errors from the DevTools protocol."
  - After the load event the module waits for the network to be quiet for 1 s (at most 5 s), as Lighthouse does,
    then reads the figures; shifts and long tasks of that time count.
  - The figure of a page is the B(median) of its runs - of the cold loads, or of the warm ones with O(cache=warm) -
    and every run's figures are returned too.
  - "Findings per page (object C(page=<name>)): C(page_availability) (critical when the page could not be loaded -
    refused, TLS error, HTTP error status of the document - or did not fire its load event within O(timeout), with
    the requests still loading; warning when some loads failed; unknown when it was not measured because the
    O(deadline) passed); C(page_load) load event in ms (warning above 3000, the guides' page load under 3 s);
    C(page_lcp) Largest Contentful Paint in ms (warning above 2500, Google's \"Good\" limit; critical above 4000,
    its \"poor\"); C(page_cls) Cumulative Layout Shift, a unitless score (warning above 0.1, critical above 0.25);
    C(page_tbt) Total Blocking Time in ms (warning above 200, critical above 600, Lighthouse's desktop scoring);
    C(page_ttfb) time to first byte in ms (warning above 800, critical above 1800); C(page_failed_requests) the
    distinct requests that failed (a network error, or HTTP 400 and above) in any load (warning above 0);
    C(page_console_errors) the distinct console errors (C(console.error), uncaught exceptions, browser errors
    other than network ones) in any load (warning above 0). A figure the browser did not report is C(unknown)."
  - The browser's own request for C(/favicon.ico) is not counted as the page's.
  - "A page that never finishes loading is reported for that page after O(timeout) and its remaining runs are
    skipped; a browser that crashes or is killed is started again for the next page (twice at most); the whole
    module ends by O(deadline). No wait is unbounded: the module drives the browser over the DevTools protocol on
    a pipe and kills its process group when time is up."
  - The browser runs without its sandbox, as Playwright starts it (the sandbox refuses to run as root and needs
    user namespaces), with a throwaway profile that is removed afterwards. Needs Chromium or Chrome on the host
    that runs the module (C(apt-get install chromium) on Debian and Ubuntu) and nothing else - no Python library.
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Only loads pages; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  urls:
    description:
      - The pages to measure - URLs (C(http://) or C(https://)), or dicts with C(url) and C(name) (the name in
        results and findings; default the URL; names must be unique).
    type: list
    elements: raw
    required: true
  runs:
    description: Loads of each page per cache mode (1 to 20); the median is the page's figure.
    type: int
    default: 3
  cache:
    description:
      - C(cold) loads each page in a fresh browser context; C(warm) loads it a second time in that context and keeps
        only that load; C(both) keeps both. The findings judge the cold loads when there are any.
    type: str
    choices: [cold, warm, both]
    default: both
  timeout:
    description:
      - Seconds a load may take until its load event. A page that does not finish in time is reported
        (C(page_availability) critical, with the requests still loading) and its remaining runs are skipped.
    type: float
    default: 30
  deadline:
    description:
      - Seconds the whole module may take. Pages not measured when it passes are reported (C(page_availability)
        unknown); the browser is killed shortly after it whatever it is doing.
    type: float
    default: 600
  viewport:
    description: The size of the page's viewport in CSS pixels (device scale factor 1, desktop).
    type: dict
    default: {}
    suboptions:
      width:
        description: Width in CSS pixels (Lighthouse's desktop preset's).
        type: int
        default: 1350
      height:
        description: Height in CSS pixels.
        type: int
        default: 940
  browser_path:
    description:
      - The Chromium or Chrome executable. Default the first of C(chromium), C(chromium-browser), C(google-chrome),
        C(google-chrome-stable) on E(PATH).
    type: path
  extra_headers:
    description:
      - Headers sent with every request the page makes (C(Authorization), a cookie). Their values are treated as
        secrets - never returned and masked in Ansible's output.
      - They go with B(every) request, to any host the page loads from, third-party ones included.
    type: dict
    default: {}
  validate_certs:
    description:
      - Verify HTTPS certificates (with the browser's trust store). With C(false) the browser ignores certificate
        errors.
    type: bool
    default: true
  thresholds:
    description:
      - Overrides of C(warning)/C(critical) for C(page_load), C(page_lcp), C(page_ttfb), C(page_tbt) (ms),
        C(page_cls) (score), C(page_failed_requests) and C(page_console_errors) (count). C(null) disables a level.
    type: dict
    default: {}
seealso:
  - module: appcare.maintenance.http_health_info
  - name: Web Vitals (thresholds)
    description: Google's definitions of LCP, CLS and their "Good" and "poor" limits.
    link: https://web.dev/articles/vitals
'''

EXAMPLES = r'''
- name: Weekly page speed of the application's main pages
  appcare.maintenance.web_page_info:
    urls:
      - {name: home, url: "https://ims.example.org/"}
      - {name: login, url: "https://ims.example.org/login"}
      - https://ims.example.org/reports
    runs: 3
  register: pages

- name: A page behind a login, warm cache only, stricter LCP
  appcare.maintenance.web_page_info:
    urls: ["https://ims.example.org/dashboard"]
    cache: warm
    extra_headers:
      Authorization: "Bearer {{ vault_app_test_token }}"
    thresholds:
      page_lcp: {warning: 2000, critical: 3000}
    severity:
      page_console_errors: info
'''

RETURN = r'''
pages:
  description: One result per page, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    url:
      description: The page's URL.
      type: str
    name:
      description: The page's name.
      type: str
    status:
      description: The worst status of the page's findings.
      type: str
    error:
      description: Why the page has no figures (not loaded, not measured), else null.
      type: str
    judged:
      description: The cache mode the findings judge (C(cold), C(warm)), null when nothing was measured.
      type: str
    ttfb_ms:
      description: Median time to first byte of the judged loads, ms. The other figures likewise.
      type: float
    fcp_ms:
      description: Median First Contentful Paint, ms.
      type: float
    lcp_ms:
      description: Median Largest Contentful Paint, ms.
      type: float
    cls:
      description: Median Cumulative Layout Shift (score).
      type: float
    tbt_ms:
      description: Median Total Blocking Time, ms.
      type: float
    load_ms:
      description: Median load event, ms.
      type: float
    transfer_bytes:
      description: Median bytes transferred.
      type: int
    requests:
      description: Median number of requests.
      type: int
    cold:
      description: The medians of the cold loads (the same keys) and C(runs), how many were measured.
      type: dict
    warm:
      description: The medians of the warm loads and C(runs).
      type: dict
    runs:
      description:
        - Every load - C(cache), C(run) (1, 2 ...), C(measured), C(timed_out), C(error), C(document_status), the
          figures, C(lcp_element) (the LCP element and its URL), C(failed_requests), C(console_errors), and
          C(pending) (requests still loading) for a load that timed out.
      type: list
      elements: dict
    runs_planned:
      description: O(runs).
      type: int
    failed_requests:
      description: Each failed request once - C(url), C(error) (C(HTTP 404), C(net::ERR_CONNECTION_REFUSED)),
        C(status), C(loads) (in how many loads).
      type: list
      elements: dict
    console_errors:
      description: Each console error once - C(source), C(message), C(url), C(loads).
      type: list
      elements: dict
  sample:
    - url: https://ims.example.org/
      name: home
      status: warning
      error: null
      judged: cold
      ttfb_ms: 84.2
      fcp_ms: 412.0
      lcp_ms: 2810.0
      cls: 0.02
      tbt_ms: 120.0
      load_ms: 2430.5
      transfer_bytes: 1843210
      requests: 41
      cold: {ttfb_ms: 84.2, lcp_ms: 2810.0, runs: 3}
      warm: {ttfb_ms: 20.1, lcp_ms: 910.0, runs: 3}
      runs:
        - {cache: cold, run: 1, measured: true, timed_out: false, error: null, document_status: 200, lcp_ms: 2790.0,
           lcp_element: "img https://ims.example.org/hero.jpg"}
      runs_planned: 3
      failed_requests: []
      console_errors: []
checks:
  description: The findings of every page, in the collection's uniform shape.
  returned: always
  type: list
  elements: dict
  sample:
    - name: page_lcp
      status: warning
      value: 2810.0
      unit: ms
      warning: 2500
      critical: 4000
      object: page=home
      message: "largest contentful paint of home (cold cache, median of 3) at 2810 ms (warning threshold: above 2500)"
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: warning
browser:
  description: The browser's product and version.
  returned: always
  type: str
  sample: Chrome/131.0.6778.85
report:
  description:
    - What this run adds to the run report of the P(appcare.maintenance.maintenance_report#callback) callback (the
      callback's C(report) convention) - section C(web_pages).
  returned: always
  type: dict
  contains:
    web_pages:
      description:
        - C(finished_at) (the report adds C(age_hours)) and C(pages), per page C(url), C(name), C(lcp_ms), C(cls),
          C(tbt_ms), C(ttfb_ms), C(load_ms), C(transfer_bytes), C(requests) and C(status) (the judged medians).
      returned: always
      type: dict
  sample:
    web_pages:
      finished_at: "2026-12-07T03:00:12.000000Z"
      pages:
        - {url: "https://ims.example.org/", name: home, lcp_ms: 2810.0, cls: 0.02, tbt_ms: 120.0, ttfb_ms: 84.2,
           load_ms: 2430.5, transfer_bytes: 1843210, requests: 41, status: warning}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import webpage as W
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import AppcareError, failure_message

HANDLED_ERRORS = (AppcareError, OSError)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            urls=dict(type='list', elements='raw', required=True),
            runs=dict(type='int', default=3),
            cache=dict(type='str', choices=list(W.CACHE_MODES), default='both'),
            timeout=dict(type='float', default=30),
            deadline=dict(type='float', default=600),
            viewport=dict(type='dict', default={}, options=dict(width=dict(type='int', default=1350),
                                                                height=dict(type='int', default=940))),
            browser_path=dict(type='path'),
            extra_headers=dict(type='dict', default={}, no_log=True),
            validate_certs=dict(type='bool', default=True),
            thresholds=dict(type='dict', default={}),
            **C.severity_spec()
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        pages = W.normalize_urls(params['urls'])
        viewport = W.validate_options(params['runs'], params['cache'], params['timeout'], params['deadline'],
                                      params['viewport'], params['extra_headers'])
        thresholds = C.merge_thresholds(W.DEFAULT_THRESHOLDS, params['thresholds'])
        C.validate_severity(params['severity'])
        result = W.run(pages, thresholds, severity=params['severity'], runs=params['runs'], cache=params['cache'],
                       timeout=params['timeout'], viewport=viewport, browser_path=params['browser_path'],
                       headers=params['extra_headers'], validate_certs=params['validate_certs'],
                       deadline=params['deadline'])
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('web page measurement', exc))
    C.finish(module, dict(changed=False, **result))


if __name__ == '__main__':
    main()
