#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: web_links_info
short_description: Crawl a web application and report broken links, images, scripts, redirect chains and soft 404s
version_added: 0.1.0
description:
  - Crawls from O(start_urls) within their sites (same scheme, host and port), level by level up to O(max_depth)
    links away and O(max_pages) parsed pages, and checks every target a page refers to - C(a) and C(area) hrefs,
    C(img) src, the candidates of C(img) and C(source) C(srcset), C(link) hrefs (stylesheet, icon, preload,
    modulepreload, prefetch, manifest) and C(script) src. Relative URLs resolve against the page's URL or its
    C(<base href>); fragments are dropped; C(mailto:), C(tel:), C(javascript:), C(data:) and other non-HTTP
    links are skipped.
  - Targets on the site are requested with GET, and HTML pages are parsed for more links (Python's html.parser;
    malformed markup is read as far as it goes). With O(check_external=true) targets on other sites are checked
    but never crawled - HEAD first, then GET when HEAD is refused (405, 501) or fails (timeout, reset, bad answer).
  - robots.txt is honoured (O(respect_robots)) with the O(user_agent); disallowed targets are neither requested nor
    reported as broken. Requests to one host are spaced by O(rate_limit); at most O(concurrency) run at once.
  - The crawl never runs past O(time_budget) - every request, wait and body read ends by then - and says so in
    C(links_crawl_incomplete). Each broken target is reported once with the pages that contain it, the kinds of
    element that refer to it, the HTTP status or the error (C(dns), C(refused), C(timeout), C(tls), C(reset),
    C(http), C(redirect), C(soft_404)) and its redirect chain.
  - "Findings, named C(links_*), one each (object C(site=<scheme://host:port>)): C(links_start_url) (critical when
    a start URL does not answer with a page); C(links_broken) - broken link targets (C(a), C(area), and start URLs)
    - a count, warning above 0, critical above 10; C(links_images_broken) - broken C(img) src and srcset candidates
    - warning above 0, critical above 10; C(links_assets_broken) - broken stylesheets, icons, preloads and scripts -
    warning above 0, critical above 5; C(links_soft_404) - pages that answer 2xx but whose body matches
    O(soft_404_pattern) (only with that option) - warning above 0; C(links_redirect_chains) - targets reached
    through two or more redirects - V(info) when there are any (no warning or critical level unless set in
    O(thresholds)); redirect loops and chains longer than O(max_redirects) are broken targets instead;
    C(links_crawl_incomplete) - warning when the time budget ran out or the page limit was reached, info when a
    page was larger than O(max_page_size) and parsed only up to it."
  - A target counts in each family whose element refers to it (a file used both as C(img) src and C(a) href
    counts as an image and a link); a soft 404 counts only in C(links_soft_404).
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Only reads (GET and HEAD requests); runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  start_urls:
    description:
      - The pages the crawl starts from (http:// or https://). Their sites (scheme, host, port) are the ones crawled.
    type: list
    elements: str
    required: true
  max_depth:
    description:
      - How many links away from a start URL a target is still checked; pages closer than that are parsed for more
        links (as linkchecker's C(--recursion-level)). V(0) checks only the start URLs.
    type: int
    default: 3
  max_pages:
    description:
      - How many pages at most are parsed for links. Once reached, the targets already found are still checked
        and C(links_crawl_incomplete) warns.
    type: int
    default: 500
  respect_robots:
    description: Honour the sites' robots.txt for O(user_agent) (Python's urllib.robotparser).
    type: bool
    default: true
  concurrency:
    description: Worker threads, so requests in flight at once.
    type: int
    default: 8
  rate_limit:
    description: Requests per second to one host at most (their starts are spaced by 1 / O(rate_limit)); V(0) for no limit.
    type: float
    default: 10
  time_budget:
    description:
      - Seconds the whole crawl may take. When they are spent the crawl stops, keeps what it found and reports the
        targets it did not check in C(links_crawl_incomplete).
    type: float
    default: 300
  timeout:
    description: Seconds to wait to connect, for an answer, and to read a page's body (never past O(time_budget)).
    type: float
    default: 10
  user_agent:
    description: The C(User-Agent) header sent, and the name robots.txt rules are matched against.
    type: str
    default: appcare.maintenance.web_links_info
  check_external:
    description:
      - Also check targets on other sites (HEAD, then GET when HEAD is refused or fails). They are never crawled.
        When false they are counted in RV(not_requested.external) and not requested.
    type: bool
    default: false
  soft_404_pattern:
    description:
      - A regular expression (Python C(re.search)) that marks a 2xx HTML page as a "not found" page, for example
        C(Page not found|404). Applied to the pages that are fetched with GET.
    type: str
  exclude:
    description: Regular expressions (C(re.search)) on the absolute URL; a matching target is neither requested nor reported.
    type: list
    elements: str
    default: []
  max_redirects:
    description: Redirects followed per target; a longer chain is a broken target (error C(redirect)), as is a loop.
    type: int
    default: 10
  max_page_size:
    description:
      - The most of a page's body that is read and parsed (C(5MB), C(512kB) or bytes). A larger page is parsed
        up to the cap and named in C(links_crawl_incomplete) (info).
    type: str
    default: 5MB
  max_listed:
    description: The most broken targets and redirects listed in RV(broken), RV(redirects) and the report (the counts have all).
    type: int
    default: 100
  validate_certs:
    description: Verify the HTTPS certificates (against the system's CAs or O(ca_cert)) and host names.
    type: bool
    default: true
  ca_cert:
    description: A PEM bundle of the CAs to trust instead of the system's.
    type: path
  thresholds:
    description:
      - "Warning and critical levels per check, replacing the defaults above, for example
        C({links_broken: {warning: 5, critical: 50}}) or C({links_redirect_chains: {warning: 20}})."
    type: dict
    default: {}
'''

EXAMPLES = r'''
- name: Broken links and images of the shop, monthly
  appcare.maintenance.web_links_info:
    start_urls:
      - https://shop.example.org/
    soft_404_pattern: "Page not found|Seite nicht gefunden"
    exclude:
      - /cart/
      - "[?&]sessionid="
  register: links

- name: A larger site, external links checked too, within ten minutes
  appcare.maintenance.web_links_info:
    start_urls: [https://www.example.org/, https://www.example.org/docs/]
    max_depth: 5
    max_pages: 2000
    check_external: true
    concurrency: 16
    rate_limit: 20
    time_budget: 600
    thresholds:
      links_broken: {warning: 0, critical: 25}
    severity:
      links_redirect_chains: warning
'''

RETURN = r'''
checks:
  description: The findings described above, one per check, in the collection's C(checks) shape.
  returned: always
  type: list
  elements: dict
  sample:
    - name: links_broken
      status: warning
      value: 2
      unit: count
      warning: 0
      critical: 10
      object: site=https://shop.example.org:443
      message: "2 broken links: https://shop.example.org/history.html (HTTP 404 on 3 pages), ..."
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: warning
start_urls:
  description: The start URLs as crawled (fragment dropped, host in lower case, default port left out).
  returned: always
  type: list
  elements: str
sites:
  description: The sites crawled, as C(scheme://host:port).
  returned: always
  type: list
  elements: str
pages_crawled:
  description: Pages parsed for links.
  returned: always
  type: int
  sample: 8
links_checked:
  description: Distinct targets checked (start URLs included).
  returned: always
  type: int
  sample: 24
requests:
  description: HTTP requests made (redirect hops, HEAD and GET, robots.txt included).
  returned: always
  type: int
broken:
  description: The broken targets (at most O(max_listed)), sorted by URL.
  returned: always
  type: list
  elements: dict
  contains:
    url: {description: "The target, absolute.", type: str}
    kinds: {description: "Elements that refer to it: C(start), C(a), C(img), C(srcset), C(link), C(script).", type: list, elements: str}
    status: {description: "The last HTTP status, or null when no answer came.", type: int}
    error: {description: "What is wrong (C(HTTP 404), the connection or TLS error, the redirect loop ...).", type: str}
    error_kind: {description: "C(http_status), C(dns), C(refused), C(timeout), C(tls), C(reset), C(http), C(connect), C(redirect) or C(soft_404).", type: str}
    soft_404: {description: Whether it is a 2xx page matching O(soft_404_pattern)., type: bool}
    found_on: {description: Pages that contain it (at most 10)., type: list, elements: str}
    found_on_count: {description: How many pages contain it., type: int}
    redirects: {description: The redirect hops followed before the failure., type: list, elements: str}
  sample:
    - url: https://shop.example.org/history.html
      kinds: [a]
      status: 404
      error: HTTP 404
      error_kind: http_status
      soft_404: false
      found_on: [https://shop.example.org/, https://shop.example.org/about.html]
      found_on_count: 2
      redirects: []
broken_count:
  description: How many broken targets there are (RV(broken) may list fewer).
  returned: always
  type: int
redirects:
  description: The targets that redirected (at most O(max_listed)), with their chains.
  returned: always
  type: list
  elements: dict
  contains:
    url: {description: The target as linked., type: str}
    hops: {description: Redirects followed., type: int}
    chain: {description: "The URL of each hop, the last one the final URL.", type: list, elements: str}
    statuses: {description: The status of each redirect., type: list, elements: int}
    final_status: {description: The status of the final URL (null when the chain broke)., type: int}
    loop: {description: Whether the chain came back to a URL it had passed., type: bool}
    found_on: {description: Pages that contain the target (at most 10)., type: list, elements: str}
redirects_count:
  description: How many targets redirected.
  returned: always
  type: int
not_requested:
  description: Distinct targets not requested, by reason - C(robots) (disallowed), C(excluded) (O(exclude)), C(external) (O(check_external=false)).
  returned: always
  type: dict
  sample: {robots: 1, excluded: 0, external: 3}
  contains:
    robots: {description: Targets disallowed by robots.txt., type: int}
    excluded: {description: Targets matching O(exclude)., type: int}
    external: {description: Targets on other sites (O(check_external=false))., type: int}
not_checked:
  description: Targets found but not checked because the time budget ran out.
  returned: always
  type: int
pages_not_parsed:
  description: Pages checked but not parsed because O(max_pages) was reached.
  returned: always
  type: int
pages_truncated:
  description: Pages larger than O(max_page_size), parsed only up to it.
  returned: always
  type: list
  elements: str
budget_spent:
  description: Whether the crawl stopped at the time budget.
  returned: always
  type: bool
page_limit_reached:
  description: Whether O(max_pages) stopped the crawl from parsing more pages.
  returned: always
  type: bool
elapsed_seconds:
  description: Wall time of the crawl.
  returned: always
  type: float
finished_at:
  description: When the crawl ended (ISO 8601, UTC).
  returned: always
  type: str
report:
  description:
    - What this run adds to the run report of the P(appcare.maintenance.maintenance_report#callback) callback (the
      callback's C(report) convention) - section C(web_links), replacing the target's web_links section.
  returned: always
  type: dict
  contains:
    web_links:
      description:
        - C(finished_at), C(start_urls), C(pages_crawled), C(links_checked), C(broken_count) and C(broken) (at most
          O(max_listed) entries with C(url), C(kinds), C(status), C(error) and C(found_on)).
      returned: always
      type: dict
  sample:
    web_links:
      finished_at: "2026-12-04T15:30:00Z"
      start_urls: [https://shop.example.org/]
      pages_crawled: 8
      links_checked: 24
      broken_count: 1
      broken:
        - url: https://shop.example.org/history.html
          kinds: [a]
          status: 404
          error: HTTP 404
          found_on: [https://shop.example.org/]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import tlsinfo as T
from ansible_collections.appcare.maintenance.plugins.module_utils import weblinks as W
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError, failure_message


def main():
    module = AnsibleModule(
        argument_spec=dict(
            start_urls=dict(type='list', elements='str', required=True),
            max_depth=dict(type='int', default=3),
            max_pages=dict(type='int', default=500),
            respect_robots=dict(type='bool', default=True),
            concurrency=dict(type='int', default=8),
            rate_limit=dict(type='float', default=10),
            time_budget=dict(type='float', default=300),
            timeout=dict(type='float', default=10),
            user_agent=dict(type='str', default=W.DEFAULT_USER_AGENT),
            check_external=dict(type='bool', default=False),
            soft_404_pattern=dict(type='str'),
            exclude=dict(type='list', elements='str', default=[]),
            max_redirects=dict(type='int', default=10),
            max_page_size=dict(type='str', default='5MB'),
            max_listed=dict(type='int', default=100),
            validate_certs=dict(type='bool', default=True),
            ca_cert=dict(type='path'),
            thresholds=dict(type='dict', default={}),
            **C.severity_spec()
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        C.validate_severity(params['severity'])
        if params['ca_cert'] and not params['validate_certs']:
            raise ConfigurationError('ca_cert is given but validate_certs is false; nothing would be verified')
        context = T.client_context(verify=params['validate_certs'], ca_cert=params['ca_cert'])
        job = W.prepare(params, context)
    except (ConfigurationError, OSError) as exc:
        module.fail_json(msg=failure_message('web_links_info', exc))
    result = W.finish_result(job.run(), job.thresholds, params['max_listed'])
    C.finish(module, dict(changed=False, **result))


if __name__ == '__main__':
    main()
