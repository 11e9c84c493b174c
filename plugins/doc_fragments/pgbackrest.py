# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The pgBackRest options of pgbackrest_info, pgbackrest_backup and pgbackrest_restore_drill
    # (module_utils.pgbackrest.pgbackrest_argument_spec).
    DOCUMENTATION = r'''
options:
  stanza:
    description:
      - The pgBackRest stanza (C(--stanza)) - the name of the cluster's section in the configuration file.
    type: str
    required: true
  config:
    description:
      - pgBackRest's configuration file (C(--config)); pgBackRest's default (C(/etc/pgbackrest/pgbackrest.conf))
        when not set. Repository, C(pg1-path), C(pg1-port), C(pg1-socket-path), C(lock-path) and C(log-path) are
        read from it.
    type: path
  repo:
    description:
      - Only this repository (C(--repo)); all configured repositories when not set.
      - O(cipher_pass) is the passphrase of this repository (of repository 1 when not set).
    type: int
  cipher_pass:
    description:
      - Passphrase of an encrypted repository (C(repo1-cipher-pass), or that of O(repo)), when the configuration
        file does not hold it. It reaches pgBackRest through its environment
        (C(PGBACKREST_REPO<N>_CIPHER_PASS)), never the command line, and never appears in output.
    type: str
  options:
    description:
      - "Further pgBackRest options, as C({pg1-port: 5433, process-max: 2, archive-timeout: 120}). They reach
        pgBackRest as its environment variables (C(PGBACKREST_PG1_PORT); V(true)/V(false) become C(y)/C(n)), so they
        override the configuration file, and a command ignores those it does not take."
      - Options that hold secrets (C(*-cipher-pass), keys, passwords) are refused - they would show in the task's
        arguments; keep them in the configuration file or use O(cipher_pass).
    type: dict
    default: {}
  os_user:
    description:
      - Run pgBackRest as this operating system account - it must be the account that owns the data directory
        (usually C(postgres)), as pgBackRest requires. The module must then run as root.
      - Prefer Ansible's C(become_user) (with C(become=true)) and leave this unset; this option serves a play that
        runs the module as root for other reasons.
    type: str
  executable:
    description:
      - The C(pgbackrest) program; looked up in C(PATH) when not set.
    type: path
  timeout:
    description:
      - Seconds a pgBackRest command may run before it is stopped and the task fails.
    type: int
'''
