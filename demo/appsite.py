# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small local application site: static files plus the routes the web checks are tested against.

Run it::

    python3 demo/appsite.py --port 8080 --root demo/site

or import it (``start(port=0, root=...)`` returns the running server, with ``.url`` and ``.stop()``).

Static files come from ``root`` (``demo/site`` by default). The dynamic routes:

* ``/delay/<ms>/<path>``      the static ``<path>`` after ``<ms>`` milliseconds;
* ``/status/<code>``          answers that status, with a short HTML body;
* ``/redirect/<n>/<path>``    ``n`` chained redirects (302, the last one 301) ending at ``/<path>``;
* ``/loop/<name>``            a redirect loop: ``/loop/<name>`` -> ``/loop/<name>-b`` -> ``/loop/<name>``;
* ``/soft404/<anything>``     200 with a "Page not found" body;
* ``/head-refused/<path>``    405 to HEAD, the static ``<path>`` to GET;
* ``/endless/<n>``            a page linking to ten more generated pages, without end;
* ``/reset/<path>``           announces the static ``<path>``, sends half of it and resets the connection;
* ``/hang/<anything>``        accepts the request and never answers (until the server stops);
* ``/huge/<mb>``              an HTML page of ``<mb>`` MiB (generated, links to ``/huge/<mb>``).

