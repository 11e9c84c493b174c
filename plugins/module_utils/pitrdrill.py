# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The point-in-time restore drill of a pgBackRest stanza: restore into a scratch data directory (to a time, or to
the newest point the archive holds), start it as the database OS account on a private socket with archiving off,
wait until recovery has ended, prove the point in time (rows committed before the target are there, rows after it
are not), measure the RTO and the achieved RPO, and always stop and remove the scratch cluster.

Scratch clusters live in uniquely named children of ``scratch_dir`` that carry a marker file. A running drill holds
an exclusive ``flock`` on its marker, so a later run tells a killed drill's leftover (marked, lock free) from one in
use (locked), and never removes a directory without the marker.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import pgbackrest as B
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import (
    AppcareError,
    ConfigurationError,
    DependencyError,
)
from ansible_collections.appcare.maintenance.plugins.module_utils.pgbackrest import _missing_stanza, _moment
from ansible_collections.appcare.maintenance.plugins.module_utils.verify import (
    count_rows,
    run_smoke_queries,
    validate_smoke_queries,
)

try:
    import psycopg2
except ImportError:  # pragma: no cover - reported by postgres.require_psycopg2()
    psycopg2 = None

TOOL = 'appcare.maintenance.pgbackrest_restore_drill'
MARKER_FILE = '.appcare-pitr-drill'
CHILD_PREFIX = 'pitr-drill-'
CHILD_NAME = re.compile(r'^pitr-drill-[0-9a-f]{12}$')
# sun_path holds 108 bytes; PostgreSQL appends "/.s.PGSQL.<port>" (and ".lock") to the socket directory.
SOCKET_PATH_MAX = 100
BIN_DIR_PATTERNS = ('/usr/lib/postgresql/%d/bin', '/usr/pgsql-%d/bin')
# Settings the drill sets itself so that the scratch cluster is private and never archives into the repository.
OWN_SETTINGS = ('port', 'listen_addresses', 'unix_socket_directories', 'hba_file', 'ident_file', 'archive_mode',
                'archive_command', 'archive_library', 'logging_collector', 'ssl', 'cluster_name', 'hot_standby',
                'primary_conninfo', 'primary_slot_name', 'restore_command', 'recovery_target_time',
                'recovery_target_action', 'data_directory', 'config_file')
SETTING_NAME = re.compile(r'^[a-z][a-z0-9_.]*$')
STOP_WAIT_SECONDS = 30


class DrillError(AppcareError):
    """The drill could not run (as opposed to a drill that ran and failed, which is a critical finding)."""


class DrillFailed(AppcareError):
    """The restore, the start or the recovery failed: the drill's result is critical."""


# -- options ---------------------------------------------------------------------------------------------------------

def parse_target(text):
    """``2026-12-04T13:00:00Z`` / ``2026-12-04 13:00:00.5+01:00`` -> an aware UTC datetime; a time without zone is
    taken as UTC."""
    value = str(text).strip()
    if value.endswith(('Z', 'z')):
        value = value[:-1] + '+00:00'
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigurationError('target_time %r is not an ISO 8601 time such as 2026-12-04T13:00:00Z' % (text,)) \
            from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def pgbackrest_target(moment):
    """The form PostgreSQL's recovery_target_time reads, in UTC with microseconds."""
    return moment.strftime('%Y-%m-%d %H:%M:%S.%f+00')


def _query_items(option, items):
    """present_queries / absent_queries: each a query string or {name, query}; returned as [{name, query}]."""
    found = []
    for index, item in enumerate(items or []):
        if isinstance(item, str):
            item = {'query': item}
        if not isinstance(item, dict) or not isinstance(item.get('query'), str) or not item['query'].strip():
            raise ConfigurationError('%s[%d] must be a query string or {name, query}' % (option, index))
        unknown = set(item) - {'name', 'query'}
        if unknown:
            raise ConfigurationError('%s[%d]: unknown key(s) %s; use name and query'
                                     % (option, index, ', '.join(sorted(unknown))))
        found.append({'name': str(item.get('name') or ' '.join(item['query'].split())[:60]), 'query': item['query']})
    return found


