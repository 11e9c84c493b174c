# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tls_cert_info against real local TLS servers (certificates generated here), a real PostgreSQL with
ssl = on, PostgreSQL without SSL, and an SMTP server speaking STARTTLS."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from conftest import DISTRO, EMBEDDED, VERSIONS
from modrunner import run_module
from pgserver import PgServer
from webserver import CertificateAuthority, LocalServer, Route


def checks_of(result, endpoint):
    return dict((c['name'], c) for c in result['checks'] if c['object'] == 'endpoint=%s' % endpoint)


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    ca = CertificateAuthority(str(tmp_path_factory.mktemp('ca')))
    servers = {
        'good': LocalServer({'/': Route(200, b'ok')}, *ca.issue('good', days=200)).start(),
        'expiring': LocalServer({'/': Route(200, b'ok')}, *ca.issue('expiring', days=5)).start(),
        'self': LocalServer({'/': Route(200, b'ok')}, *ca.issue('self', days=200, self_signed=True)).start(),
        'othername': LocalServer({'/': Route(200, b'ok')},
                                 *ca.issue('other', names=('db.example.org',), days=200)).start(),
    }
    yield ca, servers
    for server in servers.values():
        server.stop()


def test_https_certificates(certs):
    ca, servers = certs
    endpoints = dict((name, 'https://127.0.0.1:%d' % server.port) for name, server in servers.items())
    result = run_module('tls_cert_info', {'endpoints': list(endpoints.values()), 'ca_cert': ca.ca_file})
    assert result.rc == 0, result.raw
    good = checks_of(result, endpoints['good'])
    assert all(c['status'] == 'ok' for c in good.values()), good
    cert = result['certificates'][0]
    assert cert['subject'] == 'CN=localhost' and cert['issuer'] == 'CN=appcare test CA'
    assert cert['san'] == ['localhost', '127.0.0.1'] and cert['key_type'] == 'EC (secp256r1)' and cert['key_size'] == 256
    assert cert['tls_version'] in ('TLSv1.2', 'TLSv1.3') and 199 < cert['days_left'] < 200.1
    expiring = checks_of(result, endpoints['expiring'])['tls_expiry']
    assert expiring['status'] == 'critical' and 4 < expiring['value'] < 5.1
    self_signed = checks_of(result, endpoints['self'])
    assert self_signed['tls_chain']['status'] == 'critical' and self_signed['tls_expiry']['status'] == 'ok'
    assert 'self-signed' in self_signed['tls_chain']['message'] or 'self signed' in self_signed['tls_chain']['message']
    other = checks_of(result, endpoints['othername'])
    assert other['tls_hostname']['status'] == 'critical' and 'db.example.org' in other['tls_hostname']['message']
    assert other['tls_chain']['status'] == 'ok'
    # without the CA, the chain does not verify against the system store; the certificate is still read
    system = run_module('tls_cert_info', {'endpoints': [endpoints['good']]})
    assert checks_of(system, endpoints['good'])['tls_chain']['status'] == 'critical'
    assert system['certificates'][0]['days_left'] > 199
    # the name the certificate is for, sent as SNI and matched
    named = run_module('tls_cert_info', {'endpoints': [endpoints['othername']], 'server_name': 'db.example.org',
                                         'ca_cert': ca.ca_file})
    assert checks_of(named, endpoints['othername'])['tls_hostname']['status'] == 'ok'


def test_thresholds_and_unreachable(certs):
    ca, servers = certs
    url = 'https://127.0.0.1:%d' % servers['good'].port
    result = run_module('tls_cert_info', {'endpoints': [url, 'https://127.0.0.1:1', 'https://no-such-host.invalid'],
                                          'ca_cert': ca.ca_file, 'thresholds': {'tls_expiry': {'warning': 365}}})
    assert checks_of(result, url)['tls_expiry']['status'] == 'warning'
    assert not result.get('deprecations')
    # the finding's earlier name still sets its thresholds, with a deprecation warning
    renamed = run_module('tls_cert_info', {'endpoints': [url], 'ca_cert': ca.ca_file,
                                           'thresholds': {'days_left': {'warning': 365}}})
    assert checks_of(renamed, url)['tls_expiry']['status'] == 'warning'
    assert 'thresholds.days_left is now thresholds.tls_expiry' in str(renamed['deprecations'])
    closed = checks_of(result, 'https://127.0.0.1:1')['tls_connection']
    assert closed['status'] == 'critical' and 'cannot connect' in closed['message']
    nowhere = checks_of(result, 'https://no-such-host.invalid')['tls_connection']
    assert 'cannot resolve' in nowhere['message']


