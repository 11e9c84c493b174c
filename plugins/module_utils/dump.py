# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One logical backup run of pg_backup: snapshot, pg_dump, row counts, checks, manifest, rename.

The run writes into ``dest/.partial-<id>`` and renames it into place only after pg_dump exited 0,
the archive passed its checks and the manifest was written last. Anything that goes wrong before
that removes the partial directory, so nothing half-written can pass for a backup.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import threading
import time

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import encryption as E
from ansible_collections.appcare.maintenance.plugins.module_utils import pgclient as P
from ansible_collections.appcare.maintenance.plugins.module_utils import store as S
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    Session,
    client_env,
    connect_kwargs,
    db_error_text,
    target_label,
)
from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import SUPABASE_SCHEMAS, matches

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by postgres.require_psycopg2()
    psycopg2 = None
    sql = None

DUMP_FILE = {'custom': 'database.dump', 'directory': 'database.dir'}
GLOBALS_FILE = 'globals.sql'

# --- preset supabase: what a restore into a new Supabase project needs ------------------------------
# Supabase's CLI recipe ("Backup and restore using the CLI",
# https://supabase.com/docs/guides/platform/migrating-within-supabase/backup-restore) dumps roles, the schema of the
# application schemas, and data that includes auth and storage; its data dump (pkg/migration/dump.go and
# scripts/dump_data.sh of https://github.com/supabase/cli) leaves out only what the platform recreates. pg_backup
# keeps auth and storage as a second archive (schema and data), made from the same snapshot as the application's.
PLATFORM_FILE = {'custom': 'platform.dump', 'directory': 'platform.dir'}
ROLES_FILE = 'roles.sql'
PLATFORM_SCHEMAS = ['auth', 'storage']
# Tables whose rows the platform writes itself in a new project: their schema is in the platform part, their data
# is not (the CLI's --exclude-table list in scripts/dump_data.sh; the vector tables are left out by the docs' recipe).
PLATFORM_RECREATED_DATA = [
    ('auth', 'schema_migrations', 'the migration history of Supabase Auth: a new project writes its own'),
    ('storage', 'migrations', 'the migration history of Supabase Storage: a new project writes its own'),
    ('storage', 'buckets_vectors', 'vector buckets: left out by Supabase\'s recipe (managed by the platform)'),
    ('storage', 'vector_indexes', 'vector indexes: left out by Supabase\'s recipe (managed by the platform)'),
]
# What the restore drill proves row by row (a sha256 over the listed columns of every row, ordered): the users can
# log in (same id, email and password hash), their identities, the buckets and the object rows. Columns a table lacks
# (an older Auth has no identities.provider_id) are left out of its proof; the manifest names the columns used.
PLATFORM_PROOFS = [
    ('backup_auth_users', 'auth', 'users', ['id', 'email', 'encrypted_password']),
    ('backup_auth_identities', 'auth', 'identities', ['id', 'user_id', 'provider', 'provider_id']),
    ('backup_storage_buckets', 'storage', 'buckets', ['id', 'name']),
    ('backup_storage_objects', 'storage', 'objects', ['id', 'bucket_id', 'name']),
]
# Roles Supabase creates in every project; a roles script for a new project must neither create nor alter them
# (``reservedRoles`` and ``allowedConfigs`` in pkg/migration/dump.go of https://github.com/supabase/cli).
SUPABASE_RESERVED_ROLES = ['anon', 'authenticated', 'authenticator', 'cli_login_.*', 'dashboard_user', 'pgbouncer',
                           'postgres', 'service_role', 'supabase_.*', 'pgsodium_keyholder', 'pgsodium_keyiduser',
                           'pgsodium_keymaker', 'pgtle_admin']
SUPABASE_ALLOWED_ROLE_CONFIGS = ['pgaudit.*', 'pgrst.*', 'session_replication_role', 'statement_timeout',
                                 'track_io_timing']