def row_count_entries(expect_rows):
    """expect_rows ({"schema.table" or "table": rows}) -> [{schema, table, rows}] (the shape verify.count_rows
    reads); a table without schema is in public."""
    entries = []
    for name, rows in sorted((expect_rows or {}).items()):
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError('expect_rows: %r is not a table name' % (name,))
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            if isinstance(rows, str) and rows.isdigit():
                rows = int(rows)
            else:
                raise ConfigurationError('expect_rows.%s must be a whole number of rows, got %r' % (name, rows))
        schema, table = name.split('.', 1) if '.' in name else ('public', name)
        entries.append({'schema': schema, 'table': table, 'rows': rows})
    return entries


def validate(params):
    """Every option of pgbackrest_restore_drill, before anything touches disk or runs."""
    B.validate_options(params)
    scratch = params['scratch_dir']
    if not os.path.isabs(scratch) or os.path.normpath(scratch) == '/':
        raise ConfigurationError('scratch_dir must be an absolute directory other than /, got %r' % scratch)
    if params.get('target_time') is not None:
        parse_target(params['target_time'])
    port = params.get('port')
    if port is not None and not 1 <= port <= 65535:
        raise ConfigurationError('port must be between 1 and 65535, got %s' % port)
    socket_path = os.path.join(os.path.normpath(scratch), CHILD_PREFIX + 'x' * 12, '.s.PGSQL.65535.lock')
    if len(socket_path) > SOCKET_PATH_MAX:
        raise ConfigurationError('scratch_dir %s is too long for the scratch server\'s Unix socket (its path would be '
                                 '%d characters, at most %d): choose a shorter one' % (scratch, len(socket_path),
                                                                                       SOCKET_PATH_MAX))
    for name in ('rto_minutes', 'rpo_minutes'):
        if params[name] <= 0:
            raise ConfigurationError('%s must be larger than 0, got %s' % (name, params[name]))
    if params['free_space_factor'] < 1:
        raise ConfigurationError('free_space_factor must be 1 or more (the restored cluster is the backup\'s size), '
                                 'got %s' % params['free_space_factor'])
    if params['min_free_bytes'] < 0:
        raise ConfigurationError('min_free_bytes must be 0 or more, got %s' % params['min_free_bytes'])
    _query_items('present_queries', params['present_queries'])
    _query_items('absent_queries', params['absent_queries'])
    row_count_entries(params['expect_rows'])
    validate_smoke_queries(params['smoke_queries'])
    for name, value in (params.get('settings') or {}).items():
        if not isinstance(name, str) or not SETTING_NAME.match(name):
            raise ConfigurationError('settings: %r is not a PostgreSQL setting name' % (name,))
        if name in OWN_SETTINGS:
            raise ConfigurationError('settings: the drill sets %s itself (a private socket, no archiving)' % name)
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigurationError('settings.%s must be a single value, got %r' % (name, value))
    if os.geteuid() == 0 and not params.get('os_user'):
        raise ConfigurationError('the module runs as root and PostgreSQL refuses to: set os_user to the database OS '
                                 'account (usually postgres), or use become_user')


# -- what to restore -------------------------------------------------------------------------------------------------

def pick_backup(usable, target):
    """The backup a restore to ``target`` starts from: the newest whose end is at or before it (a restore cannot stop
    inside a backup); the newest backup without a target."""
    if target is None:
        return usable[-1]
    before = [b for b in usable if b['timestamp']['stop'] <= target.timestamp()]
    if not before:
        raise DrillError('target_time %s is before the end of the oldest usable backup (%s): the recoverable window '
                         'starts there' % (iso(target), iso(_moment(usable[0]['timestamp']['stop']))))
    return before[-1]


