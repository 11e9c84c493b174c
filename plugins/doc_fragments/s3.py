# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The connection to an S3-compatible object store (plugins/module_utils/objstore.py, s3_argument_spec).
    DOCUMENTATION = r'''
options:
  endpoint_url:
    description:
      - URL of the S3-compatible endpoint, for example C(https://minio.internal:9000) or
        C(https://s3.eu-central-1.amazonaws.com). Give this or O(project_ref).
      - Must be C(http://) or C(https://) with a host; credentials in the URL are refused.
    type: str
  project_ref:
    description:
      - Reference of a Supabase project; the endpoint is then C(https://<project_ref>.supabase.co/storage/v1/s3),
        Supabase Storage's S3 protocol endpoint (enable it under Project Settings > Storage > S3 Connection).
      - Give this or O(endpoint_url) (where the store is used, as for O(access_key_id)).
    type: str
  region:
    description:
      - Region the requests are signed for. For Supabase, the project's region as shown with its S3 endpoint (for
        example V(eu-central-1)); a wrong one makes the store refuse the signature.
      - Falls back to the C(AWS_REGION) or C(AWS_DEFAULT_REGION) environment variable.
    type: str
    default: us-east-1
  access_key_id:
    description:
      - S3 access key id. For Supabase, an S3 access key made under Project Settings > Storage > S3 access keys (it
        has the service role's access to every bucket).
      - Falls back to the C(AWS_ACCESS_KEY_ID) environment variable. Required wherever the store is used (always by
        M(appcare.maintenance.storage_backup), at level V(restore) by M(appcare.maintenance.storage_backup_verify)).
    type: str
  secret_access_key:
    description:
      - Secret of O(access_key_id). Never shown in output, messages or manifests.
      - Falls back to the C(AWS_SECRET_ACCESS_KEY) environment variable. Required with O(access_key_id).
    type: str
  addressing_style:
    description:
      - V(path) puts the bucket in the URL path (C(https://host/bucket/key)), as Supabase Storage and most
        self-hosted stores (MinIO) need; V(virtual) puts it in the host name (C(https://bucket.host/key)).
    type: str
    choices: [path, virtual]
    default: path
  validate_certs:
    description:
      - Verify the endpoint's TLS certificate. Turn off only for a test store.
    type: bool
    default: true
  endpoint_ca_cert:
    description:
      - File of CA certificates (PEM) to verify the S3 endpoint's certificate against, for a store with a private CA.
        (Named apart from the database connection's C(ca_cert), which M(appcare.maintenance.storage_backup_verify) also
        takes.)
    type: path
  timeout:
    description:
      - Seconds to wait for a connection or for data on one before a request is retried (three attempts in all).
    type: int
    default: 60
requirements:
  - boto3 (Python library, on the host that runs the module)
'''