Every request is recorded: ``server.requests`` (a list of ``(monotonic time, method, path)``) and
``server.count(path)``, for tests of rate limits and concurrency.
"""

from __future__ import annotations

import argparse
import collections
import functools
import http.server
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ROOT = os.path.join(HERE, 'site')
SOFT_404 = b'<!doctype html><html><head><title>Oops</title></head><body><h1>Page not found</h1>' \
           b'<p>The page you asked for does not exist any more. <a href="/index.html">Home</a></p></body></html>\n'


class Handler(http.server.SimpleHTTPRequestHandler):
    server_version = 'appsite/1'
    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        if self.server.verbose:
            super().log_message(format, *args)

    def end_headers(self):
        for key, value in self.server.extra_headers.items():
            self.send_header(key, value)
        super().end_headers()

    def _record(self):
        path = urlsplit(self.path).path
        with self.server.lock:
            self.server.requests.append((time.monotonic(), self.command, path))
            self.server.counts[path] += 1

    def _small(self, status, body=b'', headers=None, content_type='text/html; charset=utf-8'):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def _static(self, path):
        self.path = '/' + path.lstrip('/')
        if self.command == 'HEAD':
            return super().do_HEAD()
        return super().do_GET()

    def _route(self):
        self._record()
        path = unquote(urlsplit(self.path).path)
        match = re.match(r'^/delay/(\d+)/(.*)$', path)
        if match:
            self.server.stopping.wait(int(match.group(1)) / 1000.0)
            return self._static(match.group(2))
        match = re.match(r'^/status/(\d{3})$', path)
        if match:
            code = int(match.group(1))
            return self._small(code, ('<html><body><h1>HTTP %d</h1></body></html>\n' % code).encode())
        match = re.match(r'^/redirect/(\d+)/(.*)$', path)
        if match:
            hops, rest = int(match.group(1)), match.group(2)
            if hops <= 0:
                return self._static(rest)
            target = '/' + rest if hops == 1 else '/redirect/%d/%s' % (hops - 1, rest)
            return self._small(301 if hops == 1 else 302, headers={'Location': target})
        match = re.match(r'^/loop/([\w-]+)$', path)
        if match:
            name = match.group(1)
            target = '/loop/%s' % (name[:-2] if name.endswith('-b') else name + '-b')
            return self._small(302, headers={'Location': target})
        if path.startswith('/soft404/'):
            return self._small(200, SOFT_404)
        match = re.match(r'^/head-refused/(.*)$', path)
        if match:
            if self.command == 'HEAD':
                return self._small(405, headers={'Allow': 'GET'})
            return self._static(match.group(1))
        match = re.match(r'^/endless/(\d+)$', path)
        if match:
            number = int(match.group(1))
            links = ''.join('<a href="/endless/%d">page %d</a>\n' % (number * 10 + i, number * 10 + i)
                            for i in range(1, 11))
            return self._small(200, ('<html><body><h1>Page %d</h1>%s</body></html>\n' % (number, links)).encode())
        match = re.match(r'^/reset/(.*)$', path)
        if match:
            return self._reset(match.group(1))
        if path.startswith('/hang/'):
            self.server.stopping.wait(120)
            self.close_connection = True
            return None
        match = re.match(r'^/huge/(\d+)$', path)
        if match:
            return self._huge(int(match.group(1)))
        return self._static(path)

    def _reset(self, rest):
        full = os.path.join(self.directory, rest)
        try:
            with open(full, 'rb') as handle:
                body = handle.read()
        except OSError:
            body = b'<html><body>' + b'x' * 4096 + b'</body></html>'
        self.send_response(200)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body[:len(body) // 2])
        self.wfile.flush()
        # SO_LINGER 0 and closing the descriptor now (before the server's orderly shutdown could send a FIN):
        # the client gets a reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        os.close(self.connection.detach())
        self.close_connection = True

    def _huge(self, mebibytes):
        size = mebibytes * 1024 * 1024
        chunk = (b'<p>filler text <a href="/huge/%d">again</a></p>\n' % mebibytes) * 1024
        self.send_response(200)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        self.send_header('Content-Length', str(size))
        self.end_headers()
        if self.command == 'HEAD':
            return
        sent = 0
        try:
            while sent < size:
                part = chunk[:size - sent]
                self.wfile.write(part)
                sent += len(part)
        except OSError:
            pass  # the client stopped reading: that is what a size cap does
        self.close_connection = True

    def do_GET(self):
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_HEAD = do_GET

    def _unsupported(self):
        self._record()
        self._small(405, headers={'Allow': 'GET, HEAD'})

    do_POST = do_PUT = do_DELETE = do_OPTIONS = _unsupported


class AppSite(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address, root, verbose=False, certfile=None, keyfile=None, headers=None):
        self.root = os.path.abspath(root)
        self.extra_headers = dict(headers or {})
        self.scheme = 'https' if certfile else 'http'
        self.verbose = verbose
        self.lock = threading.Lock()
        self.requests = []
        self.counts = collections.Counter()
        self.stopping = threading.Event()
        self.thread = None
        super().__init__(address, functools.partial(Handler, directory=self.root))
        if certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            # The handshake happens in the request's thread, so a client that never completes it blocks no one.
            self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def url(self):
        return '%s://127.0.0.1:%d/' % (self.scheme, self.server_address[1])

    def handle_error(self, request, client_address):
        # A client that resets, hangs up or refuses the certificate is part of what this site is for: no traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def count(self, path):
        with self.lock:
            return self.counts[path]

    def reset_records(self):
        with self.lock:
            self.requests = []
            self.counts = collections.Counter()

    def stop(self):
        self.stopping.set()
        self.shutdown()
        self.server_close()
        if self.thread is not None:
            self.thread.join(5)


def start(port=0, root=DEFAULT_ROOT, host='127.0.0.1', verbose=False, certfile=None, keyfile=None, headers=None):
    """Serve ``root`` on ``host:port`` (0: a free port) in a background thread, over HTTPS when ``certfile`` and
    ``keyfile`` are given, adding ``headers`` to every answer; returns the server."""
    server = AppSite((host, port), root, verbose=verbose, certfile=certfile, keyfile=keyfile, headers=headers)
    server.thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.1}, daemon=True)
    server.thread.start()
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--port', type=int, default=8080)
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--root', default=DEFAULT_ROOT)
    parser.add_argument('--quiet', action='store_true', help='do not log requests')
    parser.add_argument('--cert', help='serve HTTPS with this certificate (PEM) ...')
    parser.add_argument('--key', help='... and this key')
    args = parser.parse_args(argv)
    server = AppSite((args.host, args.port), args.root, verbose=not args.quiet, certfile=args.cert, keyfile=args.key)
    print('serving %s on %s://%s:%d/' % (server.root, server.scheme, args.host, server.server_address[1]), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()


if __name__ == '__main__':
    main()
