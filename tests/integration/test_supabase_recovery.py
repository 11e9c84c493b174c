# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Supabase recovery with the users and the files' rows, against real PostgreSQL 18 and 15 servers: pg_backup with
preset supabase keeps auth and storage (a second archive from the same snapshot), the restore drill proves every
user, identity, bucket and object row comes back, and playbooks/supabase_restore.yml restores the newest backup into
a new Supabase-like project on another server, as Supabase's CLI recipe restores into a new project."""

from __future__ import annotations

import json
import os
import uuid

import psycopg2
import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import dump as D
from conftest import Target
from modrunner import REPO_ROOT, run_module, run_playbook
from pgserver import SUPERUSER_PASSWORD
from supabase_like import seed_auth_and_storage, supabase_like, supabase_platform_tables

RUNBOOK = os.path.join(REPO_ROOT, 'playbooks', 'supabase_restore.yml')

# What "the users can log in and the files are found" rests on, compared row by row between source and restored copy.
ROWS = {
    'auth.users': 'SELECT id, email, encrypted_password FROM auth.users ORDER BY id',
    'auth.identities': 'SELECT id, user_id, provider, provider_id, identity_data, email FROM auth.identities ORDER BY id',
    'storage.buckets': 'SELECT id, name, public FROM storage.buckets ORDER BY id',
    'storage.objects': 'SELECT id, bucket_id, name, owner, metadata, path_tokens FROM storage.objects ORDER BY id',
    'public.profiles': 'SELECT id, full_name FROM public.profiles ORDER BY id',
    'public.documents': 'SELECT id, owner, object_id, title FROM public.documents ORDER BY id',
}
PROOFS = ['backup_auth_users', 'backup_auth_identities', 'backup_storage_buckets', 'backup_storage_objects']


def flat(proc):
    """ansible-playbook's output with its line wrapping undone."""
    return ' '.join(proc.stdout.split())


def rows_of(db):
    return {table: db.sql(query) for table, query in ROWS.items()}


@pytest.fixture
def project(target):
    """A Supabase-like source project with users, identities, buckets, objects and application rows, a custom login
    role that owns an application table, and 61 + 41 rows of migration history the platform writes itself."""
    supabase_like(target)
    supabase_platform_tables(target)
    made = seed_auth_and_storage(target)
    role = 'app_writer_' + uuid.uuid4().hex[:6]
    target.sql("CREATE ROLE %s LOGIN PASSWORD 'writer-%s'" % (role, role))
    target.sql('ALTER TABLE public.documents OWNER TO %s' % role)
    target.role, target.made = role, made
    yield target
    target.sql('ALTER TABLE public.documents OWNER TO postgres')
    target.server.execute('DROP ROLE %s' % role)


def backup(project, dest, **extra):
    args = dict(project.args(dest=str(dest), preset='supabase', globals=True, no_role_passwords=True))
    args.update(extra)
    result = run_module('pg_backup', args)
    assert result.rc == 0, result.raw
    return result


def verify(server, **extra):
    return run_module('pg_backup_verify', dict(server.login_args('postgres'), **extra))


