# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Broken links and images of a web site, for web_links_info.

The crawl starts at the start URLs and stays on their sites (scheme, host and port). It goes level by level
(every target at depth d is checked before any at depth d + 1), so a page is parsed at the smallest depth it is
found at, whatever order the worker threads finish in. Each target is requested once, with GET on the site
(pages are parsed with the standard library's html.parser) and HEAD elsewhere (then GET when HEAD is refused
or fails). Requests to one host are spaced by the rate limit; every request, wait and body read ends by the
time budget, so a crawl of an endless site stops and says so instead of hanging.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import re
import socket
import ssl
import threading
import time
import urllib.robotparser
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.probe import REDIRECTS, ProbeError

# Findings: the broken targets by the element that refers to them, then the rest. All named links_*.
BROKEN = 'links_broken'            # a / area hrefs (and a start URL that is found as a link too)
IMAGES = 'links_images_broken'     # img src, img / source srcset candidates
ASSETS = 'links_assets_broken'     # link href (stylesheet, icon, preload ...), script src
SOFT_404 = 'links_soft_404'        # 200 pages whose body matches soft_404_pattern
REDIRECT_CHAINS = 'links_redirect_chains'  # targets reached through two or more redirects
START = 'links_start_url'          # a start URL that does not answer with a page
INCOMPLETE = 'links_crawl_incomplete'  # time budget spent, page limit reached, pages cut at the size cap
DEFAULT_THRESHOLDS = {
    BROKEN: {'warning': 0, 'critical': 10, 'direction': C.ABOVE, 'unit': 'count'},
    IMAGES: {'warning': 0, 'critical': 10, 'direction': C.ABOVE, 'unit': 'count'},
    ASSETS: {'warning': 0, 'critical': 5, 'direction': C.ABOVE, 'unit': 'count'},
    SOFT_404: {'warning': 0, 'critical': None, 'direction': C.ABOVE, 'unit': 'count'},
    REDIRECT_CHAINS: {'warning': None, 'critical': None, 'direction': C.ABOVE, 'unit': 'count'},
}
FAMILIES = ((BROKEN, ('a', 'start'), 'broken link'), (IMAGES, ('img', 'srcset'), 'broken image'),
            (ASSETS, ('link', 'script'), 'broken stylesheet, script or other asset'))
KINDS = ('start', 'a', 'img', 'srcset', 'link', 'script')
# link rel values whose target a browser loads (or a user follows, for icons and manifests); canonical,
# alternate, preconnect and dns-prefetch name origins or other documents and are not checked.
LINK_RELS = frozenset(('stylesheet', 'icon', 'shortcut', 'apple-touch-icon', 'apple-touch-icon-precomposed',
                       'mask-icon', 'preload', 'modulepreload', 'prefetch', 'manifest'))
SKIPPED_SCHEMES = ('mailto:', 'tel:', 'javascript:', 'data:', 'sms:', 'ftp:', 'file:', 'blob:', 'about:')
HTML_TYPES = ('text/html', 'application/xhtml+xml')
PAGES_LISTED = 10        # pages listed per broken target (found_on); found_on_count has them all
MESSAGE_LISTED = 5       # targets named in a finding's message
DRAIN_BYTES = 256 * 1024  # an unneeded body up to this size is read to keep the connection; a larger one closes it
GRACE_SECONDS = 2.0      # after the budget: how long the crawl waits for requests that are ending
DEFAULT_USER_AGENT = 'appcare.maintenance.web_links_info'


class BudgetSpent(Exception):
    """The time budget ended before this request could be made."""


# ---------------------------------------------------------------------------------------------- URLs and HTML

