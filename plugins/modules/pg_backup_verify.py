#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pg_backup_verify
short_description: Prove that a pg_backup backup restores, and measure RTO and RPO
version_added: 0.1.0
description:
  - Verifies a backup made by M(appcare.maintenance.pg_backup) at a chosen O(level); each level includes
    the ones before it.
  - V(checksum) recomputes the sha256 of every file and compares it with the manifest.
  - V(catalog) also checks that C(pg_restore --list) reads the archive and that it holds data for every
    table the manifest lists.
  - V(restore) also restores the backup with C(pg_restore --exit-on-error) into a scratch database on the
    server the connection options point at (usually the source server), compares every table's exact row
    count with the manifest, runs the O(smoke_queries), times the restore against O(rto_minutes), and
    always drops the scratch database afterwards, also on failure or when the task is interrupted.
  - A backup made with preset supabase (see M(appcare.maintenance.pg_backup)) has a second archive, the platform part
    (C(auth) and C(storage)). V(catalog) reads both; V(restore) restores both into the scratch database - the
    platform part's schema and data first, then the application's, then the platform's and the application's
    keys, indexes, triggers and policies (application tables reference C(auth.users)) - counts the rows of every
    table of both, and proves every row of C(auth.users) (same id, email and password hash), C(auth.identities),
    C(storage.buckets) and C(storage.objects) (same id, bucket and name) is back, comparing a sha256 over the rows
    with the one taken in the backup's snapshot (findings C(backup_auth_users), C(backup_auth_identities),
    C(backup_storage_buckets), C(backup_storage_objects)); no value of a row, no password hash, is read out of the
    database. A missing, damaged or exchanged platform part fails the verification. Backups without parts
    (older ones, or without the preset) verify as before.
  - With O(restored_db), V(restore) checks a restore made elsewhere (C(playbooks/supabase_restore.yml)) instead of
    making one - the same row counts, proofs and smoke queries in that database; nothing is restored, dropped or
    recorded.
  - The scratch database is marked as created by this module and locked while in use; a run that was killed
    leaves one behind, which the next run drops (reported in RV(cleaned)). A database the module did not
    create is never dropped, and a scratch name equal to the source or admin database is refused.
  - Each run appends a record (when, level, result, restore seconds, mismatches) to the backup manifest's
    C(verifications), atomically. The backup's verdict (RV(verdict)) is derived from all records, in the
    order they were written - a backup is good only when the newest record at the strongest level ever
    verified passed and no later record, at any level, failed. A weaker pass never clears a stronger
    failure (a C(checksum) pass after a failed C(restore) leaves the backup failed); a record that cannot be
    believed (malformed, or dated in the future) counts as a failed restore that only a passing restore
    clears. M(appcare.maintenance.pg_backup) retention never deletes the newest good backup.
  - Also judges, after this run's record is written, the age of the newest backup under O(dest) that is not
    failed against O(rpo_hours) (C(backup_age)), backups dated in the future (C(backup_future_dated), never
    taken as V(latest)), and whether every backup is encrypted (C(backup_encryption), critical only with
    O(require_encryption)).
  - Encrypted backups (see M(appcare.maintenance.pg_backup)) are recognised by the stored file itself, not
    the manifest. V(checksum) needs no key; V(catalog) and V(restore) decrypt in the stream with C(gpg)
    (O(decryption_key_file) or O(decryption_passphrase_file)), and V(catalog) decrypts the whole file, so
    OpenPGP's integrity check covers it. A missing or wrong key or passphrase fails the task with that
    reason and records nothing; an archive that does not decrypt with the right key fails V(catalog).
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.connection
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Runs the read-only levels (checksum, catalog); skips the restore and does not write the manifest.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  backup:
    description:
      - Path of the backup directory to verify, or V(latest) for the newest complete backup under O(dest).
    type: str
    default: latest
  dest:
    description:
      - Directory that holds the backups; needed for O(backup=latest) and for the C(backup_age) check.
    type: path
  source_database:
    description:
      - With O(backup=latest), the newest backup of this database (by default, of any database).
    type: str
  level:
    description:
      - How far to verify. V(checksum) < V(catalog) < V(restore).
    type: str
    choices: [checksum, catalog, restore]
    default: catalog
  scratch_db:
    description:
      - Name of the scratch database for O(level=restore). Default C(appcare_verify_<source database>).
      - Refused when it equals the backup's database or O(login_db), or when a database of that name exists
        that this module did not create.
    type: str
  restored_db:
    description:
      - With O(level=restore), check the database of this name, into which the backup was restored outside this
        module (the C(supabase_restore) runbook does), instead of restoring into a scratch database - row counts,
        the platform part's proofs and O(smoke_queries). Nothing is restored or dropped, and no verification is
        recorded in the manifest (this module did not restore it).
    type: str
  jobs:
    description:
      - Parallel C(pg_restore) jobs.
    type: int
    default: 1
  no_owner:
    description:
      - Restore without ownership and privileges (C(--no-owner --no-privileges)), for a scratch server that
        lacks the source's roles. By default ownership is restored, so a missing role fails the verification.
    type: bool
    default: false
  smoke_queries:
    description:
      - Queries run read-only in the restored database. Each is a dict with C(query), an optional C(name),
        and either C(expect) (the first column of the first row must equal it, compared as text) or
        C(min_rows) (at least that many rows; 1 when neither is given).
    type: list
    elements: dict
    default: []
  rto_minutes:
    description:
      - Recovery-time objective for the database, in minutes. C(backup_restore_time) warns above 80% of it and is
        critical above it.
    type: float
    default: 60
  rpo_hours:
    description:
      - Recovery-point objective in hours. C(backup_age) (age of the newest good backup under O(dest))
        warns above 80% of it and is critical above it.
    type: float
    default: 24
  pg_bin_dir:
    description:
      - Directory of C(pg_restore) to try first (see M(appcare.maintenance.pg_backup) for the search order).
    type: path
  decryption_key_file:
    description:
      - OpenPGP secret key file (armored or binary) that decrypts backups encrypted to public keys, for the
        V(catalog) and V(restore) levels. Imported into a temporary gpg home that is removed afterwards.
      - A key protected by a passphrase needs O(decryption_passphrase_file) too.
    type: path
  decryption_passphrase_file:
    description:
      - File holding the passphrase of a passphrase-encrypted backup, or of the secret key in
        O(decryption_key_file). Read by C(gpg) only.
    type: path
  require_encryption:
    description:
      - Every backup of the database under O(dest) must be encrypted; one that is not makes C(backup_encryption)
        critical. Without it, C(backup_encryption) only counts them.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Daily quick verification of the newest backup
  appcare.maintenance.pg_backup_verify:
    dest: /var/backups/ims
    level: catalog

