# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgBackRest, watched and run: the command runner (``--output=json``, options, the repository passphrase through the
environment, an OS account to run as), pgBackRest's error codes as clear messages, ``info`` parsed and checked, and
the recoverable window. Shared by ``pgbackrest_info``, ``pgbackrest_backup`` and the restore drill.

Sources for the shapes read here (pgBackRest 2.45 is Debian 12's; 2.59 the newest upstream at the time of writing):
``src/command/info/info.c`` (the JSON of ``info --output=json`` and its stanza status codes 0-6 and 99),
``src/build/error/error.yaml`` (the exit codes, ``build/error.yaml`` in newer releases) and
``doc/xml/user-guide.xml`` of https://github.com/pgbackrest/pgbackrest.
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
import re
import shutil
import subprocess
import time

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import (
    AppcareError,
    ConfigurationError,
    DependencyError,
)

BACKUP_TYPES = ('full', 'diff', 'incr')
FUTURE_SKEW_SECONDS = 300  # a clock a little ahead is not "from the future" (as the backup store)
INSTALL_HINT = ('install pgBackRest (Debian/Ubuntu: apt-get install pgbackrest; RHEL and derivatives: dnf install '
                'pgbackrest from the PostgreSQL (PGDG) repository) or point executable at it')

# The newest PostgreSQL major each pgBackRest release supports (its release notes: 2.34 "PostgreSQL 14 Support", 2.39
# "PostgreSQL 15 support", 2.46 "PostgreSQL 16 support", 2.53.1 "PostgreSQL 17 Support", 2.55.0 "PostgreSQL 18
# Support"). Older releases are not judged: pgBackRest says it itself.
PG_SUPPORT = (((2, 55, 0), 18), ((2, 53, 1), 17), ((2, 46, 0), 16), ((2, 39, 0), 15), ((2, 34, 0), 14))
# ``verify`` is a public command from 2.39 (internal before; src/build/config/config.yaml).
VERIFY_SINCE = (2, 39, 0)

# info.c: stanza and repository status codes with pgBackRest's messages, and how much each matters here.
STANZA_STATUS = {
    0: ('ok', C.OK),
    1: ('missing stanza path', C.CRITICAL),
    2: ('no valid backups', C.CRITICAL),
    3: ('missing stanza data', C.CRITICAL),
    4: ('different across repos', C.WARNING),
    5: ('database mismatch across repos', C.CRITICAL),
    6: ('requested backup not found', C.WARNING),
    99: ('other', C.CRITICAL),
}
STATUS_ADVICE = {
    1: 'the stanza was never created in this repository: run pgbackrest stanza-create (or check repo1-path)',
    2: 'take a full backup (pgbackrest backup --type=full)',
    3: 'archive.info or backup.info is missing from the repository: check the repository, then run '
       'pgbackrest stanza-upgrade or stanza-create',
    5: 'the repositories hold different clusters for this stanza: check pg1-path and the repositories',
}

# src/build/error/error.yaml: exit code -> (pgBackRest's error name, what to do). Codes not listed keep pgBackRest's text.
ERRORS = {
    25: ('assert', 'an internal error of pgBackRest: report it upstream with the log'),
    27: ('config', 'the configuration is not valid'),
    28: ('file-invalid', 'a repository file is not valid - is the repository passphrase (cipher_pass) right?'),
    29: ('format', 'a repository file has an unexpected format - is the repository passphrase (cipher_pass) right?'),
    31: ('option-invalid', 'an option is not valid for this command or this pgBackRest version'),
    32: ('option-invalid-value', 'an option has a value pgBackRest refuses'),
    37: ('option-required', 'a required option is missing'),
    38: ('pg-running', 'PostgreSQL is running where pgBackRest expects it stopped'),
    41: ('file-open', 'a file could not be opened - check permissions and that pgBackRest runs as the data '
                      'directory owner (os_user, or become_user)'),
    42: ('file-read', 'a file could not be read'),
    44: ('archive-mismatch', 'the repository holds WAL of another cluster or version: check the stanza'),
    45: ('archive-duplicate', 'a WAL segment was already archived with other contents'),
    46: ('version-not-supported', 'this pgBackRest does not support the PostgreSQL version: upgrade pgBackRest'),
    47: ('path-create', 'a directory could not be created - check permissions'),
    49: ('host-connect', 'a repository or database host could not be reached'),
    50: ('lock-acquire', 'another pgBackRest backup or expire holds the stanza lock: wait for it to finish'),
    51: ('backup-mismatch', 'the backup does not match the cluster'),
    53: ('path-open', 'a directory could not be opened - check permissions'),
    55: ('file-missing', 'a file is missing - is the configuration file there, and was stanza-create run?'),
    56: ('db-connect', 'pgBackRest could not connect to PostgreSQL: check pg1-path, pg1-port, pg1-socket-path, '
                       'pg1-user and pg_hba.conf (local peer or a .pgpass of the account pgBackRest runs as)'),
    57: ('db-query', 'a query of pgBackRest failed'),
    58: ('db-mismatch', 'the database does not match the stanza (system identifier or version): stanza-upgrade?'),
    62: ('stop', 'pgBackRest was stopped for this stanza (pgbackrest stop): run pgbackrest start'),
    63: ('term', 'pgBackRest was terminated'),
    64: ('file-write', 'a file could not be written - is the repository full or read-only?'),
    67: ('feature-not-supported', 'this pgBackRest does not support the feature'),
    68: ('archive-command-invalid', 'archive_command does not call pgbackrest archive-push for this stanza'),
    73: ('path-missing', 'a directory is missing - is repo1-path right?'),
    75: ('backup-set-invalid', 'a backup set in the repository is not valid'),
    80: ('db-missing', 'the database is missing'),
    81: ('db-invalid', 'the database is not valid for this command'),
    82: ('archive-timeout', 'WAL was not archived in time: archive_command must call pgbackrest archive-push for '
                            'this stanza; look at pg_stat_archiver and the server log'),
    87: ('archive-disabled', 'archive_mode is off: turn it on (and restart PostgreSQL)'),
    88: ('file-owner', 'a file has the wrong owner - run pgBackRest as the data directory owner'),
    95: ('crypto', 'decryption failed - is the repository passphrase (cipher_pass) right?'),
    99: ('json-format', 'a repository file is not valid JSON'),
    103: ('repo-invalid', 'the repository is not valid for this stanza'),
    104: ('command', 'a command pgBackRest ran failed'),
    105: ('access', 'access was denied - check permissions'),
    106: ('clock', 'the clocks of the hosts differ too much'),
    124: ('unhandled', 'an unhandled error of pgBackRest: report it upstream with the log'),
    125: ('unknown', 'an unknown error of pgBackRest'),
}

DEFAULT_THRESHOLDS = {
    # Hours: a weekly full and a daily incremental, with a margin (the tiers' schedule).
    'full_backup_age': {'warning': 8 * 24, 'critical': 14 * 24, 'direction': C.ABOVE, 'unit': 'hours'},
    'backup_age': {'warning': 26, 'critical': 48, 'direction': C.ABOVE, 'unit': 'hours'},
    # Seconds. archive_age's warning level defaults to twice archive_timeout (see archive_thresholds).
    'archive_age': {'warning': 600, 'critical': 3600, 'direction': C.ABOVE, 'unit': 'seconds'},
    # The guides' RPO target: under one hour.
    'pitr_rpo': {'warning': 1800, 'critical': 3600, 'direction': C.ABOVE, 'unit': 'seconds'},
}

OPTION_NAME = re.compile(r'^[a-z][a-z0-9-]*$')
SECRET_OPTION = re.compile(r'(cipher-pass|-key$|-key-|secret|password|token)')


class PgBackRestError(AppcareError):
    """pgBackRest failed, or said something that cannot be trusted; ``code`` is its exit code (None otherwise)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def parse_version(text):
    """'pgBackRest 2.45' / '2.55.1' -> (2, 45, 0) / (2, 55, 1); None when there is no version."""
    match = re.search(r'(\d+)\.(\d+)(?:\.(\d+))?', text or '')
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def version_text(version):
    return '.'.join(str(part) for part in (version if version[2] else version[:2]))


def max_pg_major(version):
    """The newest PostgreSQL major ``version`` of pgBackRest supports, or None when it is older than this table."""
    for since, major in PG_SUPPORT:
        if version >= since:
            return major
    return None


def check_pg_supported(version, server_version_num):
    """Refuse a PostgreSQL server this pgBackRest cannot back up, naming both versions and the release that can."""
    newest = max_pg_major(version)
    major = server_version_num // 10000
    if newest is not None and major > newest:
        needed = [since for since, supported in reversed(PG_SUPPORT) if supported >= major]
        raise DependencyError(
            'pgBackRest %s supports PostgreSQL up to %d, but the server is PostgreSQL %d: install pgBackRest %s or '
            'newer (the PostgreSQL project\'s PGDG packages carry current releases)'
            % (version_text(version), newest, major, version_text(needed[0]) if needed else 'a newer release'))


def validate_options(params):
    """Refuse options pgBackRest would only reject later, before anything runs."""
    if not params.get('stanza') or not re.match(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$', params['stanza']):
        raise ConfigurationError('stanza must be a pgBackRest stanza name (letters, digits, ".", "_", "-"), got %r'
                                 % (params.get('stanza'),))
    if params.get('repo') is not None and not 1 <= params['repo'] <= 256:
        raise ConfigurationError('repo must be a repository number from 1 to 256, got %s' % params['repo'])
    if params.get('timeout') is not None and params['timeout'] < 1:
        raise ConfigurationError('timeout must be at least 1 second, got %s' % params['timeout'])
    for name, value in (params.get('options') or {}).items():
        if not isinstance(name, str) or not OPTION_NAME.match(name):
            raise ConfigurationError('options: %r is not a pgBackRest option name (such as pg1-port)' % (name,))
        if SECRET_OPTION.search(name):
            raise ConfigurationError('options: %s holds a secret and would show in the task\'s arguments; put it in the '
                                     'configuration file (or cipher_pass for the repository passphrase)' % name)
        if name in ('config', 'stanza', 'repo', 'output', 'type'):
            raise ConfigurationError('options: set %s with the module option of that name' % name)
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigurationError('options.%s must be a single value, got %r' % (name, value))
    if params.get('os_user'):
        try:
            pwd.getpwnam(params['os_user'])
        except KeyError as exc:
            raise ConfigurationError('os_user: no account %s on this host' % params['os_user']) from exc


def _option_value(value):
    if isinstance(value, bool):
        return 'y' if value else 'n'
    return str(value)


def _parse_stderr(text):
    """pgBackRest's ``ERROR: [055]: message`` (+ ``HINT:`` lines) -> one line; also its warnings."""
    errors, hints, warnings = [], [], []
    current = None
    for line in (text or '').splitlines():
        stripped = line.strip()
        match = re.match(r'^(?:P\d+\s+)?(ERROR|WARN|HINT):\s*(?:\[(\d+)\]:\s*)?(.*)$', stripped)
        if match:
            kind = match.group(1)
            current = {'ERROR': errors, 'WARN': warnings, 'HINT': hints}[kind]
            current.append(match.group(3))
        elif stripped and current is not None:
            current[-1] += ' ' + stripped
    return errors, hints, warnings


class PgBackRest(object):
    """One pgBackRest installation, configuration and stanza, as the module's options name them."""

    def __init__(self, params):
        self.params = params
        self.stanza = params['stanza']
        self.repo = params.get('repo')
        self.timeout = params.get('timeout') or 3600
        self.executable = self._find_executable(params.get('executable'))
        self.account = pwd.getpwnam(params['os_user']) if params.get('os_user') else None
        if self.account is not None and self.account.pw_uid != os.geteuid() and os.geteuid() != 0:
            raise ConfigurationError('os_user %s needs the module to run as root (become: true); or run it as %s '
                                     'with become_user and leave os_user out'
                                     % (self.account.pw_name, self.account.pw_name))
        self.warnings = []
        self._version = None

    @staticmethod
    def _find_executable(executable):
        name = executable or 'pgbackrest'
        if os.sep in name:
            if os.path.isfile(name) and os.access(name, os.X_OK):
                return name
            raise DependencyError('pgBackRest executable %s not found or not executable: %s' % (name, INSTALL_HINT))
        found = shutil.which(name)
        if not found:
            raise DependencyError('pgBackRest (%s) not found in PATH (%s): %s'
                                  % (name, os.environ.get('PATH', ''), INSTALL_HINT))
        return found

    # -- running ---------------------------------------------------------------------------------------------------
    def argv(self, command, extra=(), stanza=True, repo=True):
        args = [self.executable]
        if self.params.get('config'):
            args.append('--config=%s' % self.params['config'])
        if stanza:
            args.append('--stanza=%s' % self.stanza)
        if repo and self.repo is not None:
            args.append('--repo=%d' % self.repo)
        args.extend(extra)
        args.append(command)
        return args

    def env(self):
        """The environment of a pgBackRest run: the repository passphrase travels here (never in argv), and no
        passphrase of the caller's environment leaks into it unasked."""
        env = dict((k, v) for k, v in os.environ.items() if not re.match(r'^PGBACKREST_REPO\d+_CIPHER_PASS$', k))
        # Options travel as PGBACKREST_<NAME>: a command ignores those it does not take (archive-timeout on info).
        for name, value in (self.params.get('options') or {}).items():
            env['PGBACKREST_%s' % name.upper().replace('-', '_')] = _option_value(value)
        if self.params.get('cipher_pass'):
            env['PGBACKREST_REPO%d_CIPHER_PASS' % (self.repo or 1)] = self.params['cipher_pass']
        if self.account is not None:
            env.update(HOME=self.account.pw_dir, USER=self.account.pw_name, LOGNAME=self.account.pw_name)
        return env

    def _preexec(self):
        account = self.account
        if account is None or account.pw_uid == os.geteuid():
            return None

        def drop():
            os.setgid(account.pw_gid)
            os.initgroups(account.pw_name, account.pw_gid)
            os.setuid(account.pw_uid)
        return drop

    def process_kwargs(self):
        """``subprocess`` keyword arguments that run a program as pgBackRest runs: as the account (O(os_user)), in
        its home directory, with pgBackRest's environment - also for the PostgreSQL the restore drill starts, whose
        ``restore_command`` (pgbackrest archive-get) needs the same options and passphrase."""
        cwd = self.account.pw_dir if self.account is not None and os.path.isdir(self.account.pw_dir) else '/'
        return dict(env=self.env(), preexec_fn=self._preexec(), cwd=cwd)

    def run(self, command, extra=(), stanza=True, repo=True, timeout=None, check=True):
        """Run one pgBackRest command; returns ``(stdout, seconds)``. A non-zero exit raises PgBackRestError with
        pgBackRest's error, its meaning and what to do."""
        argv = self.argv(command, extra, stanza, repo)
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors='replace',
                                  timeout=timeout or self.timeout, check=False, **self.process_kwargs())
        except subprocess.TimeoutExpired as exc:
            raise PgBackRestError('pgbackrest %s did not finish within %s s (timeout)'
                                  % (command, timeout or self.timeout)) from exc
        seconds = time.monotonic() - started
        errors, hints, warnings = _parse_stderr(proc.stderr)
        self.warnings.extend('pgbackrest %s: %s' % (command, w) for w in warnings)
        if proc.returncode != 0 and check:
            raise PgBackRestError(self.describe_failure(command, proc.returncode, errors, hints, proc.stderr),
                                  proc.returncode)
        return proc.stdout, seconds

    def describe_failure(self, command, code, errors, hints, stderr):
        name, advice = ERRORS.get(code, ('error', None))
        said = '; '.join(errors) or ' '.join((stderr or '').split())[-500:] or 'no message'
        text = ' '.join(said.split())
        if code == 37 and 'pg1-path' in text:
            advice = ('stanza %s is not configured in %s: add a [%s] section with pg1-path'
                      % (self.stanza, self.params.get('config') or 'the default configuration file', self.stanza))
        elif code == 37 and 'cipher-pass' in text:
            advice = 'the repository is encrypted: give its passphrase in cipher_pass'
        elif code == 55 and self.params.get('config') and self.params['config'] in text:
            advice = 'the configuration file %s does not exist (or os_user cannot read it)' % self.params['config']
        elif 'VersionNotSupportedError' in (stderr or ''):
            advice = 'this pgBackRest does not support the server\'s PostgreSQL version: upgrade pgBackRest'
        message = 'pgbackrest %s exited %d (%s): %s' % (command, code, name, text)
        extra = [h for h in hints if h]
        if advice:
            message += ' - %s' % advice
        if extra:
            message += ' (pgBackRest: %s)' % '; '.join(' '.join(h.split()) for h in extra)
        return message

    # -- reading ---------------------------------------------------------------------------------------------------
    def version(self):
        """(text, tuple) of ``pgbackrest version``."""
        if self._version is None:
            out, _seconds = self.run('version', stanza=False, repo=False, timeout=60)
            parsed = parse_version(out)
            if parsed is None:
                raise PgBackRestError('pgbackrest version printed no version: %r' % out[:200])
            self._version = (version_text(parsed), parsed)
        return self._version

    def info(self):
        """The stanza's entry of ``pgbackrest info --output=json``, checked (``parse_info``)."""
        out, _seconds = self.run('info', extra=['--output=json'], timeout=min(self.timeout, 600))
        return parse_info(out, self.stanza)