def test_preset_supabase_backs_up_users_and_object_rows(project, tmp_path):
    result = backup(project, tmp_path)
    manifest = result['manifest']
    application, platform, roles = manifest['parts']
    assert application['file'] == 'database.dump' and application['schemas'] == ['public']
    assert application['summary'] == 'application: 2 tables / %d rows' % (
        project.made['public.profiles'] + project.made['public.documents'])
    assert platform['file'] == 'platform.dump' and platform['schemas'] == ['auth', 'storage']
    assert platform['summary'] == 'auth: users 25, identities 25; storage: buckets 2, objects 50'
    counts = {'%s.%s' % (e['schema'], e['table']): e['rows'] for e in platform['row_counts']}
    assert counts == {'auth.audit_log_entries': 0, 'auth.identities': 25, 'auth.users': 25, 'storage.buckets': 2,
                      'storage.objects': 50}
    # What a new project writes itself keeps its schema but not its rows (as Supabase's CLI data dump).
    left_out = [(e['schema'], e['table']) for e in platform['data_left_out']]
    assert left_out == [('auth', 'schema_migrations'), ('storage', 'migrations')]
    assert [p['name'] for p in platform['proofs']] == PROOFS
    assert platform['proofs'][0]['columns'] == ['id', 'email', 'encrypted_password']
    assert roles['file'] == 'roles.sql' and 'without passwords' in roles['holds']
    assert result['parts'] == '; '.join(p['summary'] for p in manifest['parts'])
    assert sorted(f['path'] for f in manifest['files']) == ['database.dump', 'platform.dump', 'roles.sql']
    # The application archive still leaves auth and storage out, as before.
    assert {e['schema'] for e in manifest['excluded_schemas']} >= {'auth', 'storage'}
    assert all(e['schema'] == 'public' for e in manifest['row_counts'])
    # Roles: the custom one is created (only when missing), Supabase's reserved ones are left alone.
    script = open(os.path.join(result['path'], 'roles.sql')).read()
    assert "CREATE ROLE \"%s\"; END IF;" % project.role in script
    assert '-- CREATE ROLE "anon";' in script and '-- ALTER ROLE "postgres"' in script
    assert '-- GRANT "anon" TO "authenticator"' in script
    assert 'SCRAM-SHA-256$' not in script and 'writer-' not in result.raw
    # No password hash of a user ever reaches the output.
    hashes = [r[0] for r in project.sql('SELECT encrypted_password FROM auth.users')]
    assert not any(h in result.raw for h in hashes)


def test_restore_drill_proves_users_identities_buckets_and_objects(project, tmp_path):
    backup(project, tmp_path)
    result = verify(project.server, dest=str(tmp_path), level='restore')
    assert result.rc == 0, result.raw
    names = [c['name'] for c in result['checks']]
    assert names[:4] == ['backup_checksum', 'backup_catalog', 'backup_restore', 'backup_row_counts']
    assert names[4:8] == PROOFS
    assert {c['status'] for c in result['checks']} == {'ok'}, result['checks']
    assert result.check('backup_auth_users')['message'] == (
        'all 25 rows of auth.users are back with the same id, email, encrypted_password')
    assert result.check('backup_storage_objects')['value'] == 50
    assert 'platform.dump pre-data+data, then database.dump pre-data+data' in result.check('backup_restore')['message']
    assert result['result'] == 'ok' and result['verdict']['level'] == 'restore'
    hashes = [r[0] for r in project.sql('SELECT encrypted_password FROM auth.users')]
    assert not any(h in result.raw for h in hashes)


def test_restore_drill_catches_a_user_whose_password_hash_changed(project, tmp_path):
    """A restore that brings every row back but one user's hash differs: only the proof can tell."""
    made = backup(project, tmp_path)
    proof = made['manifest']['parts'][1]['proofs'][0]
    manifest_path = os.path.join(made['path'], 'manifest.json')
    manifest = json.load(open(manifest_path))
    # The proof of the live table after one user changed their password: what a restore of the old backup must not match.
    project.sql("UPDATE auth.users SET encrypted_password = '$2a$10$changed' WHERE email = 'user1@example.org'")
    conn = psycopg2.connect(**project.server.dsn(project.dbname))
    try:
        with conn.cursor() as cur:
            cur.execute(D.proof_sql('auth', 'users', proof['columns']))
            rows, digest = cur.fetchone()
    finally:
        conn.close()
    assert rows == proof['rows'] and digest != proof['sha256']
    manifest['parts'][1]['proofs'][0]['sha256'] = digest
    with open(manifest_path, 'w') as handle:
        json.dump(manifest, handle)
    result = verify(project.server, backup=made['path'], level='restore')
    finding = result.check('backup_auth_users')
    assert finding['status'] == 'critical'
    assert finding['message'] == ('auth.users: 25 rows restored, but their id, email, encrypted_password differ from '
                                  "the backup's (digest of every row)")
    assert result['result'] == 'failed'
    assert result.check('backup_row_counts')['status'] == 'ok'  # the counts alone would have passed


