# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create the demo's sample application database (``ims``) on a local server, once; with ``--server-dir`` make
the server log as the weekly log review wants it, and with ``--errors`` let the application make its week's
mistakes (real errors, a deadlock, a lock wait, a temporary file) for the review to find."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
from pgserver import SUPERUSER, SUPERUSER_PASSWORD, PgServer  # noqa: E402


def _connect(port, dbname, **kwargs):
    conn = psycopg2.connect(host='127.0.0.1', port=port, user=SUPERUSER, password=SUPERUSER_PASSWORD, dbname=dbname,
                            **kwargs)
    conn.autocommit = True
    return conn


def _create(port, dbname):
    """Create ``dbname``; False when it already exists (the sample is loaded once)."""
    admin = _connect(port, 'postgres')
    try:
        with admin.cursor() as cur:
            cur.execute('SELECT 1 FROM pg_database WHERE datname = %s', (dbname,))
            if cur.fetchone():
                return False
            cur.execute('CREATE DATABASE %s' % dbname)
            return True
    finally:
        admin.close()


def load(port, dbname='ims'):
    """Create and fill ``dbname`` unless it exists; returns a line saying what was done."""
    if not _create(port, dbname):
        return 'sample database %s already loaded' % dbname
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sample_app.sql')) as handle:
        script = handle.read()
    conn = _connect(port, dbname)
    with conn.cursor() as cur:
        cur.execute(script)
        # One realistic problem for the daily check to find: a unique index built concurrently over data
        # that is not unique fails and leaves an invalid index behind, which every write still maintains.
        try:
            cur.execute('CREATE UNIQUE INDEX CONCURRENTLY documents_application_kind_key '
                        'ON documents (application_id, kind)')
        except psycopg2.errors.UniqueViolation:
            pass
        cur.execute('SELECT (SELECT count(*) FROM applicants), (SELECT count(*) FROM applications), '
                    '(SELECT count(*) FROM documents)')
        applicants, applications, documents = cur.fetchone()
    conn.close()
    return ('loaded sample database %s: %d applicants, %d applications, %d documents'
            % (dbname, applicants, applications, documents))


CRM_SQL = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, created_at timestamptz DEFAULT now());
CREATE TABLE deals (id serial PRIMARY KEY, customer_id int REFERENCES customers, amount numeric(12, 2), stage text);
INSERT INTO customers (name, email) SELECT 'Customer ' || g, 'c' || g || '@example.org' FROM generate_series(1, 2000) g;
INSERT INTO deals (customer_id, amount, stage)
  SELECT 1 + g % 2000, (g * 37) % 10000, (ARRAY['lead', 'won', 'lost'])[1 + g % 3] FROM generate_series(1, 8000) g;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO ims_monitor;