# -- info, checked ---------------------------------------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(what):
    raise PgBackRestError('pgbackrest info --output=json returned %s; the repository state cannot be trusted '
                          '(output cut short, or another pgBackRest version?)' % what)


def parse_info(text, stanza):
    """Parse ``info --output=json`` and check every field read later; anything malformed (truncated JSON, a timestamp
    that is not a number, a stop before its start) is an error, never a good state."""
    try:
        # strict=False: pgBackRest copies an error's text into the message, control characters and all (the garbage
        # a wrong passphrase decrypts); the structure is still checked.
        data = json.loads(text, strict=False)
    except ValueError as exc:
        _bad('output that is not valid JSON (%s; %d characters)' % (exc, len(text or '')))
    if not isinstance(data, list):
        _bad('a %s where a list of stanzas was expected' % type(data).__name__)
    entries = [s for s in data if isinstance(s, dict) and s.get('name') == stanza]
    if len(entries) != 1:
        _bad('%d entries for stanza %s' % (len(entries), stanza))
    entry = entries[0]
    status = entry.get('status')
    if not isinstance(status, dict) or not _is_int(status.get('code')) or not isinstance(status.get('message'), str):
        _bad('no status code and message for stanza %s' % stanza)
    for key in ('backup', 'archive', 'repo', 'db'):
        if not isinstance(entry.get(key, []), list):
            _bad('a %s section that is not a list' % key)
    for repo in entry.get('repo', []):
        rstatus = repo.get('status') if isinstance(repo, dict) else None
        if not isinstance(rstatus, dict) or not _is_int(rstatus.get('code')) or not _is_int(repo.get('key')):
            _bad('a repository without key or status code')
    for backup in entry.get('backup', []):
        _check_backup(backup)
    for archive in entry.get('archive', []):
        if not isinstance(archive, dict):
            _bad('an archive entry that is not an object')
        for key in ('min', 'max'):
            value = archive.get(key)
            if value is not None and not (isinstance(value, str) and re.match(r'^[0-9A-F]{24}$', value)):
                _bad('archive %s %r that is not a WAL segment name' % (key, value))
    return entry