def write_inventory(tmp_path, server, dbname, **variables):
    host = {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
            'appcare_db_host': '127.0.0.1', 'appcare_db_port': server.port, 'appcare_db_user': 'postgres',
            'appcare_db_password': SUPERUSER_PASSWORD, 'appcare_db_name': dbname, 'appcare_db_ssl_mode': 'disable'}
    host.update(variables)
    path = tmp_path / 'hosts.json'
    path.write_text(json.dumps({'all': {'children': {'postgres_targets': {'hosts': {'newproject': host}}}}}))
    return str(path)


@pytest.fixture
def new_project(spawn_server):
    """A new Supabase-like project on another server: the API roles, auth and storage exist (with the platform's own
    migration history), no users, no files, no custom roles, no application."""
    server = spawn_server()
    server.execute('CREATE DATABASE newproject')
    db = Target(server, 'newproject')
    supabase_like(db)
    supabase_platform_tables(db)
    yield db
    db.close()


def runbook(tmp_path, new_project, dest, client, **extra):
    variables = {'supabase_restore_dest': str(dest), 'supabase_restore_pg_bin_dir': client['bin_dir']}
    variables.update(extra)
    inventory = write_inventory(tmp_path, new_project.server, new_project.dbname, **variables)
    return run_playbook(RUNBOOK, inventory, env={'APPCARE_REPORT_DIR': str(tmp_path / 'reports')})


def test_runbook_restores_users_files_and_application_into_a_new_project(project, new_project, tmp_path):
    dest = tmp_path / 'backups'
    made = backup(project, dest)
    before = rows_of(project)
    migrations = new_project.sql('SELECT count(*) FROM storage.migrations')[0][0]
    proc = runbook(tmp_path, new_project, dest, made['client'], supabase_restore_source_database=project.dbname)
    assert proc.returncode == 0, proc.stdout[-6000:]
    after = rows_of(new_project)
    for table in ROWS:
        assert after[table] == before[table], table
    assert len(after['auth.users']) == 25 and len(after['storage.objects']) == 50
    # The custom role came first (it owns a restored table); the platform's own rows were left as they were.
    assert new_project.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'documents'")[0][0] == project.role
    assert new_project.sql('SELECT count(*) FROM storage.migrations')[0][0] == migrations
    # The application's foreign keys to auth.users were restored after the users, and hold.
    assert new_project.sql("SELECT count(*) FROM pg_constraint WHERE conname = 'profiles_id_fkey'")[0][0] == 1
    assert 'all 25 rows of auth.users are back with the same id, email, encrypted_password' in flat(proc)
    # The trigger and the policy the application put on auth/storage tables are named for the operator, not restored.
    assert 'in the backup that the new project lacks' in flat(proc)
    assert 'TRIGGER auth users on_auth_user_created, POLICY storage objects objects_owner' in flat(proc)
    assert new_project.sql("SELECT count(*) FROM pg_trigger WHERE tgname = 'on_auth_user_created'")[0][0] == 0
    assert SUPERUSER_PASSWORD not in proc.stdout
    hashes = [r[0] for r in project.sql('SELECT encrypted_password FROM auth.users')]
    assert not any(h in proc.stdout for h in hashes)
    # The runbook's proof recorded nothing: it did not restore into a scratch database of its own.
    manifest = json.load(open(os.path.join(made['path'], 'manifest.json')))
    assert [r['level'] for r in manifest['verifications']] == ['catalog']