def clean_url(url):
    """``url`` without its fragment, with the scheme and host in lower case, the default port dropped and an
    empty path as ``/``; None when it is not an http(s) URL with a host."""
    url, _fragment = urldefrag(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ('http', 'https') or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ':' in host:
        host = '[%s]' % host
    if port is not None and port != (443 if scheme == 'https' else 80):
        host = '%s:%d' % (host, port)
    return urlunsplit((scheme, host, parts.path or '/', parts.query, ''))


def resolve(base, raw):
    """The absolute URL a link ``raw`` on a page at ``base`` (the page's URL or its ``<base href>``) points to,
    without fragment; None for links that are not fetched (mailto:, tel:, javascript:, data: ..., empty or only a
    fragment - the page itself)."""
    if raw is None:
        return None
    # Browsers strip leading and trailing whitespace and drop tabs and newlines inside a URL.
    text = re.sub(r'[\t\n\r]', '', raw.strip())
    if not text or text.startswith('#'):
        return None
    if text.lower().startswith(SKIPPED_SCHEMES):
        return None
    try:
        return clean_url(urljoin(base, text))
    except ValueError:
        return None


def site_of(url):
    """(scheme, host, port) of an absolute http(s) URL, the port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return (scheme, (parts.hostname or '').lower(), parts.port or (443 if scheme == 'https' else 80))


def site_text(site):
    return '%s://%s:%d' % site


def same_site(url, sites):
    """Whether ``url`` is on one of ``sites`` (scheme, host and port all equal)."""
    return site_of(url) in sites


def parse_srcset(value):
    """The URLs of the candidates of a ``srcset`` attribute, following the HTML standard's parser: a URL ends at
    whitespace; commas that end it are separators, not part of it; descriptors run to the next comma outside
    parentheses."""
    urls = []
    text = value or ''
    i, n = 0, len(text)
    while i < n:
        while i < n and (text[i].isspace() or text[i] == ','):
            i += 1
        if i >= n:
            break
        start = i
        while i < n and not text[i].isspace():
            i += 1
        url = text[start:i]
        if url.endswith(','):
            url = url.rstrip(',')
        else:
            depth = 0
            while i < n:
                char = text[i]
                i += 1
                if char == '(':
                    depth += 1
                elif char == ')':
                    depth = max(0, depth - 1)
                elif char == ',' and depth == 0:
                    break
        if url:
            urls.append(url)
    return urls


class _LinkParser(HTMLParser):
    """Collects (kind, raw URL) of the elements a browser loads or a user follows, and the first <base href>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.base = None
        self.links = []

    def handle_starttag(self, tag, attrs):
        values = {}
        for key, value in attrs:
            values.setdefault(key, value)
        if tag == 'base':
            if self.base is None and values.get('href'):
                self.base = values['href']
        elif tag in ('a', 'area'):
            self._add('a', values.get('href'))
        elif tag == 'img':
            self._add('img', values.get('src'))
            for url in parse_srcset(values.get('srcset')):
                self._add('srcset', url)
        elif tag == 'source':
            for url in parse_srcset(values.get('srcset')):
                self._add('srcset', url)
        elif tag == 'link':
            rels = set((values.get('rel') or '').lower().split())
            if rels & LINK_RELS:
                self._add('link', values.get('href'))
        elif tag == 'script':
            self._add('script', values.get('src'))

    handle_startendtag = handle_starttag

    def _add(self, kind, raw):
        if raw is not None and raw.strip():
            self.links.append((kind, raw))


def extract_links(html, page_url):
    """(kind, absolute URL) of every link of the page ``html`` (text) at ``page_url``, in document order,
    duplicates kept; relative URLs resolve against the page's <base href> when it has one."""
    parser = _LinkParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser gives up on some broken markup; keep what it found so far
        pass
    base = page_url
    if parser.base:
        base = urljoin(page_url, parser.base.strip())
    found = []
    for kind, raw in parser.links:
        url = resolve(base, raw)
        if url is not None:
            found.append((kind, url))
    return found


def _charset(content_type):
    match = re.search(r'charset\s*=\s*["\']?([\w.:-]+)', content_type or '', re.I)
    return match.group(1) if match else 'utf-8'


def decode(body, content_type):
    try:
        return body.decode(_charset(content_type), errors='replace')
    except LookupError:
        return body.decode('utf-8', errors='replace')


def is_html(content_type):
    return (content_type or '').split(';')[0].strip().lower() in HTML_TYPES


# ---------------------------------------------------------------------------------------------- HTTP

class RateLimiter:
    """Spaces the requests to one host by 1 / rate seconds (0: no limit). A request whose turn comes after the
    deadline is not made."""

    def __init__(self, rate):
        self.interval = 1.0 / rate if rate else 0.0
        self.lock = threading.Lock()
        self.next = {}

    def wait(self, host, deadline, stop):
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            turn = max(now, self.next.get(host, now))
            if turn > deadline:
                raise BudgetSpent()
            self.next[host] = turn + self.interval
        if turn > now and stop.wait(turn - now):
            raise BudgetSpent()


class Answer:
    __slots__ = ('status', 'location', 'content_type', 'body', 'truncated')

    def __init__(self, status, location, content_type, body, truncated):
        self.status = status
        self.location = location
        self.content_type = content_type
        self.body = body
        self.truncated = truncated


def error_of(exc, host, port):
    """A ProbeError naming what failed (phase: dns, refused, timeout, tls, reset, http) for an exception of a
    request to host:port."""
    where = '%s:%s' % (host, port)
    if isinstance(exc, ProbeError):
        return exc
    if isinstance(exc, socket.gaierror):
        return ProbeError('dns', 'cannot resolve %s: %s' % (host, exc.strerror or exc))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ProbeError('tls', 'TLS certificate of %s not accepted: %s' % (host, exc.verify_message or exc))
    if isinstance(exc, ssl.SSLError):
        return ProbeError('tls', 'TLS handshake with %s failed: %s' % (where, exc.reason or exc))
    if isinstance(exc, ConnectionRefusedError):
        return ProbeError('refused', 'connection to %s refused' % where)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return ProbeError('timeout', 'no answer from %s in time' % where)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.IncompleteRead,
                        http.client.RemoteDisconnected)):
        return ProbeError('reset', 'connection to %s reset or closed before the answer was complete (%s)'
                          % (where, type(exc).__name__))
    if isinstance(exc, http.client.HTTPException):
        return ProbeError('http', 'bad HTTP answer from %s: %s' % (where, type(exc).__name__))
    return ProbeError('connect', 'cannot connect to %s: %s' % (where, getattr(exc, 'strerror', None) or exc))


