# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read and judge the TLS certificate of an endpoint: HTTPS (or any direct TLS port), PostgreSQL (the
SSLRequest preamble, then TLS) and SMTP (STARTTLS).

Two handshakes per endpoint: one that accepts any certificate, to read it even when it would not verify,
and one that verifies the chain against the system's CAs or a given bundle. The host name is matched
against the certificate's subject alternative names (or its common name when it has none).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import ipaddress
import socket
import ssl
import struct
from urllib.parse import urlsplit

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
    from cryptography.x509.oid import NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_CRYPTOGRAPHY = False

DEFAULT_PORTS = {'https': 443, 'tls': 443, 'postgresql': 5432, 'postgres': 5432, 'smtp': 25, 'smtps': 465,
                 'submission': 587}
SSL_REQUEST = struct.pack('!ii', 8, 80877103)
# The finding on a certificate's expiry, the same in tls_cert_info and http_health_info.
EXPIRY = 'tls_expiry'
DEFAULT_THRESHOLDS = {EXPIRY: {'warning': 30, 'critical': 7, 'direction': C.BELOW, 'unit': 'days'}}
# Threshold names of earlier releases (the finding was called days_left here): accepted with a deprecation.
RENAMED_THRESHOLDS = {'days_left': EXPIRY}


class TlsProbeError(Exception):
    """The endpoint could not be reached or does not speak TLS."""


def client_context(verify=True, ca_cert=None, check_hostname=True):
    """The collection's one client-side SSL context: the system's CAs, or the bundle ``ca_cert``.

    ``verify=False`` accepts any certificate for any name (to read a certificate that would not verify);
    ``check_hostname=False`` verifies the chain but leaves the name to the caller."""
    context = ssl.create_default_context(cafile=ca_cert) if ca_cert else ssl.create_default_context()
    if not verify or not check_hostname:
        context.check_hostname = False
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    return context


def days_left(not_after, now=None):
    """Days (two decimals) from ``now`` until the aware datetime ``not_after``; negative once it has passed."""
    return round((not_after - (now or utcnow())).total_seconds() / 86400.0, 2)


def not_after(der):
    """The end of validity of a DER-encoded certificate as an aware datetime; None without cryptography."""
    if not HAS_CRYPTOGRAPHY:
        return None
    return _utc(x509.load_der_x509_certificate(der), 'not_valid_after')


def expiry_finding(thresholds, days, until, what, obj):
    """The ``tls_expiry`` finding of a certificate (``what``: "the certificate of ...") valid ``until`` (ISO 8601),
    ``days`` from now: judged against the thresholds, and critical once it has expired."""
    if days < 0:
        spec = thresholds[EXPIRY]
        return C.finding(EXPIRY, C.CRITICAL, '%s expired on %s' % (what, until), value=days, unit='days',
                         warning=spec.get('warning'), critical=spec.get('critical'), obj=obj)
    return C.judge(thresholds, EXPIRY, days, '%s expires in {value} days, on %s' % (what, until), obj)


def parse_endpoint(text):
    """'https://host:port', 'postgresql://host:port', 'smtp://host:port', 'tls://host:port' -> (scheme, host, port)."""
    parts = urlsplit(text if '://' in text else 'https://' + text)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ConfigurationError('%s is not a supported endpoint (use https://, tls://, postgresql://, smtp://, '
                                 'submission:// or smtps:// with a host)' % text)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError('%s: %s (a port is a number from 1 to 65535)' % (text, exc)) from exc
    if port is None:
        return scheme, parts.hostname, DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:  # 0 is no port a server listens on; it must not become the default port
        raise ConfigurationError('%s: port %d is not a port to connect to (use 1 to 65535, or leave the port out '
                                 'for the default %d of %s://)' % (text, port, DEFAULT_PORTS[scheme], scheme))
    return scheme, parts.hostname, port


def _read_smtp_reply(sock):
    data = b''
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise TlsProbeError('the SMTP server closed the connection')
        data += chunk
        lines = data.split(b'\r\n')
        complete = [line for line in lines[:-1] if line]
        if complete and len(complete[-1]) >= 4 and complete[-1][3:4] == b' ':
            return int(complete[-1][:3]), data


def _preamble(sock, scheme, host):
    """Bring a plain connection to the point where the TLS handshake starts."""
    if scheme in ('postgresql', 'postgres'):
        sock.sendall(SSL_REQUEST)
        answer = sock.recv(1)
        if answer == b'N':
            raise TlsProbeError('the PostgreSQL server refused SSL (ssl = off, or a build without SSL)')
        if answer != b'S':
            raise TlsProbeError('not a PostgreSQL server (answer %r to SSLRequest)' % answer)
    elif scheme in ('smtp', 'submission'):
        code, _data = _read_smtp_reply(sock)
        if code != 220:
            raise TlsProbeError('SMTP greeting %s, expected 220' % code)
        sock.sendall(b'EHLO appcare.maintenance\r\n')
        code, data = _read_smtp_reply(sock)
        if code != 250 or b'STARTTLS' not in data.upper():
            raise TlsProbeError('the SMTP server does not offer STARTTLS')
        sock.sendall(b'STARTTLS\r\n')
        code, _data = _read_smtp_reply(sock)
        if code != 220:
            raise TlsProbeError('STARTTLS answered %s, expected 220' % code)