def test_runbook_restores_an_encrypted_backup(project, new_project, tmp_path, gpg_keys):
    dest = tmp_path / 'backups'
    made = backup(project, dest, encryption_recipients=[gpg_keys.public])
    assert sorted(f['path'] for f in made['manifest']['files']) == ['database.dump.gpg', 'platform.dump.gpg',
                                                                    'roles.sql.gpg']
    before = rows_of(project)
    proc = runbook(tmp_path, new_project, dest, made['client'], supabase_restore_source_database=project.dbname,
                   supabase_restore_decryption_key_file=gpg_keys.secret, supabase_restore_platform_objects=True)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert rows_of(new_project) == before
    assert not any(secret in proc.stdout for secret in gpg_keys.secrets())
    # Asked to, the runbook restored the application's trigger and policy on auth/storage tables, after the data:
    # the restored users did not fire it (no duplicate profiles), a new sign-up does.
    assert 'the new project lacked: TRIGGER auth users on_auth_user_created, POLICY storage objects objects_owner' \
        in flat(proc)
    assert new_project.sql("SELECT count(*) FROM pg_policies WHERE policyname = 'objects_owner'")[0][0] == 1
    new_project.sql("INSERT INTO auth.users (id, email, raw_user_meta_data) VALUES "
                    "(gen_random_uuid(), 'new@example.org', '{\"full_name\": \"New\"}')")
    assert new_project.sql("SELECT count(*) FROM public.profiles WHERE full_name = 'New'")[0][0] == 1


def test_runbook_refuses_a_failed_backup_and_a_target_that_is_not_new(project, new_project, tmp_path):
    dest = tmp_path / 'backups'
    made = backup(project, dest)
    # A backup whose restore drill failed is refused: nothing reaches the target.
    manifest_path = os.path.join(made['path'], 'manifest.json')
    manifest = json.load(open(manifest_path))
    manifest['verifications'] = [{'at': manifest['finished_at'], 'level': 'restore', 'result': 'failed'}]
    with open(manifest_path, 'w') as handle:
        json.dump(manifest, handle)
    proc = runbook(tmp_path, new_project, dest, made['client'], supabase_restore_source_database=project.dbname)
    assert proc.returncode != 0
    assert 'is not a good backup (verdict failed at level restore' in flat(proc), proc.stdout[-3000:]
    assert new_project.sql('SELECT count(*) FROM auth.users')[0][0] == 0
    assert new_project.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'profiles'")[0][0] == 0
    # A good backup, but a target that already has users: refused in its turn.
    new_project.sql("INSERT INTO auth.users (id, email) VALUES (gen_random_uuid(), 'someone@example.org')")
    manifest['verifications'] = []
    with open(manifest_path, 'w') as handle:
        json.dump(manifest, handle)
    proc = runbook(tmp_path, new_project, dest, made['client'], supabase_restore_source_database=project.dbname)
    assert proc.returncode != 0
    assert 'is not a new project - it has rows in auth.users 1' in flat(proc), proc.stdout[-3000:]
    assert new_project.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'profiles'")[0][0] == 0


def test_runbook_refuses_a_target_without_auth_and_storage(project, spawn_server, tmp_path):
    dest = tmp_path / 'backups'
    made = backup(project, dest)
    server = spawn_server()
    server.execute('CREATE DATABASE plain')
    proc = runbook(tmp_path, Target(server, 'plain'), dest, made['client'],
                   supabase_restore_source_database=project.dbname)
    assert proc.returncode != 0
    assert 'The target database plain lacks auth.audit_log_entries, auth.identities, auth.users' in flat(proc), \
        proc.stdout[-3000:]
    assert server.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", 'plain', (project.role,))[0][0] == 0


def test_directory_format_keeps_both_parts_and_restores_with_jobs(project, tmp_path):
    planned = run_module('pg_backup', project.args(dest=str(tmp_path / 'plan'), preset='supabase'), check_mode=True)
    assert planned['platform_schemas'] == ['auth', 'storage'] and not (tmp_path / 'plan').exists()
    made = backup(project, tmp_path, format='directory', jobs=2, globals=False, no_role_passwords=False)
    assert [p['file'] for p in made['manifest']['parts']] == ['database.dir', 'platform.dir']
    assert os.path.isfile(os.path.join(made['path'], 'platform.dir', 'toc.dat'))
    result = verify(project.server, backup=made['path'], level='restore', jobs=2)
    assert result['result'] == 'ok', result['checks']
    assert [c['name'] for c in result['checks'] if c['name'] in PROOFS] == PROOFS