def pg_major(entry, backup):
    """The PostgreSQL major version of ``backup``, from the stanza's database history."""
    database = backup.get('database') or {}
    for db in entry.get('db', []):
        if isinstance(db, dict) and db.get('id') == database.get('id') and \
                db.get('repo-key', database.get('repo-key')) == database.get('repo-key'):
            match = re.match(r'^(\d+)', str(db.get('version') or ''))
            if match:
                return int(match.group(1))
    raise DrillError('pgbackrest info names no PostgreSQL version for backup %s; set pg_bin_dir' % backup['label'])


def _binary_major(pg_ctl):
    proc = subprocess.run([pg_ctl, '--version'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False, timeout=30)
    match = re.search(r'\(PostgreSQL\)\s+(\d+)', proc.stdout or '')
    return int(match.group(1)) if match else None


def find_bin_dir(major, given):
    """The directory of pg_ctl and postgres of PostgreSQL ``major``: ``given``, or the distributions' places."""
    candidates = [given] if given else [pattern % major for pattern in BIN_DIR_PATTERNS]
    for path in candidates:
        pg_ctl = os.path.join(path, 'pg_ctl')
        if os.path.isfile(pg_ctl) and os.access(pg_ctl, os.X_OK) and os.path.isfile(os.path.join(path, 'postgres')):
            found = _binary_major(pg_ctl)
            if found != major:
                raise DependencyError('pg_bin_dir %s holds PostgreSQL %s, but the backup is PostgreSQL %d: point '
                                      'pg_bin_dir at the %d binaries' % (path, found, major, major))
            return path
    raise DependencyError('no PostgreSQL %d server binaries (pg_ctl, postgres) in %s: install the PostgreSQL %d '
                          'server package (Debian/Ubuntu: postgresql-%d) or set pg_bin_dir'
                          % (major, ' or '.join(candidates), major, major))


def free_bytes(path):
    """Free bytes for an unprivileged writer on the file system of ``path`` (or of its nearest existing parent)."""
    while not os.path.exists(path):
        path = os.path.dirname(path)
    vfs = os.statvfs(path)
    return vfs.f_bavail * vfs.f_frsize


def check_free_space(params, backup):
    """Refuse to restore when the scratch file system cannot hold the restored cluster."""
    size = backup['info']['size']
    needed = max(int(params['min_free_bytes']), int(size * params['free_space_factor']))
    free = free_bytes(params['scratch_dir'])
    if free < needed:
        raise DrillError('not enough free space for the drill in %s: %s free, %s needed (backup %s restores to %s; '
                         'free_space_factor %s, min_free_bytes %s) - free space or choose another scratch_dir; '
                         'nothing was restored'
                         % (params['scratch_dir'], C.human_bytes(free), C.human_bytes(needed), backup['label'],
                            C.human_bytes(size), params['free_space_factor'], params['min_free_bytes']))
    return free, needed


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# -- scratch children ------------------------------------------------------------------------------------------------

def _pid_alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as handle:
            state = handle.read().rsplit(')', 1)[-1].split()[0]
        return state not in ('Z', 'X')
    except (OSError, IndexError):
        return False


def postmaster_pid(datadir):
    """The pid of the postmaster running in ``datadir``: the pid of its postmaster.pid, when that process is alive
    and works in that directory (the postmaster's working directory is its data directory); else None."""
    try:
        with open(os.path.join(datadir, 'postmaster.pid')) as handle:
            pid = int(handle.readline().strip())
    except (OSError, ValueError):
        return None
    if pid <= 1 or not _pid_alive(pid):
        return None
    try:
        if os.path.realpath(os.readlink('/proc/%d/cwd' % pid)) != os.path.realpath(datadir):
            return None
    except OSError:
        return None
    return pid


def stop_postmaster(datadir):
    """Stop the postmaster of ``datadir`` at once (SIGQUIT: pg_ctl's immediate mode; nothing of a scratch cluster
    needs to be kept), SIGKILL when it does not go. Returns whether one was running."""
    pid = postmaster_pid(datadir)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGQUIT, STOP_WAIT_SECONDS), (signal.SIGKILL, 10)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return True
            time.sleep(0.05)
    raise DrillError('the scratch server in %s (pid %d) did not stop' % (datadir, pid))