class Fetcher:
    """HTTP(S) requests of the crawl: one kept-alive connection per worker thread and site, the TLS context of
    the collection, a byte cap on bodies that are read, and every wait bounded by the crawl's deadline."""

    def __init__(self, context, timeout, user_agent, max_bytes, rate_limit, deadline):
        self.context = context
        self.timeout = timeout
        self.headers = {'User-Agent': user_agent, 'Accept': '*/*', 'Accept-Encoding': 'identity'}
        self.max_bytes = max_bytes
        self.limiter = RateLimiter(rate_limit)
        self.deadline = deadline
        self.stop = threading.Event()
        self.local = threading.local()
        self.lock = threading.Lock()
        self.opened = []
        self.requests = 0

    def _remaining(self):
        left = self.deadline - time.monotonic()
        if left <= 0 or self.stop.is_set():
            raise BudgetSpent()
        return left

    def _connection(self, site):
        cache = getattr(self.local, 'connections', None)
        if cache is None:
            cache = self.local.connections = {}
        conn = cache.get(site)
        if conn is not None:
            return conn, True
        scheme, host, port = site
        if scheme == 'https':
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        with self.lock:
            self.opened.append(conn)
        cache[site] = conn
        return conn, False

    def _drop(self, site):
        conn = self.local.connections.pop(site, None)
        if conn is not None:
            conn.close()

    def close(self):
        with self.lock:
            for conn in self.opened:
                try:
                    conn.close()
                except OSError:
                    pass
            self.opened = []

    def request(self, method, url, want_body):
        """One exchange, no redirects. ``want_body``: 'html' keeps the body of a successful HTML answer, 'any'
        any body, False none. Returns an Answer; raises ProbeError or BudgetSpent."""
        site = site_of(url)
        parts = urlsplit(url)
        path = (parts.path or '/') + ('?' + parts.query if parts.query else '')
        self.limiter.wait(site[1], self.deadline, self.stop)
        for attempt in (0, 1):
            timeout = min(self.timeout, self._remaining())
            conn, reused = self._connection(site)
            conn.timeout = timeout
            try:
                if conn.sock is None:
                    conn.connect()
                else:
                    conn.sock.settimeout(timeout)
                with self.lock:
                    self.requests += 1
                conn.request(method, path, headers=self.headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                self._drop(site)
                # A kept-alive connection the server has closed meanwhile: once more on a new one.
                if reused and attempt == 0 and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                                                ConnectionResetError, http.client.BadStatusLine)):
                    continue
                raise self._failure(exc, site) from exc
            try:
                return self._answer(method, response, want_body, site)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(site)
                raise self._failure(exc, site) from exc
        raise ProbeError('reset', 'connection to %s:%s closed twice before an answer' % (site[1], site[2]))

    def _failure(self, exc, site):
        """The error to report; a timeout cut short by the end of the budget (or the stop) is no answer about the
        target: BudgetSpent, so the target counts as not checked rather than broken."""
        if isinstance(exc, (socket.timeout, TimeoutError)) and (
                self.stop.is_set() or time.monotonic() >= self.deadline - 0.05):
            return BudgetSpent()
        return error_of(exc, site[1], site[2])

    def _answer(self, method, response, want_body, site):
        status = response.status
        content_type = response.getheader('Content-Type')
        location = response.getheader('Location')
        body, truncated = b'', False
        if method == 'HEAD':
            response.close()
        elif want_body == 'any' or want_body and status < 300 and is_html(content_type):
            body, truncated = self._read(response, self.max_bytes)
        else:
            # Not needed: read a small one to keep the connection, close on a large one.
            _unused, cut = self._read(response, DRAIN_BYTES)
            if cut:
                self._drop(site)
        if truncated or response.will_close:
            self._drop(site)
        return Answer(status, location, content_type, body, truncated)

    def _read(self, response, limit):
        """Up to ``limit`` bytes of the body within the request timeout (and the deadline); (bytes, cut)."""
        until = min(time.monotonic() + self.timeout, self.deadline)
        chunks, size = [], 0
        while size <= limit:
            if time.monotonic() > until:
                raise socket.timeout('body not read in time')
            chunk = response.read(min(65536, limit + 1 - size))
            if not chunk:
                if response.length:  # http.client returns b'' when the connection ends short of Content-Length
                    raise http.client.IncompleteRead(b''.join(chunks), response.length)
                return b''.join(chunks), False
            chunks.append(chunk)
            size += len(chunk)
        return b''.join(chunks)[:limit], True