def handshake(scheme, host, port, context, timeout, server_name):
    """Connect, run the preamble, do the TLS handshake; returns (DER certificate, TLS version, cipher)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise TlsProbeError('cannot resolve %s: %s' % (host, exc.strerror or exc)) from exc
    except OSError as exc:
        raise TlsProbeError('cannot connect to %s:%s: %s' % (host, port, exc)) from exc
    try:
        _preamble(sock, scheme, host)
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True), tls.version(), tls.cipher()[0]
    except OSError as exc:
        if isinstance(exc, ssl.SSLCertVerificationError):
            raise
        raise TlsProbeError('TLS with %s:%s failed: %s' % (host, port, exc)) from exc
    finally:
        sock.close()


def _name_matches(pattern, host):
    pattern, host = pattern.lower().rstrip('.'), host.lower().rstrip('.')
    if pattern.startswith('*.'):
        head, _sep, rest = host.partition('.')
        return bool(head) and rest == pattern[2:]
    return pattern == host


def hostname_matches(cert, host):
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        if address is not None:
            return address in san.get_values_for_type(x509.IPAddress)
        return any(_name_matches(name, host) for name in san.get_values_for_type(x509.DNSName))
    common = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return any(_name_matches(name, host) for name in common)


def _key(cert):
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return 'RSA', key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return 'EC (%s)' % key.curve.name, key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 'Ed25519', 256
    if isinstance(key, ed448.Ed448PublicKey):
        return 'Ed448', 456
    if isinstance(key, dsa.DSAPublicKey):
        return 'DSA', key.key_size
    return type(key).__name__, None


def _utc(cert, name):
    value = getattr(cert, name + '_utc', None)
    return value if value is not None else getattr(cert, name).replace(tzinfo=datetime.timezone.utc)


def describe(der, host, now=None):
    cert = x509.load_der_x509_certificate(der)
    not_before, valid_until = _utc(cert, 'not_valid_before'), _utc(cert, 'not_valid_after')
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName) + [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    key_type, key_size = _key(cert)
    return {
        'subject': cert.subject.rfc4514_string(), 'issuer': cert.issuer.rfc4514_string(), 'san': names,
        'not_before': not_before.isoformat(), 'not_after': valid_until.isoformat(),
        'days_left': days_left(valid_until, now),
        'serial': format(cert.serial_number, 'x'), 'key_type': key_type, 'key_size': key_size,
        'self_signed': cert.issuer == cert.subject, 'hostname_matches': hostname_matches(cert, host),
        'signature_algorithm': getattr(cert.signature_hash_algorithm, 'name', None),
    }


def inspect(text, ca_cert, timeout, server_name=None):
    """Everything about one endpoint's certificate; ``error`` set when it could not be read."""
    scheme, host, port = parse_endpoint(text)
    name = server_name or host
    result = {'endpoint': text, 'scheme': scheme, 'host': host, 'port': port, 'error': None,
              'chain_valid': None, 'chain_error': None}
    try:
        der, version, cipher = handshake(scheme, host, port, client_context(verify=False), timeout, name)
    except TlsProbeError as exc:
        result['error'] = str(exc)
        return result
    result.update(describe(der, name), tls_version=version, cipher=cipher)
    # The name is judged separately, so a name mismatch is not reported as a chain error.
    strict = client_context(ca_cert=ca_cert, check_hostname=False)
    try:
        handshake(scheme, host, port, strict, timeout, name)
        result['chain_valid'] = True
    except ssl.SSLCertVerificationError as exc:
        result['chain_valid'] = False
        result['chain_error'] = exc.verify_message or str(exc)
    except TlsProbeError as exc:
        result['chain_valid'] = False
        result['chain_error'] = str(exc)
    return result


def findings_for(result, thresholds):
    obj = 'endpoint=%s' % result['endpoint']
    if result['error']:
        return [C.finding('tls_connection', C.CRITICAL, '%s: %s' % (result['endpoint'], result['error']), obj=obj)]
    found = [
        C.finding('tls_connection', C.OK, '%s speaks %s' % (result['endpoint'], result['tls_version']), obj=obj),
        expiry_finding(thresholds, result['days_left'], result['not_after'],
                       'the certificate of %s (%s)' % (result['endpoint'], result['subject']), obj),
    ]
    if result['chain_valid']:
        found.append(C.finding('tls_chain', C.OK, 'the certificate chain of %s verifies (issuer %s)'
                               % (result['endpoint'], result['issuer']), obj=obj))
    else:
        found.append(C.finding('tls_chain', C.CRITICAL, 'the certificate chain of %s does not verify: %s'
                               % (result['endpoint'], result['chain_error']), obj=obj))
    if result['hostname_matches']:
        found.append(C.finding('tls_hostname', C.OK, 'the certificate is valid for %s' % result['host'], obj=obj))
    else:
        found.append(C.finding('tls_hostname', C.CRITICAL, 'the certificate of %s is not valid for %s (names: %s)'
                               % (result['endpoint'], result['host'], ', '.join(result['san']) or result['subject']),
                               obj=obj))
    return found


def inspect_all(endpoints, ca_cert, timeout, server_name=None, max_workers=20):
    """Inspect every endpoint concurrently; results in the order given."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(endpoints)))) as pool:
        futures = [pool.submit(inspect, endpoint, ca_cert, timeout, server_name) for endpoint in endpoints]
        return [future.result() for future in futures]
