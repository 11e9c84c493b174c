#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: supabase_project_info
short_description: Service health, platform backups and point-in-time recovery of a Supabase project
version_added: 0.1.0
description:
  - Reads a Supabase project's service health and its platform backups from Supabase's Management API with an access
    token, and judges them - what the operations guides check by hand every day on the dashboard and with
    C(supabase db backup list).
  - "C(GET /v1/projects/{ref}/health?services=...) - one C(supabase_service) finding per service of O(services)
    (object C(service=<name>), the answered status in C(service_status)): V(ACTIVE_HEALTHY) is C(ok), V(COMING_UP)
    (starting or restarting) C(warning), V(UNHEALTHY) C(critical) with the service's error; a service missing from
    the answer, answered twice or with a status the specification does not list is C(unknown), never C(ok). When
    the deprecated C(healthy) field contradicts the status, the finding is at least a warning."
  - "C(GET /v1/projects/{ref}/database/backups) - C(supabase_backup_age): hours since the newest restore point, the
    newest C(COMPLETED) backup or, with point-in-time recovery on, the latest recoverable moment
    (C(physical_backup_data.latest_physical_backup_date_unix)) when newer; critical above O(rpo_hours), warning above
    O(backup_age_warning_hours), critical when there is none. C(supabase_backup_failed): the C(FAILED) backups
    listed - critical when the newest backup that ended (completed or failed) failed, warning when only older ones
    did. C(supabase_pitr): whether point-in-time recovery (WAL-G) is on and its recoverable window in days (from the
    earliest to the latest recoverable moment) - C(ok) when off unless O(require_pitr), a warning when on without a
    window, and below O(min_pitr_window_days) when set. C(supabase_backup_future_dated): backup times (and a latest
    recoverable moment) more than 5 minutes after this host's clock - a warning; they never count as fresh."
  - C(supabase_api) is C(ok) when every request was answered, C(critical) naming each failure otherwise (with
    O(fail_on_error=false); by default a failed request fails the task). A part that could not be read gives
    C(unknown) findings.
  - "An answer that is not the specification's shape - not JSON, truncated (fewer bytes than announced), a required
    field missing or of another type, a time that is no time - is a failure of that request, never an C(ok)."
  - "Requests: the token is sent as C(Authorization: Bearer) and only to O(api_url) - redirects are refused, not
    followed. A rate-limited answer (HTTP 429) is retried after the wait its C(Retry-After) (or C(X-RateLimit-Reset))
    asks for, as long as the waits fit in O(max_retry_wait); server errors (5xx) and dropped connections are retried
    O(retries) times (1, 2, 4 ... s apart, within the same budget). 401, 403 and 404 are not retried; their messages
    say what to do. Two requests per run; Supabase documents a per-user limit of requests per minute for the
    Management API, shared by every tool using the same account, and its answers carry C(X-RateLimit-Limit),
    C(X-RateLimit-Remaining) and C(X-RateLimit-Reset) (returned in RV(api.rate_limit))."
  - "Source of the shapes: Supabase's published OpenAPI specification of the Management API, in the public
    C(supabase/cli) repository, C(packages/api/src/generated/openapi.json) (operations C(v1-get-services-health),
    schema C(V1ServiceHealthResponse), and C(v1-list-all-backups), schema C(V1BackupsResponse)); the Management API
    reference is at U(https://supabase.com/docs/reference/api/introduction)."
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.management_api
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode.
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
      - A Supabase personal access token (or an OAuth access token) that may read the project - a scoped token needs
        the permissions C(project_admin_read) (health) and C(backups_read) (backups). Create one at
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
  services:
    description:
      - The services whose health is checked (the specification's C(services) values). An empty list skips the
        health request.
    type: list
    elements: str
    choices: [auth, db, db_postgres_user, pooler, realtime, rest, storage, pg_bouncer]
    default: [auth, db, pooler, realtime, rest, storage]
  check_backups:
    description: Read and judge the platform backups and point-in-time recovery (V(false) on a plan without backups).
    type: bool
    default: true
  rpo_hours:
    description:
      - Recovery-point objective in hours - C(supabase_backup_age) is critical when the newest restore point is older.
      - The default suits Supabase's daily backups (one a day, plus two hours for the backup itself); with
        point-in-time recovery, set the objective you need (the guides' is 1).
    type: float
    default: 26
  backup_age_warning_hours:
    description:
      - C(supabase_backup_age) is a warning when the newest restore point is older than this (not above
        O(rpo_hours)). Unset, only the objective is judged.
    type: float
  require_pitr:
    description: C(supabase_pitr) is critical when point-in-time recovery is off.
    type: bool
    default: false
  min_pitr_window_days:
    description:
      - C(supabase_pitr) is a warning when the recoverable window is shorter than this many days (for example 7 for
        a 7-day retention). Unset or V(0), the window is only reported.
    type: float
  fail_on_error:
    description:
      - When V(true), a request that fails (no answer, an HTTP error, a malformed answer) fails the task.
      - When V(false), the task returns its findings - C(unknown) for what could not be read and a C(critical)
        C(supabase_api) naming the failure - so a report shows it and the play goes on (the C(health_check) role
        does this).
    type: bool
    default: true
notes:
  - Supabase's Free plan has no platform backups; set O(check_backups=false) there or C(supabase_backup_age) is
    critical.
  - An C(inserted_at) without a time zone is read as UTC, as the Supabase CLI shows it.
seealso:
  - module: appcare.maintenance.http_health_info
    description: Probes the project's REST, Auth, Storage and Edge Functions endpoints from outside.
  - module: appcare.maintenance.pg_backup
    description: Backups of your own, which are not deleted with the project.
  - name: Supabase Management API
    description: The API reference (authentication, rate limits).
    link: https://supabase.com/docs/reference/api/introduction
  - name: Supabase database backups
    description: Daily backups and point-in-time recovery.
    link: https://supabase.com/docs/guides/platform/backups
'''

EXAMPLES = r'''
- name: Daily check of the Supabase project
  appcare.maintenance.supabase_project_info:
    project_ref: abcdefghijklmnopqrst
    access_token: "{{ vault_supabase_access_token }}"
  register: supabase

- name: A project with point-in-time recovery and a one-hour objective
  appcare.maintenance.supabase_project_info:
    project_ref: abcdefghijklmnopqrst
    access_token: "{{ vault_supabase_access_token }}"
    require_pitr: true
    rpo_hours: 1
    backup_age_warning_hours: 0.5
    min_pitr_window_days: 7

- name: Only the services, with the token from SUPABASE_ACCESS_TOKEN, never failing the play
  appcare.maintenance.supabase_project_info:
    project_ref: abcdefghijklmnopqrst
    services: [db, rest, auth]
    check_backups: false
    fail_on_error: false
'''

RETURN = r'''
project_ref:
  description: The project checked.
  returned: always
  type: str
  sample: abcdefghijklmnopqrst
services:
  description: The health of each service of O(services), as answered (V(null) where it could not be read).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The service.
      type: str
      sample: auth
    status:
      description: V(ACTIVE_HEALTHY), V(COMING_UP), V(UNHEALTHY), or what the API answered.
      type: str
      sample: ACTIVE_HEALTHY
    healthy:
      description: The deprecated C(healthy) field.
      type: bool
      sample: true
    error:
      description: The service's error, when it has one.
      type: str
      sample: null
    info:
      description: What the API tells about the service (for auth, its name and version).
      type: dict
      sample: {name: GoTrue, version: v2.170.0, description: GoTrue is a user registration and authentication API}
backups:
  description: The platform backups listed, newest first, with their age; empty when not read.
  returned: always
  type: list
  elements: dict
  sample:
    - {id: 412, status: COMPLETED, is_physical_backup: true, inserted_at: "2026-11-23T02:00:07.000000Z",
       age_hours: 5.5, future_dated: false}
    - {id: 411, status: FAILED, is_physical_backup: true, inserted_at: "2026-11-22T02:00:05.000000Z",
       age_hours: 29.5, future_dated: false}
pitr:
  description:
    - Point-in-time recovery - C(enabled), C(walg_enabled), the recoverable window's C(earliest) and C(latest)
      moments, C(window_days) and C(latest_age_hours) (V(null) unless the window was believable). V(null) when not
      read.
  returned: always
  type: dict
  sample: {enabled: true, walg_enabled: true, earliest: "2026-11-16T07:29:00.000000Z",
           latest: "2026-11-23T07:28:00.000000Z", window_days: 7.0, latest_age_hours: 0.02}
restore_point:
  description: The newest restore point - C(at), C(age_hours), C(source) (V(backup) or V(pitr)); V(null) when none.
  returned: always
  type: dict
  sample: {at: "2026-11-23T07:28:00.000000Z", age_hours: 0.02, source: pitr}
region:
  description: The project's region, as the backups answer names it.
  returned: always
  type: str
  sample: eu-central-1
walg_enabled:
  description: Whether the project's backups are physical (WAL-G).
  returned: always
  type: bool
  sample: true
api:
  description:
    - The requests made - C(url) (O(api_url)), C(requests) (C(method), C(path), C(status), C(attempts),
      C(waited_seconds)) - and C(rate_limit), the newest C(X-RateLimit-*) headers seen (C(limit), C(remaining),
      C(reset)). No header and no token.
  returned: always
  type: dict
  contains:
    url:
      description: O(api_url).
      type: str
    requests:
      description: One entry per request - C(method), C(path), C(status), C(attempts), C(waited_seconds).
      type: list
      elements: dict
    rate_limit:
      description: The newest C(X-RateLimit-Limit), C(-Remaining) and C(-Reset) seen, as numbers; V(null) when none.
      type: dict
  sample:
    url: https://api.supabase.com
    requests:
      - {method: GET, path: /v1/projects/abcdefghijklmnopqrst/health, status: 200, attempts: 1, waited_seconds: 0.0}
    rate_limit: {limit: 120, remaining: 118, reset: 60}
checks:
  description: The findings, in the collection's uniform shape.
  returned: always
  type: list
  elements: dict
  sample:
    - name: supabase_backup_age
      status: ok
      value: 5.5
      unit: hours
      warning: null
      critical: 26
      object: project=abcdefghijklmnopqrst
      message: "newest restore point: backup 412 (physical, completed 2026-11-23T02:00:07.000000Z), 5.5 h ago (RPO 26 h)"
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: ok
report:
  description:
    - What this run adds to the run report of the P(appcare.maintenance.maintenance_report#callback) callback - section
      C(supabase) with C(project_ref), C(services) (name to status), C(pitr_enabled), C(pitr_window_days) and
      C(finished_at), the time of the newest restore point (the report adds its C(age_hours)).
  returned: always
  type: dict
  sample:
    supabase: {project_ref: abcdefghijklmnopqrst, services: {auth: ACTIVE_HEALTHY, db: ACTIVE_HEALTHY},
               pitr_enabled: false, pitr_window_days: null, finished_at: "2026-11-23T02:00:07.000000Z"}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import supabase_api as S
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import AppcareError, failure_message


def main():
    module = AnsibleModule(
        argument_spec=S.management_api_argument_spec(
            services=dict(type='list', elements='str', choices=list(S.SERVICES), default=list(S.DEFAULT_SERVICES)),
            check_backups=dict(type='bool', default=True),
            rpo_hours=dict(type='float', default=26),
            backup_age_warning_hours=dict(type='float'),
            require_pitr=dict(type='bool', default=False),
            min_pitr_window_days=dict(type='float'),
            **C.severity_spec()
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        S.validate_params(params)
        C.validate_severity(params['severity'])
        api = S.client_for(params)
    except AppcareError as exc:
        module.fail_json(msg=failure_message('supabase_project_info', exc))
    result, errors = S.project_info(api, params)
    if errors and params['fail_on_error']:
        module.fail_json(msg='supabase_project_info failed: %s' % '; '.join(str(e) for e in errors), **result)
    C.finish(module, result)


if __name__ == '__main__':
    main()