COLUMNS_SQL = """
SELECT a.attname FROM pg_attribute a
 WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""


def proof_sql(schema, table, columns):
    """The query that proves a table's rows: how many, and a sha256 over the sha256 of every row's ``columns`` (as a
    JSON array), in byte order - the same in the backup's snapshot and in any restored copy. It runs in the server, so
    no value (password hashes included) reaches this process."""
    row = sql.SQL('jsonb_build_array({})::text').format(sql.SQL(', ').join(sql.Identifier(c) for c in columns))
    return sql.SQL("SELECT count(*) AS rows, encode(sha256(convert_to(coalesce(string_agg(r, E'\\n' ORDER BY r "
                   "COLLATE \"C\"), ''), 'UTF8')), 'hex') AS sha256 FROM (SELECT encode(sha256(convert_to({}, 'UTF8')), "
                   "'hex') AS r FROM {}.{}) t").format(row, sql.Identifier(schema), sql.Identifier(table))


def supabase_roles_script(text):
    """``pg_dumpall --roles-only`` output made restorable into a new Supabase project, as the CLI's
    scripts/dump_role.sh does (https://github.com/supabase/cli): statements that create or alter the roles Supabase
    reserves are commented out (except settings it allows), as are grants to them, and NOSUPERUSER/NOREPLICATION
    (which need a superuser) are dropped. Beyond the CLI, CREATE ROLE of a role that exists already is skipped, so a
    second run of the restore does not fail on it. Expects --quote-all-identifiers output."""
    reserved = '(?:%s)' % '|'.join(SUPABASE_RESERVED_ROLES)
    allowed = '(?:%s)' % '|'.join(SUPABASE_ALLOWED_ROLE_CONFIGS)
    out = []
    for line in text.splitlines():
        if re.match(r'^(CREATE|ALTER) ROLE "%s"' % reserved, line):
            if not re.match(r'^ALTER ROLE "%s".* SET "%s" ' % (reserved, allowed), line):
                line = '-- ' + line
        elif re.search(r'GRANT ".*" TO "%s"' % reserved, line):
            line = '-- ' + line
        else:
            line = re.sub(r' (NOSUPERUSER|NOREPLICATION)', '', line)
            created = re.match(r'^CREATE ROLE ("(?:[^"]|"")+");$', line)
            if created:
                name = created.group(1)[1:-1].replace('""', '"').replace("'", "''")
                line = ("DO $appcare$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                        "CREATE ROLE %s; END IF; END $appcare$;" % (name, created.group(1)))
        out.append(line)
    return '\n'.join(out) + '\n'


BACKUP_THRESHOLDS = {
    # New backup size as a share of the previous good one; a drop below half is suspicious.
    'backup_size': {'warning': 50, 'critical': None, 'direction': C.BELOW, 'unit': 'percent'},
}

SCHEMAS_SQL = """
SELECT nspname FROM pg_namespace
 WHERE nspname NOT LIKE 'pg\\_%%' AND nspname <> 'information_schema'
 ORDER BY 1
"""

TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS name
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence <> 't'
   AND n.nspname = ANY(%s)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""

# What pg_dump needs of every table and sequence it dumps, checked before it starts, so a missing privilege
# is named as such (pg_dump and the row-counting session would otherwise fail on it mid-run, and the
# failure would surface as a lost snapshot).
ACCESS_SQL = """
SELECT quote_ident(n.nspname) AS schema_q, n.nspname AS schema, c.relname AS name,
       CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind,
       has_schema_privilege(n.oid, 'USAGE') AS usage,
       has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') AS can_select,
       c.relkind = 'r' AND c.relrowsecurity AND NOT (r.rolsuper OR r.rolbypassrls)
         AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')) AS rls,
       quote_ident(current_user) AS role
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_roles r ON r.rolname = current_user
 WHERE c.relkind IN ('r', 'S') AND c.relpersistence <> 't'
   AND n.nspname = ANY(%s)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 3
"""

SIGNAL_HINTS = {
    getattr(signal, 'SIGXFSZ', 25): 'the file size limit was exceeded',
    signal.SIGKILL: 'it was killed (out of memory, or by an operator)',
    signal.SIGTERM: 'it was asked to stop',
}


def _quote_pattern(name):
    """A schema name as a pg_dump pattern that matches exactly that name."""
    return '"%s"' % name.replace('"', '""')


def resolve_schemas(all_schemas, include_patterns, exclude_patterns, preset_patterns):
    """Which schemas go into the dump, and why every other one is left out.

    Patterns use pg_dump's wildcards (``*`` and ``?``) and are matched against the real schema names,
    so the manifest records names, not patterns.
    """
    included, excluded = [], []
    for pattern in include_patterns or []:
        if not any(matches(schema, [pattern]) for schema in all_schemas):
            raise ConfigurationError('include_schemas: no schema matches %r (schemas: %s)'
                                     % (pattern, ', '.join(all_schemas)))
    for schema in all_schemas:
        reason = None
        if include_patterns and not any(matches(schema, [p]) for p in include_patterns):
            reason = 'not in include_schemas'
        else:
            for pattern in exclude_patterns or []:
                if matches(schema, [pattern]):
                    reason = 'exclude_schemas (%s)' % pattern
                    break
            else:
                for pattern in preset_patterns or []:
                    if matches(schema, [pattern]):
                        reason = 'preset supabase (%s)' % pattern
                        break
        if reason:
            excluded.append({'schema': schema, 'reason': reason})
        else:
            included.append(schema)
    return included, excluded


def table_label(entry):
    """``schema.table`` for messages (quoted where a part needs it, so a dot inside a name is visible)."""
    def part(name):
        return name if re.match(r'^[a-z_][a-z0-9_]*$', name) else '"%s"' % name.replace('"', '""')
    return '%s.%s' % (part(entry['schema']), part(entry['table']))


def table_candidates(entry):
    """The (schema, table) pairs a row-count entry can mean: one, or every split of a format 1 key."""
    key = entry.get('legacy_key')
    if not key:
        return [(entry['schema'], entry['table'])]
    return [(key[:i], key[i + 1:]) for i, char in enumerate(key) if char == '.']


# --- the pg_backup run -----------------------------------------------------------------------------

def validate(params):
    """Every option of pg_backup, before anything touches disk or network. Returns (thresholds, encryptor)."""
    if params['jobs'] < 1:
        raise ConfigurationError('jobs must be 1 or more, got %d' % params['jobs'])
    if params['jobs'] > 1 and params['format'] != 'directory':
        raise ConfigurationError('jobs > 1 needs format: directory (pg_dump writes custom archives serially)')
    level = params['compression_level']
    if level is not None and not 0 <= level <= 22:
        raise ConfigurationError('compression_level must be between 0 and 22, got %d' % level)
    if params['no_role_passwords'] and not params['globals']:
        raise ConfigurationError('no_role_passwords applies to the globals backup: set globals: true as well')
    for name in RETENTION_OPTIONS:
        if params[name] is not None and params[name] < 0:
            raise ConfigurationError('%s must be 0 or more, got %d' % (name, params[name]))
    connect_kwargs(params, 'validation only')
    thresholds = C.merge_thresholds(BACKUP_THRESHOLDS, params['thresholds'])
    encryptor = E.Encryptor(params['encryption_recipients'], params['encryption_passphrase_file'])
    if encryptor.enabled and params['format'] != 'custom':
        raise ConfigurationError('encryption needs format: custom (pg_dump writes a directory-format backup as '
                                 'many files itself, so it cannot be encrypted in the stream)')
    encryptor.validate()
    return thresholds, encryptor


RETENTION_OPTIONS = ('keep_daily', 'keep_weekly', 'keep_monthly')


def same_target(backups, params):
    """The backups of the database and target this run backs up (retention judges only those)."""
    return [b for b in backups if b['manifest'].get('database') == params['login_db']
            and b['manifest'].get('target') == target_label(params)]


def plan_retention(backups, params, this_run):
    """Ids retention deletes; never ``this_run``, the backup the current run writes. None when retention is off."""
    if all(params[name] is None for name in RETENTION_OPTIONS):
        return []
    _keep, delete = S.retention_plan(backups, *[params[name] or 0 for name in RETENTION_OPTIONS], protect=[this_run])
    return delete


def prepare_dest(dest):
    """``dest`` exists (created 0700 when missing) and this user can write there."""
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise ConfigurationError('dest %s exists and is not a directory' % dest)
    try:
        os.makedirs(dest, 0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError('cannot create dest %s: %s' % (dest, exc.strerror)) from exc
    if not os.access(dest, os.W_OK | os.X_OK):
        raise ConfigurationError('dest %s is not writable by this user' % dest)


def run_backup(params, thresholds, encryptor, check_mode, result):
    """The whole pg_backup run into ``result``: lock, plan, (not in check mode) clean-up of crashed runs, the
    backup, retention, findings."""
    dest = params['dest']
    lock = None
    if not check_mode:
        prepare_dest(dest)
        lock = S.DestinationLock(dest).acquire()
    try:
        with Session(params, 'appcare.maintenance.pg_backup', read_only=True) as session:
            server = server_info(session)
            tools = ('pg_dump', 'pg_restore', 'pg_dumpall') if params['globals'] else ('pg_dump', 'pg_restore')
            client = P.find_client(server['major'], server['version'], params['pg_bin_dir'], tools)
            compression = P.choose_compression(os.path.join(client['bin_dir'], 'pg_dump'), client['major'],
                                               params['compression'])
            run = DumpRun(session, params, server, client, compression, encryptor)
            included, excluded = run.plan()
            platform = platform_schemas(params, excluded)
            run.check_access(included + platform)
            found = S.scan(dest)
            backups = same_target(found.backups, params)
            backup_id = S.new_backup_id(dest, params['login_db'])
            result.update(client=client, ignored=found.others, future=[e['path'] for e in found.future],
                          path=os.path.join(dest, backup_id))
            if check_mode:
                # The planned backup would be the newest: retention would keep it and judge the rest.
                planned = {'id': backup_id, 'finished_at': utcnow(), 'manifest': {'verifications': []}}
                result.update(changed=True, cleaned=found.partials, schemas=included, excluded_schemas=excluded,
                              platform_schemas=platform, compression=compression,
                              deleted=plan_retention([planned] + backups, params, backup_id))
                return
            for partial in found.partials:
                S.remove_tree(partial)
                result['cleaned'].append(partial)
            started = time.monotonic()
            size = session.one('SELECT pg_database_size(current_database()) AS bytes')['bytes']
            manifest = run.run(backup_id, included, excluded, platform)
            seconds = time.monotonic() - started
        result.update(changed=True, manifest=manifest, bytes=manifest['bytes'], seconds=round(seconds, 3),
                      mb_per_s=round(size / 1048576.0 / max(seconds, 1e-6), 2))
        if manifest.get('parts'):
            result['parts'] = '; '.join(p['summary'] for p in manifest['parts'])
        # For the run report (its maintenance_report callback merges ``report`` sections; it adds age_hours).
        result['report'] = {'backup': {'id': backup_id, 'path': result['path'], 'bytes': manifest['bytes'],
                                       'finished_at': manifest['finished_at'], 'verified': None}}
        for name in plan_retention(same_target(S.scan(dest).backups, params), params, backup_id):
            S.delete_backup(dest, name)
            result['deleted'].append(name)
    finally:
        if lock is not None:
            lock.release()
    result['checks'] = [size_check(thresholds, manifest, next(iter(backups), None)), S.future_check(found)]
    result['status'] = C.worst_status(result['checks'])


def platform_schemas(params, excluded):
    """The Supabase schemas whose schema and data go into the platform part: with preset supabase, those of
    PLATFORM_SCHEMAS the database has and only the preset left out of the application dump (a schema excluded by
    exclude_schemas or include_schemas stays out of the backup altogether)."""
    if params['preset'] != 'supabase':
        return []
    return [e['schema'] for e in excluded
            if e['schema'] in PLATFORM_SCHEMAS and e['reason'].startswith('preset supabase')]


def server_info(session):
    row = session.one("SELECT current_setting('server_version') AS version, "
                      "current_setting('server_version_num')::int AS version_num, "
                      "current_database() AS database")
    row['major'] = row['version_num'] // 10000
    return row


class DumpRun(object):
    """A single backup of one database into ``dest``."""

    def __init__(self, session, params, server, client, compression, encryptor=None):
        self.session = session
        self.server = server
        self.params = params
        self.client = client
        self.compression = compression
        self.encryptor = encryptor if encryptor is not None and encryptor.enabled else None
        self.dest = params['dest']
        self.fmt = params['format']
        self.procs = []

    # -- helpers ---------------------------------------------------------------------------------
    def _bin(self, name):
        return os.path.join(self.client['bin_dir'], name)

    def _env(self):
        return client_env(self.params, 'appcare.maintenance.pg_backup')

    def _run_tool(self, argv, what):
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self._env(),
                              check=False)
        if proc.returncode != 0:
            raise S.BackupError('%s failed: %s' % (what, _exit_reason(proc.returncode, proc.stderr)))
        return proc.stdout

    # -- the run ---------------------------------------------------------------------------------
    def plan(self):
        schemas = [r['nspname'] for r in self.session.query(SCHEMAS_SQL)]
        preset = SUPABASE_SCHEMAS if self.params['preset'] == 'supabase' else []
        return resolve_schemas(schemas, self.params['include_schemas'], self.params['exclude_schemas'], preset)

    def check_access(self, included):
        """Refuse, before anything is written, a backup the login role cannot read completely: name each
        table or sequence, the privilege it lacks and the statement that grants it."""
        rows = self.session.query(ACCESS_SQL, (included,))
        denied = [r for r in rows if not r['can_select']]
        limited = [r for r in rows if r['can_select'] and r['rls']]
        if not denied and not limited:
            return
        role = rows[0]['role']
        problems, grants = [], []
        for row in denied:
            label = table_label({'schema': row['schema'], 'table': row['name']})
            if not row['usage']:
                problems.append('%s (no USAGE on schema %s)' % (label, row['schema_q']))
                grant = 'GRANT USAGE ON SCHEMA %s TO %s' % (row['schema_q'], role)
            else:
                problems.append('%s %s (no SELECT)' % (row['kind'], label))
                grant = 'GRANT SELECT ON ALL %sS IN SCHEMA %s TO %s' % (row['kind'].upper(), row['schema_q'], role)
            if grant not in grants:
                grants.append(grant)
        message = ''
        if denied:
            message = ('role %s cannot read %d object(s) the backup includes: %s. Grant what is missing (%s) or '
                       'leave the schema out with exclude_schemas'
                       % (role, len(denied), ', '.join(problems[:10]), '; '.join(grants[:5])))
        if limited:
            message += ('%srole %s is subject to row-level security on %d table(s) (%s): pg_dump would stop '
                        'rather than dump only the rows the role may see. Log in as the tables\' owner, or grant '
                        'BYPASSRLS (ALTER ROLE %s BYPASSRLS)'
                        % ('; ' if message else '', role, len(limited),
                           ', '.join(table_label({'schema': r['schema'], 'table': r['name']}) for r in limited[:10]),
                           role))
        raise S.BackupError(message)

    def dump_argv(self, partial, snapshot, included, excluded, files=None):
        """pg_dump's argv and output path: the application dump, or with ``files`` (PLATFORM_FILE) the platform part,
        whose schemas are ``included`` and whose tables in ``excluded`` ((schema, table) pairs) keep their schema but
        not their data."""
        out = os.path.join(partial, (files or DUMP_FILE)[self.fmt])
        if self.encryptor:
            # pg_dump writes to its stdout, gpg writes the file: no plaintext reaches the disk.
            out += E.SUFFIX
            target = []
        else:
            target = ['--file=%s' % out]
        argv = [self._bin('pg_dump'), '--format=%s' % self.fmt] + target
        argv += ['--no-password', '--snapshot=%s' % snapshot]
        argv += P.compression_args(self.client['major'], self.compression, self.params['compression_level'])
        if self.fmt == 'directory' and self.params['jobs'] > 1:
            argv.append('--jobs=%d' % self.params['jobs'])
        if files is not None:
            argv += ['--schema=%s' % _quote_pattern(s) for s in included]
            argv += ['--exclude-table-data=%s.%s' % (_quote_pattern(schema), _quote_pattern(table))
                     for schema, table in excluded]
            return argv, out
        if self.params['include_schemas']:
            argv += ['--schema=%s' % _quote_pattern(s) for s in included]
        argv += ['--exclude-schema=%s' % _quote_pattern(e['schema']) for e in excluded
                 if e['reason'] != 'not in include_schemas']
        return argv, out

    def run(self, backup_id, included, excluded, platform=None):
        """Make the backup in a partial directory, check it, and move it into place. Returns the manifest."""
        started = utcnow()
        partial = S.partial_dir(self.dest, backup_id)
        try:
            manifest = self._dump_into(partial, backup_id, started, included, excluded, platform or [])
            S.publish(self.dest, partial, backup_id, manifest)
            return manifest
        except BaseException:
            self._stop_dump()
            S.remove_tree(partial)
            raise

    def _stop_dump(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def _dump(self, argv, out, counter=None, what='pg_dump'):
        """Run one pg_dump (into gpg when encrypting); with ``counter``, rows are counted meanwhile in the snapshot.
        Returns (the archive's first bytes, ``pg_restore --list`` of it) when encrypted, else (None, None)."""
        if self.encryptor:
            return self._run_encrypted(argv, out, what, counter=counter, list_toc=True)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self._env())
        self.procs.append(proc)
        if counter is not None:
            # Count rows in the exported snapshot while pg_dump copies the same snapshot.
            counter.start()
        _out, err = proc.communicate()
        if counter is not None:
            self._dump_exit(proc.returncode, err, counter)
        elif proc.returncode != 0:
            raise S.BackupError('%s failed: %s' % (what, _exit_reason(proc.returncode, err)))
        return None, None

    def _platform_tables(self, platform):
        """(tables whose data the platform part holds, [(schema, table, reason)] whose data it leaves out)."""
        if not platform:
            return [], []
        tables = self.session.query(TABLES_SQL, (platform,))
        left_out = [entry for entry in PLATFORM_RECREATED_DATA
                    if any(t['schema'] == entry[0] and t['name'] == entry[1] for t in tables)]
        skip = {(schema, table) for schema, table, _reason in left_out}
        return [t for t in tables if (t['schema'], t['name']) not in skip], left_out

    def _proofs(self, platform_tables):
        """The row proofs of PLATFORM_PROOFS for the tables the platform part holds, in the snapshot."""
        proofs = []
        for name, schema, table, wanted in PLATFORM_PROOFS:
            if not any(t['schema'] == schema and t['name'] == table for t in platform_tables):
                continue
            have = {r['attname'] for r in self.session.query(COLUMNS_SQL, ('%s.%s' % (schema, table),))}
            columns = [c for c in wanted if c in have]
            if not columns:
                continue
            row = self.session.one(proof_sql(schema, table, columns))
            proofs.append({'name': name, 'schema': schema, 'table': table, 'columns': columns, 'rows': row['rows'],
                           'sha256': row['sha256']})
        return proofs

    def _dump_into(self, partial, backup_id, started, included, excluded, platform):
        conn = self.session.conn
        conn.autocommit = False
        conn.set_session(isolation_level='REPEATABLE READ', readonly=True)
        platform_out = platform_listing = platform_header = None
        platform_tables, proofs = [], []
        try:
            snapshot = self.session.one('SELECT pg_export_snapshot() AS id')['id']
            tables = self.session.query(TABLES_SQL, (included,))
            platform_tables, left_out = self._platform_tables(platform)
            argv, out = self.dump_argv(partial, snapshot, included, excluded)
            counter = RowCounter(self.session, tables + platform_tables)
            header, listing = self._dump(argv, out, counter)
            if platform:
                # The platform part: the same snapshot, so users, object rows and application rows agree.
                argv, platform_out = self.dump_argv(partial, snapshot, platform, [e[:2] for e in left_out],
                                                    PLATFORM_FILE)
                try:
                    platform_header, platform_listing = self._dump(argv, platform_out,
                                                                   what='pg_dump of the platform part (%s)'
                                                                   % ', '.join(platform))
                except BaseException:
                    counter.cancel()
                    raise
            counts = counter.result()
            if platform:
                proofs = self._proofs(platform_tables)
        finally:
            try:
                conn.rollback()
            except psycopg2.Error:
                pass
            try:
                conn.autocommit = True
            except psycopg2.Error:
                pass
        dump_done = utcnow()
        platform_keys = {(t['schema'], t['name']) for t in platform_tables}
        app_counts = [c for c in counts if (c['schema'], c['table']) not in platform_keys]
        platform_counts = [c for c in counts if (c['schema'], c['table']) in platform_keys]
        globals_file = self._dump_globals(partial)
        table_entries = self.check_archive(out, tables, listing, header)
        parts = []
        if platform:
            self.check_archive(platform_out, platform_tables, platform_listing, platform_header)
            parts = self._parts(out, included, app_counts, platform_out, platform, platform_counts, left_out, proofs,
                                globals_file)
        finished = utcnow()
        files = S.file_digests(partial)
        total = sum(f['bytes'] for f in files)
        manifest = {
            'format_version': S.MANIFEST_FORMAT,
            'id': backup_id,
            'tool': 'appcare.maintenance.pg_backup',
            'target': target_label(self.params),
            'database': self.params['login_db'],
            'server_version': self.server['version'],
            'client_version': self.client['version'],
            'format': self.fmt,
            'jobs': self.params['jobs'] if self.fmt == 'directory' else 1,
            'compression': self.compression,
            'compression_level': self.params['compression_level'],
            'dump': os.path.basename(out),
            'globals': os.path.basename(globals_file) if globals_file else None,
            'no_role_passwords': bool(self.params['globals'] and self.params['no_role_passwords']),
            'preset': self.params['preset'],
            'include_schemas': list(self.params['include_schemas'] or []),
            'exclude_schemas': list(self.params['exclude_schemas'] or []),
            'schemas': included,
            'excluded_schemas': excluded,
            'snapshot': snapshot,
            'row_counts': app_counts,
            'tables': len(app_counts),
            'archive_entries': table_entries,
            'started_at': iso(started),
            'dump_finished_at': iso(dump_done),
            'finished_at': iso(finished),
            'duration_seconds': round((finished - started).total_seconds(), 3),
            'bytes': total,
            'files': files,
            'encryption': self.encryptor.description if self.encryptor else None,
            'verification': None,
            'verifications': [],
        }
        if parts:
            manifest['parts'] = parts
        return manifest

    def _parts(self, out, included, app_counts, platform_out, platform, platform_counts, left_out, proofs, roles):
        """The manifest's ``parts``: what each file of a preset supabase backup holds, with its row counts."""
        def rows(counts):
            return sum(c['rows'] for c in counts)

        by_table = {(p['schema'], p['table']): p['rows'] for p in proofs}
        summary = []
        for schema, tables in (('auth', ('users', 'identities')), ('storage', ('buckets', 'objects'))):
            if schema in platform:
                counted = ['%s %s' % (t, by_table.get((schema, t), 'n/a')) for t in tables]
                summary.append('%s: %s' % (schema, ', '.join(counted)))
        parts = [
            {'name': 'application', 'file': os.path.basename(out), 'schemas': included,
             'holds': 'schema and data of the application schemas', 'tables': len(app_counts),
             'rows': rows(app_counts),
             'summary': 'application: %d tables / %d rows' % (len(app_counts), rows(app_counts))},
            {'name': 'platform', 'file': os.path.basename(platform_out), 'schemas': platform,
             'holds': 'schema and data of the Supabase schemas %s (users, identities, buckets, object rows); a '
                      'restore into a new project loads only the data' % ' and '.join(platform),
             'tables': len(platform_counts), 'rows': rows(platform_counts), 'row_counts': platform_counts,
             'data_left_out': [{'schema': s, 'table': t, 'reason': r} for s, t, r in left_out],
             'proofs': proofs, 'summary': '; '.join(summary) or 'platform: %d tables' % len(platform_counts)},
        ]
        if roles:
            passwords = 'without passwords' if self.params['no_role_passwords'] else 'with password hashes'
            parts.append({'name': 'roles', 'file': os.path.basename(roles),
                          'holds': 'roles (pg_dumpall --roles-only, %s), Supabase\'s reserved roles commented out'
                                   % passwords, 'summary': 'roles: %s' % passwords})
        return parts

    def _dump_globals(self, partial):
        """globals.sql (pg_dumpall --globals-only), or with preset supabase roles.sql (--roles-only, made restorable
        into a new project: ``supabase_roles_script``); None without ``globals``."""
        if not self.params['globals']:
            return None
        supabase = self.params['preset'] == 'supabase'
        path = os.path.join(partial, ROLES_FILE if supabase else GLOBALS_FILE)
        what = 'pg_dumpall --roles-only' if supabase else 'pg_dumpall --globals-only'
        # The database to connect to comes from PGDATABASE: --dbname would parse it as a connection string.
        argv = [self._bin('pg_dumpall'), '--roles-only' if supabase else '--globals-only', '--no-password']
        if supabase:
            argv += ['--quote-all-identifiers', '--no-comments']
        if self.params['no_role_passwords']:
            argv.append('--no-role-passwords')
        try:
            if supabase:
                text = supabase_roles_script(self._run_tool(argv, what))
                if self.encryptor:  # roles (and any password hashes) are encrypted like the dump
                    path += E.SUFFIX
                    self._write_encrypted(text.encode('utf-8'), path, what)
                else:
                    with open(path, 'w') as handle:
                        handle.write(text)
            elif self.encryptor:
                path += E.SUFFIX
                self._run_encrypted(argv, path, what)
            else:
                self._run_tool(argv + ['--file=%s' % path], what)
        except S.BackupError as exc:
            hint = ''
            if 'pg_authid' in str(exc):
                hint = ('; on managed platforms (Supabase, RDS) password hashes cannot be read: set '
                        'no_role_passwords: true')
            raise S.BackupError('%s%s' % (exc, hint)) from exc
        return path

    def _write_encrypted(self, data, out, what):
        """``data`` (small: a roles script) -> gpg -> ``out``."""
        with E.GpgHome(self.encryptor.gpg) as home, tempfile.TemporaryFile() as gpg_err:
            gpg = subprocess.Popen(self.encryptor.argv(home, out), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=gpg_err)
            self.procs.append(gpg)
            try:
                gpg.stdin.write(data)
                gpg.stdin.close()
            except BrokenPipeError:
                pass
            gpg.wait()
            if gpg.returncode != 0:
                raise S.BackupError('gpg failed to encrypt the output of %s: %s'
                                    % (what, _exit_reason(gpg.returncode, _read(gpg_err))))

    def _dump_exit(self, returncode, err, counter):
        """Raise for a failed pg_dump, naming the cause: when the row count failed first, its error is the
        cause (its session held the snapshot pg_dump imports)."""
        if returncode == 0:
            return
        failed_first = counter.error is not None  # before we cancel it: the count failed on its own
        counter.cancel()
        if failed_first:
            counter.result()
        raise S.BackupError('pg_dump failed: %s' % _exit_reason(returncode, err))

    def _run_encrypted(self, argv, out, what, counter=None, list_toc=False):
        """``argv`` (a tool writing to its stdout) -> gpg -> ``out``: no plaintext reaches the disk. With
        ``list_toc`` the stream's start also feeds ``pg_restore --list``, so the new archive's table of contents
        is checked without decrypting anything. With ``counter`` (pg_dump), rows are counted meanwhile.
        Returns (the stream's first bytes, the listing or None)."""
        with E.GpgHome(self.encryptor.gpg) as home, tempfile.TemporaryFile() as tool_err, \
                tempfile.TemporaryFile() as gpg_err, tempfile.TemporaryFile() as list_out, \
                tempfile.TemporaryFile() as list_err:
            tool = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=tool_err, env=self._env())
            gpg = subprocess.Popen(self.encryptor.argv(home, out), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=gpg_err)
            procs = [tool, gpg]
            if list_toc:
                procs.append(subprocess.Popen([self._bin('pg_restore'), '--list'], stdin=subprocess.PIPE,
                                              stdout=list_out, stderr=list_err, env=self._env()))
            self.procs.extend(procs)
            if counter is not None:
                counter.start()
            broken = None
            try:
                head, _size = E.copy_stream(tool.stdout, [gpg.stdin], [p.stdin for p in procs[2:]])
            except BrokenPipeError as exc:
                broken, head = exc, b''
            tool.stdout.close()
            for proc in procs:
                proc.wait()
            if counter is not None:
                self._dump_exit(tool.returncode, _read(tool_err), counter)
            elif tool.returncode != 0:
                raise S.BackupError('%s failed: %s' % (what, _exit_reason(tool.returncode, _read(tool_err))))
            if gpg.returncode != 0 or broken is not None:
                raise S.BackupError('gpg failed to encrypt the output of %s: %s'
                                    % (what, _exit_reason(gpg.returncode or 1, _read(gpg_err))))
            if list_toc and procs[2].returncode != 0:
                raise S.BackupError('pg_restore --list of the new archive failed: %s'
                                    % _exit_reason(procs[2].returncode, _read(list_err)))
            return head, (_read(list_out) if list_toc else None)

    def check_archive(self, out, tables, listing=None, header=None):
        """Refuse an archive that is empty, has no readable header, or that pg_restore cannot list, or
        that lacks data for a table we counted. An encrypted archive was checked in the stream
        (``listing`` and ``header``, its first bytes); its file is checked to be OpenPGP, not plaintext."""
        header_file = out if self.fmt == 'custom' else os.path.join(out, 'toc.dat')
        try:
            size = os.path.getsize(header_file)
            with open(header_file, 'rb') as handle:
                magic = handle.read(5)
        except OSError as exc:
            raise S.BackupError('pg_dump exited 0 but left no readable archive at %s: %s' % (header_file, exc)) from exc
        if size == 0:
            raise S.BackupError('pg_dump exited 0 but the archive %s is empty' % header_file)
        if listing is not None:
            if not E.looks_encrypted(header_file):
                raise S.BackupError('%s should be OpenPGP-encrypted but is not' % header_file)
            magic = (header or b'')[:5]
        if magic != b'PGDMP':
            raise S.BackupError('%s does not start with a pg_dump archive header' % header_file)
        if listing is None:
            listing = self._run_tool([self._bin('pg_restore'), '--list', out], 'pg_restore --list of the new archive')
        entries = [line for line in listing.splitlines() if line and not line.startswith(';')]
        data_lines = set()
        for line in entries:
            marker = ' TABLE DATA '
            if marker in line:
                data_lines.add(line.split(marker, 1)[1])
        missing = []
        for table in tables:
            prefix = '%s %s ' % (table['schema'], table['name'])
            if not any(entry.startswith(prefix) for entry in data_lines):
                missing.append(table_label({'schema': table['schema'], 'table': table['name']}))
        if missing:
            raise S.BackupError('the archive has no data entry for %d table(s): %s'
                                % (len(missing), ', '.join(missing[:10])))
        return len(entries)


