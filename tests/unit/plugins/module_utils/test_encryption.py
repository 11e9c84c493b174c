# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The encryption helpers that need no key: the stream copy between real processes, telling an encrypted
file from a plain archive, and naming a failed decryption from gpg's status lines."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import encryption as E

PRODUCE = "import os, sys; data = bytes(range(256)) * 40000; sys.stdout.buffer.write(b'PGDMP' + data)"


def test_copy_stream_feeds_every_sink_and_survives_an_early_reader(tmp_path):
    out = tmp_path / 'copy'
    source = subprocess.Popen([sys.executable, '-c', PRODUCE], stdout=subprocess.PIPE)
    writer = subprocess.Popen(['sh', '-c', 'cat > "$0"', str(out)], stdin=subprocess.PIPE)
    early = subprocess.Popen(['head', '-c', '100'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    head, total = E.copy_stream(source.stdout, [writer.stdin], [early.stdin])
    assert source.wait() == 0 and writer.wait() == 0
    assert early.stdout.read() == b'PGDMP' + bytes(range(95))
    early.wait()
    expected = b'PGDMP' + bytes(range(256)) * 40000
    assert head == expected[:16] and total == len(expected)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(expected).digest()


def test_copy_stream_raises_when_a_required_sink_breaks():
    source = subprocess.Popen([sys.executable, '-c', PRODUCE], stdout=subprocess.PIPE)
    dying = subprocess.Popen(['head', '-c', '10'], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    with pytest.raises(BrokenPipeError):
        E.copy_stream(source.stdout, [dying.stdin], [])
    source.kill()
    source.wait()
    dying.wait()


def test_looks_encrypted(tmp_path):
    plain, openpgp, empty = tmp_path / 'plain', tmp_path / 'pgp', tmp_path / 'empty'
    plain.write_bytes(b'PGDMP\x01\x0e')
    openpgp.write_bytes(b'\x85\x01\x8c\x03')  # a public-key encrypted session key packet
    empty.write_bytes(b'')
    assert not E.looks_encrypted(str(plain))
    assert E.looks_encrypted(str(openpgp))
    assert not E.looks_encrypted(str(empty)) and not E.looks_encrypted(str(tmp_path / 'missing'))


ENCRYPTION = {'recipients': [{'fingerprint': 'ABCDEF0123456789'}]}


@pytest.mark.parametrize('status, key_file, passphrase_file, key_problem, fragment', [
    ('[GNUPG:] ENC_TO C6BC 1 0\n[GNUPG:] NO_SECKEY C6BC\n[GNUPG:] DECRYPTION_FAILED', None, None, True,
     'give the secret key in decryption_key_file'),
    ('[GNUPG:] ENC_TO C6BC 1 0\n[GNUPG:] NO_SECKEY C6BC\n[GNUPG:] DECRYPTION_FAILED', 'k.asc', None, True,
     'is not one the backup was encrypted to (recipients: ABCDEF0123456789)'),
    ('[GNUPG:] NEED_PASSPHRASE_SYM 9 3 2\n[GNUPG:] ERROR symkey_decrypt.maybe_error 11_BAD_PASSPHRASE\n'
     '[GNUPG:] DECRYPTION_FAILED', None, 'p', True, 'does not decrypt the backup'),
    ('[GNUPG:] NEED_PASSPHRASE_SYM 9 3 2\n[GNUPG:] INQUIRE_MAXLEN 100', None, None, True,
     'give it in decryption_passphrase_file'),
    ('[GNUPG:] BEGIN_DECRYPTION\n[GNUPG:] DECRYPTION_INFO 2 9 0\n[GNUPG:] BADMDC', 'k.asc', None, False,
     'damaged or truncated'),
])
def test_gpg_failures_are_named(status, key_file, passphrase_file, key_problem, fragment):
    is_key, message = E.describe_gpg_failure(status, 'gpg: something', key_file, passphrase_file, ENCRYPTION)
    assert is_key is key_problem and fragment in message


def test_no_gpg_is_a_clear_dependency_error(tmp_path):
    with pytest.raises(E.DependencyError, match='apt-get install gnupg'):
        E.find_gpg(str(tmp_path / 'gpg'))
    assert os.path.basename(E.find_gpg()) == 'gpg'
