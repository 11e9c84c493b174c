# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup encryption: OpenPGP, written and read by GnuPG (``gpg``), in the stream.

Why OpenPGP with gpg: during an outage a person decrypts with one standard command
(``gpg --decrypt database.dump.gpg | pg_restore ...``) that every Linux distribution ships; gpg takes
public keys from files (``--recipient-file``, so the host that writes backups holds no secret and cannot
read old ones) as well as a passphrase from a file (``--passphrase-file``). ``age`` has no
non-interactive passphrase mode, and Python has no maintained OpenPGP library that streams.

Every gpg call runs with a temporary, private home directory that is removed afterwards (with the
agent it may start), so the user's keyrings are neither read nor changed. Keys and passphrases are only
ever passed to gpg as file paths; their contents never pass through this module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from ansible_collections.appcare.maintenance.plugins.module_utils.errors import (
    AppcareError,
    ConfigurationError,
    DependencyError,
)

SUFFIX = '.gpg'
CIPHER = 'AES256'
CHUNK = 1024 * 1024
# The first octet of an OpenPGP packet has its top bit set; a pg_dump archive starts with 'PGDMP'.
PG_MAGIC = b'PGDMP'


class DecryptionKeyError(AppcareError):
    """The key or passphrase given cannot decrypt the backup (or none was given): not a damaged backup."""


def find_gpg(path=None):
    binary = path or shutil.which('gpg')
    if not binary or not os.access(binary, os.X_OK):
        raise DependencyError('gpg (GnuPG 2.1 or newer) is needed to encrypt or decrypt backups but was not found%s;'
                              ' install it (Debian/Ubuntu: apt-get install gnupg)' % (' at %s' % path if path else ''))
    return binary


def gpg_version(gpg):
    proc = subprocess.run([gpg, '--version'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False, timeout=30)
    first = (proc.stdout or '').splitlines()[:1]
    return first[0].split()[-1] if first else 'unknown'


class GpgHome(object):
    """A private, temporary gpg home directory; the agent gpg may start in it is stopped on exit."""

    def __init__(self, gpg):
        self.gpg = gpg
        self.path = None

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix='appcare-gpg-')
        os.chmod(self.path, 0o700)
        return self

    def argv(self, *args):
        return [self.gpg, '--homedir', self.path, '--batch', '--no-tty', '--no-options'] + list(args)

    def __exit__(self, *exc):
        gpgconf = os.path.join(os.path.dirname(self.gpg), 'gpgconf')
        if os.access(gpgconf, os.X_OK):
            subprocess.run([gpgconf, '--homedir', self.path, '--kill', 'all'], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False, timeout=30)
        shutil.rmtree(self.path, ignore_errors=True)
        return False


def _readable_file(option, path):
    if not path:
        return
    if not os.path.isfile(path):
        raise ConfigurationError('%s %s does not exist or is not a file' % (option, path))
    if not os.access(path, os.R_OK):
        raise ConfigurationError('%s %s is not readable by this user' % (option, path))
    if os.path.getsize(path) == 0:
        raise ConfigurationError('%s %s is empty' % (option, path))


def key_file_info(home, path, option):
    """[{fingerprint, user_id, can_encrypt, secret}] of the keys in an OpenPGP key file (nothing imported)."""
    proc = subprocess.run(home.argv('--with-colons', '--show-keys', path), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False, timeout=60)
    keys = []
    for line in proc.stdout.splitlines():
        fields = line.split(':')
        if fields[0] in ('pub', 'sec'):
            keys.append({'fingerprint': None, 'user_id': None, 'can_encrypt': 'E' in fields[11] if len(fields) > 11 else False,
                         'secret': fields[0] == 'sec', 'subkeys': []})
        elif fields[0] == 'fpr' and keys:
            if keys[-1]['fingerprint'] is None:
                keys[-1]['fingerprint'] = fields[9]
            else:
                keys[-1]['subkeys'].append(fields[9])
        elif fields[0] == 'uid' and keys and keys[-1]['user_id'] is None:
            keys[-1]['user_id'] = fields[9]
    if proc.returncode != 0 or not keys:
        raise ConfigurationError('%s %s holds no OpenPGP key gpg can read: %s'
                                 % (option, path, ' '.join(proc.stderr.split())[:300] or 'no key found'))
    return keys