class RowCounter(object):
    """Counts the rows of every table in the session's snapshot, on a thread, cancellable."""

    def __init__(self, session, tables):
        self.session = session
        self.tables = tables
        self.counts = []
        self.error = None
        self.failed_table = None
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, name='appcare-row-count')
        self.thread.daemon = True

    def start(self):
        self.thread.start()

    def _run(self):
        try:
            with self.session.conn.cursor() as cur:
                for table in self.tables:
                    self.failed_table = {'schema': table['schema'], 'table': table['name']}
                    cur.execute(sql.SQL('SELECT count(*) FROM {}.{}').format(
                        sql.Identifier(table['schema']), sql.Identifier(table['name'])))
                    self.counts.append({'schema': table['schema'], 'table': table['name'], 'rows': cur.fetchone()[0]})
                self.failed_table = None
        except psycopg2.Error as exc:
            self.error = exc

    def cancel(self):
        self.cancelled = True
        if self.thread.is_alive():
            try:
                self.session.conn.cancel()
            except psycopg2.Error:
                pass
        self.thread.join(30)

    def result(self):
        self.thread.join()
        if self.error is not None:
            where = ' of %s' % table_label(self.failed_table) if self.failed_table else ''
            raise S.BackupError('could not count the rows%s in the backup snapshot: %s'
                                % (where, db_error_text(self.error)))
        return self.counts


