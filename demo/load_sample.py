# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create the demo's sample application database (``ims``) on a local server, once."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
from pgserver import SUPERUSER, SUPERUSER_PASSWORD  # noqa: E402


def _connect(port, dbname):
    conn = psycopg2.connect(host='127.0.0.1', port=port, user=SUPERUSER, password=SUPERUSER_PASSWORD, dbname=dbname)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--dbname', default='ims')
    parser.add_argument('--keys-dir', help='make the demo backup key pair here (once)')
    opts = parser.parse_args()
    print(load(opts.port, opts.dbname))
    if opts.dbname == 'ims':
        print(load_crm(opts.port))
    if opts.keys_dir:
        print(demo_keys(opts.keys_dir))
    return 0


if __name__ == '__main__':
    sys.exit(main())