def _check_backup(backup):
    if not isinstance(backup, dict) or not isinstance(backup.get('label'), str):
        _bad('a backup without a label')
    label = backup['label']
    if backup.get('type') not in BACKUP_TYPES:
        _bad('backup %s of unknown type %r' % (label, backup.get('type')))
    stamp = backup.get('timestamp')
    if not isinstance(stamp, dict) or not _is_int(stamp.get('start')) or not _is_int(stamp.get('stop')):
        _bad('backup %s without integer start and stop times' % label)
    if stamp['start'] < 0 or stamp['stop'] < stamp['start']:
        _bad('backup %s stopping (%s) before it started (%s)' % (label, stamp['stop'], stamp['start']))
    info = backup.get('info')
    if not isinstance(info, dict) or not _is_int(info.get('size')) or not isinstance(info.get('repository'), dict):
        _bad('backup %s without sizes' % label)
    for key in ('size', 'delta'):
        if not _is_int(info['repository'].get(key, 0)):
            _bad('backup %s with a repository %s that is not a number' % (label, key))


def _moment(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)


def backup_summary(backup):
    """What a report shows of one backup of ``info``."""
    stamp, info = backup['timestamp'], backup['info']
    return {
        'label': backup['label'],
        'type': backup['type'],
        'started_at': iso(_moment(stamp['start'])),
        'finished_at': iso(_moment(stamp['stop'])),
        'seconds': stamp['stop'] - stamp['start'],
        'size_bytes': info['size'],
        'delta_bytes': info.get('delta'),
        'repo_size_bytes': info['repository'].get('size'),
        'repo_delta_bytes': info['repository'].get('delta'),
        'repo': (backup.get('database') or {}).get('repo-key'),
        'prior': backup.get('prior'),
        'error': bool(backup.get('error')),
        'wal_start': (backup.get('archive') or {}).get('start'),
        'wal_stop': (backup.get('archive') or {}).get('stop'),
    }