# ---------------------------------------------------------------------------------------------- the crawl

def compile_patterns(exclude, soft_404_pattern):
    try:
        excluded = [re.compile(p) for p in exclude or []]
    except re.error as exc:
        raise ConfigurationError('exclude: %s is not a regular expression: %s' % (exc.pattern, exc)) from exc
    try:
        soft = re.compile(soft_404_pattern) if soft_404_pattern else None
    except re.error as exc:
        raise ConfigurationError('soft_404_pattern is not a regular expression: %s' % exc) from exc
    return excluded, soft


def normalize_start_urls(start_urls):
    urls = []
    for index, given in enumerate(start_urls or []):
        url = clean_url(str(given).strip())
        if url is None:
            raise ConfigurationError('start_urls[%d]: %s is not an http:// or https:// URL with a host' % (index, given))
        if url not in urls:
            urls.append(url)
    if not urls:
        raise ConfigurationError('start_urls needs at least one http:// or https:// URL')
    return urls


class Crawl:
    """One crawl: ``run()`` returns the result dict of web_links_info (without findings)."""

    def __init__(self, start_urls, context, max_depth=3, max_pages=500, respect_robots=True, concurrency=8,
                 rate_limit=10.0, time_budget=300.0, timeout=10.0, user_agent=DEFAULT_USER_AGENT,
                 check_external=False, soft_404_pattern=None, exclude=None, max_redirects=10,
                 max_page_bytes=5 * 1024 * 1024, max_listed=100):
        for name, value, low in (('max_depth', max_depth, 0), ('max_pages', max_pages, 1),
                                 ('concurrency', concurrency, 1), ('max_redirects', max_redirects, 0),
                                 ('max_listed', max_listed, 0)):
            if value < low:
                raise ConfigurationError('%s must be at least %d, got %s' % (name, low, value))
        for name, value in (('time_budget', time_budget), ('timeout', timeout), ('max_page_size', max_page_bytes)):
            if not value or value <= 0:
                raise ConfigurationError('%s must be more than 0, got %s' % (name, value))
        if rate_limit < 0:
            raise ConfigurationError('rate_limit must be 0 (no limit) or more, got %s' % rate_limit)
        self.start_urls = normalize_start_urls(start_urls)
        self.sites = set(site_of(u) for u in self.start_urls)
        self.exclude, self.soft_404 = compile_patterns(exclude, soft_404_pattern)
        self.context = context
        self.max_depth = max_depth
        self.max_pages = max_pages
        self.respect_robots = respect_robots
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self.time_budget = time_budget
        self.timeout = timeout
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.check_external = check_external
        self.max_redirects = max_redirects
        self.max_page_bytes = max_page_bytes
        self.max_listed = max_listed
        self.targets = {}
        self.robots = {}
        self.skipped = {'robots': 0, 'excluded': 0, 'external': 0}
        self.parse_lock = threading.Lock()
        self.parsed = 0
        self.parsed_urls = set()
        self.not_parsed_limit = 0
        self.truncated = []
        self.fetcher = None
        self.thresholds = C.merge_thresholds(DEFAULT_THRESHOLDS, {})

    # -- robots.txt
    def _load_robots(self, site):
        """The site's robots.txt rules: none when it has none (or it cannot be read), everything disallowed when
        it answers 401 or 403 (as urllib.robotparser reads it)."""
        parser = urllib.robotparser.RobotFileParser()
        url = clean_url('%s://%s:%d/robots.txt' % site)
        parser.set_url(url)
        try:
            for _hop in range(self.max_redirects + 1):
                answer = self.fetcher.request('GET', url, want_body='any')
                if answer.status not in REDIRECTS or not answer.location:
                    break
                url = clean_url(urljoin(url, answer.location)) or url
        except (ProbeError, BudgetSpent):
            parser.allow_all = True
            return parser
        if answer.status in (401, 403):
            parser.disallow_all = True
        elif not 200 <= answer.status < 300:
            parser.allow_all = True
        else:
            parser.parse(decode(answer.body, answer.content_type).splitlines())
        return parser

    def _allowed(self, url):
        if not self.respect_robots:
            return True
        site = site_of(url)
        parser = self.robots.get(site)
        if parser is None:
            return True
        return parser.can_fetch(self.user_agent, url)

    # -- targets
    def _target(self, url, depth):
        target = self.targets.get(url)
        if target is not None:
            return target, False
        target = {'url': url, 'kinds': set(), 'pages': [], 'page_set': set(), 'pages_count': 0, 'depth': depth,
                  'internal': same_site(url, self.sites), 'state': 'queued', 'outcome': None}
        self.targets[url] = target
        if any(p.search(url) for p in self.exclude):
            target['state'] = 'excluded'
            self.skipped['excluded'] += 1
        elif not target['internal'] and not self.check_external:
            target['state'] = 'external'
            self.skipped['external'] += 1
        elif target['internal'] and not self._allowed(url):
            target['state'] = 'robots'
            self.skipped['robots'] += 1
        return target, target['state'] == 'queued'

    def _refer(self, target, kind, page):
        target['kinds'].add(kind)
        if page is None or page in target['page_set']:
            return
        target['page_set'].add(page)
        target['pages_count'] += 1
        if len(target['pages']) < PAGES_LISTED:
            target['pages'].append(page)

    # -- one target, in a worker thread
    def _visit(self, target):
        try:
            return target, self._check(target)
        except BudgetSpent:
            return target, None

    def _check(self, target):
        url = target['url']
        external = not target['internal']
        methods = ('HEAD', 'GET') if external else ('GET',)
        outcome = None
        for method in methods:
            outcome = self._follow(method, url, target)
            if method == 'HEAD' and (outcome['phase'] in ('timeout', 'reset', 'http')
                                     or outcome['status'] in (405, 501)):
                continue  # HEAD refused, or it failed in a way GET may not: try GET
            break
        if outcome.get('links') is None:
            outcome['links'] = []
        return outcome

    def _wants_body(self, target):
        return 'html' if target['internal'] or self.soft_404 is not None else False

    def _follow(self, method, url, target):
        chain = []
        seen = {url}
        current = url
        outcome = {'status': None, 'error': None, 'phase': None, 'redirects': chain, 'final_url': url,
                   'soft_404': False, 'links': None, 'method': method}
        while True:
            try:
                answer = self.fetcher.request(method, current, want_body=self._wants_body(target))
            except ProbeError as exc:
                outcome.update(error=str(exc), phase=exc.phase)
                return outcome
            outcome['status'] = answer.status
            if answer.status in REDIRECTS and answer.location:
                following = clean_url(urljoin(current, answer.location))
                if following is None:
                    outcome.update(error='redirect to %s, which is not an http(s) URL' % answer.location,
                                   phase='redirect')
                    return outcome
                chain.append({'status': answer.status, 'url': following})
                if following in seen:
                    outcome.update(error='redirect loop: %s' % ' -> '.join([url] + [h['url'] for h in chain]),
                                   phase='redirect')
                    return outcome
                if len(chain) > self.max_redirects:
                    outcome.update(error='more than %d redirects (last to %s)' % (self.max_redirects, following),
                                   phase='redirect')
                    return outcome
                seen.add(following)
                current = following
                continue
            break
        outcome['final_url'] = current
        if answer.status >= 400 or not answer.body:
            return outcome
        text = decode(answer.body, answer.content_type)
        if self.soft_404 is not None and 200 <= answer.status < 300 and self.soft_404.search(text):
            outcome.update(soft_404=True, error='soft 404: the page answers %d but its body matches %r'
                           % (answer.status, self.soft_404.pattern), phase='soft_404')
            return outcome
        if target['internal'] and target['depth'] < self.max_depth and same_site(current, self.sites):
            with self.parse_lock:
                if current in self.parsed_urls:  # reached before, through a redirect or directly
                    return outcome
                allowed = self.parsed < self.max_pages
                if allowed:
                    self.parsed += 1
                    self.parsed_urls.add(current)
                else:
                    self.not_parsed_limit += 1
            if allowed:
                outcome['links'] = extract_links(text, current)
                outcome['parsed'] = True
                if answer.truncated:
                    outcome['truncated'] = True
        return outcome

    # -- the whole crawl
    def run(self):
        started = time.monotonic()
        deadline = started + self.time_budget
        self.fetcher = Fetcher(self.context, self.timeout, self.user_agent, self.max_page_bytes, self.rate_limit,
                               deadline)
        budget_spent = False
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            if self.respect_robots:
                for site in sorted(self.sites):
                    self.robots[site] = self._load_robots(site)
            level = []
            for url in self.start_urls:
                target, new = self._target(url, 0)
                self._refer(target, 'start', None)
                if new:
                    level.append(target)
            depth = 0
            while level and not budget_spent:
                futures = [pool.submit(self._visit, t) for t in level]
                following = []
                try:
                    for future in concurrent.futures.as_completed(
                            futures, timeout=max(0.0, deadline - time.monotonic()) + GRACE_SECONDS):
                        target, outcome = future.result()
                        if outcome is None:
                            budget_spent = True
                            target['state'] = 'unchecked'
                            continue
                        target['state'] = 'checked'
                        target['outcome'] = outcome
                        if outcome.get('truncated'):
                            self.truncated.append(target['url'])
                        page = outcome['final_url'] if outcome.get('parsed') else None
                        for kind, link in outcome.pop('links') or []:
                            child, new = self._target(link, depth + 1)
                            self._refer(child, kind, page)
                            if new:
                                following.append(child)
                except concurrent.futures.TimeoutError:
                    budget_spent = True
                if time.monotonic() >= deadline:
                    budget_spent = True
                level = following
                depth += 1
            if budget_spent:
                self.fetcher.stop.set()
                for target in level:
                    target['state'] = 'unchecked'
        finally:
            self.fetcher.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            self.fetcher.close()
        for target in self.targets.values():
            if target['state'] == 'queued':
                target['state'] = 'unchecked'
        return self._result(started, budget_spent)

    # -- results
    def _result(self, started, budget_spent):
        broken, redirects = [], []
        checked = 0
        for target in sorted(self.targets.values(), key=lambda t: t['url']):
            outcome = target['outcome']
            if outcome is None:
                continue
            checked += 1
            entry = None
            if outcome['error'] or (outcome['status'] or 0) >= 400:
                entry = {'url': target['url'], 'kinds': sorted(target['kinds'], key=KINDS.index),
                         'status': outcome['status'],
                         'error': outcome['error'] or 'HTTP %d' % outcome['status'],
                         'error_kind': outcome['phase'] or 'http_status',
                         'soft_404': outcome['soft_404'],
                         'found_on': list(target['pages']), 'found_on_count': target['pages_count'],
                         'redirects': [h['url'] for h in outcome['redirects']]}
                broken.append(entry)
            if outcome['redirects']:
                redirects.append({'url': target['url'], 'hops': len(outcome['redirects']),
                                  'chain': [h['url'] for h in outcome['redirects']],
                                  'statuses': [h['status'] for h in outcome['redirects']],
                                  'final_status': outcome['status'] if not entry or outcome['soft_404'] else None,
                                  'loop': bool(entry and 'redirect loop' in (entry['error'] or '')),
                                  'found_on': list(target['pages'])})
        unchecked = sum(1 for t in self.targets.values() if t['state'] == 'unchecked')
        return {
            'start_urls': list(self.start_urls),
            'sites': sorted(site_text(s) for s in self.sites),
            'pages_crawled': self.parsed,
            'links_checked': checked,
            'requests': self.fetcher.requests if self.fetcher else 0,
            'broken_all': broken,
            'redirects_all': redirects,
            'not_requested': dict(self.skipped),
            'not_checked': unchecked,
            'pages_not_parsed': self.not_parsed_limit,
            'pages_truncated': list(self.truncated),
            'budget_spent': budget_spent,
            'page_limit_reached': self.not_parsed_limit > 0,
            'elapsed_seconds': round(time.monotonic() - started, 3),
            'finished_at': iso(utcnow()),
        }


