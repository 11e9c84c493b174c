#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: storage_backup
short_description: Back up the objects of S3-compatible buckets (Supabase Storage, MinIO, S3) into the backup store
version_added: 0.1.0
description:
  - Copies every object of every bucket (or of O(buckets)) of an S3-compatible store into a new backup directory
    under O(dest), the same store M(appcare.maintenance.pg_backup) writes - for a Supabase project through Supabase
    Storage's S3 endpoint (O(project_ref)), for a self-hosted application through its MinIO or S3 endpoint
    (O(endpoint_url)). The database backup holds the rows of C(storage.objects); this holds the files.
  - "The backup directory holds C(objects/<aa>/<sha256>) (the content of each object, named by its sha256, so
    identical objects are stored once), C(objects.jsonl) (one line per object - bucket, key, size, ETag, sha256,
    last modified, content type, user metadata) and C(manifest.json), written last, which holds the counts, the
    buckets, what could not be copied, and the sha256 of C(objects.jsonl)."
  - Incremental - an object whose key, size and ETag are those of the previous good backup of the same source is not
    downloaded again; its content file is hard-linked from that backup (no extra disk; copied where the file system
    has no hard links) after its size and sha256 are recomputed from the file and compared with the previous index,
    and - where the store's ETag is the MD5 of the content, as for single-part uploads - its MD5 with the ETag the
    store lists now. A damaged file, a symlink, or a tampered manifest or index of the previous backup makes the
    object be downloaded again; it never puts a wrong file in the new backup. Every backup directory is complete on
    its own; deleting one never affects another. A backup whose verification failed is never the base.
  - Objects are streamed by O(concurrency) threads in chunks of at most 1 MiB, with at most twice as many objects
    queued; buckets are listed page by page, two pages ahead of the copy. Memory does not grow with object sizes; it
    grows with the number of objects only by the previous backup's index (a few hundred bytes an object). About
    60 MiB were measured for 2,500 objects and for one object of 64 MiB alike.
  - Each object is fetched with C(If-Match) of the ETag it was listed with, and its answer's ETag and length are
    compared with the listing, so an object replaced during the run is fetched at its new version and reported
    (C(storage_backup_changed)), as is one deleted during the run.
  - An object the credentials may not read (C(403 AccessDenied)) is never skipped in silence - the backup is
    published without it, marked incomplete in the manifest (C(denied), C(complete=false)), and
    C(storage_backup_denied) is critical. An incomplete backup is never taken as the previous good backup or counted
    by C(storage_backup_age), and retention keeps the newest complete one.
  - A failure of the endpoint itself - unreachable, credentials refused, a missing bucket, an object that still
    fails after three attempts, a full disk - fails the task, and the partial directory is removed, so nothing
    that could pass for a backup is left.
  - The run writes into a hidden C(.partial-<id>) directory and renames it into place after the manifest was written
    last; leftovers of a crashed run are removed by the next run (RV(cleaned)). One run per destination at a time
    (the store's lock). Files are 0600, directories 0700.
  - Retention (O(keep_daily), O(keep_weekly), O(keep_monthly)) works as in M(appcare.maintenance.pg_backup) over the
    backups of the same source and endpoint, and can only ever delete the store's own backup directories.
  - Verify backups with M(appcare.maintenance.storage_backup_verify).
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.s3
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Lists the buckets and objects and reports how many objects and bytes would be downloaded and how
      many taken from the previous backup (by key, size and ETag), and the backups retention would delete; writes
      nothing.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  dest:
    description:
      - Directory that holds the backups (created 0700 when missing). Each backup is a subdirectory named
        C(<source_name>-<UTC time>).
      - Use another directory than the database backups' (C(pg_backup_verify backup=latest) takes the newest backup of
        any kind when it is not told the database).
    type: path
    required: true
  buckets:
    description:
      - The buckets to back up; each must exist. By default every bucket the credentials list.
    type: list
    elements: str
  source_name:
    description:
      - Name of the source in backup directory names and manifests; backups of one source form its retention and
        incremental chain. Default C(storage-<project_ref>), or C(storage-<endpoint host>[_<port>]).
    type: str
  concurrency:
    description:
      - Objects copied at the same time (1 to 64).
    type: int
    default: 8
  keep_daily:
    description:
      - Keep the newest backup of each of the last N days that have backups. Retention runs only when at least one
        of O(keep_daily), O(keep_weekly), O(keep_monthly) is set.
    type: int
  keep_weekly:
    description:
      - Keep the newest backup of each of the last N ISO weeks that have backups.
    type: int
  keep_monthly:
    description:
      - Keep the newest backup of each of the last N months that have backups.
    type: int
  thresholds:
    description:
      - "Override the C(storage_backup_size) check: C({storage_backup_size: {warning: 50, critical: null}}). The value
        is the new backup's object bytes as a percentage of the previous backup's; a smaller value is worse."
    type: dict
    default: {}