def split_backups(entry, now=None):
    """(usable, future): the stanza's backups whose stop time is not in the future, oldest first, and the ones that
    are (they never count as fresh)."""
    now = now or utcnow()
    limit = (now + datetime.timedelta(seconds=FUTURE_SKEW_SECONDS)).timestamp()
    usable, future = [], []
    for backup in sorted(entry.get('backup', []), key=lambda b: (b['timestamp']['stop'], b['label'])):
        (future if backup['timestamp']['stop'] > limit else usable).append(backup)
    return usable, future


def newest(backups, types=BACKUP_TYPES):
    found = [b for b in backups if b['type'] in types]
    return found[-1] if found else None


def archive_max(entry):
    """The newest WAL segment in the repository (current database), or None."""
    names = [a['max'] for a in entry.get('archive', []) if a.get('max')]
    return max(names, key=lambda n: n[8:]) if names else None


def segment_in_repo(segment, newest_in_repo):
    """Whether WAL segment ``segment`` is at or before the repository's newest one (log/segment part; a timeline
    switch keeps counting)."""
    return bool(segment and newest_in_repo and newest_in_repo[8:24] >= segment[8:24])


def recoverable_window(entry, archiver, now=None):
    """The window a point-in-time restore can reach from this repository: from the end (consistency point) of the
    oldest usable backup - a restore cannot stop inside a backup - to the time the newest WAL segment the repository
    holds was archived (pg_stat_archiver's last archived segment, when the repository has it), else the end of the
    newest backup. None when there is no usable backup."""
    usable, _future = split_backups(entry, now)
    if not usable:
        return None
    oldest, latest = usable[0], usable[-1]
    end, end_source = _moment(latest['timestamp']['stop']), 'newest backup'
    in_repo = archive_max(entry)
    last = (archiver or {}).get('last_archived_at')
    if last is not None and segment_in_repo((archiver or {}).get('last_archived_wal'), in_repo) and last > end:
        if last <= (now or utcnow()) + datetime.timedelta(seconds=FUTURE_SKEW_SECONDS):
            end, end_source = last, 'last archived WAL'
    return {
        'start': iso(_moment(oldest['timestamp']['stop'])),
        'end': iso(end),
        'end_source': end_source,
        'oldest_backup': oldest['label'],
        'newest_backup': latest['label'],
        'wal_min': min((a['min'] for a in entry.get('archive', []) if a.get('min')), default=None,
                       key=lambda n: n[8:]),
        'wal_max': in_repo,
        '_end': end,
    }