def read_marker(child):
    """The marker of a scratch child, or None: ``child`` is a real directory (no symlink) with our name pattern and a
    regular marker file naming this module."""
    try:
        if not CHILD_NAME.match(os.path.basename(child)) or not stat.S_ISDIR(os.lstat(child).st_mode):
            return None
        path = os.path.join(child, MARKER_FILE)
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        with open(path) as handle:
            marker = json.loads(handle.read(4096))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get('tool') == TOOL else None


def _locked_by_live_run(child):
    """Whether a running drill holds the marker's lock (a killed one's lock went with its process)."""
    try:
        fd = os.open(os.path.join(child, MARKER_FILE), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases the lock taken for the test
    return False


def remove_child(child):
    """Stop the scratch server of a marked child and remove the child (only a marked one)."""
    if read_marker(child) is None:
        raise DrillError('%s is not a scratch directory of this module (no marker): not removed' % child)
    stopped = stop_postmaster(os.path.join(child, 'data'))
    shutil.rmtree(child)
    return stopped


def clean_leftovers(scratch_dir, check_mode):
    """Remove the scratch children of killed drills: marked, and no live run holds their lock. Returns
    ([{path, stanza, started_at, server_stopped}], [busy paths]); in check mode nothing is removed."""
    cleaned, busy = [], []
    try:
        names = sorted(os.listdir(scratch_dir))
    except FileNotFoundError:
        return cleaned, busy
    for name in names:
        child = os.path.join(scratch_dir, name)
        marker = read_marker(child)
        if marker is None:
            continue
        if _locked_by_live_run(child):
            busy.append(child)
            continue
        entry = {'path': child, 'stanza': marker.get('stanza'), 'started_at': marker.get('started_at'),
                 'server_running': postmaster_pid(os.path.join(child, 'data')) is not None}
        if not check_mode:
            remove_child(child)
        cleaned.append(entry)
    return cleaned, busy


class Scratch(object):
    """One scratch child: created with its marker (locked while the drill runs), owned by the database account."""

    def __init__(self, scratch_dir, account, stanza):
        self.parent = scratch_dir
        self.account = account
        self.stanza = stanza
        self.path = os.path.join(scratch_dir, CHILD_PREFIX + secrets.token_hex(6))
        self.data = os.path.join(self.path, 'data')
        self.lock_fd = None

    def own(self, path):
        if self.account is not None and os.geteuid() == 0:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def create(self):
        if not os.path.isdir(self.parent):
            os.makedirs(self.parent, mode=0o700)
            self.own(self.parent)
        os.mkdir(self.path, 0o700)
        fd = os.open(os.path.join(self.path, MARKER_FILE), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.lock_fd = fd
        os.write(fd, json.dumps({'tool': TOOL, 'stanza': self.stanza, 'pid': os.getpid(),
                                 'started_at': iso(utcnow())}).encode())
        for sub in ('data', 'tablespaces'):
            os.mkdir(os.path.join(self.path, sub), 0o700)
        with open(os.path.join(self.path, 'pg_hba.conf'), 'w') as handle:
            # Only the socket, in this 0700 directory of the database account: no TCP, nobody else gets in.
            handle.write('# %s: the scratch server takes local connections only\nlocal all all trust\n' % TOOL)
        with open(os.path.join(self.path, 'pg_ident.conf'), 'w') as handle:
            handle.write('')
        for path in (self.path, self.data, os.path.join(self.path, 'tablespaces'),
                     os.path.join(self.path, 'pg_hba.conf'), os.path.join(self.path, 'pg_ident.conf')):
            self.own(path)
        return self

    def remove(self):
        """Stop the server and remove the child, with the signals that stop a task held off until it is done."""
        held = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            stopped = remove_child(self.path)
        finally:
            if self.lock_fd is not None:
                os.close(self.lock_fd)
                self.lock_fd = None
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        return stopped


# -- the drill -------------------------------------------------------------------------------------------------------

def _quote(value):
    if isinstance(value, bool):
        value = 'on' if value else 'off'
    return "'%s'" % str(value).replace('\\', '\\\\').replace("'", "''")


def server_settings(scratch, port, extra):
    """The settings that make the restored cluster a private scratch server (they win over the restored
    postgresql.conf, as postgresql.auto.conf is read last)."""
    own = [('port', port), ('listen_addresses', ''), ('unix_socket_directories', scratch.path),
           ('hba_file', os.path.join(scratch.path, 'pg_hba.conf')),
           ('ident_file', os.path.join(scratch.path, 'pg_ident.conf')),
           ('archive_mode', 'off'), ('archive_command', ''), ('logging_collector', 'off'), ('ssl', 'off'),
           ('cluster_name', 'appcare_pitr_drill'), ('hot_standby', 'on'), ('primary_conninfo', ''),
           ('primary_slot_name', '')]
    return own + sorted((extra or {}).items())


def configure(scratch, port, extra):
    """Append the scratch settings to the restored postgresql.auto.conf (pgBackRest wrote the recovery settings
    there); a cluster whose configuration lived outside its data directory (Debian's /etc/postgresql) gets an empty
    postgresql.conf."""
    conf = os.path.join(scratch.data, 'postgresql.conf')
    if not os.path.exists(conf):
        with open(conf, 'w') as handle:
            handle.write('# %s: the backed-up cluster kept its configuration outside the data directory\n' % TOOL)
        scratch.own(conf)
    auto = os.path.join(scratch.data, 'postgresql.auto.conf')
    with open(auto, 'a') as handle:
        handle.write('\n# %s: a private scratch server (no TCP, no archiving)\n' % TOOL)
        for name, value in server_settings(scratch, port, extra):
            handle.write('%s = %s\n' % (name, _quote(value)))
    scratch.own(auto)


def _log_tail(path, lines=8):
    try:
        with open(path, errors='replace') as handle:
            text = handle.read()[-20000:]
    except OSError:
        return 'no server log'
    # The last lines: a FATAL is often only "contains errors" with the cause on the LOG line before it.
    wanted = [' '.join(line.split()) for line in text.splitlines() if line.strip()][-lines:]
    return ' | '.join(wanted) or 'an empty log'


class Drill(object):
    """One drill run; the findings go into ``result``."""

    def __init__(self, params, result):
        self.params = params
        self.result = result
        self.stanza = params['stanza']
        self.obj = 'stanza=%s' % self.stanza
        self.target = parse_target(params['target_time']) if params.get('target_time') is not None else None
        self.port = params.get('port') or free_port()

    def connect(self, scratch, dbname=None, connect_timeout=5):
        return psycopg2.connect(host=scratch.path, port=self.port, user=self.params['scratch_user'],
                                dbname=dbname or self.params['database'], connect_timeout=connect_timeout,
                                application_name=TOOL,
                                options='-c statement_timeout=%d' % (self.params['timeout'] * 1000))

    def run(self, check_mode):
        params = self.params
        br = B.PgBackRest(params)
        version_text_, _version = br.version()
        self.result['pgbackrest'] = {'version': version_text_, 'executable': br.executable}
        entry = br.info()
        _missing_stanza(entry, self.stanza, params)
        usable, _future = B.split_backups(entry, utcnow())
        if not usable:
            raise DrillError('stanza %s has no usable backup: nothing to restore (take a full backup first)'
                             % self.stanza)
        backup = pick_backup(usable, self.target)
        major = pg_major(entry, backup)
        bin_dir = find_bin_dir(major, params.get('pg_bin_dir'))
        cleaned, busy = clean_leftovers(params['scratch_dir'], check_mode)
        self.result.update(cleaned=cleaned, busy=busy, changed=bool(cleaned) and not check_mode)
        free, needed = check_free_space(params, backup)
        drill = {'stanza': self.stanza, 'backup': backup['label'], 'backup_type': backup['type'],
                 'pg_version': major, 'pg_bin_dir': bin_dir, 'port': self.port,
                 'target': iso(self.target) if self.target else 'newest', 'free_bytes': free, 'needed_bytes': needed}
        self.result['drill'] = drill
        extra = ['--set=%s' % backup['label']]
        if self.target is not None:
            extra += ['--type=time', '--target=%s' % pgbackrest_target(self.target), '--target-action=promote']
        else:
            extra += ['--type=default']  # all WAL the archive holds, then promote
        if check_mode:
            self.result['planned'] = ' '.join(br.argv('restore', ['--pg1-path=<scratch>/data'] + extra))
            return br.warnings
        scratch = Scratch(params['scratch_dir'], br.account, self.stanza)
        drill['scratch'] = scratch.path
        try:
            scratch.create()
            self._drill(br, scratch, bin_dir, backup, extra, drill)
        finally:
            if os.path.isdir(scratch.path):
                drill['server_stopped'] = scratch.remove()
            drill['scratch_removed'] = not os.path.exists(scratch.path)
        return br.warnings

    def _drill(self, br, scratch, bin_dir, backup, extra, drill):
        findings = self.result['checks']
        started_at = utcnow()
        started = time.monotonic()
        try:
            extra = ['--pg1-path=%s' % scratch.data,
                     '--tablespace-map-all=%s' % os.path.join(scratch.path, 'tablespaces')] + extra
            _out, restore_seconds = br.run('restore', extra=extra)
            drill['restore_seconds'] = round(restore_seconds, 3)
            configure(scratch, self.port, self.params.get('settings'))
            self._start(br, scratch, bin_dir, started)
            facts = self._wait_out_of_recovery(scratch, started)
        except (DrillFailed, B.PgBackRestError) as exc:
            drill['result'] = 'failed'
            findings.append(C.finding('pitr_drill', C.CRITICAL, 'the drill of stanza %s failed after %.1f s: %s'
                                      % (self.stanza, time.monotonic() - started, exc), obj=self.obj))
            self._report(drill, None)
            return
        rto = round(time.monotonic() - started, 3)
        drill.update(rto_seconds=rto, start_seconds=round(rto - drill['restore_seconds'], 3), timeline=facts['timeline'])
        replayed = facts['last_replayed']
        if replayed is not None:
            recovered_to, source = replayed.astimezone(datetime.timezone.utc), 'the last transaction replayed'
        else:
            recovered_to, source = _moment(backup['timestamp']['stop']), 'the end of the backup; no transaction ' \
                'was replayed after it'
        reference = self.target or started_at
        rpo = round(max((reference - recovered_to).total_seconds(), 0.0), 1)
        drill.update(recovered_to=iso(recovered_to), recovered_to_source=source, rpo_seconds=rpo)
        findings.append(C.finding(
            'pitr_drill', C.OK, 'restored backup %s of stanza %s (PostgreSQL %s) to %s; recovery ended on timeline %s '
            'at %s (%s); accepting connections %.1f s after the restore began (restore %.1f s, start and recovery '
            '%.1f s)' % (backup['label'], self.stanza, drill['pg_version'], drill['target'], facts['timeline'],
                         iso(recovered_to), source, rto, drill['restore_seconds'], drill['start_seconds']),
            value=rto, unit='seconds', obj=self.obj))
        rto_minutes = self.params['rto_minutes']
        findings.append(C.evaluate('pitr_restore_time', round(rto / 60.0, 3), round(0.8 * rto_minutes, 3), rto_minutes,
                                   C.ABOVE, unit='minutes', obj=self.obj,
                                   message='restore to accepting connections took {value} min (RTO %s min)'
                                   % rto_minutes))
        limit = self.params['rpo_minutes'] * 60.0
        findings.append(C.evaluate(
            'pitr_rpo_achieved', rpo, round(limit / 2.0, 1), limit, C.ABOVE, unit='seconds', obj=self.obj,
            message='the restored cluster holds changes up to %s, {value} s before %s (RPO %s min)'
            % (iso(recovered_to), 'the target' if self.target else 'the drill began', self.params['rpo_minutes'])))
        self._prove(scratch)
        drill['result'] = 'ok' if all(c['status'] == C.OK for c in findings
                                      if c['name'] not in ('pitr_restore_time', 'pitr_rpo_achieved')) else 'failed'
        self._report(drill, recovered_to)

    def _start(self, br, scratch, bin_dir, started):
        log = os.path.join(scratch.path, 'server.log')
        kwargs = br.process_kwargs()
        # pg_ctl -w returns once the server accepts (read-only, hot standby) connections, or at once when it died;
        # the drill then waits itself until recovery has ended.
        remaining = max(int(started + self.params['timeout'] - time.monotonic()), 1)
        proc = subprocess.run([os.path.join(bin_dir, 'pg_ctl'), '-D', scratch.data, '-l', log, '-w', '-t',
                               str(remaining), 'start'],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors='replace',
                              check=False, timeout=remaining + 30, **kwargs)
        if proc.returncode != 0:
            raise DrillFailed('pg_ctl start exited %d: %s; server log: %s'
                              % (proc.returncode, ' '.join(proc.stdout.split())[-500:], _log_tail(log)))

    def _wait_out_of_recovery(self, scratch, started):
        log = os.path.join(scratch.path, 'server.log')
        deadline = started + self.params['timeout']
        last_error = 'no answer yet'
        while True:
            pid = postmaster_pid(scratch.data)
            try:
                conn = self.connect(scratch, connect_timeout=2)
                try:
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        cur.execute('SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp(), '
                                    'CASE WHEN pg_is_in_recovery() THEN NULL '
                                    'ELSE pg_walfile_name(pg_current_wal_lsn()) END')
                        in_recovery, replayed, walfile = cur.fetchone()
                finally:
                    conn.close()
                if not in_recovery:
                    # The timeline the promotion chose: the first 8 hex digits of the current WAL file's name.
                    return {'last_replayed': replayed, 'timeline': int(walfile[:8], 16) if walfile else None}
                last_error = 'still in recovery'
            except psycopg2.Error as exc:
                last_error = ' '.join(str(exc).split())
                if 'does not exist' in last_error:  # a scratch_user or database the restored cluster lacks
                    raise DrillFailed('cannot connect to the restored cluster as %s (database %s): %s - set '
                                      'scratch_user and database' % (self.params['scratch_user'],
                                                                     self.params['database'], last_error)) from exc
            if pid is None:  # pg_ctl saw it accept connections: it has stopped since
                raise DrillFailed('the restored server stopped before recovery ended: %s' % _log_tail(log))
            if time.monotonic() > deadline:
                raise DrillFailed('recovery did not end within timeout %d s (%s); server log: %s'
                                  % (self.params['timeout'], last_error, _log_tail(log)))
            time.sleep(0.05)

    def _prove(self, scratch):
        """present_queries, absent_queries, expect_rows and smoke_queries on the recovered cluster."""
        params = self.params
        findings = self.result['checks']
        dbname = params['database']
        obj = 'db=%s' % dbname

        def connect(name):
            return self.connect(scratch, name)

        present = _query_items('present_queries', params['present_queries'])
        absent = _query_items('absent_queries', params['absent_queries'])
        if present or absent:
            results = run_marker_queries(connect, dbname, present, absent)
            failed = [r for r in results if not r['ok']]
            findings.append(C.finding(
                'pitr_markers', C.CRITICAL if failed else C.OK,
                '; '.join('%s: %s' % (r['name'], r['message']) for r in failed) if failed else
                'the point in time holds: %d row(s) expected there are, %d expected absent are not'
                % (len(present), len(absent)), value=len(failed), unit='count', obj=obj, results=results))
        expected = row_count_entries(params['expect_rows'])
        if expected:
            mismatches = count_rows(connect, dbname, expected, {})
            self.result['mismatches'] = mismatches
            findings.append(C.finding(
                'pitr_row_counts', C.CRITICAL if mismatches else C.OK,
                '%d of %d tables differ: %s' % (len(mismatches), len(expected), '; '.join(
                    '%s expected %s, restored %s%s' % (t, m['expected'], m['restored'],
                                                       ' (%s)' % m['error'] if m.get('error') else '')
                    for t, m in sorted(mismatches.items())[:10])) if mismatches else
                'all %d tables have the expected row counts' % len(expected),
                value=len(mismatches), unit='count', obj=obj))
        if params['smoke_queries']:
            smoke = run_smoke_queries(connect, dbname, params['smoke_queries'])
            failed = [s for s in smoke if not s['ok']]
            findings.append(C.finding(
                'pitr_smoke_queries', C.CRITICAL if failed else C.OK,
                '; '.join('%s: %s' % (s['name'], s['message']) for s in failed) or
                'all %d smoke queries passed' % len(smoke), value=len(failed), unit='count', obj=obj, results=smoke))

    def _report(self, drill, recovered_to):
        self.result['report'] = {'pitr_drill': {
            'stanza': self.stanza,
            'finished_at': iso(utcnow()),
            'result': drill.get('result'),
            'backup': drill.get('backup'),
            'target': drill.get('target'),
            'recovered_to': iso(recovered_to) if recovered_to else None,
            'rto_seconds': drill.get('rto_seconds'),
            'rpo_seconds': drill.get('rpo_seconds'),
        }}


def run_marker_queries(connect, dbname, present, absent):
    """[{name, expect, rows, ok, message}]: each present query must return a row, each absent query none."""
    results = []
    conn = connect(dbname)
    try:
        conn.set_session(readonly=True)
        for expect, items in (('present', present), ('absent', absent)):
            for item in items:
                try:
                    with conn.cursor() as cur:
                        cur.execute(item['query'])
                        rows = len(cur.fetchall()) if cur.description else 0
                    conn.rollback()
                except psycopg2.Error as exc:
                    conn.rollback()
                    results.append({'name': item['name'], 'expect': expect, 'rows': None, 'ok': False,
                                    'message': 'query failed: %s' % ' '.join(str(exc).split())})
                    continue
                ok = rows > 0 if expect == 'present' else rows == 0
                results.append({'name': item['name'], 'expect': expect, 'rows': rows, 'ok': ok,
                                'message': 'returned %d row(s), expected %s' % (
                                    rows, 'at least one (committed before the target)' if expect == 'present'
                                    else 'none (committed after the target)')})
    finally:
        conn.close()
    return results


def drill_argument_spec():
    """The drill's own options (the pgBackRest ones come from pgbackrest.pgbackrest_argument_spec)."""
    return dict(
        scratch_dir=dict(type='path', default='/var/tmp/appcare-pitr-drill'),
        target_time=dict(type='str'),
        pg_bin_dir=dict(type='path'),
        port=dict(type='int'),
        scratch_user=dict(type='str', default='postgres'),
        database=dict(type='str', default='postgres'),
        present_queries=dict(type='list', elements='raw', default=[]),
        absent_queries=dict(type='list', elements='raw', default=[]),
        expect_rows=dict(type='dict', default={}),
        smoke_queries=dict(type='list', elements='dict', default=[]),
        settings=dict(type='dict', default={}),
        rto_minutes=dict(type='float', default=60.0),
        rpo_minutes=dict(type='float', default=60.0),
        free_space_factor=dict(type='float', default=1.2),
        min_free_bytes=dict(type='int', default=0),
    )


def hold_signals_as_exit():
    """SIGHUP and SIGINT unwind the module like SIGTERM (postgres.make_interruptible), so the scratch cluster is
    stopped and removed however the task is stopped."""
    def leave(signum, _frame):
        raise SystemExit('interrupted by signal %d' % signum)
    for sig in (signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, leave)