# ---------------------------------------------------------------------------------------------- findings

def _describe(entry):
    what = {'http_status': 'HTTP %s' % entry['status'], 'soft_404': 'soft 404'}.get(entry['error_kind'], entry['error'])
    where = ''
    if entry['found_on_count']:
        where = ' on %d page%s' % (entry['found_on_count'], '' if entry['found_on_count'] == 1 else 's')
    return '%s (%s%s)' % (entry['url'], what, where)


def _listing(entries):
    text = ', '.join(_describe(e) for e in entries[:MESSAGE_LISTED])
    if len(entries) > MESSAGE_LISTED:
        text += ' and %d more' % (len(entries) - MESSAGE_LISTED)
    return text


def findings_for(result, thresholds):
    """The checks of a crawl result (``Crawl.run()``), in the order: start URLs, broken links, images and
    assets, soft 404s, redirect chains, crawl completeness."""
    found = C.Findings(thresholds, obj='site=%s' % ','.join(result['sites']))
    broken = result['broken_all']
    start_broken = [e for e in broken if 'start' in e['kinds']]
    if start_broken:
        found.add(START, C.CRITICAL, 'start URL does not answer with a page: %s' % _listing(start_broken),
                  value=len(start_broken), unit='count')
    else:
        found.ok(START, 'every start URL answered', value=0)
    hard = [e for e in broken if not e['soft_404']]
    for name, kinds, label in FAMILIES:
        entries = [e for e in hard if set(e['kinds']) & set(kinds)]
        spec = thresholds[name]
        if entries:
            found.judge(name, len(entries), '{value} %s%s: %s' % (label, '' if len(entries) == 1 else 's',
                                                                  _listing(entries)))
        else:
            found.append(C.finding(name, C.OK, 'no %s among %d checked targets' % (label, result['links_checked']),
                                   value=0, unit='count', warning=spec.get('warning'),
                                   critical=spec.get('critical'), obj=found.obj))
    soft = [e for e in broken if e['soft_404']]
    found.judge(SOFT_404, len(soft), ('{value} page(s) answer 200 with a "not found" body: %s' % _listing(soft))
                if soft else 'no soft 404 page found')
    chains = [r for r in result['redirects_all'] if r['hops'] >= 2 and r['final_status'] is not None]
    text = 'no link goes through more than one redirect'
    if chains:
        longest = sorted(chains, key=lambda r: -r['hops'])[:MESSAGE_LISTED]
        text = '{value} link target(s) reached through 2 or more redirects: %s' % ', '.join(
            '%s (%d hops to %s)' % (r['url'], r['hops'], r['chain'][-1]) for r in longest)
    item = found.judge(REDIRECT_CHAINS, len(chains), text)
    if chains and item['status'] == C.OK:
        item['status'] = C.INFO
    reasons, status = [], C.OK
    if result['budget_spent']:
        status = C.WARNING
        reasons.append('the time budget ran out: %d target(s) were not checked' % result['not_checked'])
    if result['page_limit_reached']:
        status = C.WARNING
        reasons.append('the page limit was reached: %d page(s) were checked but not parsed for links'
                       % result['pages_not_parsed'])
    if result['pages_truncated']:
        if status == C.OK:
            status = C.INFO
        reasons.append('%d page(s) were larger than the size cap and parsed only up to it: %s'
                       % (len(result['pages_truncated']), ', '.join(result['pages_truncated'][:MESSAGE_LISTED])))
    if reasons:
        found.add(INCOMPLETE, status, 'crawl incomplete: %s' % '; '.join(reasons),
                  value=result['not_checked'] + result['pages_not_parsed'], unit='count')
    else:
        found.ok(INCOMPLETE, 'crawl complete: %d page(s) parsed, %d target(s) checked in %.1f s' % (
            result['pages_crawled'], result['links_checked'], result['elapsed_seconds']), value=0)
    return found


