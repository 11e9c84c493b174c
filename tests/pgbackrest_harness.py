# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real PostgreSQL server that archives its WAL with a real pgBackRest into local repositories, for tests.

Everything lives in the server's temporary directory (owned by the account that runs the server): the configuration
files, two repositories (repo1 plain, repo2 encrypted with aes-256-cbc), lock, log and spool paths. ``server.conf``
holds repo2's passphrase (archive-push, run by the server, needs it); ``client.conf`` is the same without it, so a
test can give the passphrase through the module's ``cipher_pass``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

from pgserver import PgServer

STANZA = 'appcare'


def pgbackrest_path():
    return shutil.which('pgbackrest')


class PgBackRestCluster(object):
    """``server`` (a started PgServer), ``conf``/``client_conf``, ``cipher_pass``; ``pgbackrest(...)`` runs it as the
    server's account; ``module_args(**kw)`` are the options of the pgbackrest modules."""

    def __init__(self, bindir, stanza=STANZA, archive=True):
        self.stanza = stanza
        self.cipher_pass = 'appcare-test-cipher-%s' % uuid.uuid4().hex
        self.server = PgServer(bindir)
        self.dir = os.path.join(self.server.base_dir, 'pgbackrest')
        self.conf = os.path.join(self.dir, 'server.conf')
        self.client_conf = os.path.join(self.dir, 'client.conf')
        self.good_archive_command = "pgbackrest --config=%s --stanza=%s archive-push %%p" % (self.conf, stanza)
        if archive:
            self.server.settings.update({
                'archive_mode': 'on',
                'archive_command': "'%s'" % self.good_archive_command,
                'wal_level': 'replica',
                'archive_timeout': 60,
            })
        self.server.init()
        # pgBackRest connects through the socket as the server's account: let the socket (in a 0700 directory only
        # that account can enter) trust local connections.
        hba = os.path.join(self.server.datadir, 'pg_hba.conf')
        with open(hba) as handle:
            rules = handle.read()
        with open(hba, 'w') as handle:
            handle.write('local all all trust\n' + rules)
        os.makedirs(self.dir)
        for sub in ('repo1', 'repo2', 'log', 'lock', 'spool'):
            os.makedirs(os.path.join(self.dir, sub))
        common = ['[global]',
                  'repo1-path=%s' % os.path.join(self.dir, 'repo1'),
                  'repo1-retention-full=4',
                  'repo2-path=%s' % os.path.join(self.dir, 'repo2'),
                  'repo2-retention-full=4',
                  'repo2-cipher-type=aes-256-cbc',
                  'log-path=%s' % os.path.join(self.dir, 'log'),
                  'lock-path=%s' % os.path.join(self.dir, 'lock'),
                  'spool-path=%s' % os.path.join(self.dir, 'spool'),
                  'log-level-console=warn', 'log-level-file=off', 'start-fast=y', 'archive-timeout=30',
                  'compress-type=gz', 'compress-level=1']
        stanza_section = ['[%s]' % stanza, 'pg1-path=%s' % self.server.datadir, 'pg1-port=%d' % self.server.port,
                          'pg1-socket-path=%s' % self.server.base_dir, 'pg1-user=postgres']
        with open(self.conf, 'w') as handle:
            handle.write('\n'.join(common + ['repo2-cipher-pass=%s' % self.cipher_pass] + stanza_section) + '\n')
        with open(self.client_conf, 'w') as handle:
            handle.write('\n'.join(common + stanza_section) + '\n')
        account = self.server.account
        if account is not None:
            for root, dirs, files in os.walk(self.dir):
                for name in [''] + dirs + files:
                    os.chown(os.path.join(root, name), account.pw_uid, account.pw_gid)
        os.chmod(self.conf, 0o600)
        os.chmod(self.client_conf, 0o600)

    @property
    def os_user(self):
        return self.server.account.pw_name if self.server.account is not None else None

    def start(self):
        self.server.start()
        return self

    def pgbackrest(self, *args, conf=None, check=True, env=None):
        argv = ['pgbackrest', '--config=%s' % (conf or self.conf), '--stanza=%s' % self.stanza] + list(args)
        if self.server.account is not None:
            argv = ['runuser', '-u', self.server.account.pw_name, '--'] + argv
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd='/',
                              env=dict(os.environ, **(env or {})))
        if check and proc.returncode != 0:
            raise RuntimeError('%s failed (%d): %s %s' % (' '.join(argv), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def module_args(self, **overrides):
        args = self.server.login_args()
        args.update(stanza=self.stanza, config=self.conf)
        if self.os_user:
            args['os_user'] = self.os_user
        args.update(overrides)
        return args

    def cleanup(self):
        self.server.cleanup()