notes:
  - "Restoring by hand - each line of C(objects.jsonl) names the bucket, key and sha256 of an object; its content is
    C(objects/<first two characters of sha256>/<sha256>). For example, with the AWS CLI -
    C(jq -r '[.bucket, .key, .sha256] | @tsv' objects.jsonl | while IFS=$'\\t' read -r b k s; do aws s3 cp
    \"objects/${s:0:2}/$s\" \"s3://$b/$k\"; done). M(appcare.maintenance.storage_backup_verify) with level restore
    proves that a backup uploads and reads back complete."
  - For Supabase, the S3 access keys have the service role's access; the files' rows in C(storage.objects) are in the
    database backup (M(appcare.maintenance.pg_backup) with preset supabase), and
    M(appcare.maintenance.storage_backup_verify) compares the two.
seealso:
  - name: Supabase Storage S3 protocol
    description: The S3-compatible endpoint, its access keys, region and compatibility.
    link: https://supabase.com/docs/guides/storage/s3/compatibility
  - module: appcare.maintenance.storage_backup_verify
  - module: appcare.maintenance.pg_backup
'''

EXAMPLES = r'''
- name: Nightly backup of every bucket of a Supabase project's Storage
  appcare.maintenance.storage_backup:
    project_ref: abcdefghijklmnopqrst
    region: eu-central-1
    access_key_id: "{{ vault_supabase_s3_access_key_id }}"
    secret_access_key: "{{ vault_supabase_s3_secret_access_key }}"
    dest: /var/backups/ims-storage
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 6
  register: files_backup

- name: Two buckets of a self-hosted application's MinIO, with its private CA
  appcare.maintenance.storage_backup:
    endpoint_url: https://minio.internal:9000
    endpoint_ca_cert: /etc/ssl/internal-ca.pem
    access_key_id: backup
    secret_access_key: "{{ vault_minio_backup_secret }}"
    buckets: [uploads, avatars]
    dest: /var/backups/crm-files
    concurrency: 16

- name: Show what the run copied
  ansible.builtin.debug:
    msg: "{{ files_backup.progress }}"   # objects, bytes, downloaded/skipped, MB/s ...
'''

RETURN = r'''
path:
  description: Directory of the new backup (the planned one in check mode).
  returned: always
  type: str
  sample: /var/backups/ims-storage/storage-abcdefghijklmnopqrst-20261123T020000Z
buckets:
  description: The buckets backed up.
  returned: success
  type: list
  elements: str
  sample: [avatars, documents]
previous:
  description: The previous good backup whose unchanged objects were taken over, or null.
  returned: success
  type: str
  sample: storage-abcdefghijklmnopqrst-20261122T020000Z
progress:
  description:
    - What the run copied - C(objects) and C(bytes) in the backup, C(downloaded_objects) and C(downloaded_bytes)
      fetched from the store, C(skipped_objects) and C(skipped_bytes) unchanged and taken from the previous backup,
      C(stored_bytes) new bytes on disk, C(changed), C(vanished), C(denied), C(errors) (counts), C(seconds),
      C(mb_per_s) (object bytes per second of the run) and C(download_mb_per_s) (bytes fetched per second).
    - In check mode, the planned C(objects), C(bytes), C(downloaded_*) and C(skipped_*).
  returned: success
  type: dict
  sample: {objects: 8812, bytes: 5368709120, downloaded_objects: 12, downloaded_bytes: 1048576, skipped_objects: 8800,
           skipped_bytes: 5367660544, stored_bytes: 1048576, changed: 0, vanished: 0, denied: 0, errors: 0,
           seconds: 41.2, mb_per_s: 124.3, download_mb_per_s: 0.02}
manifest:
  description: The manifest written beside the objects (see C(manifest.json)).
  returned: success, not in check mode
  type: dict
  sample:
    id: storage-abcdefghijklmnopqrst-20261123T020000Z
    tool: appcare.maintenance.storage_backup
    database: storage-abcdefghijklmnopqrst
    target: https://abcdefghijklmnopqrst.supabase.co/storage/v1/s3
    buckets: [{name: avatars, objects: 1520, bytes: 91234567}]
    objects: 1520
    bytes: 91234567
    complete: true
    denied: []
    files: [{path: objects.jsonl, bytes: 301234, sha256: "9f86d0..."}]
    verifications: []
changed_objects:
  description: Objects that changed while the run copied them (C(listed_size), C(listed_etag), and the C(size) and
    C(etag) of the version in the backup).
  returned: success, not in check mode
  type: list
  elements: dict
vanished_objects:
  description: Objects listed but deleted before they could be fetched; not in the backup.
  returned: success, not in check mode
  type: list
  elements: dict
denied_objects:
  description: Objects the credentials may not read (C(bucket), C(key), C(reason)); not in the backup.
  returned: success, not in check mode
  type: list
  elements: dict
failed_objects:
  description: Objects that failed otherwise (C(bucket), C(key), C(reason)); not in the backup.
  returned: success, not in check mode
  type: list
  elements: dict
deleted:
  description: Backups deleted by retention (in check mode, the ones that would be deleted).
  returned: always
  type: list
  elements: str
cleaned:
  description: Partial directories of earlier crashed runs that were removed (would be, in check mode).
  returned: always
  type: list
  elements: str
ignored:
  description: Directories in O(dest) that are not backups; never counted, never deleted.
  returned: always
  type: list
  elements: str
future:
  description: Backups whose manifest is dated more than 5 minutes in the future (see C(backup_future_dated)).
  returned: always
  type: list
  elements: str
report:
  description: What the run report shows (the C(appcare.maintenance.maintenance_report) callback merges it) - the
    C(storage_backup) section with C(id), C(path), C(objects), C(bytes), C(finished_at), C(complete) and C(verified).
  returned: success, not in check mode
  type: dict
  sample: {storage_backup: {id: storage-abcdefghijklmnopqrst-20261123T020000Z, objects: 1520, bytes: 91234567,
           finished_at: "2026-11-23T02:00:41.000000Z", complete: true, verified: null}}
checks:
  description:
    - Findings in the collection's uniform shape - C(storage_backup_objects) (what was copied), C(storage_backup_denied)
      (critical - objects the credentials may not read), C(storage_backup_errors) (critical - objects that failed
      otherwise), C(storage_backup_changed) (warning - objects changed or deleted while the run copied them),
      C(storage_backup_size) (the object bytes against the previous backup's, warning below 50 %) and
      C(backup_future_dated) (backups in O(dest) dated in the future).
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
from ansible_collections.appcare.maintenance.plugins.module_utils import objbackup as B
from ansible_collections.appcare.maintenance.plugins.module_utils import objstore as O
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import AppcareError, failure_message
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import make_interruptible


def main():
    argument_spec = O.s3_argument_spec()
    argument_spec.update(
        dest=dict(type='path', required=True),
        buckets=dict(type='list', elements='str'),
        source_name=dict(type='str'),
        concurrency=dict(type='int', default=8),
        keep_daily=dict(type='int'),
        keep_weekly=dict(type='int'),
        keep_monthly=dict(type='int'),
        thresholds=dict(type='dict', default={}),
    )
    argument_spec.update(C.severity_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('endpoint_url', 'project_ref')])
    params = module.params
    params['dest'] = os.path.abspath(params['dest'])
    os.umask(0o077)
    make_interruptible()  # a stopped run still removes its partial directory
    result = dict(changed=False, path=None, deleted=[], cleaned=[], ignored=[], future=[])
    try:
        endpoint, name, thresholds = B.validate(params)
        C.validate_severity(params['severity'])
        O.require_boto3()
        B.run_backup(params, endpoint, name, thresholds, module.check_mode, result)
    except (AppcareError, OSError) as exc:
        module.fail_json(msg=failure_message('storage backup', exc), **result)
    C.finish(module, result)


if __name__ == '__main__':
    main()