class Encryptor(object):
    """Encryption settings of pg_backup: public-key recipients, or a passphrase file."""

    def __init__(self, recipients=None, passphrase_file=None, gpg=None):
        self.recipients = list(recipients or [])
        self.passphrase_file = passphrase_file
        self.gpg = gpg
        self.description = None

    @property
    def enabled(self):
        return bool(self.recipients or self.passphrase_file)

    def validate(self):
        """Check the options and key files; fills ``description`` (what the manifest records)."""
        if not self.enabled:
            return None
        if self.recipients and self.passphrase_file:
            raise ConfigurationError('encryption_recipients and encryption_passphrase_file exclude each other: '
                                     'choose public-key or passphrase encryption')
        self.gpg = find_gpg(self.gpg)
        _readable_file('encryption_passphrase_file', self.passphrase_file)
        description = {'format': 'OpenPGP', 'tool': 'gpg %s' % gpg_version(self.gpg), 'cipher': CIPHER,
                       'mode': 'public-key' if self.recipients else 'passphrase', 'recipients': []}
        with GpgHome(self.gpg) as home:
            for path in self.recipients:
                _readable_file('encryption_recipients', path)
                keys = key_file_info(home, path, 'encryption_recipients')
                if len(keys) != 1:
                    raise ConfigurationError('encryption_recipients: %s holds %d keys; give one public key per file'
                                             % (path, len(keys)))
                key = keys[0]
                if key['secret']:
                    raise ConfigurationError('encryption_recipients: %s is a secret key; give the public key only '
                                             '(the host that writes backups must not be able to read them)' % path)
                if not key['can_encrypt']:
                    raise ConfigurationError('encryption_recipients: the key %s in %s cannot encrypt (no usable '
                                             'encryption subkey: expired, revoked or sign-only)' % (key['fingerprint'], path))
                description['recipients'].append({'fingerprint': key['fingerprint'], 'user_id': key['user_id']})
        self.description = description
        return description

    def argv(self, home, output):
        """gpg reading plaintext on stdin and writing the encrypted file ``output``."""
        common = ['--yes', '--compress-algo', 'none', '--cipher-algo', CIPHER, '--output', output]
        if self.recipients:
            args = common + ['--trust-model', 'always', '--encrypt']
            for path in self.recipients:
                args += ['--recipient-file', path]
            return home.argv(*args)
        return home.argv('--pinentry-mode', 'loopback', '--passphrase-file', self.passphrase_file,
                         '--s2k-digest-algo', 'SHA512', '--symmetric', *common)


def describe_gpg_failure(status_text, stderr_text, key_file, passphrase_file, encryption):
    """(is_key_problem, message) for a failed decryption, from gpg's status lines."""
    status = [line.split()[1:] for line in status_text.splitlines() if line.startswith('[GNUPG:] ')]
    words = {s[0] for s in status if s}
    to = [s[1] for s in status if s and s[0] == 'ENC_TO' and len(s) > 1]
    recipients = ', '.join(r.get('fingerprint') or '?' for r in (encryption or {}).get('recipients') or []) or \
        ', '.join(to) or 'unknown'
    if 'NO_SECKEY' in words and 'DECRYPTION_OKAY' not in words:
        if not key_file:
            return True, ('the backup is encrypted to public key(s) %s: give the secret key in '
                          'decryption_key_file' % recipients)
        return True, ('the key in decryption_key_file %s is not one the backup was encrypted to (recipients: %s)'
                      % (key_file, recipients))
    bad_pass = any(s and s[0] in ('BAD_PASSPHRASE', 'MISSING_PASSPHRASE') for s in status) or \
        any(s and s[0] == 'ERROR' and len(s) > 2 and 'PASSPHRASE' in s[2] for s in status)
    needs_pass = any(s and s[0] in ('NEED_PASSPHRASE_SYM', 'NEED_PASSPHRASE') for s in status)
    if bad_pass or (needs_pass and not passphrase_file):
        if not passphrase_file:
            return True, 'the backup (or its secret key) is protected by a passphrase: give it in decryption_passphrase_file'
        return True, 'the passphrase in decryption_passphrase_file %s does not decrypt the backup' % passphrase_file
    text = ' '.join(stderr_text.split())
    return False, 'the encrypted archive does not decrypt (damaged or truncated): %s' % (text[-300:] or 'gpg failed')