def archive_thresholds(thresholds, overrides, archive_timeout):
    """archive_age's warning level defaults to twice archive_timeout (when it is set and not overridden)."""
    merged = dict((name, dict(spec)) for name, spec in thresholds.items())
    if archive_timeout and 'warning' not in (overrides or {}).get('archive_age', {}):
        spec = merged['archive_age']
        warning = 2 * archive_timeout
        if spec.get('critical') is None or warning <= spec['critical']:
            spec['warning'] = warning
    return merged


# -- findings --------------------------------------------------------------------------------------------------------

def stanza_finding(entry, stanza):
    """``pgbackrest_stanza``: the stanza's status over its repositories, with pgBackRest's code and message."""
    status = entry['status']
    code = status['code']
    level = STANZA_STATUS.get(code, ('', C.CRITICAL))[1]
    repos = [{'key': r['key'], 'cipher': r.get('cipher'), 'code': r['status']['code'],
              'message': _printable(r['status'].get('message'))} for r in entry.get('repo', [])]
    for repo in repos:
        if STANZA_STATUS.get(repo['code'], ('', C.CRITICAL))[1] == C.CRITICAL and level != C.CRITICAL:
            level = C.CRITICAL
    text = 'stanza %s: %s (code %d)' % (stanza, _printable(status['message']), code)
    if len(repos) > 1 or code != 0:
        text += '; ' + ', '.join('repo%s %s (code %s)' % (r['key'], r['message'], r['code']) for r in repos)
    advice = STATUS_ADVICE.get(code)
    if advice:
        text += ': ' + advice
    if any(r['code'] == 99 and r['cipher'] not in (None, 'none') for r in repos):
        text += ': an encrypted repository could not be read - is the passphrase (cipher_pass) right?'
    lock = (status.get('lock') or {}).get('backup') or {}
    if lock.get('held'):
        pct = lock.get('pct-cplt')
        text += '; a backup or expire is running%s' % (' (%.1f%% done)' % (pct / 100.0) if _is_int(pct) else '')
    return C.finding('pgbackrest_stanza', level, text, value=code, unit='code', obj='stanza=%s' % stanza,
                     repos=repos, backup_running=bool(lock.get('held')))


def _printable(text):
    return None if text is None else ' '.join(''.join(ch if ch.isprintable() else '?' for ch in str(text)).split())


def future_finding(future, stanza):
    if not future:
        return C.finding('backup_future_dated', C.OK, 'no backup of stanza %s is dated in the future' % stanza,
                         value=0, unit='count', obj='stanza=%s' % stanza)
    return C.finding('backup_future_dated', C.WARNING,
                     '%d backup(s) of stanza %s end in the future (%s) - a wrong clock; they are not counted as '
                     'fresh' % (len(future), stanza, ', '.join(b['label'] for b in future)),
                     value=len(future), unit='count', obj='stanza=%s' % stanza, labels=[b['label'] for b in future])


