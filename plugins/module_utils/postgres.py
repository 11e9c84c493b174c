# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The database connection, written once for every module of the collection.

``connection_argument_spec()`` is documented by the ``appcare.maintenance.connection`` doc fragment;
``connect()`` opens the module's single session with ``application_name``, ``statement_timeout`` and
(optionally) ``lock_timeout`` set for that session only.
"""

from __future__ import annotations

import os
import signal
import time

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.appcare.maintenance.plugins.module_utils.errors import (
    AppcareError,
    ConfigurationError,
    ConnectionFailure,
    DependencyError,
)
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import failure_message as base_failure_message

try:
    import psycopg2
    import psycopg2.extensions
    import psycopg2.extras
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the managed host
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']


def connection_argument_spec():
    """Options shared by every database module (documented in doc_fragments/connection.py)."""
    return dict(
        login_host=dict(type='str', fallback=(env_fallback, ['PGHOST'])),
        login_port=dict(type='int', default=5432, fallback=(env_fallback, ['PGPORT'])),
        login_user=dict(type='str', default='postgres', fallback=(env_fallback, ['PGUSER'])),
        login_password=dict(type='str', no_log=True, fallback=(env_fallback, ['PGPASSWORD'])),
        login_db=dict(type='str', default='postgres', fallback=(env_fallback, ['PGDATABASE'])),
        login_unix_socket=dict(type='path'),
        ssl_mode=dict(type='str', default='prefer', choices=SSL_MODES, fallback=(env_fallback, ['PGSSLMODE'])),
        ca_cert=dict(type='path', aliases=['ssl_rootcert'], fallback=(env_fallback, ['PGSSLROOTCERT'])),
        connect_timeout=dict(type='int', default=10, fallback=(env_fallback, ['PGCONNECT_TIMEOUT'])),
        statement_timeout=dict(type='int', default=60),
    )


def _raise_on_signal(signum, _frame):
    raise SystemExit('interrupted by signal %d' % signum)


def make_interruptible():
    """Let SIGTERM (how Ansible stops a timed-out module) unwind the module, so cleanups run.

    psycopg2's wait callback makes a running query interruptible too; without it a signal waits until
    the server answers.
    """
    signal.signal(signal.SIGTERM, _raise_on_signal)
    if HAS_PSYCOPG2:
        psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)


def require_psycopg2():
    if not HAS_PSYCOPG2:
        raise DependencyError('%s: %s' % (missing_required_lib('psycopg2 (or psycopg2-binary)'),
                                          PSYCOPG2_IMPORT_ERROR))


def target_label(params):
    """``host:port`` (or the socket directory) of the target, for messages. Never holds secrets."""
    host = params.get('login_unix_socket') or params.get('login_host') or 'local socket'
    return '%s:%s' % (host, params.get('login_port'))


def connect_kwargs(params, application_name, lock_timeout=None, read_only=False):
    """psycopg2.connect() keyword arguments for the module parameters; raises ConfigurationError for an
    option libpq would only reject later (so modules can validate before they touch disk or network)."""
    port = params.get('login_port')
    if port is None or not 1 <= port <= 65535:
        raise ConfigurationError('login_port must be between 1 and 65535, got %s' % port)
    if params.get('connect_timeout') is not None and params['connect_timeout'] < 1:
        raise ConfigurationError('connect_timeout must be at least 1 second, got %s' % params['connect_timeout'])
    if params.get('statement_timeout') is not None and params['statement_timeout'] < 0:
        raise ConfigurationError('statement_timeout must be 0 (no limit) or more seconds, got %s'
                                 % params['statement_timeout'])
    kwargs = dict(
        port=params['login_port'],
        user=params['login_user'],
        dbname=params['login_db'],
        sslmode=params['ssl_mode'],
        connect_timeout=params['connect_timeout'],
        application_name=application_name,
    )
    host = params.get('login_unix_socket') or params.get('login_host')
    if host:
        kwargs['host'] = host
    if params.get('login_password'):
        kwargs['password'] = params['login_password']
    if params.get('ca_cert'):
        kwargs['sslrootcert'] = params['ca_cert']
    # Session settings travel in the startup packet: no extra round trip, and never server-wide.
    options = ['-c statement_timeout=%d' % (int(params.get('statement_timeout') or 0) * 1000)]
    if read_only:
        options.append('-c default_transaction_read_only=on')
    if lock_timeout is not None:
        options.append('-c lock_timeout=%d' % int(lock_timeout * 1000))
    kwargs['options'] = ' '.join(options)
    return kwargs


def client_env(params, application_name, dbname=None):
    """Environment for libpq client tools (pg_dump, pg_restore): the password travels here, never on
    the command line. ``dbname`` defaults to O(login_db)."""
    env = dict(os.environ)
    for key in ('PGHOST', 'PGPASSWORD', 'PGSERVICE', 'PGOPTIONS', 'PGSSLROOTCERT'):
        env.pop(key, None)
    host = params.get('login_unix_socket') or params.get('login_host')
    if host:
        env['PGHOST'] = host
    env.update({'PGPORT': str(params['login_port']), 'PGUSER': params['login_user'],
                'PGDATABASE': dbname or params['login_db'], 'PGSSLMODE': params['ssl_mode'],
                'PGCONNECT_TIMEOUT': str(params['connect_timeout']), 'PGAPPNAME': application_name})
    if params.get('login_password'):
        env['PGPASSWORD'] = params['login_password']
    if params.get('ca_cert'):
        env['PGSSLROOTCERT'] = params['ca_cert']
    return env


def describe_connect_error(params, exc):
    """A one-line reason for a failed connection: what failed, where, as whom, and why."""
    cause = ' '.join(str(exc).split())
    # libpq prefixes its messages with the address it tried; keep only the cause after the last ':'
    # of that prefix so the message does not repeat host and port twice.
    marker = 'failed: '
    if marker in cause:
        cause = cause.rsplit(marker, maxsplit=1)[-1]
    return 'cannot connect to %s as %s (database %s): %s' % (
        target_label(params), params.get('login_user'), params.get('login_db'), cause)


class Session(object):
    """One database session of a module call.

    ``connect_seconds`` holds how long the connection took. Queries run in autocommit mode so one
    failing query (for example, a missing privilege) does not abort the others.
    """

    def __init__(self, params, application_name, read_only=True, lock_timeout=None):
        require_psycopg2()
        self.params = params
        kwargs = connect_kwargs(params, application_name, lock_timeout, read_only)
        started = time.monotonic()
        try:
            self.conn = psycopg2.connect(**kwargs)
        except psycopg2.Error as exc:
            raise ConnectionFailure(describe_connect_error(params, exc)) from exc
        self.connect_seconds = time.monotonic() - started
        self.conn.autocommit = True

    def query(self, sql, args=None):
        """Rows as dicts."""
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, args)
            return [dict(row) for row in cur.fetchall()] if cur.description else []

    def one(self, sql, args=None):
        rows = self.query(sql, args)
        return rows[0] if rows else None

    def close(self):
        try:
            self.conn.close()
        except Exception:  # pylint: disable=broad-except
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


# What a module's main() turns into fail_json (errors.failure_message): anything else is a bug and shows its
# traceback.
DB_ERRORS = (psycopg2.Error,) if HAS_PSYCOPG2 else ()
HANDLED_ERRORS = (AppcareError, OSError) + DB_ERRORS


def failure_message(what, exc, timeout_option='statement_timeout'):
    """The one shape of a module's failure message: ``invalid options: <cause>`` for options refused before any
    work, ``<what> failed: <cause>`` for everything else (a database error as PostgreSQL's message, naming
    ``timeout_option`` when a statement was cancelled by it)."""
    if HAS_PSYCOPG2 and isinstance(exc, psycopg2.Error):
        return '%s failed: %s' % (what, db_error_text(exc, timeout_option))
    return base_failure_message(what, exc)


QUERY_CANCELED = '57014'


def db_error_text(exc, timeout_option=None):
    """PostgreSQL's own message of a psycopg2 error, on one line (the collection's one way to word it).

    ``timeout_option`` names the option that set the session's ``statement_timeout`` (``statement_timeout``
    for catalogue reads, ``operation_timeout`` for maintenance statements): a cancelled statement then says
    which limit cut it off."""
    text = ' '.join((getattr(exc, 'pgerror', None) or str(exc)).split())
    if timeout_option and getattr(exc, 'pgcode', None) == QUERY_CANCELED:
        return 'cancelled after %s: %s' % (timeout_option, text)
    return text
