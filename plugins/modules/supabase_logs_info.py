#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: supabase_logs_info
short_description: Weekly error-log review of a Supabase project from the logs behind its Management API
version_added: 0.1.0
description:
  - Reads the logs Supabase keeps of a project - PostgreSQL's, Auth's and the API gateway's - through the Management
    API with an access token, and judges them as the guides' weekly "Error Log Review" asks - the same error patterns
    as the PostgreSQL log review (M(appcare.maintenance.pg_log_info)), failed and rate-limited sign-ins per client
    address, and the real HTTP error rate and latency of the API.
  - "Endpoint: C(GET /v1/projects/{ref}/analytics/endpoints/logs.all) (operation C(v1-get-project-logs)) with the
    query parameters C(sql), C(iso_timestamp_start) and C(iso_timestamp_end). The API answers at most 24 hours per
    request, so the window of O(window_hours) is read in slices of at most 24 hours on whole minutes, oldest first -
    up to four requests per slice (one per source, two for the API), 28 for the default week."
  - "C(postgres_logs) - the reports of severity WARNING, ERROR, FATAL and PANIC (C(metadata.parsed.error_severity),
    C(sql_state_code), C(user_name), C(database_name), C(connection_from)), at most O(row_limit) per slice, grouped
    into patterns exactly as the PostgreSQL log review does (numbers, quoted strings and identifiers normalised). Per
    pattern - count, first and last seen, databases, users, clients and an example. Findings C(log_panic) (PANIC
    reports - critical), C(log_fatal) (FATAL reports other than refused connections - critical), C(log_error_rate)
    (the most ERROR/FATAL/PANIC reports in one hour; warning above 60, critical above 600) and C(log_new_patterns)
    (error patterns not in the O(state_file) of earlier runs - a warning; the first run records the baseline,
    without O(state_file) nothing is judged new) - the checks, levels and messages of
    M(appcare.maintenance.pg_log_info)."
  - "C(auth_logs) - requests that Auth answered with 400 or more, or whose message says it rate limited them
    (C(over_request_rate_limit), too many requests), counted by the API per client address (C(metadata.remote_addr)),
    path and status. C(auth_failed_signins) - per address, the 4xx answers (but 429) of the sign-in endpoints
    (C(/token), C(/otp), C(/verify), C(/magiclink), C(/authorize), C(/callback), C(/sso), MFA C(/factors/.../verify));
    failed session refreshes are not counted; warning above 10, critical above 50 - the levels of the collection's
    C(failed_logins). C(auth_rate_limited) - per address, the answers 429 or saying rate limited; warning above 10,
    critical above 100. Both are category C(security); neither ever reaches C(auth.audit_log_entries), which only
    records what succeeded."
  - "C(edge_logs) - every request through the API gateway (C(metadata.request.method), C(path),
    C(metadata.response.status_code), C(origin_time)), counted by the API - a latency histogram by status class and
    the requests and errors per method and path. C(api_error_rate) - the percentage of requests answered 5xx
    (warning above 1, critical above 5 - the guides alert at an error rate above 5 %); 4xx, the client's mistakes,
    are reported apart and not judged. C(api_latency) - the 95th percentile of C(origin_time) in ms (warning above
    1000, critical above 3000); the percentiles come from buckets about 5 % wide and are their upper bound. With
    fewer requests than O(min_requests) both are C(ok) and say there were too few to judge."
  - C(supabase_api) is C(ok) when every request was answered, C(critical) naming each failure otherwise (with
    O(fail_on_error=false); by default a failed request fails the task). A source that could not be read gives
    C(unknown) findings; after a refused token, a rate limit beyond O(max_retry_wait) or no answer, no further
    request is sent.
  - "Nothing read back is trusted - an answer with an C(error), without C(result), with rows that are not objects,
    counts that are no counts or times outside the slice asked for is a failure of that source, never an C(ok). When
    a slice's answer has O(row_limit) rows, RV(truncated) names it and the findings say their counts are a lower
    bound."
  - "Requests, the token and rate limits as M(appcare.maintenance.supabase_project_info) - the token is sent only
    to O(api_url), redirects are refused, 429 is retried after its C(Retry-After) within O(max_retry_wait)."
  - "Sources - the Management API's published OpenAPI specification (the public C(supabase/cli) repository,
    C(packages/api/src/generated/openapi.json), operation C(v1-get-project-logs), schema C(AnalyticsResponse)); the
    log tables' fields from the Logs Explorer's field reference and query templates (the public C(supabase/supabase)
    repository, C(packages/shared-data/logConstants.ts),
    C(apps/studio/components/interfaces/Settings/Logs/Logs.constants.ts)) and
    U(https://supabase.com/docs/guides/telemetry/advanced-log-filtering)."
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.management_api
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Reads and judges the same; the O(state_file) is neither written nor changed.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  project_ref:
    description:
      - The project's reference, the 20 lower-case letters of its URL C(https://<project_ref>.supabase.co).
    type: str
    required: true
  access_token:
    description:
      - A Supabase personal access token (or an OAuth access token) that may read the project's logs - a scoped
        token needs the permission C(analytics_logs_read), an OAuth token the scope C(analytics:read). Create one at
        U(https://supabase.com/dashboard/account/tokens).
      - Never returned or logged; when not given, the environment variable E(SUPABASE_ACCESS_TOKEN) of the host that
        runs the module.
    type: str
  api_url:
    description:
      - The Management API's address; another one for a proxy or a test server. C(https://) only - plain C(http://)
        is accepted to this machine only, as the token would cross the network unencrypted.
    type: str
    default: https://api.supabase.com
  sources:
    description:
      - The logs read - V(postgres) (C(postgres_logs)), V(auth) (C(auth_logs)), V(api) (C(edge_logs)).
    type: list
    elements: str
    choices: [postgres, auth, api]
    default: [postgres, auth, api]
  window_hours:
    description:
      - The hours of logs reviewed, ending now (floored to the minute); read in slices of at most 24 hours.
      - Supabase keeps logs for a time that depends on the plan (a day on Free, a week on Pro); older slices answer
        no rows.
    type: float
    default: 168
  row_limit:
    description:
      - The most rows one request may answer (the C(LIMIT) of each query, 1 to 10000). A slice that reaches it is
        named in RV(truncated), and the findings it feeds say their counts are a lower bound.
      - PostgreSQL reports are read one by one (the newest of the slice first); Auth and the API are counted by the
        API, so their limit is on addresses and paths, not on requests. The API's latency histogram has a fixed limit
        of its own (3000 rows, more than it can have), so the error rate and the percentiles are never cut.
    type: int
    default: 1000
  top:
    description: How many error patterns, addresses and paths are listed.
    type: int
    default: 10
  min_requests:
    description:
      - C(api_error_rate) and C(api_latency) judge only with at least this many API requests in the window, and say
        so otherwise.
    type: int
    default: 20
  state_file:
    description:
      - A JSON file that remembers the error patterns seen (their keys and when last seen, of this project), so the
        next run marks the patterns it has not seen before as new. Written atomically after each run (not in check
        mode); the newest 5000 patterns are kept.
      - A file that is not valid - not this module's, of another project, cut off, altered, or dated after this
        host's clock - is read as empty, so every pattern counts as new and none is hidden as known; C(log_state)
        says why, and the file is rewritten.
      - Unset, nothing is remembered and every pattern counts as new.
    type: path
  thresholds:
    description:
      - "Overrides of the default thresholds, per check - C(warning) and/or C(critical) (V(null) disables a level),
        for example C({api_error_rate: {warning: 2, critical: 10}, log_error_rate: {warning: 100, critical: 1000}})."
      - Checks with thresholds - C(auth_failed_signins), C(auth_rate_limited) (count per address), C(api_error_rate)
        (%), C(api_latency) (ms), C(log_panic), C(log_fatal) (count), C(log_error_rate) (per hour) and
        C(log_new_patterns) (count); the names of M(appcare.maintenance.pg_log_info)'s other checks are accepted too,
        so one dict can serve both modules. An unknown name is refused.
    type: dict
    default: {}
  fail_on_error:
    description:
      - When V(true), a request that fails (no answer, an HTTP error, an answer with an C(error) or of another shape)
        fails the task.
      - When V(false), the task returns its findings - C(unknown) for the sources that could not be read and a
        C(critical) C(supabase_api) naming the failure - so a report shows it and the play goes on.
    type: bool
    default: true
notes:
  - The times of the window are sent as C(2025-03-01T00:00:00Z); the API rounds them to the minute, which is why the
    slices start and end on whole minutes.
  - A busy project's PostgreSQL log can hold more than O(row_limit) warnings and errors a day; raise O(row_limit), or
    read the counts as a lower bound when RV(truncated) names slices.
seealso:
  - module: appcare.maintenance.pg_log_info
    description: The same review of a PostgreSQL server's own log files.
  - module: appcare.maintenance.supabase_project_info
    description: The project's service health and platform backups, with the same token.
  - name: Supabase Management API - Gets project's logs
    description: The endpoint read.
    link: https://supabase.com/docs/reference/api/v1-get-project-logs
  - name: Supabase Logs Explorer
    description: The log tables and their SQL.
    link: https://supabase.com/docs/guides/telemetry/logs
'''

EXAMPLES = r'''
- name: Weekly review of the Supabase project's logs
  appcare.maintenance.supabase_logs_info:
    project_ref: abcdefghijklmnopqrst
    access_token: "{{ vault_supabase_access_token }}"
    state_file: /var/lib/appcare/log-review/ims-supabase.supabase.json
  register: supabase_logs

- name: Only the API's error rate and latency of the last day, a busier application's levels
  appcare.maintenance.supabase_logs_info:
    project_ref: abcdefghijklmnopqrst
    sources: [api]
    window_hours: 24
    thresholds:
      api_error_rate: {warning: 2, critical: 10}
      api_latency: {warning: 1500, critical: 5000}

- name: Failed sign-ins of the week, never failing the play
  appcare.maintenance.supabase_logs_info:
    project_ref: abcdefghijklmnopqrst
    sources: [auth]
    fail_on_error: false
'''

RETURN = r'''
project_ref:
  description: The project reviewed.
  returned: always
  type: str
  sample: abcdefghijklmnopqrst
window:
  description: The window read - C(start), C(end) (whole minutes), C(hours), C(slices) (requests per source) and
    C(row_limit).
  returned: always
  type: dict
  sample: {start: "2026-11-16T07:28:00.000000Z", end: "2026-11-23T07:28:00.000000Z", hours: 168, slices: 7,
           row_limit: 1000}
truncated:
  description:
    - Per query (C(postgres), C(auth), C(api_latency), C(api_paths)), the start of each slice whose answer reached
      O(row_limit); empty lists when none did.
  returned: always
  type: dict
  sample: {postgres: ["2026-11-20T07:28:00.000000Z"], auth: [], api_latency: [], api_paths: []}
postgres:
  description:
    - The PostgreSQL review - C(severities) (PANIC, FATAL, ERROR, WARNING to counts), C(top_errors) (the O(top) most
      frequent patterns), C(new_patterns) (those not seen in earlier runs), C(hourly) (C(hour), C(errors) -
      ERROR/FATAL/PANIC per hour), C(patterns) (how many), C(patterns_dropped) and C(events) (deadlocks, connection
      failures, restarts ... as M(appcare.maintenance.pg_log_info) counts them). A pattern has C(key), C(pattern),
      C(severity), C(sqlstate), C(count), C(first_seen), C(last_seen), C(databases), C(users), C(clients),
      C(example), C(statement) and C(new).
    - V(null) when not read or not asked for.
  returned: always
  type: dict
  sample:
    severities: {PANIC: 0, FATAL: 1, ERROR: 42, WARNING: 3}
    top_errors:
      - {key: 3f1c0a9be2d44e11, pattern: 'duplicate key value violates unique constraint "..."', severity: ERROR,
         sqlstate: "23505", count: 40, first_seen: "2026-11-17T09:12:03Z", last_seen: "2026-11-23T06:59:41Z",
         databases: [postgres], users: [authenticator], clients: [], example: 'duplicate key value violates unique
         constraint "orders_pkey"', statement: null, new: false}
    new_patterns: []
    hourly: [{hour: "2026-11-17T09:00:00Z", errors: 3}]
    patterns: 4
    patterns_dropped: 0
auth:
  description:
    - C(failed_signins_by_address) and C(rate_limited_by_address) - the O(top) addresses, most first, each with
      C(address), C(count), C(paths) and C(statuses) (to counts), C(first_seen) and C(last_seen). V(null) when not
      read.
  returned: always
  type: dict
  sample:
    failed_signins_by_address:
      - {address: 203.0.113.7, count: 64, paths: {/token: 64}, statuses: {"400": 64},
         first_seen: "2026-11-21T02:00:00.000000Z", last_seen: "2026-11-21T02:14:00.000000Z"}
    rate_limited_by_address: []
api:
  description:
    - The API traffic - C(requests), C(errors_5xx), C(errors_4xx), C(error_rate_percent) (5xx), C(error_4xx_percent),
      C(latency_ms) (C(p50), C(p95), C(p99) of C(origin_time), upper bounds within 5 %),
      C(requests_without_latency), C(top_error_paths) (C(method), C(path), C(requests), C(errors_5xx), C(errors_4xx),
      C(error_rate_percent), most 5xx first) and C(top_paths_truncated). V(null) when not read.
  returned: always
  type: dict
  sample:
    requests: 182340
    errors_5xx: 95
    errors_4xx: 2210
    error_rate_percent: 0.052
    error_4xx_percent: 1.212
    latency_ms: {p50: 42.5, p95: 270.4, p99: 903.4}
    requests_without_latency: 0
    top_error_paths:
      - {method: POST, path: /rest/v1/rpc/checkout, requests: 5120, errors_5xx: 80, errors_4xx: 12,
         error_rate_percent: 1.563}
    top_paths_truncated: false
management_api:
  description:
    - The requests made - C(url) (O(api_url)), C(requests) (C(method), C(path), C(status), C(attempts),
      C(waited_seconds)) - and C(rate_limit), the newest C(X-RateLimit-*) headers seen. No query, header or token.
  returned: always
  type: dict
  sample:
    url: https://api.supabase.com
    requests:
      - {method: GET, path: /v1/projects/abcdefghijklmnopqrst/analytics/endpoints/logs.all, status: 200, attempts: 1,
         waited_seconds: 0.0}
    rate_limit: {limit: 120, remaining: 92, reset: 60}
checks:
  description: The findings, in the collection's uniform shape; those about Auth have C(category) V(security).
  returned: always
  type: list
  elements: dict
  sample:
    - name: api_error_rate
      status: ok
      value: 0.052
      unit: "%"
      warning: 1
      critical: 5
      object: project=abcdefghijklmnopqrst
      message: "0.05 % of 182340 API requests in the last 168 h were answered 5xx (95); 4xx: 2210 (1.21 %)"
      requests: 182340
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: warning
report:
  description:
    - What this run adds to the run report of the P(appcare.maintenance.maintenance_report#callback) callback -
      section C(log_review) (C(source) V(supabase), C(project_ref), C(finished_at), C(window_hours), C(severities),
      C(top_errors), C(new_patterns), C(truncated), C(failed_signins), C(rate_limited)) and section C(api_traffic)
      (RV(api)'s keys with C(source), C(project_ref), C(finished_at), C(window_hours)). The report adds their
      C(age_hours).
  returned: always
  type: dict
  sample:
    log_review: {source: supabase, project_ref: abcdefghijklmnopqrst, finished_at: "2026-11-23T07:28:30.000000Z",
                 window_hours: 168, severities: {PANIC: 0, FATAL: 1, ERROR: 42, WARNING: 3}, top_errors: [],
                 new_patterns: [], truncated: false, failed_signins: [], rate_limited: []}
    api_traffic: {source: supabase, requests: 182340, error_rate_percent: 0.052,
                  latency_ms: {p50: 42.5, p95: 270.4, p99: 903.4}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import supabase_api as S
from ansible_collections.appcare.maintenance.plugins.module_utils import supabase_logs as L
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import AppcareError, failure_message


def main():
    module = AnsibleModule(
        argument_spec=S.management_api_argument_spec(
            sources=dict(type='list', elements='str', choices=list(L.PARTS), default=list(L.PARTS)),
            window_hours=dict(type='float', default=L.DEFAULT_HOURS),
            row_limit=dict(type='int', default=L.DEFAULT_ROW_LIMIT),
            top=dict(type='int', default=L.DEFAULT_TOP),
            min_requests=dict(type='int', default=L.DEFAULT_MIN_REQUESTS),
            state_file=dict(type='path'),
            thresholds=dict(type='dict', default={}),
            **C.severity_spec()
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        thresholds = L.validate_params(params)
        C.validate_severity(params['severity'])
        api = S.client_for(params)
        result, errors = L.review(api, params, thresholds, check_mode=module.check_mode)
    except (AppcareError, OSError) as exc:
        module.fail_json(msg=failure_message('supabase_logs_info', exc))
    if errors and params['fail_on_error']:
        module.fail_json(msg='supabase_logs_info failed: %s' % '; '.join(str(e) for e in errors), **result)
    C.finish(module, result)


if __name__ == '__main__':
    main()
