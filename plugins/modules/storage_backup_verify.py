#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: storage_backup_verify
short_description: Prove that a storage_backup backup is complete, matches Supabase's catalogue, and restores
version_added: 0.1.0
description:
  - Verifies a backup made by M(appcare.maintenance.storage_backup) at a chosen O(level); each level includes the ones
    before it.
  - V(checksum) checks C(objects.jsonl) against the manifest's sha256 and every content file against the size and
    sha256 C(objects.jsonl) gives for its objects (C(storage_backup_checksum)), and that the backup holds every object
    it listed - none was denied or failed when it was made (C(storage_backup_complete)). It needs neither the store
    nor the database.
  - V(catalog) also compares the backup with C(storage.objects), Supabase Storage's catalogue in the project's
    database (the connection options) - every object row (C(bucket_id), C(name), C(metadata->>'size')) of the
    backed-up buckets must have a file of the same size in the backup (C(storage_backup_catalog), critical), and a
    file without a row is reported (C(storage_backup_orphans), warning - an object the application does not know,
    or a row deleted since). Rows created after the backup started are not expected in it, and rows updated since
    are not compared by size. Reads with one read-only session; the login role must read C(storage.objects) past its
    row-level security (C(postgres), or a role with C(BYPASSRLS)).
  - V(restore) also uploads every object into a new scratch bucket on the store the S3 options point at (by default
    the one backed up), reads each back and compares its size and sha256 with the backup (C(storage_backup_restore)),
    times it against O(rto_minutes) (C(storage_backup_restore_time)), and always deletes the scratch bucket
    afterwards, also on failure or when the task is stopped. The scratch bucket holds a marker object; one left by a
    killed run is deleted by a later run after 24 hours (RV(cleaned)). A bucket without the marker is never deleted.
  - With O(catalog=false) (a store that is not Supabase Storage, such as a self-hosted application's MinIO), V(restore)
    skips the comparison with the database; V(catalog) then is refused.
  - Each run appends a record (when, level, result, the levels run) to the backup manifest's C(verifications); the
    backup's verdict (RV(verdict)) is derived from all records as for M(appcare.maintenance.pg_backup_verify) - a
    weaker pass never clears a stronger failure.
  - With O(dest), also judges the age of the newest good, complete storage backup of the same source against
    O(rpo_hours) (C(storage_backup_age)) and backups dated in the future (C(backup_future_dated)).
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.connection
  - appcare.maintenance.s3
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
      - Path of the backup directory to verify, or V(latest) for the newest storage backup under O(dest).
    type: str
    default: latest
  dest:
    description:
      - Directory that holds the backups; needed for O(backup=latest) and for C(storage_backup_age).
    type: path
  source_name:
    description:
      - With O(backup=latest), the newest backup of this source (see M(appcare.maintenance.storage_backup)); by default
        of any source.
    type: str
  level:
    description:
      - How far to verify. V(checksum) < V(catalog) < V(restore).
    type: str
    choices: [checksum, catalog, restore]
    default: checksum
  catalog:
    description:
      - Compare with C(storage.objects) at levels V(catalog) and V(restore). Set V(false) for a store that is not
        Supabase Storage.
    type: bool
    default: true
  scratch_bucket:
    description:
      - Name of the scratch bucket for O(level=restore); must start with C(appcare-verify-). By default
        C(appcare-verify-<random>). A bucket of that name that exists already is refused, never used or deleted.
    type: str
  concurrency:
    description:
      - Files hashed, or objects uploaded and read back, at the same time.
    type: int
    default: 8
  rto_minutes:
    description:
      - Recovery-time objective of the files, in minutes. C(storage_backup_restore_time) warns above 80% of it and is
        critical above it.
    type: float
    default: 60
  rpo_hours:
    description:
      - Recovery-point objective in hours. C(storage_backup_age) warns above 80% of it and is critical above it.
    type: float
    default: 24
notes:
  - The S3 options are needed only for O(level=restore), the connection options only for the V(catalog) comparison.
seealso:
  - module: appcare.maintenance.storage_backup
  - module: appcare.maintenance.pg_backup_verify
'''

EXAMPLES = r'''
- name: Daily - the newest files backup is intact and complete (no store, no database needed)
  appcare.maintenance.storage_backup_verify:
    dest: /var/backups/ims-storage
    level: checksum
    rpo_hours: 24

- name: Weekly - every file the application knows is in the backup
  appcare.maintenance.storage_backup_verify:
    dest: /var/backups/ims-storage
    level: catalog
    login_host: db.abcdefghijklmnopqrst.supabase.co
    login_user: postgres
    login_password: "{{ vault_supabase_db_password }}"
    ssl_mode: require

- name: Monthly - upload into a scratch bucket and read everything back
  appcare.maintenance.storage_backup_verify:
    dest: /var/backups/ims-storage
    level: restore
    project_ref: abcdefghijklmnopqrst
    region: eu-central-1
    access_key_id: "{{ vault_supabase_s3_access_key_id }}"
    secret_access_key: "{{ vault_supabase_s3_secret_access_key }}"
    login_host: db.abcdefghijklmnopqrst.supabase.co
    login_password: "{{ vault_supabase_db_password }}"
  register: files_drill

- name: A self-hosted application's MinIO backup, without a Supabase catalogue
  appcare.maintenance.storage_backup_verify:
    dest: /var/backups/crm-files
    level: restore
    catalog: false
    endpoint_url: https://minio.internal:9000
    access_key_id: backup
    secret_access_key: "{{ vault_minio_backup_secret }}"
'''

RETURN = r'''
backup:
  description: Path of the backup that was verified.
  returned: when a backup was found
  type: str
  sample: /var/backups/ims-storage/storage-abcdefghijklmnopqrst-20261123T020000Z
levels:
  description: The levels this run verified.
  returned: when a backup was found
  type: list
  elements: str
  sample: [checksum, catalog, restore]
result:
  description: V(ok) when every check of the levels passed, else V(failed).
  returned: when a backup was found
  type: str
  sample: ok
catalog:
  description: The comparison with C(storage.objects) - C(rows) read, C(newer) (created after the backup started),
    C(missing_files), C(size_mismatches) and C(orphan_files) (C(bucket/key) each).
  returned: when the catalog level ran
  type: dict
  sample: {rows: 8812, newer: 3, missing_files: [], size_mismatches: [], orphan_files: [avatars/old.png]}
restore_seconds:
  description: Wall time of the upload and read-back.
  returned: when a restore ran
  type: float
  sample: 42.7
scratch_bucket:
  description: The scratch bucket used (already deleted).
  returned: when a restore ran
  type: str
  sample: appcare-verify-5f0c2a9e41d34b7a
scratch_left:
  description: A scratch bucket that could not be deleted (delete it by hand); the restore check failed.
  returned: when it happened
  type: str
cleaned:
  description: Scratch buckets of earlier, killed runs that were deleted.
  returned: always
  type: list
  elements: str
verification:
  description: The record this run appended to the manifest's C(verifications).
  returned: when written
  type: dict
  sample: {at: "2026-11-23T03:00:00.000000Z", level: restore, result: ok, levels: [checksum, catalog, restore]}
verdict:
  description: The backup's verdict from all its verification records, this run's included - C(result) (V(ok),
    V(failed), or null), the strongest C(level) verified, and C(at) of the record that decided it.
  returned: when a backup was found
  type: dict
  sample: {result: ok, level: restore, at: "2026-11-23T03:00:00.000000Z", records: 3}
report:
  description: What the run report shows (merged into the C(storage_backup) section) - C(id), and the verdict as
    C(verified) and C(verified_level).
  returned: when a backup was verified
  type: dict
  sample: {storage_backup: {id: storage-abcdefghijklmnopqrst-20261123T020000Z, verified: ok, verified_level: catalog}}
checks:
  description: Findings in the collection's uniform shape - C(storage_backup_checksum), C(storage_backup_complete),
    with the catalogue C(storage_backup_catalog) and C(storage_backup_orphans), with a restore
    C(storage_backup_restore) and C(storage_backup_restore_time), then with O(dest) C(backup_future_dated) and
    C(storage_backup_age).
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
from ansible_collections.appcare.maintenance.plugins.module_utils import objstore as O
from ansible_collections.appcare.maintenance.plugins.module_utils import objverify as V
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    connection_argument_spec,
    failure_message,
    make_interruptible,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(O.s3_argument_spec())
    argument_spec.update(
        backup=dict(type='str', default='latest'),
        dest=dict(type='path'),
        source_name=dict(type='str'),
        level=dict(type='str', default='checksum', choices=V.LEVELS),
        catalog=dict(type='bool', default=True),
        scratch_bucket=dict(type='str'),
        concurrency=dict(type='int', default=8),
        rto_minutes=dict(type='float', default=60),
        rpo_hours=dict(type='float', default=24),
    )
    argument_spec.update(C.severity_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('endpoint_url', 'project_ref')])
    make_interruptible()  # a stopped run still deletes its scratch bucket
    result = dict(changed=False, level=module.params['level'], cleaned=[], checks=[])
    try:
        endpoint = V.validate(module.params)
        C.validate_severity(module.params['severity'])
        if endpoint is not None and not module.check_mode:
            O.require_boto3()
        V.run_verification(module.params, endpoint, module.check_mode, result)
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('storage backup verification', exc), **result)
    C.finish(module, result)


if __name__ == '__main__':
    main()
