#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: tls_cert_info
short_description: Certificate expiry, chain and host name of HTTPS, PostgreSQL and SMTP endpoints
version_added: 0.1.0
description:
  - Reads the TLS certificate each endpoint presents and judges it - days left, whether the chain verifies
    against the system's CAs (or O(ca_cert)), whether it is valid for the host name.
  - "Endpoints: C(https://host[:port]) (or C(tls://) for any port that starts with TLS);
    C(postgresql://host[:port]) - PostgreSQL's SSLRequest preamble, then the handshake, so the certificate of a
    database server is read exactly as a client sees it; C(smtp://host[:port]) and C(submission://host[:port])
    with STARTTLS; C(smtps://host[:port])."
  - "Findings per endpoint (object C(endpoint=<endpoint>)), all named C(tls_*): C(tls_connection) (critical when
    the endpoint cannot be reached or refuses TLS - for PostgreSQL, C(ssl = off)); C(tls_expiry) (warning below 30,
    critical below 7, critical once expired); C(tls_chain) (critical when it does not verify, with OpenSSL's
    reason); C(tls_hostname) (critical when the certificate is not valid for the host)."
  - The certificate is read even when it does not verify (a first handshake accepts any certificate; a second
    one verifies the chain), so an expired or self-signed certificate is still described.
author:
  - appcare maintainers (@appcare)
requirements:
  - cryptography (installed with ansible-core)
extends_documentation_fragment:
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  endpoints:
    description: The endpoints, as URLs (see the description for the schemes).
    type: list
    elements: str
    required: true
  ca_cert:
    description: A CA bundle (PEM) to verify the chains with instead of the system's CAs.
    type: path
  server_name:
    description: The name to send as SNI and to match the certificate against, instead of each endpoint's host.
    type: str
  timeout:
    description: Seconds for connecting and each handshake.
    type: float
    default: 10
  thresholds:
    description:
      - Overrides of C(warning)/C(critical) for C(tls_expiry) (days).
      - C(days_left), the earlier name of C(tls_expiry), is still accepted, with a deprecation warning.
    type: dict
    default: {}
seealso:
  - module: appcare.maintenance.http_health_info
'''

EXAMPLES = r'''
- name: Certificates of the application, its database and its mail relay
  appcare.maintenance.tls_cert_info:
    endpoints:
      - https://ims.example.org
      - postgresql://db.ims.example.org:5432
      - submission://smtp.example.org:587
  register: certificates

- name: A private CA, with a longer warning period
  appcare.maintenance.tls_cert_info:
    endpoints: [postgresql://10.0.3.7]
    ca_cert: /etc/ssl/internal-ca.pem
    server_name: db.internal
    thresholds:
      tls_expiry: {warning: 45, critical: 14}
'''

RETURN = r'''
certificates:
  description: One entry per endpoint; C(error) is set (and the rest absent) when no certificate could be read.
  returned: always
  type: list
  elements: dict
  sample:
    - endpoint: postgresql://db.ims.example.org:5432
      scheme: postgresql
      host: db.ims.example.org
      port: 5432
      error: null
      subject: CN=db.ims.example.org
      issuer: CN=Internal CA,O=Example
      san: [db.ims.example.org]
      not_before: "2026-09-01T00:00:00+00:00"
      not_after: "2026-12-01T00:00:00+00:00"
      days_left: 7.5
      serial: 3f2a9c
      key_type: RSA
      key_size: 2048
      signature_algorithm: sha256
      self_signed: false
      hostname_matches: true
      chain_valid: true
      chain_error: null
      tls_version: TLSv1.3
      cipher: TLS_AES_256_GCM_SHA384
checks:
  description: The findings, in the collection's uniform shape.
  returned: always
  type: list
  elements: dict
  sample:
    - name: tls_expiry
      status: warning
      value: 7.5
      unit: days
      warning: 30
      critical: 7
      object: endpoint=postgresql://db.ims.example.org:5432
      message: "the certificate of postgresql://db.ims.example.org:5432 (CN=db.ims.example.org) expires in 7.5 days,
        on 2026-12-01T00:00:00+00:00 (warning threshold: below 30)"
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: warning
'''

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import tlsinfo as T
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            endpoints=dict(type='list', elements='str', required=True),
            ca_cert=dict(type='path'),
            server_name=dict(type='str'),
            timeout=dict(type='float', default=10),
            thresholds=dict(type='dict', default={}),
            **C.severity_spec()
        ),
        supports_check_mode=True,
    )
    params = module.params
    if not T.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib('cryptography'))
    try:
        overrides, renamed = C.renamed_thresholds(params['thresholds'], T.RENAMED_THRESHOLDS)
        thresholds = C.merge_thresholds(T.DEFAULT_THRESHOLDS, overrides)
        C.validate_severity(params['severity'])
        for endpoint in params['endpoints']:
            T.parse_endpoint(endpoint)
        if params['ca_cert'] and not os.path.isfile(params['ca_cert']):
            raise ConfigurationError('ca_cert %s does not exist' % params['ca_cert'])
        if params['timeout'] <= 0:
            raise ConfigurationError('timeout must be more than 0 seconds')
    except ConfigurationError as exc:
        module.fail_json(msg='invalid options: %s' % exc)
    for notice in renamed:
        module.deprecate(notice, version='1.0.0', collection_name='appcare.maintenance')

    results = T.inspect_all(params['endpoints'], params['ca_cert'], params['timeout'], params['server_name'])
    findings = []
    for result in results:
        findings.extend(T.findings_for(result, thresholds))
    C.finish(module, dict(changed=False, certificates=results, checks=findings))


if __name__ == '__main__':
    main()
