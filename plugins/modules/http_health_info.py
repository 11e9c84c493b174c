#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: http_health_info
short_description: Probe application HTTP(S) endpoints concurrently, with timed phases and Supabase presets
version_added: 0.1.0
description:
  - Probes every endpoint in O(endpoints) (and the Supabase services of the preset) B(concurrently), so fifty
    endpoints take about as long as the slowest one, and judges each answer.
  - Each probe times its phases - DNS, connect, TLS, time to first byte, transfer - in milliseconds, follows
    redirects, counts the bytes and, for HTTPS, reads how many days the server certificate has left.
  - Only connection errors (refused, reset, timed out while connecting) are retried, O(retries) times. A name
    that does not resolve, a TLS failure or an HTTP error status is reported at once.
  - "Findings per endpoint (object C(endpoint=<name>)), named C(http_*) but for the certificate's: C(http_availability)
    (critical when no probe got an HTTP answer, with the failing phase); C(http_status) (critical when most answers
    have an unexpected status, warning when some do); C(http_content) (critical when O(endpoints[].body_regex) or
    O(endpoints[].json) do not match); C(http_latency) in ms - the single probe, or the p95 of O(samples) probes -
    (warning above 500, critical above 3000, the seeds' API response targets); C(http_error_rate) in percent of
    failed probes, only with more than one sample (critical above 5); C(tls_expiry) days the HTTPS certificate has
    left (warning below 30, critical below 7, critical once expired) - the same finding as
    M(appcare.maintenance.tls_cert_info)'s."
  - "Supabase preset: with O(supabase_url) and O(supabase_key) the module also probes the project's REST API
    (C(GET /rest/v1/), PostgREST's OpenAPI description), Auth (C(GET /auth/v1/health), GoTrue's health
    endpoint), Storage (C(GET /storage/v1/bucket), the buckets the key may list), each of
    O(supabase_functions) (C(POST /functions/v1/<name>)) and each of O(supabase_buckets)
    (C(GET /storage/v1/bucket/<name>)). Every request carries the C(apikey) header; a legacy JWT key (anon or
    service_role) is also sent as C(Authorization: Bearer), as Supabase's client libraries do. Sources:
    Supabase docs - API keys (https://supabase.com/docs/guides/api/api-keys), \"How do I check GoTrue/API
    version of a Supabase project?\" (C(/auth/v1/health) with C(apikey)), Storage API reference
    (https://supabase.github.io/storage/ - C(/bucket), C(/bucket/{bucketId})), Edge Functions
    (https://supabase.com/docs/guides/functions - C(/functions/v1/<name>) with C(Authorization))."
  - Header values (O(endpoints[].headers)) and O(supabase_key) are treated as secrets - never returned, and
    masked in Ansible's output.
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode. Probes with a method such as POST still send it.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  endpoints:
    description:
      - The endpoints to probe.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the endpoint in results and findings (default the URL). Must be unique.
        type: str
      url:
        description: C(http://) or C(https://) URL.
        type: str
        required: true
      method:
        description: HTTP method (default O(method)).
        type: str
      headers:
        description: Request headers. Their values are treated as secrets.
        type: dict
      body:
        description: Request body; a dict or list is sent as JSON with C(Content-Type application/json).
        type: raw
      status:
        description: Expected status code, or a list of them.
        type: raw
        default: 200
      body_regex:
        description: A regular expression the body of an expected answer must match (Python C(re.search)).
        type: str
      json:
        description:
          - Expected values in the JSON body of an expected answer, by dotted path (C(status), C(checks.0.name)).
        type: dict
      timeout:
        description: Seconds for each network step of a probe (default O(timeout)).
        type: float
      samples:
        description: Probes of this endpoint (default O(samples)).
        type: int
      follow_redirects:
        description: Follow redirects (default O(follow_redirects)).
        type: bool
      max_redirects:
        description: Most redirects followed (default O(max_redirects)).
        type: int
      latency_warning_ms:
        description: Latency warning threshold of this endpoint in ms (default the C(http_latency) threshold).
        type: float
      latency_critical_ms:
        description: Latency critical threshold of this endpoint in ms.
        type: float
  method:
    description: Default HTTP method.
    type: str
    default: GET
  timeout:
    description: Default seconds for each network step of a probe.
    type: float
    default: 10
  samples:
    description:
      - Default number of probes per endpoint; with more than one, latency is judged by its p95 and the error
        rate is reported.
    type: int
    default: 1
  follow_redirects:
    description: Default for following redirects.
    type: bool
    default: true
  max_redirects:
    description: Default for the most redirects followed.
    type: int
    default: 5
  retries:
    description: Retries of a probe that could not connect (refused, reset, timed out while connecting).
    type: int
    default: 2
  max_workers:
    description: Endpoints probed at the same time.
    type: int
    default: 50
  validate_certs:
    description: Verify HTTPS certificates and host names.
    type: bool
    default: true
  ca_cert:
    description: A CA bundle (PEM) to verify HTTPS certificates with instead of the system's.
    type: path
  thresholds:
    description:
      - Overrides of C(warning)/C(critical) for C(http_latency) (ms), C(http_error_rate) (percent) and C(tls_expiry)
        (days).
      - The earlier names C(latency), C(error_rate) and C(certificate) (now C(tls_expiry)) are still accepted, with a
        deprecation warning.
    type: dict
    default: {}
  supabase_url:
    description: The Supabase project URL (C(https://<ref>.supabase.co)) for the preset.
    type: str
  supabase_key:
    description: The key the preset sends (publishable/anon, or secret/service_role for buckets).
    type: str
  supabase_functions:
    description:
      - Edge Functions to probe - names, or dicts with C(name), C(method) (default POST), C(body) (default C({}))
        and C(status).
    type: list
    elements: raw
    default: []
  supabase_buckets:
    description: Storage buckets that must exist (needs a key allowed to read them).
    type: list
    elements: str
    default: []
seealso:
  - module: appcare.maintenance.tls_cert_info
  - module: ansible.builtin.uri
'''

EXAMPLES = r'''
- name: Daily application probes
  appcare.maintenance.http_health_info:
    endpoints:
      - name: app_health
        url: https://ims.example.org/api/health
        json: {status: ok}
      - name: login_page
        url: https://ims.example.org/login
        body_regex: "<form"
      - name: search_api
        url: https://ims.example.org/api/search?q=test
        samples: 10
        latency_warning_ms: 800
    validate_certs: true
  register: probes

- name: A Supabase project's services, two edge functions and a bucket
  appcare.maintenance.http_health_info:
    supabase_url: https://abcdefghijklmnop.supabase.co
    supabase_key: "{{ vault_supabase_service_role_key }}"
    supabase_functions:
      - send-reminders
      - {name: healthcheck, method: GET}
    supabase_buckets: [documents]
    samples: 5
'''

RETURN = r'''
endpoints:
  description: One result per endpoint, in the order given (the preset's after yours).
  returned: always
  type: list
  elements: dict
  sample:
    - name: app_health
      url: https://ims.example.org/api/health
      method: GET
      samples: 1
      responses: 1
      status_codes: [200]
      expected_status: [200]
      errors: []
      error_rate: 0.0
      latency_ms: {p50: 84.2, p95: 84.2, max: 84.2}
      phases_ms: {dns: 1.2, connect: 20.3, tls: 41.0, ttfb: 20.9, transfer: 0.4}
      redirects: []
      bytes: 27
      certificate_days_left: 61.5
      certificate_not_after: "2027-01-23T12:00:00+00:00"
      content_problems: []
checks:
  description: The findings of every endpoint, in the collection's uniform shape.
  returned: always
  type: list
  elements: dict
  sample:
    - name: http_latency
      status: ok
      value: 84.2
      unit: ms
      warning: 500
      critical: 3000
      object: endpoint=app_health
      message: app_health took 84.2 ms
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: ok
report:
  description:
    - What this run adds to the run report of the P(appcare.maintenance.maintenance_report#callback) callback (the
      callback's C(report) convention) - section C(endpoints), appended to the target's endpoints; the slowest
      C(latency_ms.max) is a key figure of the dashboard.
  returned: always
  type: dict
  contains:
    endpoints:
      description:
        - RV(endpoints) with the keys the report keeps - C(name), C(url), C(status_codes), C(latency_ms),
          C(error_rate).
      returned: always
      type: list
      elements: dict
  sample:
    endpoints:
      - name: app_health
        url: https://ims.example.org/api/health
        status_codes: [200]
        latency_ms: {p50: 84.2, p95: 84.2, max: 84.2}
        error_rate: 0.0
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import probe as P
from ansible_collections.appcare.maintenance.plugins.module_utils import tlsinfo as T
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError

# The keys of each endpoint result the run report keeps (the ``report`` return value).
REPORT_KEYS = ('name', 'url', 'status_codes', 'latency_ms', 'error_rate')


def endpoint_options():
    return dict(
        name=dict(type='str'),
        url=dict(type='str', required=True),
        method=dict(type='str'),
        headers=dict(type='dict', no_log=True),
        body=dict(type='raw'),
        status=dict(type='raw', default=200),
        body_regex=dict(type='str'),
        json=dict(type='dict'),
        timeout=dict(type='float'),
        samples=dict(type='int'),
        follow_redirects=dict(type='bool'),
        max_redirects=dict(type='int'),
        latency_warning_ms=dict(type='float'),
        latency_critical_ms=dict(type='float'),
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            endpoints=dict(type='list', elements='dict', default=[], options=endpoint_options()),
            method=dict(type='str', default='GET'),
            timeout=dict(type='float', default=10),
            samples=dict(type='int', default=1),
            follow_redirects=dict(type='bool', default=True),
            max_redirects=dict(type='int', default=5),
            retries=dict(type='int', default=2),
            max_workers=dict(type='int', default=50),
            validate_certs=dict(type='bool', default=True),
            ca_cert=dict(type='path'),
            thresholds=dict(type='dict', default={}),
            supabase_url=dict(type='str'),
            supabase_key=dict(type='str', no_log=True),
            supabase_functions=dict(type='list', elements='raw', default=[]),
            supabase_buckets=dict(type='list', elements='str', default=[]),
            **C.severity_spec()
        ),
        required_together=[('supabase_url', 'supabase_key')],
        supports_check_mode=True,
    )
    params = module.params
    try:
        if not params['endpoints'] and not params['supabase_url']:
            raise ConfigurationError('give endpoints, or supabase_url and supabase_key for the Supabase preset')
        if params['retries'] < 0 or params['max_workers'] < 1:
            raise ConfigurationError('retries must be 0 or more and max_workers at least 1')
        overrides, renamed = C.renamed_thresholds(params['thresholds'], P.RENAMED_THRESHOLDS)
        thresholds = C.merge_thresholds(P.DEFAULT_THRESHOLDS, overrides)
        C.validate_severity(params['severity'])
        given = list(params['endpoints'])
        if params['supabase_url']:
            given += P.supabase_endpoints(params['supabase_url'], params['supabase_key'],
                                          params['supabase_functions'], params['supabase_buckets'])
        endpoints = P.normalize(given, params)
        if params['ca_cert'] and not params['validate_certs']:
            raise ConfigurationError('ca_cert is given but validate_certs is false; nothing would be verified')
        context = T.client_context(verify=params['validate_certs'], ca_cert=params['ca_cert'])
    except (ConfigurationError, OSError) as exc:
        module.fail_json(msg='invalid options: %s' % exc)
    for notice in renamed:
        module.deprecate(notice, version='1.0.0', collection_name='appcare.maintenance')

    results = P.run_all(endpoints, context, params['retries'], params['max_workers'])
    findings = []
    for index, result in enumerate(results):
        findings.extend(P.findings_for(result, endpoints[index], thresholds))
    report = {'endpoints': [dict((key, result.get(key)) for key in REPORT_KEYS) for result in results]}
    C.finish(module, dict(changed=False, endpoints=results, checks=findings, report=report))


if __name__ == '__main__':
    main()