- name: Monthly test restore with smoke queries, on the source server
  appcare.maintenance.pg_backup_verify:
    login_host: db.internal
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
    dest: /var/backups/ims
    source_database: ims
    level: restore
    jobs: 2
    rto_minutes: 60
    rpo_hours: 24
    smoke_queries:
      - name: applications present
        query: SELECT count(*) FROM applications
        expect: 12000
      - name: approved applications
        query: SELECT id FROM applications WHERE state = 'approved'
        min_rows: 1
  register: verification

- name: Weekly check that every backup is encrypted (checksums need no key)
  appcare.maintenance.pg_backup_verify:
    dest: /var/backups/ims
    level: checksum
    require_encryption: true

- name: Monthly drill of a Supabase backup - fails unless every user, identity, bucket and object row is back
  appcare.maintenance.pg_backup_verify:
    login_db: postgres
    dest: /srv/backups/supabase
    level: restore
  register: drill

- name: After restoring into a new project by hand, check it against the backup (nothing is recorded)
  appcare.maintenance.pg_backup_verify:
    login_db: postgres
    backup: /srv/backups/supabase/postgres-20261123T020000Z
    level: restore
    restored_db: postgres

- name: Quarterly drill of an encrypted backup with the secret key
  appcare.maintenance.pg_backup_verify:
    login_db: postgres
    dest: /var/backups/ims
    level: restore
    decryption_key_file: /run/secrets/ops-backup.sec.asc
'''

RETURN = r'''
backup:
  description: Path of the backup that was verified.
  returned: when a backup was found
  type: str
  sample: /var/backups/ims/ims-20261123T020000Z