class Decryptor(object):
    """Decrypts a backup for pg_backup_verify, streaming into a consumer process."""

    def __init__(self, key_file=None, passphrase_file=None, gpg=None):
        self.key_file = key_file
        self.passphrase_file = passphrase_file
        self.gpg = gpg

    def validate(self):
        _readable_file('decryption_key_file', self.key_file)
        _readable_file('decryption_passphrase_file', self.passphrase_file)

    def stream(self, path, consumer_argv, env, encryption):
        """Decrypt ``path`` into the stdin of ``consumer_argv``. Returns (consumer returncode, consumer
        stdout, consumer stderr). Raises DecryptionKeyError for a missing or wrong key or passphrase, and
        ArchiveUndecryptable when the file does not decrypt (damaged)."""
        self.gpg = find_gpg(self.gpg)
        with GpgHome(self.gpg) as home, tempfile.TemporaryFile() as gpg_err, \
                tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            if self.key_file:
                imported = subprocess.run(home.argv('--import', self.key_file), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, check=False, timeout=120)
                if imported.returncode != 0:
                    raise DecryptionKeyError('decryption_key_file %s could not be imported: %s'
                                             % (self.key_file, ' '.join(imported.stderr.split())[:300]))
            args = ['--status-fd', '2', '--pinentry-mode', 'loopback']
            if self.passphrase_file:
                args += ['--passphrase-file', self.passphrase_file]
            gpg = subprocess.Popen(home.argv(*(args + ['--decrypt', path])), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=gpg_err)
            consumer = subprocess.Popen(consumer_argv, stdin=subprocess.PIPE, stdout=out, stderr=err, env=env)
            try:
                copy_stream(gpg.stdout, [], [consumer.stdin])
            finally:
                gpg.stdout.close()
                gpg.wait()
                consumer.wait()
            gpg_err.seek(0)
            status = gpg_err.read().decode('utf-8', 'replace')
            out.seek(0)
            err.seek(0)
            result = (consumer.returncode, out.read().decode('utf-8', 'replace'), err.read().decode('utf-8', 'replace'))
        if gpg.returncode != 0 or '[GNUPG:] DECRYPTION_OKAY' not in status:
            key_problem, message = describe_gpg_failure(
                '\n'.join(line for line in status.splitlines() if line.startswith('[GNUPG:] ')),
                '\n'.join(line for line in status.splitlines() if not line.startswith('[GNUPG:] ')),
                self.key_file, self.passphrase_file, encryption)
            raise (DecryptionKeyError if key_problem else ArchiveUndecryptable)(message)
        return result


class ArchiveUndecryptable(AppcareError):
    """The encrypted archive does not decrypt with the right key: it is damaged."""


def copy_stream(source, required, optional):
    """Copy the pipe ``source`` to every sink until its end; a required sink that breaks raises, an optional
    one (a reader that stops early, such as ``pg_restore --list``) is dropped and the copy goes on. Closes every
    sink. Returns the first bytes seen (for a header check) and the byte count.

    Once a single sink is left, the rest moves pipe to pipe inside the kernel (``os.splice``, Linux), so the
    copy costs the cipher next to it no CPU; elsewhere it goes on with reads and writes."""
    src = source.fileno()
    sinks = [(s, True) for s in required] + [(s, False) for s in optional]
    head, total, splice = b'', 0, getattr(os, 'splice', None)
    try:
        while True:
            if total and splice is not None and len(sinks) == 1:
                sink, needed = sinks[0]
                try:
                    moved = splice(src, sink.fileno(), CHUNK)
                except BrokenPipeError:
                    if needed:
                        raise
                    sinks = []
                    _close(sink)
                    continue
                except OSError:  # not pipes after all (EINVAL): read and write instead
                    splice = None
                    continue
                if not moved:
                    break
                total += moved
                continue
            chunk = os.read(src, CHUNK)
            if not chunk:
                break
            if len(head) < 16:
                head += chunk[:16 - len(head)]
            total += len(chunk)
            for sink, needed in list(sinks):
                try:
                    _write_all(sink.fileno(), chunk)
                except BrokenPipeError:
                    if needed:
                        raise
                    sinks.remove((sink, needed))
                    _close(sink)
    finally:
        for sink, _needed in sinks:
            _close(sink)
    return head, total


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _close(sink):
    try:
        sink.close()
    except (BrokenPipeError, OSError, ValueError):
        pass


def looks_encrypted(path):
    """Whether a stored dump file is OpenPGP rather than a plain pg_dump archive (read from the file
    itself, not from the manifest)."""
    try:
        with open(path, 'rb') as handle:
            head = handle.read(len(PG_MAGIC))
    except OSError:
        return False
    return bool(head) and head != PG_MAGIC and bool(head[0] & 0x80)