def finish_result(result, thresholds, max_listed):
    """The module's return values (without status) from a crawl result."""
    checks = findings_for(result, thresholds)
    broken = result.pop('broken_all')
    redirects = result.pop('redirects_all')
    out = dict(result)
    out['broken'] = broken[:max_listed]
    out['broken_count'] = len(broken)
    out['redirects'] = redirects[:max_listed]
    out['redirects_count'] = len(redirects)
    out['checks'] = list(checks)
    out['report'] = {'web_links': {
        'finished_at': result['finished_at'], 'start_urls': result['start_urls'],
        'pages_crawled': result['pages_crawled'], 'links_checked': result['links_checked'],
        'broken_count': len(broken),
        'broken': [dict((k, e[k]) for k in ('url', 'kinds', 'status', 'error', 'found_on'))
                   for e in broken[:max_listed]],
    }}
    return out


def prepare(params, context):
    """The crawl the module's options describe (every option checked; nothing requested yet), with its merged
    ``thresholds``."""
    thresholds = C.merge_thresholds(DEFAULT_THRESHOLDS, params.get('thresholds'))
    size = C.parse_size(params.get('max_page_size', '5MB'), 'max_page_size', allow_zero=False)
    job = Crawl(params['start_urls'], context, max_depth=params['max_depth'], max_pages=params['max_pages'],
                respect_robots=params['respect_robots'], concurrency=params['concurrency'],
                rate_limit=params['rate_limit'], time_budget=params['time_budget'], timeout=params['timeout'],
                user_agent=params['user_agent'], check_external=params['check_external'],
                soft_404_pattern=params.get('soft_404_pattern'), exclude=params.get('exclude'),
                max_redirects=params['max_redirects'], max_page_bytes=size, max_listed=params['max_listed'])
    job.thresholds = thresholds
    return job


def crawl(params, context):
    """Run the crawl the module's options describe; returns the module's result without status."""
    job = prepare(params, context)
    return finish_result(job.run(), job.thresholds, params['max_listed'])