level:
  description: The level that was verified.
  returned: always
  type: str
  sample: restore
result:
  description: V(ok) when every check of the level passed, else V(failed).
  returned: when a backup was found
  type: str
  sample: ok
restore_seconds:
  description: Wall time of pg_restore (the measured RTO of the database).
  returned: when a restore ran
  type: float
  sample: 42.7
mismatches:
  description: Tables whose restored row count differs from the manifest.
  returned: when a restore ran
  type: dict
  sample: {public.applications: {expected: 12000, restored: 11990}}
parts:
  description: What the backup holds, part by part (the C(summary) of each of the manifest's C(parts)); only for
    backups made with preset supabase.
  returned: when the backup has parts
  type: str
  sample: "application: 12 tables / 48211 rows; auth: users 1520, identities 1544; storage: buckets 3, objects 8812"
client:
  description: The pg_restore used for V(catalog) and V(restore).
  returned: when the catalog level ran
  type: dict
  sample: {bin_dir: /usr/lib/postgresql/18/bin, version: "18.1", major: 18, skipped: []}
scratch_db:
  description: The scratch database used (already dropped).
  returned: when a restore ran
  type: str
  sample: appcare_verify_ims
cleaned:
  description: Scratch databases of earlier, killed runs that were dropped.
  returned: always
  type: list
  elements: str
verification:
  description: The record this run appended to the manifest's C(verifications).
  returned: when written
  type: dict
  sample: {at: "2026-11-23T03:00:00.000000Z", level: restore, result: ok, restore_seconds: 42.7, mismatches: {}}
verdict:
  description: The backup's verdict from all its verification records, this run's included - C(result)
    (V(ok), V(failed), or null when never verified), the strongest C(level) verified, and C(at) of the record
    that decided it. RV(result) is this run's outcome; RV(verdict) is what the backup is worth.
  returned: when a backup was found
  type: dict
  sample: {result: failed, level: restore, at: "2026-11-20T03:00:00.000000Z", records: 2}
report:
  description: What the run report shows (the C(appcare.maintenance.maintenance_report) callback merges it into
    the C(backup) section) - C(id), and the verdict as C(verified) and C(verified_level).
  returned: when a backup was verified
  type: dict
  sample: {backup: {id: ims-20261123T020000Z, verified: ok, verified_level: restore}}
checks:
  description: Findings in the collection's uniform shape - C(backup_checksum), C(backup_catalog),
    C(backup_restore), C(backup_row_counts), for a backup with a platform part C(backup_auth_users),
    C(backup_auth_identities), C(backup_storage_buckets) and C(backup_storage_objects), then
    C(backup_smoke_queries), C(backup_restore_time), then with O(dest) C(backup_future_dated), C(backup_age) and
    C(backup_encryption). With O(restored_db) there is no C(backup_restore) nor C(backup_restore_time).
  returned: always
  type: list
  elements: dict
status:
  description: Worst status of RV(checks).
  returned: always
  type: str
  sample: ok
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import verify as V
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    connection_argument_spec,
    failure_message,
    make_interruptible,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        backup=dict(type='str', default='latest'),
        dest=dict(type='path'),
        source_database=dict(type='str'),
        level=dict(type='str', default='catalog', choices=V.LEVELS),
        scratch_db=dict(type='str'),
        restored_db=dict(type='str'),
        jobs=dict(type='int', default=1),
        no_owner=dict(type='bool', default=False),
        smoke_queries=dict(type='list', elements='dict', default=[]),
        rto_minutes=dict(type='float', default=60),
        rpo_hours=dict(type='float', default=24),
        pg_bin_dir=dict(type='path'),
        decryption_key_file=dict(type='path', no_log=False),
        decryption_passphrase_file=dict(type='path', no_log=False),
        require_encryption=dict(type='bool', default=False),
    )
    argument_spec.update(C.severity_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    make_interruptible()  # a stopped run still drops its scratch database
    result = dict(changed=False, level=module.params['level'], cleaned=[], checks=[])
    try:
        decryptor = V.validate(module.params)
        C.validate_severity(module.params['severity'])
        V.run_verification(module.params, decryptor, module.check_mode, result)
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('verification', exc), **result)
    C.finish(module, result)


if __name__ == '__main__':
    main()
