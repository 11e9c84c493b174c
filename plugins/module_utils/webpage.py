# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Page performance in a real browser, for web_page_info.

Each page is loaded in headless Chromium, ``runs`` times, cold (a fresh browser context: empty cache, no
cookies) and warm (the same page again in that context, served from its cache as a returning visitor's is).
A script installed before any of the page's own reads the browser's performance timeline through buffered
PerformanceObservers (``paint``, ``largest-contentful-paint``, ``layout-shift``, ``longtask``) and the
Navigation Timing entry; the DevTools protocol's network events give the transfer size, the requests, the
failed ones and the console errors. The median of the runs is the page's figure; every run is kept.

Why the DevTools protocol directly, over ``--remote-debugging-pipe``, and not Playwright:

* No dependency on the managed host. The module needs the browser and Python's standard library only;
  Playwright is a 40 MB wheel that runs its own Node.js driver process, whose protocol version must suit the
  installed browser (Debian's Chromium follows Chrome's releases, Playwright pins one).
* Nothing can hang. The module owns the browser process and the pipe: every wait is a ``select`` with a
  deadline (the page's timeout, the module's overall deadline), a dead browser is an end of file on the pipe
  and an exit status, and a watchdog kills the browser's process group if the deadline passes. A page that
  never finishes loading, a renderer stuck in a loop or a browser killed mid-run is reported, never waited on.
* The protocol gives what the measurements need and Playwright's API does not expose without a CDP session
  anyway: ``encodedDataLength`` (bytes on the wire, 0 for a cache hit), failures with Chromium's error code,
  isolated browser contexts (each with its own cache) for cold loads.
Launching with ``--remote-debugging-pipe`` is also how Playwright and Puppeteer drive Chromium.

Definitions (web-vitals' and Lighthouse's):

* CLS: layout shifts without recent input, grouped in session windows (a shift less than 1 s after the
  previous one and less than 5 s after the window's first joins the window); the largest window's sum.
* TBT: for each long task between First Contentful Paint and the end of the measurement (the load event plus
  network quiet), the part of it beyond 50 ms, the task clipped to that interval; summed.
* TTFB: Navigation Timing ``responseStart`` (from the start of the navigation: redirects, DNS, connect,
  TLS and the server's time). Load: ``loadEventEnd``.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from urllib.parse import urlsplit

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import clock
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import (
    AppcareError,
    ConfigurationError,
    DependencyError,
)

BROWSER_NAMES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
INSTALL_BROWSER = 'install it with "apt-get install chromium" (Debian, Ubuntu) or give browser_path'
CACHE_MODES = ('cold', 'warm', 'both')
DEFAULT_VIEWPORT = {'width': 1350, 'height': 940}  # Lighthouse's desktop preset

AVAILABILITY = 'page_availability'
LOAD = 'page_load'
LCP = 'page_lcp'
CLS = 'page_cls'
TBT = 'page_tbt'
TTFB = 'page_ttfb'
FAILED_REQUESTS = 'page_failed_requests'
CONSOLE_ERRORS = 'page_console_errors'
# Google's "Good" limits warn, its "poor" limits are critical (web.dev/articles/vitals: LCP 2.5 s / 4 s,
# CLS 0.1 / 0.25, TTFB 0.8 s / 1.8 s; TBT: Lighthouse's desktop scoring, 200 ms good, 600 ms poor); the
# guides' page load under 3 s.
DEFAULT_THRESHOLDS = {
    LOAD: {'warning': 3000, 'critical': None, 'direction': C.ABOVE, 'unit': 'ms'},
    LCP: {'warning': 2500, 'critical': 4000, 'direction': C.ABOVE, 'unit': 'ms'},
    CLS: {'warning': 0.1, 'critical': 0.25, 'direction': C.ABOVE, 'unit': 'score'},
    TBT: {'warning': 200, 'critical': 600, 'direction': C.ABOVE, 'unit': 'ms'},
    TTFB: {'warning': 800, 'critical': 1800, 'direction': C.ABOVE, 'unit': 'ms'},
    FAILED_REQUESTS: {'warning': 0, 'critical': None, 'direction': C.ABOVE, 'unit': 'count'},
    CONSOLE_ERRORS: {'warning': 0, 'critical': None, 'direction': C.ABOVE, 'unit': 'count'},
}
# The figures of a load, and which finding judges each.
FIGURES = ('ttfb_ms', 'fcp_ms', 'lcp_ms', 'cls', 'tbt_ms', 'load_ms', 'transfer_bytes', 'requests')
JUDGED = ((TTFB, 'ttfb_ms'), (LCP, 'lcp_ms'), (CLS, 'cls'), (TBT, 'tbt_ms'), (LOAD, 'load_ms'))
REPORT_KEYS = ('url', 'name', 'lcp_ms', 'cls', 'tbt_ms', 'ttfb_ms', 'load_ms', 'transfer_bytes', 'requests', 'status')

CLS_GAP_MS = 1000.0
CLS_WINDOW_MS = 5000.0
LONG_TASK_MS = 50.0
QUIET_S = 1.0  # network quiet after the load event before reading the figures (Lighthouse's networkQuietThresholdMs)
SETTLE_MAX_S = 5.0  # at most this long after the load event: a page that polls is never quiet
LAUNCH_TIMEOUT_S = 30.0
STEP_TIMEOUT_S = 10.0  # one protocol command that is not a navigation
READ_TIMEOUT_S = 5.0  # reading the figures after a page timed out
READ_AFTER_DEADLINE_S = 2.0  # ... or after the module's deadline (the watchdog kills the browser 5 s after it)
CLOSE_TIMEOUT_S = 5.0
MAX_RELAUNCHES = 2
LISTED = 5  # failed requests / console errors named in a message

# Installed before the page's own scripts, in every document: buffered observers keep what the page did,
# window.__appcareVitals() flushes them and returns the raw entries (the arithmetic is in Python).
OBSERVER_SCRIPT = r'''
(function () {
  if (window.__appcareVitals) { return; }
  var state = {fcp: null, lcp: null, lcpElement: null, shifts: [], tasks: []};
  var observers = [];
  function describe(entry) {
    var el = entry.element, text = '';
    if (el && el.tagName) { text = el.tagName.toLowerCase() + (el.id ? '#' + el.id : ''); }
    if (entry.url) { text += (text ? ' ' : '') + entry.url; }
    return text || null;
  }
  function handle(type, entry) {
    if (type === 'paint') {
      if (entry.name === 'first-contentful-paint') { state.fcp = entry.startTime; }
    } else if (type === 'largest-contentful-paint') {
      state.lcp = entry.startTime;
      state.lcpElement = describe(entry);
    } else if (type === 'layout-shift') {
      if (!entry.hadRecentInput) { state.shifts.push([entry.startTime, entry.value]); }
    } else if (type === 'longtask') {
      state.tasks.push([entry.startTime, entry.duration]);
    }
  }
  ['paint', 'largest-contentful-paint', 'layout-shift', 'longtask'].forEach(function (type) {
    try {
      var observer = new PerformanceObserver(function (list) {
        list.getEntries().forEach(function (entry) { handle(type, entry); });
      });
      observer.observe({type: type, buffered: true});
      observers.push([type, observer]);
    } catch (e) { /* an entry type this browser does not know: that figure stays unknown */ }
  });
  Object.defineProperty(window, '__appcareVitals', {enumerable: false, value: function () {
    observers.forEach(function (pair) {
      pair[1].takeRecords().forEach(function (entry) { handle(pair[0], entry); });
    });
    var nav = performance.getEntriesByType('navigation')[0];
    return {fcp: state.fcp, lcp: state.lcp, lcpElement: state.lcpElement, shifts: state.shifts,
            tasks: state.tasks, ttfb: nav && nav.responseStart > 0 ? nav.responseStart : null,
            load: nav && nav.loadEventEnd > 0 ? nav.loadEventEnd : null, now: performance.now()};
  }});
})();
'''


# ---------------------------------------------------------------------------------------------------------------
# Pure arithmetic


def cls_from_shifts(shifts):
    """Cumulative Layout Shift of ``shifts`` ((start ms, value) pairs of shifts without recent input) as web-vitals
    computes it: the largest sum of a session window (gap below 1 s, window below 5 s). 0 without shifts."""
    worst = window = 0.0
    first = last = None
    for start, value in sorted(shifts):
        if first is not None and start - last < CLS_GAP_MS and start - first < CLS_WINDOW_MS:
            window += value
        else:
            window, first = value, start
        last = start
        worst = max(worst, window)
    return round(worst, 4)


def tbt_from_tasks(tasks, start, end):
    """Total Blocking Time of ``tasks`` ((start ms, duration ms) pairs) between ``start`` (FCP) and ``end``: each
    task clipped to the interval, the part beyond 50 ms. None when FCP is unknown (nothing was painted)."""
    if start is None or end is None:
        return None
    total = 0.0
    for task_start, duration in tasks:
        clipped = min(task_start + duration, end) - max(task_start, start)
        if clipped > LONG_TASK_MS:
            total += clipped - LONG_TASK_MS
    return round(total, 1)


def median(values):
    """The median of the known values (None when there are none); integers stay integers when they can."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    value = statistics.median(known)
    if isinstance(value, float) and value.is_integer() and all(isinstance(v, int) for v in known):
        return int(value)
    return round(value, 4) if isinstance(value, float) else value


def figures_from(vitals, load):
    """The figures of one load from the page's raw entries (``vitals``) and its network record (``load``)."""
    vitals = vitals or {}

    def ms(key):
        value = vitals.get(key)
        return round(float(value), 1) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    fcp = ms('fcp')
    return {
        'ttfb_ms': ms('ttfb'),
        'fcp_ms': fcp,
        'lcp_ms': ms('lcp'),
        'cls': cls_from_shifts(_pairs(vitals.get('shifts'))) if vitals else None,
        'tbt_ms': tbt_from_tasks(_pairs(vitals.get('tasks')), fcp, ms('now')),
        'load_ms': ms('load'),
        'transfer_bytes': load.transfer_bytes() if load else None,
        'requests': load.count if load else None,
        'lcp_element': vitals.get('lcpElement') if isinstance(vitals.get('lcpElement'), str) else None,
    }


def _pairs(items):
    # What the page returned is the page's: keep only well-formed number pairs.
    pairs = []
    for item in items if isinstance(items, list) else []:
        if (isinstance(item, list) and len(item) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in item)):
            pairs.append((float(item[0]), float(item[1])))
    return pairs


def summarize(runs):
    """Medians of each figure over the measured runs (those with figures), and how many there were."""
    measured = [r for r in runs if r.get('measured')]
    summary = dict((key, median(r.get(key) for r in measured)) for key in FIGURES)
    summary['runs'] = len(measured)
    return summary


# ---------------------------------------------------------------------------------------------------------------
# Options


def normalize_urls(urls):
    """``urls`` (URLs, or dicts with url and name) -> [{url, name}], names unique."""
    if not urls:
        raise ConfigurationError('urls must list at least one page')
    pages, names = [], set()
    for index, item in enumerate(urls):
        if isinstance(item, str):
            item = {'url': item}
        if not isinstance(item, dict):
            raise ConfigurationError('urls[%d] must be a URL or a dict with url and name, got %r' % (index, item))
        unknown = set(item) - {'url', 'name'}
        if unknown:
            raise ConfigurationError('urls[%d]: unknown key(s) %s; use url and name' % (index, ', '.join(sorted(unknown))))
        url = item.get('url')
        parts = urlsplit(url) if isinstance(url, str) else None
        if not parts or parts.scheme not in ('http', 'https') or not parts.hostname:
            raise ConfigurationError('urls[%d]: %r is not an http:// or https:// URL' % (index, url))
        name = item.get('name') or url
        if not isinstance(name, str):
            raise ConfigurationError('urls[%d]: name must be a string' % index)
        if name in names:
            raise ConfigurationError('urls[%d]: the name %r is used twice; names must be unique' % (index, name))
        names.add(name)
        pages.append({'url': url, 'name': name})
    return pages


def validate_options(runs, cache, timeout, deadline, viewport, headers):
    """Refuse options that cannot work, before a browser is started. Returns the viewport {width, height}."""
    if not isinstance(runs, int) or runs < 1 or runs > 20:
        raise ConfigurationError('runs must be between 1 and 20, got %r' % (runs,))
    if cache not in CACHE_MODES:
        raise ConfigurationError('cache must be one of %s, got %r' % (', '.join(CACHE_MODES), cache))
    if not timeout or timeout <= 0:
        raise ConfigurationError('timeout must be more than 0 seconds, got %r' % (timeout,))
    if not deadline or deadline <= 0:
        raise ConfigurationError('deadline must be more than 0 seconds, got %r' % (deadline,))
    size = dict(DEFAULT_VIEWPORT)
    for key, value in (viewport or {}).items():
        if key not in size:
            raise ConfigurationError('viewport: unknown key %r; use width and height' % (key,))
        try:
            size[key] = int(value)
        except (TypeError, ValueError):
            raise ConfigurationError('viewport.%s must be a number of CSS pixels, got %r' % (key, value)) from None
        if not 100 <= size[key] <= 10000:
            raise ConfigurationError('viewport.%s must be between 100 and 10000 pixels, got %r' % (key, value))
    for key, value in (headers or {}).items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigurationError('extra_headers.%s must be a string' % key)
    return size


def find_browser(browser_path=None, search_path=None):
    """The browser to run: ``browser_path`` when given (it must be an executable file), else the first of
    BROWSER_NAMES on PATH. Raises DependencyError naming what is missing and how to install it."""
    if browser_path:
        if os.path.isfile(browser_path) and os.access(browser_path, os.X_OK):
            return browser_path
        raise DependencyError('browser_path %s is not an executable file; %s' % (
            browser_path, INSTALL_BROWSER.replace(' or give browser_path', ' or point browser_path at Chromium or Chrome')))
    for name in BROWSER_NAMES:
        found = shutil.which(name, path=search_path)
        if found:
            return found
    raise DependencyError('no Chromium or Chrome browser found on PATH (looked for %s); %s'
                          % (', '.join(BROWSER_NAMES), INSTALL_BROWSER))


# ---------------------------------------------------------------------------------------------------------------
# The browser


class BrowserGone(AppcareError):
    """The browser process exited or closed its end of the pipe."""


class StepTimeout(AppcareError):
    """A protocol command did not answer in time."""


class ProtocolError(AppcareError):
    """The browser answered a command with an error."""


class Browser(object):
    """One headless Chromium driven over ``--remote-debugging-pipe`` (fd 3: commands to it, fd 4: its answers
    and events, each a JSON text ended by a NUL byte)."""

    def __init__(self, path, viewport, ignore_certificate_errors, deadline):
        self.path = path
        self.viewport = viewport
        self.ignore_certificate_errors = ignore_certificate_errors
        self.deadline = deadline  # time.monotonic() after which every wait ends
        self.proc = None
        self.profile = None
        self.rfd = self.wfd = None
        self.buffer = b''
        self.next_id = 0
        self.answers = {}
        self.listeners = {}  # session id -> callable(method, params)
        self.version = None
        self.gone = None  # why the browser is gone, once it is

    def arguments(self):
        args = [self.path, '--headless', '--remote-debugging-pipe', '--user-data-dir=%s' % self.profile,
                # As Playwright launches Chromium: no sandbox (it needs user namespaces or a setuid helper, and
                # refuses root), no GPU, nothing in the background that would add requests or CPU.
                '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
                '--disable-background-timer-throttling', '--disable-backgrounding-occluded-windows',
                '--disable-renderer-backgrounding', '--disable-component-update', '--disable-default-apps',
                '--disable-extensions', '--disable-sync', '--no-first-run', '--no-default-browser-check',
                '--mute-audio', '--hide-scrollbars', '--password-store=basic',
                '--window-size=%d,%d' % (self.viewport['width'], self.viewport['height'])]
        if self.ignore_certificate_errors:
            args.append('--ignore-certificate-errors')
        return args + ['about:blank']

    def start(self):
        self.profile = tempfile.mkdtemp(prefix='appcare-browser-')
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # The child's ends moved above 4, so that placing them on 3 and 4 cannot overwrite one with the other.
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def place_pipes():
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        stderr = open(os.path.join(self.profile, 'browser-stderr.log'), 'wb')
        try:
            self.proc = subprocess.Popen(self.arguments(), stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                         pass_fds=(3, 4), preexec_fn=place_pipes, start_new_session=True,
                                         cwd=self.profile)
        except OSError as exc:
            for fd in (child_r, child_w, to_browser_w, from_browser_r):
                os.close(fd)
            self.cleanup()
            raise DependencyError('cannot start the browser %s: %s; %s'
                                  % (self.path, exc.strerror or exc, INSTALL_BROWSER)) from None
        finally:
            stderr.close()
        os.close(child_r)
        os.close(child_w)
        self.rfd, self.wfd = from_browser_r, to_browser_w
        os.set_blocking(self.rfd, False)
        try:
            version = self.call('Browser.getVersion', timeout=LAUNCH_TIMEOUT_S)
        except (BrowserGone, StepTimeout, ProtocolError) as exc:
            detail = self.stderr_tail()
            self.gone = self.gone or str(exc)
            self.close()
            raise DependencyError('the browser %s did not start: %s%s' % (
                self.path, exc, '; it said: %s' % detail if detail else '')) from None
        self.version = version.get('product')
        return self

    def stderr_tail(self, lines=3):
        try:
            with open(os.path.join(self.profile, 'browser-stderr.log'), 'rb') as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 4096))
                text = handle.read().decode('utf-8', 'replace')
        except (OSError, TypeError):
            return ''
        kept = [line.strip() for line in text.splitlines() if line.strip()]
        return ' | '.join(kept[-lines:])

    def _exit_text(self):
        code = None
        if self.proc is not None:
            try:
                code = self.proc.wait(1)  # the pipe ends as the process exits: give it a moment to be reaped
            except subprocess.TimeoutExpired:
                pass
        if code is None:
            return 'the browser closed the DevTools pipe'
        if code < 0:
            signum = abs(code)
            try:
                return 'the browser was killed by signal %d (%s)' % (signum, signal.Signals(signum).name)
            except ValueError:
                return 'the browser was killed by signal %d' % signum
        return 'the browser exited with status %d' % code

    def _lost(self):
        if self.gone is None:
            self.gone = self._exit_text()
        raise BrowserGone(self.gone)

    def send(self, method, params=None, session=None):
        if self.gone:
            raise BrowserGone(self.gone)
        self.next_id += 1
        message = {'id': self.next_id, 'method': method, 'params': params or {}}
        if session:
            message['sessionId'] = session
        data = json.dumps(message).encode('utf-8') + b'\0'
        try:
            while data:
                data = data[os.write(self.wfd, data):]
        except OSError:
            self._lost()
        return self.next_id

    def pump(self, timeout):
        """Read and dispatch what the browser sent within ``timeout`` seconds (in slices, so that an exited
        browser is noticed even if a child process still holds the pipe)."""
        if self.gone:
            raise BrowserGone(self.gone)
        ready, unused_write, unused_error = select.select([self.rfd], [], [], max(0.0, min(timeout, 0.25)))
        if not ready:
            if self.proc.poll() is not None:
                self._lost()
            return
        try:
            data = os.read(self.rfd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            self._lost()
        if not data:
            self._lost()
        self.buffer += data
        *messages, self.buffer = self.buffer.split(b'\0')
        for raw in messages:
            try:
                message = json.loads(raw.decode('utf-8', 'replace'))
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            if 'id' in message:
                self.answers[message['id']] = message
                continue
            listener = self.listeners.get(message.get('sessionId'))
            if listener is not None and isinstance(message.get('params'), dict):
                listener(message.get('method'), message['params'])

    def call(self, method, params=None, session=None, timeout=STEP_TIMEOUT_S):
        """Send a command and wait for its answer, at most ``timeout`` seconds and never past the deadline."""
        message_id = self.send(method, params, session)
        end = min(time.monotonic() + timeout, self.deadline)
        while message_id not in self.answers:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise StepTimeout('%s got no answer within %.1f s' % (method, timeout))
            self.pump(remaining)
        answer = self.answers.pop(message_id)
        if 'error' in answer:
            error = answer['error'] if isinstance(answer['error'], dict) else {}
            raise ProtocolError('%s: %s' % (method, error.get('message', answer['error'])))
        return answer.get('result') or {}

    def wait(self, done, until):
        """Dispatch events until ``done()`` or ``until`` (monotonic) passes; returns ``done()``."""
        until = min(until, self.deadline)
        while not done():
            remaining = until - time.monotonic()
            if remaining <= 0:
                break
            self.pump(remaining)
        return done()

    def kill(self):
        """Kill the browser's process group (the watchdog's last resort, and the end of ``close``)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass

    def close(self):
        """Ask a working browser to close (CLOSE_TIMEOUT_S), then kill its process group - helpers of a browser
        that exited (zygote, renderers) share it - and remove its profile. A dead or hung browser is killed at once."""
        if self.proc is not None:
            if not self.gone:
                try:
                    self.deadline = max(self.deadline, time.monotonic() + CLOSE_TIMEOUT_S)
                    self.call('Browser.close', timeout=CLOSE_TIMEOUT_S)
                    self.proc.wait(CLOSE_TIMEOUT_S)
                except (AppcareError, subprocess.TimeoutExpired):
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self.proc.wait(CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
            self.gone = self.gone or 'closed'
        for fd in (self.rfd, self.wfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.rfd = self.wfd = None
        self.cleanup()

    def cleanup(self):
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None


# ---------------------------------------------------------------------------------------------------------------
# One load of a page


class Load(object):
    """What one load of a page sent, received and logged, from the protocol's events."""

    def __init__(self):
        self.requests = {}  # request id -> {url, status, error, bytes, done}
        self.count = 0
        self.loaded_at = None
        self.last_activity = time.monotonic()
        self.console = []
        self.crashed = False
        self.document_id = None

    def on_event(self, method, params):
        if method.startswith('Network.'):
            self.last_activity = time.monotonic()
        if method == 'Network.requestWillBeSent':
            request = params.get('request') or {}
            url = str(request.get('url') or '')
            if not url.startswith(('http:', 'https:')):
                return  # data:, blob: - nothing travels
            if params.get('type') == 'Other' and urlsplit(url).path == '/favicon.ico':
                return  # the browser's own favicon request, not the page's
            previous = self.requests.get(params.get('requestId'))
            if previous is not None and params.get('redirectResponse'):
                previous_response = params['redirectResponse']
                previous.update(done=True, status=previous_response.get('status'),
                                bytes=previous_response.get('encodedDataLength') or 0)
                self.requests['%s#%d' % (params['requestId'], self.count)] = previous
            self.requests[params.get('requestId')] = {'url': url, 'status': None, 'error': None, 'bytes': 0,
                                                      'done': False, 'canceled': False}
            self.count += 1
        elif method == 'Network.responseReceived':
            request = self.requests.get(params.get('requestId'))
            if request is not None:
                request['status'] = (params.get('response') or {}).get('status')
        elif method == 'Network.loadingFinished':
            request = self.requests.get(params.get('requestId'))
            if request is not None:
                request.update(done=True, bytes=params.get('encodedDataLength') or 0)
        elif method == 'Network.loadingFailed':
            request = self.requests.get(params.get('requestId'))
            if request is not None:
                request.update(done=True, error=str(params.get('blockedReason') or params.get('errorText') or 'failed'),
                               canceled=bool(params.get('canceled')))
        elif method == 'Page.loadEventFired':
            if self.loaded_at is None:
                self.loaded_at = time.monotonic()
        elif method == 'Runtime.consoleAPICalled':
            if params.get('type') in ('error', 'assert'):
                texts = []
                for arg in params.get('args') or []:
                    value = arg.get('value', arg.get('description', arg.get('type')))
                    texts.append(value if isinstance(value, str) else json.dumps(value))
                self._console('console.%s' % params['type'], ' '.join(texts))
        elif method == 'Runtime.exceptionThrown':
            details = params.get('exceptionDetails') or {}
            text = (details.get('exception') or {}).get('description') or details.get('text') or 'exception'
            self._console('exception', text.splitlines()[0] if text else text, details.get('url'))
        elif method == 'Log.entryAdded':
            entry = params.get('entry') or {}
            # Network errors are failed requests already; the rest (CSP, interventions) are console errors.
            if entry.get('level') == 'error' and entry.get('source') != 'network':
                self._console(entry.get('source') or 'log', entry.get('text') or '', entry.get('url'))
        elif method in ('Inspector.targetCrashed', 'Target.targetCrashed'):
            self.crashed = True

    def _console(self, source, text, url=None):
        if len(self.console) < 200:
            self.console.append({'source': source, 'message': str(text)[:500], 'url': url or None})

    @property
    def inflight(self):
        return sum(1 for r in self.requests.values() if not r['done'])

    def quiet(self):
        return self.inflight == 0 and time.monotonic() - self.last_activity >= QUIET_S

    def transfer_bytes(self):
        return sum(int(r['bytes'] or 0) for r in self.requests.values())

    def document_status(self):
        document = self.requests.get(self.document_id)
        return document.get('status') if document else None

    def document_error(self):
        """The network error that ended the page's own request (a reset mid-document), else None."""
        document = self.requests.get(self.document_id)
        return document.get('error') if document and not document['canceled'] else None

    def failed(self):
        """Requests that failed (a network error other than a cancel, or HTTP 400 and above)."""
        found = []
        for request in self.requests.values():
            if request['error'] and not request['canceled']:
                found.append({'url': request['url'], 'error': request['error'], 'status': request['status']})
            elif request['done'] and isinstance(request['status'], int) and request['status'] >= 400:
                found.append({'url': request['url'], 'error': 'HTTP %d' % request['status'], 'status': request['status']})
        return found

    def pending(self):
        return [r['url'] for r in self.requests.values() if not r['done']]


def _open_context(browser, viewport, headers):
    """A fresh browser context (its own cache and cookies) with one tab prepared for measuring."""
    context = browser.call('Target.createBrowserContext')['browserContextId']
    try:
        target = browser.call('Target.createTarget', {'url': 'about:blank', 'browserContextId': context})['targetId']
        session = browser.call('Target.attachToTarget', {'targetId': target, 'flatten': True})['sessionId']
        steps = [('Page.enable', {}), ('Network.enable', {}), ('Runtime.enable', {}), ('Log.enable', {}),
                 ('Emulation.setDeviceMetricsOverride', {'width': viewport['width'], 'height': viewport['height'],
                                                         'deviceScaleFactor': 1, 'mobile': False}),
                 ('Page.addScriptToEvaluateOnNewDocument', {'source': OBSERVER_SCRIPT})]
        if headers:
            steps.append(('Network.setExtraHTTPHeaders', {'headers': dict((k, str(v)) for k, v in headers.items())}))
        for method, params in steps:
            browser.call(method, params, session)
    except AppcareError:
        _close_context(browser, context)
        raise
    return context, session


def _close_context(browser, context):
    if context and not browser.gone:
        try:
            browser.call('Target.disposeBrowserContext', {'browserContextId': context}, timeout=CLOSE_TIMEOUT_S)
        except (StepTimeout, ProtocolError):
            pass


def measure_load(browser, session, url, timeout):
    """Load ``url`` in the tab of ``session`` and return the run's record: figures, failed requests, console
    errors, and ``error``/``timed_out`` when the page did not load. Raises BrowserGone only."""
    load = Load()
    record = {'measured': False, 'timed_out': False, 'error': None, 'document_status': None}

    def on_event(method, params):
        if method == 'Page.javascriptDialogOpening':  # an alert() would stop the page until answered
            browser.send('Page.handleJavaScriptDialog', {'accept': True}, session)
        load.on_event(method, params)

    browser.listeners[session] = on_event
    started = time.monotonic()
    until = started + timeout
    try:
        navigation = browser.call('Page.navigate', {'url': url}, session, timeout=timeout)
    except StepTimeout:
        navigation = None
    except ProtocolError as exc:
        record['error'] = str(exc)
        return _finish(record, load)
    if navigation is None or time.monotonic() >= until:
        record['timed_out'] = True
    elif navigation.get('errorText'):
        record['error'] = navigation['errorText']  # net::ERR_CONNECTION_REFUSED, net::ERR_CERT_AUTHORITY_INVALID ...
        return _finish(record, load)
    else:
        load.document_id = navigation.get('loaderId')
        if not browser.wait(lambda: load.loaded_at is not None or load.crashed or load.document_error(), until):
            record['timed_out'] = True
        elif load.document_error() and load.loaded_at is None:
            record['error'] = 'the page broke off: %s' % load.document_error()
        elif not load.crashed:
            browser.wait(lambda: load.crashed or load.quiet(), min(load.loaded_at + SETTLE_MAX_S, until))
    if load.crashed:
        record['error'] = "the page's renderer crashed"
        return _finish(record, load)
    if navigation is None:  # not even the document arrived: the tab still shows about:blank, nothing to read
        record['error'] = 'no answer to the request for the page within %s s' % _seconds(timeout)
        if time.monotonic() < until and time.monotonic() >= browser.deadline:
            record['error'] = "no answer to the request for the page before the module's deadline"
        return _finish(record, load)
    if record['timed_out']:
        if time.monotonic() < until and time.monotonic() >= browser.deadline:
            record['error'] = "no load event before the module's deadline"
        else:
            record['error'] = 'no load event within %s s' % _seconds(timeout)
    record['document_status'] = load.document_status()
    vitals = None
    try:
        if time.monotonic() >= browser.deadline:  # what the page did so far is still worth reporting
            browser.deadline = time.monotonic() + READ_AFTER_DEADLINE_S
        answer = browser.call('Runtime.evaluate', {'expression': 'window.__appcareVitals && window.__appcareVitals()',
                                                   'returnByValue': True}, session,
                              timeout=max(READ_TIMEOUT_S, until - time.monotonic()))
        vitals = (answer.get('result') or {}).get('value')
    except (StepTimeout, ProtocolError) as exc:
        record['error'] = record['error'] or 'could not read the figures: %s' % exc
    if isinstance(vitals, dict):
        record.update(figures_from(vitals, load))
        record['measured'] = True
    return _finish(record, load)


def _finish(record, load):
    record['failed_requests'] = load.failed()
    record['console_errors'] = list(load.console)
    if record['timed_out']:
        record['pending'] = load.pending()[:20]
    record.setdefault('transfer_bytes', load.transfer_bytes())
    record.setdefault('requests', load.count)
    for key in FIGURES:
        record.setdefault(key, None)
    return record


def _seconds(value):
    return ('%g' % value)


# ---------------------------------------------------------------------------------------------------------------
# Pages


def measure_page(browser, page, runs, cache, timeout, viewport, headers):
    """Every run of one page: a cold load in a fresh context, then (cache warm or both) a warm one in the same
    context. After a timeout or a navigation error the remaining runs are skipped (they would end the same)."""
    records = []
    stop = None
    for number in range(1, runs + 1):
        context, phase = None, 'cold'
        try:
            context, session = _open_context(browser, viewport, headers)
            cold = measure_load(browser, session, page['url'], timeout)
            cold.update(cache='cold', run=number)
            if cache in ('cold', 'both') or not cold['measured']:
                records.append(cold)
            if not cold['measured'] or cold['timed_out']:
                stop = cold['error']
            elif cache in ('warm', 'both'):
                phase = 'warm'
                browser.call('Page.navigate', {'url': 'about:blank'}, session, timeout=STEP_TIMEOUT_S)
                warm = measure_load(browser, session, page['url'], timeout)
                warm.update(cache='warm', run=number)
                records.append(warm)
                if warm['timed_out'] or not warm['measured']:
                    stop = warm['error']
        except (BrowserGone, StepTimeout, ProtocolError) as exc:
            records.append(_failed_run(number, phase, str(exc)))
            stop = str(exc)
        finally:
            browser.listeners.clear()
            _close_context(browser, context)
        if stop or time.monotonic() >= browser.deadline:
            break
    return page_result(page, records, runs, cache)


def _failed_run(number, phase, error):
    record = {'cache': phase, 'run': number, 'measured': False, 'timed_out': False, 'error': error,
              'document_status': None, 'failed_requests': [], 'console_errors': []}
    for key in FIGURES:
        record[key] = None
    return record


def page_result(page, records, runs=0, cache='both', error=None):
    """A page's result: the figures judged (cold when measured, else warm), per cache mode, every run, and the
    failed requests and console errors of all runs (each once, with the number of loads it was seen in)."""
    result = {'url': page['url'], 'name': page['name'], 'error': error, 'runs': records, 'runs_planned': runs,
              'cache': cache}
    for mode in ('cold', 'warm'):
        result[mode] = summarize([r for r in records if r['cache'] == mode])
    judged = 'cold' if result['cold']['runs'] else ('warm' if result['warm']['runs'] else None)
    result['judged'] = judged
    for key in FIGURES:
        result[key] = result[judged][key] if judged else None
    result['failed_requests'] = _distinct(records, 'failed_requests', ('url', 'error'))
    result['console_errors'] = _distinct(records, 'console_errors', ('source', 'message'))
    if error is None:
        problems = [r for r in records if r['error']]
        if problems and not any(r['measured'] for r in records):
            result['error'] = problems[0]['error']
    return result


def _distinct(records, key, identity):
    seen = {}
    for record in records:
        for item in record.get(key) or []:
            ident = tuple(item.get(k) for k in identity)
            if ident not in seen:
                seen[ident] = dict(item, loads=0)
            seen[ident]['loads'] += 1
    return list(seen.values())


def measure(pages, runs=3, cache='both', timeout=30.0, viewport=None, browser_path=None, headers=None,
            validate_certs=True, deadline=600.0, search_path=None):
    """Measure every page; returns (results in the order given, browser version). Raises DependencyError when
    no browser can be found or started. A browser that dies mid-run is started again (MAX_RELAUNCHES times)."""
    path = find_browser(browser_path, search_path)
    viewport = viewport or dict(DEFAULT_VIEWPORT)
    end = time.monotonic() + deadline
    browser = Browser(path, viewport, not validate_certs, end).start()
    version = browser.version
    # The last resort: whatever blocks, the browser is killed shortly after the deadline, and its pipe ends.
    # ``browser`` is looked up when the timer fires, so a relaunched browser is the one killed.

    def kill_current_browser():
        browser.kill()

    watchdog = threading.Timer(max(0.0, end - time.monotonic()) + CLOSE_TIMEOUT_S, kill_current_browser)
    watchdog.daemon = True
    watchdog.start()
    results, relaunches = [], 0
    try:
        for page in pages:
            if time.monotonic() >= end:
                results.append(page_result(page, [], runs, cache, error='not measured: the deadline of %s s passed'
                                           % _seconds(deadline)))
                continue
            if browser.gone:
                if relaunches >= MAX_RELAUNCHES:
                    results.append(page_result(page, [], runs, cache, error='not measured: %s, %d times'
                                               % (browser.gone, relaunches + 1)))
                    continue
                relaunches += 1
                browser.close()
                try:
                    browser = Browser(path, viewport, not validate_certs, end).start()
                except DependencyError as exc:
                    results.append(page_result(page, [], runs, cache, error='not measured: %s' % exc))
                    continue
            results.append(measure_page(browser, page, runs, cache, timeout, viewport, headers))
    finally:
        watchdog.cancel()
        browser.close()
    return results, version


# ---------------------------------------------------------------------------------------------------------------
# Findings


def findings_for(result, thresholds):
    """The checks of one page's result."""
    obj = 'page=%s' % result['name']
    found = C.Findings(thresholds, obj)
    name = result['name']
    records = result['runs']
    if not any(r['measured'] for r in records):
        if result['error'] and result['error'].startswith('not measured'):
            found.add(AVAILABILITY, C.UNKNOWN, '%s was %s' % (name, result['error']))
        else:
            found.add(AVAILABILITY, C.CRITICAL, '%s could not be loaded: %s' % (name, result['error'] or 'no figures'),
                      value=0, unit='loads')
        return list(found)
    timed_out = [r for r in records if r['timed_out']]
    errors = [r for r in records if r['error'] and not r['timed_out']]
    bad_status = [r for r in records if isinstance(r.get('document_status'), int) and r['document_status'] >= 400]
    loads = len(records)
    if timed_out:
        pending = timed_out[0].get('pending') or []
        found.add(AVAILABILITY, C.CRITICAL, '%s did not finish loading: %s (%d of %d loads)%s' % (
            name, timed_out[0]['error'], len(timed_out), loads,
            '; still loading: %s' % ', '.join(pending[:LISTED]) if pending else ''), value=len(timed_out), unit='loads')
    elif bad_status:
        found.add(AVAILABILITY, C.CRITICAL, '%s answered HTTP %d' % (name, bad_status[0]['document_status']),
                  value=bad_status[0]['document_status'], unit='status')
    elif errors:
        found.add(AVAILABILITY, C.CRITICAL if len(errors) == loads else C.WARNING, '%d of %d loads of %s failed: %s'
                  % (len(errors), loads, name, errors[0]['error']), value=len(errors), unit='loads')
    else:
        found.add(AVAILABILITY, C.OK, '%s loaded %d time(s)' % (name, loads), value=loads, unit='loads')
    judged = result['judged']
    where = '%s (%s cache, median of %d)' % (name, judged, result[judged]['runs'])
    texts = {TTFB: 'first byte of %s after {value} ms', LCP: 'largest contentful paint of %s at {value} ms',
             CLS: 'cumulative layout shift of %s: {value}', TBT: 'total blocking time of %s: {value} ms',
             LOAD: 'load event of %s at {value} ms'}
    for check, key in JUDGED:
        value = result[key]
        if value is None:
            reason = 'no load event' if check == LOAD else 'the browser reported no entry for it'
            if check == TBT and result['fcp_ms'] is None:
                reason = 'nothing was painted (no First Contentful Paint)'
            found.unknown(check, '%s: %s unknown: %s' % (where, check, reason))
        else:
            found.judge(check, value, texts[check] % where)
    found.judge(FAILED_REQUESTS, len(result['failed_requests']), '%s: {value} failed request(s)%s' % (
        name, _listing(['%s (%s)' % (f['url'], f['error']) for f in result['failed_requests']])))
    found.judge(CONSOLE_ERRORS, len(result['console_errors']), '%s: {value} console error(s)%s' % (
        name, _listing([e['message'] for e in result['console_errors']])))
    return list(found)


def _listing(items):
    if not items:
        return ''
    more = len(items) - LISTED
    return ': %s%s' % ('; '.join(items[:LISTED]), ' and %d more' % more if more > 0 else '')


def run(pages, thresholds, severity=None, **options):
    """Measure the pages and judge them (``severity`` applied, so each page's status is its findings' worst):
    the module's result (pages, checks, report, browser)."""
    results, version = measure(pages, **options)
    findings = []
    for result in results:
        page_checks = findings_for(result, thresholds)
        C.apply_severity(page_checks, severity or {})
        result['status'] = C.worst_status(page_checks)
        findings.extend(page_checks)
    report = {'web_pages': {'finished_at': clock.iso(clock.utcnow()),
                            'pages': [dict((key, r.get(key)) for key in REPORT_KEYS) for r in results]}}
    return {'pages': results, 'checks': findings, 'report': report, 'browser': version}