def age_finding(thresholds, name, backup, what, stanza, now):
    obj = 'stanza=%s' % stanza
    if backup is None:
        spec = thresholds[name]
        return C.finding(name, C.CRITICAL, 'no %s of stanza %s in the repository' % (what, stanza), unit='hours',
                         warning=spec.get('warning'), critical=spec.get('critical'), obj=obj)
    hours = round((now.timestamp() - backup['timestamp']['stop']) / 3600.0, 2)
    return C.judge(thresholds, name, max(hours, 0.0),
                   'newest %s %s finished {value} hours ago (%s, %s)'
                   % (what, backup['label'], iso(_moment(backup['timestamp']['stop'])),
                      C.human_bytes(backup['info']['size'])), obj, label=backup['label'])


def errors_finding(usable, stanza):
    bad = [b['label'] for b in usable if b.get('error')]
    if not bad:
        return C.finding('pgbackrest_backup_errors', C.OK, 'no backup of stanza %s recorded page checksum errors'
                         % stanza, value=0, unit='count', obj='stanza=%s' % stanza)
    return C.finding('pgbackrest_backup_errors', C.WARNING,
                     '%d backup(s) of stanza %s found page checksum errors in the data files (%s): see '
                     'pgbackrest info --set=<label> and check the storage' % (len(bad), stanza, ', '.join(bad)),
                     value=len(bad), unit='count', obj='stanza=%s' % stanza, labels=bad)


def archive_age_finding(thresholds, archiver, now):
    """``archive_age``: seconds since the newest WAL segment reached the archive, judged while WAL waits to be
    archived (an idle server archives nothing, and that is fine); critical at once while archiving fails."""
    obj = 'server'
    if archiver is None:
        return C.unknown(thresholds, 'archive_age', 'pg_stat_archiver could not be read', obj)
    if archiver.get('archive_mode') == 'off':
        return C.finding('archive_age', C.CRITICAL, 'archive_mode is off: no WAL reaches the repository and '
                         'point-in-time recovery is impossible', unit='seconds', obj=obj)
    last = archiver.get('last_archived_at')
    waiting = archiver.get('wal_waiting')
    age = None if last is None else round((now - last).total_seconds(), 1)
    if age is not None and age < -FUTURE_SKEW_SECONDS:
        return C.finding('archive_age', C.CRITICAL, 'the last archived WAL is dated %s, in the future: the server '
                         'clock is wrong, the archive age cannot be judged' % iso(last), value=age, unit='seconds',
                         obj=obj)
    age = None if age is None else max(age, 0.0)
    spec = thresholds['archive_age']
    if archiver.get('failing'):
        details = (archiver.get('failed_count') or 0, archiver.get('last_failed_wal'), archiver.get('last_failed_time'),
                   archiver.get('last_archived_wal') or 'nothing', 'never' if age is None else '%s s ago' % C._fmt(age))
        return C.finding('archive_age', C.CRITICAL,
                         'archiving is failing (%d failure(s), last on %s at %s): WAL after %s is not in the '
                         'repository; last archived %s' % details,
                         value=age, unit='seconds', warning=spec.get('warning'), critical=spec.get('critical'),
                         obj=obj, failed_count=archiver.get('failed_count'),
                         last_failed_time=archiver.get('last_failed_time'))
    if not waiting:
        return C.finding('archive_age', C.OK, 'no WAL waits to be archived (last archived %s%s)'
                         % (archiver.get('last_archived_wal') or 'nothing',
                            '' if age is None else ', %s s ago' % C._fmt(age)),
                         value=age, unit='seconds', warning=spec.get('warning'), critical=spec.get('critical'), obj=obj)
    if age is None:
        return C.finding('archive_age', C.CRITICAL, 'WAL waits to be archived and no segment was ever archived',
                         unit='seconds', warning=spec.get('warning'), critical=spec.get('critical'), obj=obj)
    return C.judge(thresholds, 'archive_age', age, 'WAL waits to be archived; the newest archived segment %s '
                   'reached the archive {value} s ago (archive_timeout %s s)'
                   % (archiver.get('last_archived_wal'), archiver.get('archive_timeout')), obj)


def rpo_finding(thresholds, window, archiver, now, stanza):
    """``pitr_rpo``: the changes a point-in-time restore from the repository would lose now, in seconds: 0 when
    the repository holds all WAL written, else the time since the window's end."""
    obj = 'stanza=%s' % stanza
    spec = thresholds['pitr_rpo']
    if window is None:
        return C.finding('pitr_rpo', C.CRITICAL, 'no usable backup of stanza %s: nothing to restore from' % stanza,
                         unit='seconds', warning=spec.get('warning'), critical=spec.get('critical'), obj=obj)
    if archiver is None:
        return C.unknown(thresholds, 'pitr_rpo', 'pg_stat_archiver could not be read', obj)
    complete = (window['end_source'] == 'last archived WAL' and not archiver.get('wal_waiting')
                and not archiver.get('failing'))
    lost = 0.0 if complete else round(max((now - window['_end']).total_seconds(), 0.0), 1)
    timeout = archiver.get('archive_timeout') or 0
    bound = ('archive_timeout %s s bounds it on a busy server' % timeout if timeout else
             'archive_timeout is 0, so a quiet server can keep changes out of the archive for long')
    return C.judge(thresholds, 'pitr_rpo', lost,
                   'a restore now would lose the last {value} s of changes (recoverable %s to %s; %s)'
                   % (window['start'], window['end'], bound), obj)


# -- the server side -------------------------------------------------------------------------------------------------

