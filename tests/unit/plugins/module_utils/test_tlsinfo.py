# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the certificate checks: endpoint parsing, host name matching, days left and the expiry finding,
the facts read from a certificate (made here) and the findings of a result (no handshake; no network)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import tlsinfo as T
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
THRESHOLDS = C.merge_thresholds(T.DEFAULT_THRESHOLDS, {})


def make_cert(key=None, common_name='app.example.com', dns=None, ips=None, issuer=None, days=90, serial=0x1234ABCD,
              hash_algorithm=None):
    """(certificate, key): self-signed unless ``issuer`` (certificate, key) is given."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(serial).not_valid_before(NOW - datetime.timedelta(days=max(1, 1 - days)))
               .not_valid_after(NOW + datetime.timedelta(days=days)))
    names = [x509.DNSName(n) for n in dns or []] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ips or []]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else (hash_algorithm or hashes.SHA256())
    return builder.sign(signer, algorithm), key


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope='module')
def san_cert():
    cert, _key = make_cert(dns=['app.example.com', '*.api.example.com', 'Mixed.Example.org'],
                           ips=['192.0.2.10', '2001:db8::1'])
    return cert


@pytest.fixture(scope='module')
def cn_only_cert():
    cert, _key = make_cert(common_name='legacy.example.com')
    return cert


# -- endpoints ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('text, parsed', [
    ('https://app.example.com', ('https', 'app.example.com', 443)),
    ('https://app.example.com:8443/path?q=1', ('https', 'app.example.com', 8443)),
    ('app.example.com', ('https', 'app.example.com', 443)),
    ('app.example.com:9443', ('https', 'app.example.com', 9443)),
    ('HTTPS://App.Example.COM', ('https', 'app.example.com', 443)),
    ('tls://imap.example.com:993', ('tls', 'imap.example.com', 993)),
    ('tls://imap.example.com', ('tls', 'imap.example.com', 443)),
    ('postgresql://db.example.com', ('postgresql', 'db.example.com', 5432)),
    ('postgresql://user@db.example.com:6543/app', ('postgresql', 'db.example.com', 6543)),
    ('postgres://db.example.com', ('postgres', 'db.example.com', 5432)),
    ('postgresql://[2001:db8::5]:5433', ('postgresql', '2001:db8::5', 5433)),
    ('smtp://mx.example.com', ('smtp', 'mx.example.com', 25)),
    ('submission://mail.example.com', ('submission', 'mail.example.com', 587)),
    ('smtps://mail.example.com', ('smtps', 'mail.example.com', 465)),
    ('smtps://mail.example.com:2465', ('smtps', 'mail.example.com', 2465)),
    ('https://192.0.2.10', ('https', '192.0.2.10', 443)),
])
def test_parse_endpoint(text, parsed):
    assert T.parse_endpoint(text) == parsed


@pytest.mark.parametrize('text, message', [
    ('ftp://files.example.com', 'is not a supported endpoint'),
    ('imaps://mail.example.com', 'is not a supported endpoint'),
    ('https://', 'is not a supported endpoint'),
    ('postgresql:///socketdir', 'is not a supported endpoint'),
    ('https://app.example.com:99999', 'https://app.example.com:99999: Port out of range'),
    ('https://app.example.com:https', 'https://app.example.com:https: '),
])
def test_parse_endpoint_refuses(text, message):
    with pytest.raises(ConfigurationError, match=message.replace('?', r'\?')):
        T.parse_endpoint(text)


# -- host names -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('pattern, host, matches', [
    ('app.example.com', 'app.example.com', True),
    ('app.example.com', 'APP.example.com.', True),  # case and a trailing dot do not matter
    ('app.example.com', 'www.example.com', False),
    ('*.example.com', 'www.example.com', True),
    ('*.example.com', 'example.com', False),  # a wildcard needs a label
    ('*.example.com', 'a.b.example.com', False),  # ... and only one
    ('*.example.com', '.example.com', False),
    ('*.Example.com', 'www.example.COM', True),
    ('w*.example.com', 'www.example.com', False),  # partial wildcards are not honoured
    ('www.*.com', 'www.example.com', False),
])
def test_name_matches(pattern, host, matches):
    assert T._name_matches(pattern, host) is matches


@pytest.mark.parametrize('host, matches', [
    ('app.example.com', True),
    ('v1.api.example.com', True),
    ('api.example.com', False),
    ('x.v1.api.example.com', False),
    ('mixed.example.org', True),
    ('other.example.com', False),
    ('192.0.2.10', True),
    ('192.0.2.11', False),
    ('2001:db8::1', True),
    ('2001:db8:0:0::1', True),  # the same address written otherwise
    ('2001:db8::2', False),
])
def test_hostname_matches_san(san_cert, host, matches):
    assert T.hostname_matches(san_cert, host) is matches


def test_ip_address_is_not_matched_against_dns_names():
    cert, _key = make_cert(common_name='192.0.2.10', dns=['192.0.2.10'])
    assert T.hostname_matches(cert, '192.0.2.10') is False  # an address needs an IP SAN


def test_san_wins_over_the_common_name():
    cert, _key = make_cert(common_name='old.example.com', dns=['new.example.com'])
    assert T.hostname_matches(cert, 'new.example.com') is True
    assert T.hostname_matches(cert, 'old.example.com') is False


@pytest.mark.parametrize('host, matches', [('legacy.example.com', True), ('app.example.com', False)])
def test_common_name_when_there_is_no_san(cn_only_cert, host, matches):
    assert T.hostname_matches(cn_only_cert, host) is matches


# -- days left and the expiry finding -------------------------------------------------------------------------------

@pytest.mark.parametrize('delta, days', [
    (datetime.timedelta(days=30), 30.0),
    (datetime.timedelta(days=3, hours=12), 3.5),
    (datetime.timedelta(hours=6), 0.25),
    (datetime.timedelta(0), 0.0),
    (-datetime.timedelta(days=1, hours=6), -1.25),
    (datetime.timedelta(seconds=1), 0.0),  # two decimals
])
def test_days_left(delta, days):
    assert T.days_left(NOW + delta, NOW) == days


def test_days_left_defaults_to_now():
    assert 9.99 <= T.days_left(T.utcnow() + datetime.timedelta(days=10)) <= 10.0


@pytest.mark.parametrize('days, status', [
    (365, C.OK),
    (30.01, C.OK),
    (30, C.OK),  # a threshold is crossed when passed, not when reached
    (29.99, C.WARNING),
    (7, C.WARNING),
    (6.99, C.CRITICAL),
    (0, C.CRITICAL),
    (-0.01, C.CRITICAL),
    (-400, C.CRITICAL),
])
def test_expiry_finding_at_the_boundaries(days, status):
    check = T.expiry_finding(THRESHOLDS, days, '2026-04-01T00:00:00+00:00', 'the certificate of app', 'endpoint=app')
    assert check['name'] == T.EXPIRY
    assert (check['status'], check['value'], check['unit'], check['object']) == (status, days, 'days', 'endpoint=app')
    assert (check['warning'], check['critical']) == (30, 7)
    if days < 0:
        assert check['message'] == 'the certificate of app expired on 2026-04-01T00:00:00+00:00'
    else:
        assert check['message'].startswith('the certificate of app expires in ')
        assert '2026-04-01T00:00:00+00:00' in check['message']


@pytest.mark.parametrize('overrides, days, status', [
    ({'warning': 60, 'critical': 14}, 45, C.WARNING),
    ({'warning': 60, 'critical': 14}, 10, C.CRITICAL),
    ({'warning': None, 'critical': None}, 1, C.OK),
    ({'warning': None, 'critical': None}, -1, C.CRITICAL),  # expired is critical whatever the thresholds
])
def test_expiry_finding_follows_the_thresholds(overrides, days, status):
    thresholds = C.merge_thresholds(T.DEFAULT_THRESHOLDS, {T.EXPIRY: overrides})
    assert T.expiry_finding(thresholds, days, 'then', 'it', None)['status'] == status


# -- certificate facts ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('make_key, key_type, key_size', [
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), 'RSA', 2048),
    (lambda: ec.generate_private_key(ec.SECP256R1()), 'EC (secp256r1)', 256),
    (lambda: ec.generate_private_key(ec.SECP384R1()), 'EC (secp384r1)', 384),
    (ed25519.Ed25519PrivateKey.generate, 'Ed25519', 256),
])
def test_describe_self_signed(make_key, key_type, key_size):
    cert, _key = make_cert(key=make_key(), dns=['app.example.com'], ips=['192.0.2.10'], days=20)
    facts = T.describe(der(cert), 'app.example.com', NOW)
    assert facts['subject'] == 'CN=app.example.com' and facts['issuer'] == 'CN=app.example.com'
    assert facts['self_signed'] is True
    assert facts['san'] == ['app.example.com', '192.0.2.10']
    assert facts['not_after'] == (NOW + datetime.timedelta(days=20)).isoformat()
    assert facts['not_before'] == (NOW - datetime.timedelta(days=1)).isoformat()
    assert facts['days_left'] == 20.0
    assert facts['serial'] == '1234abcd'
    assert (facts['key_type'], facts['key_size']) == (key_type, key_size)
    assert facts['hostname_matches'] is True
    assert facts['signature_algorithm'] == (None if key_type == 'Ed25519' else 'sha256')


def test_describe_issued_by_a_ca():
    ca = make_cert(common_name='Appcare Test CA')
    leaf, _key = make_cert(common_name='db.example.com', dns=['db.example.com'], issuer=ca, days=3,
                           hash_algorithm=hashes.SHA384())
    facts = T.describe(der(leaf), 'other.example.com', NOW)
    assert facts['issuer'] == 'CN=Appcare Test CA' and facts['self_signed'] is False
    assert facts['hostname_matches'] is False
    assert facts['days_left'] == 3.0
    assert facts['signature_algorithm'] == 'sha384'


def test_describe_without_san(cn_only_cert):
    facts = T.describe(der(cn_only_cert), 'legacy.example.com', NOW)
    assert facts['san'] == [] and facts['hostname_matches'] is True


def test_describe_of_an_expired_certificate():
    cert, _key = make_cert(days=-2)
    assert T.describe(der(cert), 'app.example.com', NOW)['days_left'] == -2.0


def test_not_after():
    cert, _key = make_cert(days=45)
    assert T.not_after(der(cert)) == NOW + datetime.timedelta(days=45)
    assert T.not_after(der(cert)).tzinfo is not None


def test_client_context_trusts_the_given_bundle(tmp_path):
    ca, _key = make_cert(common_name='Appcare Bundle CA')
    bundle = tmp_path / 'ca.pem'
    bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    context = T.client_context(True, str(bundle))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True
    subjects = [dict(x[0] for x in c['subject']).get('commonName') for c in context.get_ca_certs()]
    assert subjects == ['Appcare Bundle CA']  # the bundle instead of the system's CAs
    with pytest.raises((OSError, ssl.SSLError)):
        T.client_context(True, str(tmp_path / 'missing.pem'))


# -- findings of a result -------------------------------------------------------------------------------------------

def named(found, name):
    return [f for f in found if f['name'] == name]


def result(**changes):
    base = {'endpoint': 'postgresql://db.example.com', 'scheme': 'postgresql', 'host': 'db.example.com', 'port': 5432,
            'error': None, 'chain_valid': True, 'chain_error': None, 'subject': 'CN=db.example.com',
            'issuer': 'CN=Appcare Test CA', 'san': ['db.example.com'], 'not_after': '2026-06-01T00:00:00+00:00',
            'days_left': 92.5, 'hostname_matches': True, 'tls_version': 'TLSv1.3'}
    base.update(changes)
    return base


def test_findings_of_a_good_certificate_are_all_ok():
    found = T.findings_for(result(), THRESHOLDS)
    assert [f['status'] for f in found] == [C.OK] * 4
    assert [f['name'] for f in found] == ['tls_connection', 'tls_expiry', 'tls_chain', 'tls_hostname']
    assert named(found, 'tls_connection')[0]['message'] == 'postgresql://db.example.com speaks TLSv1.3'
    assert len(named(found, T.EXPIRY)) == 1 and len(named(found, 'tls_chain')) == 1 and len(named(found, 'tls_hostname')) == 1
    assert all(f['object'] == 'endpoint=postgresql://db.example.com' for f in found)


def test_unreachable_endpoint_is_one_critical_finding():
    found = T.findings_for(result(error='cannot connect to db.example.com:5432: refused'), THRESHOLDS)
    assert len(found) == 1
    assert named(found, 'tls_connection')[0]['status'] == C.CRITICAL
    assert found[0]['message'] == 'postgresql://db.example.com: cannot connect to db.example.com:5432: refused'


@pytest.mark.parametrize('valid, error, status', [
    (True, None, C.OK),
    (False, 'self-signed certificate', C.CRITICAL),
    (False, 'the PostgreSQL server refused SSL', C.CRITICAL),
])
def test_chain_finding(valid, error, status):
    check = named(T.findings_for(result(chain_valid=valid, chain_error=error), THRESHOLDS), 'tls_chain')[0]
    assert check['status'] == status
    assert (error or 'verifies (issuer CN=Appcare Test CA)') in check['message']


@pytest.mark.parametrize('changes, status, names', [
    ({}, C.OK, None),
    ({'hostname_matches': False, 'san': ['a.example.com', 'b.example.com']}, C.CRITICAL, 'a.example.com, b.example.com'),
    ({'hostname_matches': False, 'san': []}, C.CRITICAL, 'CN=db.example.com'),
])
def test_hostname_finding(changes, status, names):
    check = named(T.findings_for(result(**changes), THRESHOLDS), 'tls_hostname')[0]
    assert check['status'] == status
    if names:
        assert check['message'].endswith('is not valid for db.example.com (names: %s)' % names)


@pytest.mark.parametrize('days, status', [(92.5, C.OK), (12, C.WARNING), (2, C.CRITICAL), (-3, C.CRITICAL)])
def test_expiry_in_the_findings(days, status):
    check = named(T.findings_for(result(days_left=days), THRESHOLDS), T.EXPIRY)[0]
    assert check['status'] == status
    assert check['message'].startswith('the certificate of postgresql://db.example.com (CN=db.example.com) expire')