def _read(handle):
    handle.seek(0)
    return handle.read().decode('utf-8', 'replace')


def _exit_reason(returncode, stderr):
    text = ' '.join((stderr or '').split())
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = 'signal %d' % number
        hint = SIGNAL_HINTS.get(number, '')
        return 'killed by %s%s%s' % (name, ' (%s)' % hint if hint else '', ': %s' % text if text else '')
    return 'exit code %d: %s' % (returncode, text or 'no message')


def size_check(thresholds, manifest, previous):
    spec = thresholds['backup_size']
    if previous is None:
        return C.finding('backup_size', C.OK, 'first backup of this database here: %s' % C.human_bytes(manifest['bytes']),
                         value=None, unit='percent', warning=spec['warning'], critical=spec['critical'],
                         obj='db=%s' % manifest['database'], bytes=manifest['bytes'])
    prev_bytes = previous['manifest']['bytes'] or 1
    pct = round(100.0 * manifest['bytes'] / prev_bytes, 1)
    return C.evaluate('backup_size', pct, spec['warning'], spec['critical'], C.BELOW, unit='percent',
                      obj='db=%s' % manifest['database'],
                      message='backup is {value}%% of the previous good one (%s now, %s in %s)'
                      % (C.human_bytes(manifest['bytes']), C.human_bytes(previous['manifest']['bytes']), previous['id']),
                      bytes=manifest['bytes'], previous_bytes=previous['manifest']['bytes'])
