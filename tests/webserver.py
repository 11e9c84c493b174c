# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real local HTTP(S) servers and certificates for the tests: a threaded server on 127.0.0.1 with routes
the test defines, that records every request it receives, and a small CA that issues certificates with the
validity a test needs."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import os
import ssl
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class CertificateAuthority(object):
    """A throwaway CA writing PEM files into ``directory``."""

    def __init__(self, directory, name='appcare test CA'):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(_now() - datetime.timedelta(days=1))
                     .not_valid_after(_now() + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.ca_file = os.path.join(directory, 'ca.pem')
        with open(self.ca_file, 'wb') as handle:
            handle.write(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, label, names=('localhost', '127.0.0.1'), days=365, self_signed=False):
        """Certificate and key files for ``names`` (DNS names or IP addresses), valid ``days`` from now."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        alt = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        issuer_name, signer = (subject, key) if self_signed else (self.cert.subject, self.key)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(_now() - datetime.timedelta(days=1))
                .not_valid_after(_now() + datetime.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .sign(signer, hashes.SHA256()))
        cert_file = os.path.join(self.directory, label + '.crt')
        key_file = os.path.join(self.directory, label + '.key')
        with open(cert_file, 'wb') as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_file, 'wb') as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return cert_file, key_file


class Route(object):
    def __init__(self, status=200, body=b'', headers=None, delay=0.0):
        self.status = status
        self.body = json.dumps(body).encode() if isinstance(body, (dict, list)) else (
            body.encode() if isinstance(body, str) else body)
        self.headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            self.headers.setdefault('Content-Type', 'application/json')
        self.delay = delay


class LocalServer(object):
    """A threaded HTTP(S) server on 127.0.0.1. ``routes`` maps a path to a Route (or a callable taking the
    request record and returning one); unknown paths answer 404. ``requests`` records what arrived."""

    def __init__(self, routes=None, cert=None, key=None):
        self.routes = dict(routes or {})
        self.requests = []
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):  # keep test output quiet
                pass

            def _serve(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                record = {'method': self.command, 'path': self.path, 'headers': dict(self.headers.items()),
                          'body': body, 'at': time.time()}
                with owner.lock:
                    owner.requests.append(record)
                route = owner.routes.get(self.path.split('?', 1)[0])
                if callable(route):
                    route = route(record)
                route = route or Route(404, b'not found')
                if route.delay:
                    time.sleep(route.delay)
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.send_header('Content-Length', str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 128  # the default backlog of 5 drops simultaneous connections of concurrent probes

        self.httpd = Server(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.https = cert is not None
        if self.https:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return '%s://127.0.0.1:%d' % ('https' if self.https else 'http', self.port)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