ANALYZE;
"""


def load_crm(port, dbname='crm'):
    """A second, smaller application database (its foreign key has no index: the weekly review says so)."""
    if not _create(port, dbname):
        return 'sample database %s already loaded' % dbname
    conn = _connect(port, dbname)
    with conn.cursor() as cur:
        cur.execute('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
        cur.execute(CRM_SQL)
    conn.close()
    return 'loaded sample database %s: 2000 customers, 8000 deals' % dbname


def demo_keys(keys_dir):
    """The OpenPGP key pair the demo encrypts ims's backups to, made once with gpg (no passphrase: a demo)."""
    public = os.path.join(keys_dir, 'demo-backup.pub.asc')
    if os.path.exists(public):
        return 'demo backup key: %s (exists)' % public
    os.makedirs(keys_dir, mode=0o700, exist_ok=True)
    home = tempfile.mkdtemp(prefix='appcare-demo-gpg-')
    gpg = ['gpg', '--homedir', home, '--batch', '--no-tty']
    try:
        subprocess.run(gpg + ['--passphrase', '', '--quick-gen-key', 'appcare demo backups <demo@example.org>',
                              'future-default', 'default', 'never'], check=True, capture_output=True)
        for option, name in (('--export-secret-keys', 'demo-backup.sec.asc'), ('--export', 'demo-backup.pub.asc')):
            exported = subprocess.run(gpg + ['--armor', option], check=True, capture_output=True).stdout
            fd = os.open(os.path.join(keys_dir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, 'wb') as handle:
                handle.write(exported)
    finally:
        subprocess.run(['gpgconf', '--homedir', home, '--kill', 'all'], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    return 'demo backup key: %s (made now)' % public


# What pgBadger's documentation asks of a server whose log is reviewed: a prefix with the time and the process (and
# user, database, application and client), lock waits and every temporary file logged; the collector writes the
# files into a directory of their own.
LOG_LINE_PREFIX = '%m [%p] user=%u,db=%d,app=%a,client=%h '


def log_settings(log_dir):
    return [('logging_collector', 'on'), ('log_directory', log_dir), ('log_filename', 'postgresql-%Y-%m-%d_%H%M%S.log'),
            ('log_line_prefix', LOG_LINE_PREFIX), ('log_lock_waits', 'on'), ('log_temp_files', '0'),
            ('log_checkpoints', 'on')]


def configure_logging(port, server_dir):
    """Let the server of ``server_dir`` (tests/pgserver.py start --dir) log into ``server_dir``/log; the collector
    starts only with the server, so it is restarted once, the first time."""
    log_dir = os.path.join(os.path.abspath(server_dir), 'log')
    conn = _connect(port, 'postgres')
    with conn.cursor() as cur:
        for name, value in log_settings(log_dir):
            cur.execute('ALTER SYSTEM SET %s = %%s' % name, (value,))
        cur.execute('SELECT pg_reload_conf()')
        cur.execute("SELECT setting FROM pg_settings WHERE name = 'logging_collector'")
        collecting = cur.fetchone()[0] == 'on'
    conn.close()
    if collecting:
        return 'server log: %s (already collected there)' % log_dir
    with open(os.path.join(server_dir, 'server.json')) as handle:
        state = json.load(handle)
    server = PgServer(state['bindir'], base_dir=server_dir, port=state['port'], keep_dir=True)
    server.stop()
    server.start()
    return 'server log: %s (restarted the server to collect it there)' % log_dir


def _attempt(cur, statement, args=None):
    try:
        cur.execute(statement, args)
    except psycopg2.Error:
        pass  # the error is the point: the server logs it


def _in_thread(target):
    thread = threading.Thread(target=target)
    thread.start()
    return thread


# Each release of the sample application ships one mistake of its own, so the weekly review of a later demo run has
# a pattern it has not seen before (the first review of a log only records what is there).
RELEASE_MISTAKES = (
    "SELECT ims_score(id) FROM applicants LIMIT 1",                       # a function the migration forgot
    "SELECT * FROM applications WHERE id = 'A-1001'",                      # a reference number where an id goes
    "INSERT INTO documents (application_id, kind, storage_path, size_bytes) VALUES (999999, 'cv', 'cv.pdf', 1)",
    "SELECT * FROM applicants WHERE country = 49",                         # a dialling code for a country code
    "INSERT INTO documents (application_id, kind, storage_path, size_bytes) VALUES (1, 'cv', NULL, 1)",
)


def next_release(data_dir):
    """The number of this demo run's release of the sample application, counted in ``data_dir``/release."""
    path = os.path.join(data_dir, 'release')
    try:
        with open(path) as handle:
            release = int(handle.read().strip()) + 1
    except (OSError, ValueError):
        release = 0
    os.makedirs(data_dir, exist_ok=True)
    with open(path, 'w') as handle:
        handle.write('%d\n' % release)
    return release


def application_errors(port, dbname='ims', release=None):
    """A week of the sample application's mistakes, each a real error in the server log: sign-ups with an e-mail
    address already registered, a state the check constraint refuses, a report with a misspelt column, a division
    by zero, with ``release`` that release's own mistake; a deadlock between two reviewers, a lock wait over
    deadlock_timeout and a sort spilling to disk."""
    conn = _connect(port, dbname, application_name='ims-web')
    with conn.cursor() as cur:
        if release is not None:
            _attempt(cur, RELEASE_MISTAKES[release % len(RELEASE_MISTAKES)])
        for number in (1, 2, 7):
            _attempt(cur, "INSERT INTO applicants (email, full_name, country) VALUES (%s, 'Returning Applicant', 'GH')",
                     ('applicant%d@example.org' % number,))
        for number in (5, 6):
            _attempt(cur, "UPDATE applications SET state = 'archived' WHERE id = %s", (number,))
        _attempt(cur, 'SELECT programe, count(*) FROM applications GROUP BY programe')
        _attempt(cur, "SELECT count(*) FILTER (WHERE state = 'approved') / count(*) FILTER (WHERE state = 'on_hold') "
                      'FROM applications')
        cur.execute("SET work_mem = '64kB'")
        cur.execute('SELECT storage_path FROM documents ORDER BY storage_path DESC')
        cur.execute('RESET work_mem')
    conn.close()
    first, second = _connect(port, dbname, application_name='ims-review'), _connect(port, dbname, application_name='ims-review')
    try:
        a, b = first.cursor(), second.cursor()
        # two reviewers update the same two applications in opposite order: one of them is the deadlock's victim
        a.execute('BEGIN')
        a.execute('UPDATE applications SET updated_at = now() WHERE id = 1')
        b.execute('BEGIN')
        b.execute('UPDATE applications SET updated_at = now() WHERE id = 2')
        waiting = _in_thread(lambda: _attempt(a, 'UPDATE applications SET updated_at = now() WHERE id = 2'))
        time.sleep(0.2)
        _attempt(b, 'UPDATE applications SET updated_at = now() WHERE id = 1')
        waiting.join()
        a.execute('ROLLBACK')
        b.execute('ROLLBACK')
        # one holds a row longer than deadlock_timeout (1 s) while the other waits for it: a logged lock wait
        a.execute('BEGIN')
        a.execute('UPDATE applications SET updated_at = now() WHERE id = 3')
        waiting = _in_thread(lambda: _attempt(b, 'UPDATE applications SET updated_at = now() WHERE id = 3'))
        time.sleep(1.5)
        a.execute('COMMIT')
        waiting.join()
    finally:
        first.close()
        second.close()
    return 'the sample application%s made its mistakes in %s: %d errors, a deadlock, a lock wait, a temporary file' % (
        '' if release is None else ' (release %d)' % release, dbname, 7 if release is None else 8)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--dbname', default='ims')
    parser.add_argument('--keys-dir', help='make the demo backup key pair here (once)')
    parser.add_argument('--server-dir', help='the server\'s directory (tests/pgserver.py start --dir): log into its log/')
    parser.add_argument('--errors', action='store_true', help='let the sample application make its mistakes')
    parser.add_argument('--release-dir', help='with --errors: count the application\'s releases here, each with a '
                                              'mistake of its own')
    opts = parser.parse_args()
    if opts.server_dir:
        print(configure_logging(opts.port, opts.server_dir))
    print(load(opts.port, opts.dbname))
    if opts.dbname == 'ims':
        print(load_crm(opts.port))
    if opts.keys_dir:
        print(demo_keys(opts.keys_dir))
    if opts.errors:
        release = next_release(opts.release_dir) if opts.release_dir else None
        print(application_errors(opts.port, opts.dbname, release))
    return 0


if __name__ == '__main__':
    sys.exit(main())