# The WAL waiting to be archived: anything written past the start of the segment after the last archived one.
# pg_walfile_name() cannot run during recovery (then nothing is judged as waiting).
ARCHIVE_STATE_SQL = """
SELECT current_setting('archive_mode') AS archive_mode,
       current_setting('archive_command') AS archive_command,
       (SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout') AS archive_timeout,
       current_setting('server_version_num')::int AS server_version_num,
       pg_is_in_recovery() AS in_recovery,
       a.last_archived_wal, a.last_archived_time, a.failed_count, a.last_failed_wal,
       a.last_failed_time::text AS last_failed_time_text,
       (a.last_failed_time IS NOT NULL
        AND (a.last_archived_time IS NULL OR a.last_failed_time > a.last_archived_time)) AS failing,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_current_wal_insert_lsn() - '0/0'::pg_lsn END AS current_lsn_bytes,
       (SELECT setting::bigint * CASE unit WHEN '8kB' THEN 8192 ELSE 1 END FROM pg_settings
         WHERE name = 'wal_segment_size') AS wal_segment_size
  FROM pg_stat_archiver a
"""


def read_archive_state(session):
    """pg_stat_archiver and the archive settings (``settle_waiting`` adds whether WAL waits to be archived)."""
    row = session.one(ARCHIVE_STATE_SQL)
    last = row['last_archived_time']
    state = {
        'archive_mode': row['archive_mode'],
        'archive_command': row['archive_command'],
        'archive_timeout': row['archive_timeout'],
        'server_version_num': row['server_version_num'],
        'last_archived_wal': row['last_archived_wal'],
        'last_archived_at': last.astimezone(datetime.timezone.utc) if last is not None else None,
        'last_archived_time': iso(last.astimezone(datetime.timezone.utc)) if last is not None else None,
        'failed_count': row['failed_count'],
        'last_failed_wal': row['last_failed_wal'],
        'last_failed_time': row['last_failed_time_text'],
        'current_wal': row['current_wal'],
    }
    state['_lsn_bytes'] = row['current_lsn_bytes']
    state['_segment_size'] = row['wal_segment_size']
    state['failing'] = bool(row['failing'])
    return state


SEGMENT = re.compile(r'^[0-9A-F]{24}$')