def test_postgresql_with_and_without_ssl(tmp_path):
    plain = PgServer(VERSIONS[EMBEDDED]).start()
    try:
        result = run_module('tls_cert_info', {'endpoints': ['postgresql://127.0.0.1:%d' % plain.port]})
        refused = result['checks'][0]
        assert refused['name'] == 'tls_connection' and refused['status'] == 'critical'
        assert 'refused SSL' in refused['message']
    finally:
        plain.cleanup()
    if DISTRO not in VERSIONS:
        pytest.skip('PostgreSQL %s with SSL is not installed here' % DISTRO)
    secured = PgServer(VERSIONS[DISTRO], tls=True).start()
    try:
        endpoint = 'postgresql://127.0.0.1:%d' % secured.port
        result = run_module('tls_cert_info', {'endpoints': [endpoint], 'ca_cert': secured.ca_file})
        found = checks_of(result, endpoint)
        assert all(c['status'] == 'ok' for c in found.values()), found
        assert result['certificates'][0]['subject'] == 'CN=127.0.0.1' and result['certificates'][0]['days_left'] > 300
        assert checks_of(run_module('tls_cert_info', {'endpoints': [endpoint]}), endpoint)['tls_chain']['status'] == 'critical'
    finally:
        secured.cleanup()


class StartTlsServer(object):
    """A minimal SMTP server: greeting, EHLO with STARTTLS, then TLS."""

    def __init__(self, cert, key, offer_starttls=True):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.offer = offer_starttls
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _address = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        try:
            conn.sendall(b'220 mail.test ESMTP\r\n')
            conn.recv(1024)
            conn.sendall(b'250-mail.test\r\n' + (b'250-STARTTLS\r\n' if self.offer else b'') + b'250 SIZE 1000\r\n')
            if not self.offer:
                return
            conn.recv(1024)
            conn.sendall(b'220 go ahead\r\n')
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def test_smtp_starttls(certs):
    ca, _servers = certs
    cert, key = ca.issue('mail', days=40)
    with_tls = StartTlsServer(cert, key)
    without = StartTlsServer(cert, key, offer_starttls=False)
    try:
        good = 'smtp://127.0.0.1:%d' % with_tls.port
        bad = 'smtp://127.0.0.1:%d' % without.port
        result = run_module('tls_cert_info', {'endpoints': [good, bad], 'ca_cert': ca.ca_file})
        assert all(c['status'] == 'ok' for c in checks_of(result, good).values()), checks_of(result, good)
        assert 'does not offer STARTTLS' in checks_of(result, bad)['tls_connection']['message']
    finally:
        with_tls.close()
        without.close()


@pytest.mark.parametrize('args, message', [
    ({'endpoints': ['ftp://example.org']}, 'not a supported endpoint'),
    ({'endpoints': ['https://example.org'], 'ca_cert': '/nonexistent/ca.pem'}, 'ca_cert /nonexistent/ca.pem does not exist'),
    ({'endpoints': ['https://example.org'], 'thresholds': {'tls_expiry': {'warning': 5, 'critical': 30}}}, 'warning threshold'),
    ({'endpoints': ['https://example.org'], 'thresholds': {'days_left': {}, 'tls_expiry': {}}}, 'not both'),
])
def test_bad_options_fail_clearly(args, message):
    result = run_module('tls_cert_info', args)
    assert result.failed and message in result['msg'], result['msg']