def _segment_number(name, seg_size):
    return int(name[8:16], 16) * (0x100000000 // seg_size) + int(name[16:24], 16)


def settle_waiting(state, repo_max):
    """Set ``state['wal_waiting']``: whether WAL was written past the newest segment known to be archived - the
    server's last archived segment (a plain segment name; a ``.backup``/``.history`` file names none) or the
    repository's newest, whichever is later. After a segment switch the insert position sits just past the next
    segment's first page header, which is not waiting WAL."""
    position, seg_size = state.pop('_lsn_bytes', None), state.pop('_segment_size', None) or 16 * 1024 * 1024
    if position is None:
        state['wal_waiting'] = False  # a standby archives nothing of its own
        return state
    done = [n for n in (state.get('last_archived_wal'), repo_max) if n and SEGMENT.match(n)]
    if not done:
        state['wal_waiting'] = True
        return state
    newest = max(_segment_number(n, seg_size) for n in done)
    state['wal_waiting'] = int(position) > (newest + 1) * seg_size + 40
    return state


REPORT_BACKUP_KEYS = ('label', 'type', 'finished_at', 'size_bytes', 'repo_size_bytes')


def pitr_report(stanza, window, latest, archiver, backup_running):
    """The ``pitr`` section of the run report."""
    section = {
        'stanza': stanza,
        'window_start': window['start'] if window else None,
        'window_end': window['end'] if window else None,
        'window_end_source': window['end_source'] if window else None,
        'newest_backup': dict((k, latest[k]) for k in REPORT_BACKUP_KEYS) if latest else None,
        'last_archived_wal': (archiver or {}).get('last_archived_wal'),
        'last_archived_time': (archiver or {}).get('last_archived_time'),
        'archive_failed_count': (archiver or {}).get('failed_count'),
        'backup_running': backup_running,
    }
    if latest:
        section['finished_at'] = latest['finished_at']  # the callback adds age_hours from it
    return section


# -- the two operations ----------------------------------------------------------------------------------------------

def pgbackrest_argument_spec(default_timeout):
    """The options of doc fragment appcare.maintenance.pgbackrest."""
    return dict(
        stanza=dict(type='str', required=True),
        config=dict(type='path'),
        repo=dict(type='int'),
        cipher_pass=dict(type='str', no_log=True),
        options=dict(type='dict', default={}),
        os_user=dict(type='str'),
        executable=dict(type='path'),
        timeout=dict(type='int', default=default_timeout),
    )


def _missing_stanza(entry, stanza, params):
    if entry['status']['code'] == 1:
        raise PgBackRestError('stanza %s does not exist in the repository (pgBackRest status 1, "%s"): create it with '
                              'pgbackrest --stanza=%s stanza-create, run as the data directory owner%s'
                              % (stanza, entry['status']['message'], stanza,
                                 ' with --config=%s' % params['config'] if params.get('config') else ''))


def _server_state(params, br, application_name):
    """Read the archiver state and refuse a server this pgBackRest does not support (before pgBackRest runs)."""
    # Imported here: the pure parts of this file stay importable without psycopg2.
    from ansible_collections.appcare.maintenance.plugins.module_utils.health import DEFAULT_THRESHOLDS as HEALTH
    from ansible_collections.appcare.maintenance.plugins.module_utils.health import HealthCheck
    from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import Session

    _text, version = br.version()
    with Session(params, application_name, read_only=True) as session:
        archiver = read_archive_state(session)
        check_pg_supported(version, archiver['server_version_num'])
        wal = HealthCheck(session, HEALTH, []).run(['wal_archiver'])[0]
    return archiver, wal


def watch(params, thresholds, result):
    """The whole pgbackrest_info run: findings into ``result['checks']``, facts and the ``pitr`` report section."""
    br = PgBackRest(params)
    archiver, wal = _server_state(params, br, 'appcare.maintenance.pgbackrest_info')
    entry = br.info()
    stanza = params['stanza']
    _missing_stanza(entry, stanza, params)
    settle_waiting(archiver, archive_max(entry))
    now = utcnow()
    thresholds = archive_thresholds(thresholds, params.get('thresholds'), archiver['archive_timeout'])
    usable, future = split_backups(entry, now)
    window = recoverable_window(entry, archiver, now)
    stanza_check = stanza_finding(entry, stanza)
    result['checks'] = [
        stanza_check,
        age_finding(thresholds, 'full_backup_age', newest(usable, ('full',)), 'full backup', stanza, now),
        age_finding(thresholds, 'backup_age', newest(usable), 'backup', stanza, now),
        future_finding(future, stanza),
        errors_finding(usable, stanza),
        wal,
        archive_age_finding(thresholds, archiver, now),
        rpo_finding(thresholds, window, archiver, now, stanza),
    ]
    summaries = [backup_summary(b) for b in usable]
    latest = summaries[-1] if summaries else None
    result.update(
        pgbackrest={'version': br.version()[0], 'executable': br.executable},
        stanza={'name': stanza, 'code': entry['status']['code'], 'message': _printable(entry['status']['message']),
                'cipher': entry.get('cipher'), 'repos': stanza_check['repos'],
                'backup_running': stanza_check['backup_running'],
                'db': [dict((k, d.get(k)) for k in ('id', 'version', 'system-id', 'repo-key'))
                       for d in entry.get('db', []) if isinstance(d, dict)]},
        backups=summaries,
        newest={kind: next((s for s in reversed(summaries) if s['type'] == kind), None) for kind in BACKUP_TYPES},
        window=dict((k, v) for k, v in window.items() if not k.startswith('_')) if window else None,
        archiver=dict((k, v) for k, v in archiver.items() if k != 'last_archived_at'),
        report={'pitr': pitr_report(stanza, window, latest, archiver, stanza_check['backup_running'])},
    )
    return br.warnings


def run_backup(params, check_mode, result):
    """The whole pgbackrest_backup run: the backup (unless type none), then verify when asked."""
    br = PgBackRest(params)
    version_text_, version = br.version()
    if params.get('verify') and version < VERIFY_SINCE:
        raise DependencyError('verify needs pgBackRest %s or newer (the verify command); this is %s'
                              % (version_text(VERIFY_SINCE), version_text_))
    _archiver, _wal = _server_state(params, br, 'appcare.maintenance.pgbackrest_backup')
    stanza = params['stanza']
    before = br.info()
    _missing_stanza(entry=before, stanza=stanza, params=params)
    result['pgbackrest'] = {'version': version_text_, 'executable': br.executable}
    kind = params['type']
    if kind != 'none':
        extra = ['--type=%s' % kind]
        if check_mode:
            result['planned'] = ' '.join(br.argv('backup', extra))
        else:
            _out, seconds = br.run('backup', extra=extra)
            result['changed'] = True
            after = br.info()
            known = set(b['label'] for b in before.get('backup', []))
            new = [b for b in after.get('backup', []) if b['label'] not in known]
            if not new:
                raise PgBackRestError('pgbackrest backup exited 0 but pgbackrest info shows no new backup of stanza %s'
                                      % stanza)
            taken = backup_summary(sorted(new, key=lambda b: b['timestamp']['stop'])[-1])
            taken['command_seconds'] = round(seconds, 1)
            result['backup'] = taken
            if taken['type'] != kind:
                br.warnings.append('pgBackRest took a %s backup instead of %s (%s)'
                                   % (taken['type'], kind, 'no prior backup to build on' if kind != 'full'
                                      else 'see its log'))
    if params.get('verify'):
        if check_mode:
            result['planned_verify'] = ' '.join(br.argv('verify'))
        else:
            result['checks'].append(run_verify(br, stanza))
    section = {'stanza': stanza}
    if result.get('backup'):
        section['last_backup'] = dict((k, result['backup'][k]) for k in REPORT_BACKUP_KEYS + ('seconds',))
    verify = [c for c in result['checks'] if c['name'] == 'pgbackrest_verify']
    if verify:
        section['verify'] = {'status': verify[0]['status'], 'at': iso(utcnow())}
    result['report'] = {'pitr': section}
    return br.warnings


def run_verify(br, stanza):
    """``pgbackrest verify``: the repository's backups and WAL are checked for checksums and missing files."""
    try:
        out, seconds = br.run('verify', extra=['--output=text'], check=True)
    except PgBackRestError as exc:
        return C.finding('pgbackrest_verify', C.CRITICAL, 'pgbackrest verify found problems in stanza %s: %s'
                         % (stanza, exc), value=exc.code, unit='code', obj='stanza=%s' % stanza)
    summary = ' '.join(out.split())[:500]
    return C.finding('pgbackrest_verify', C.OK, 'pgbackrest verify checked stanza %s in %.1f s%s'
                     % (stanza, seconds, ': %s' % summary if summary else ''), value=0, unit='code',
                     obj='stanza=%s' % stanza)
