#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pg_audit_info
short_description: Security and access audit of a PostgreSQL or Supabase database
version_added: 0.1.0
description:
  - Audits one database over a single read-only session - roles and privileges, authentication settings and
    C(pg_hba.conf) rules, schema and function hygiene, what the Supabase / PostgREST API roles can reach,
    authentication events - and returns uniform findings (RV(checks)) with the worst status.
  - Returns an access RV(snapshot) (roles, attributes, memberships, grants on schemas, tables, views,
    sequences and functions) and, given the snapshot of an earlier run as O(baseline), reports what changed.
    The module never writes the snapshot itself; store it with a task of your own (see the examples).
  - Each check returns one finding per offending object (role, rule, table, view, function, address) when
    it fires, one C(ok) finding when it does not, and one C(unknown) finding naming the missing privilege when
    the login role cannot read what it needs. The other checks still complete.
  - "Severities. Critical: C(superusers) (superuser not in O(allowed_superusers)); C(password_hashes) for a
    plain-text password; C(passwordless_logins) (login role without password reachable through a C(trust) rule
    that admits network addresses); C(hba_rules) for C(trust) on a rule that admits network addresses, or
    C(password) on a rule that is not C(hostssl); C(new_superusers); and splinter's ERROR lints
    C(auth_users_exposed), C(policy_exists_rls_disabled), C(security_definer_view), C(rls_disabled_in_public),
    C(rls_references_user_metadata), C(insecure_queue_exposed_in_api), C(fkey_to_auth_unique),
    C(sensitive_columns_exposed). Warning: C(privileged_roles) (CREATEROLE,
    CREATEDB, BYPASSRLS or REPLICATION outside O(allowed_privileged_roles)); C(password_hashes) for MD5;
    C(untrusted_languages); C(ssl) off; C(password_encryption) not scram-sha-256; C(log_connections) /
    C(log_disconnections) off; C(passwordless_logins) and C(hba_rules) for C(trust) on a C(local) (Unix socket) rule or
    a C(host*) rule that admits only loopback addresses (127.0.0.0/8, ::1) - the exposure is local users, anyone
    with a shell on the server host; C(hba_rules) for C(md5), C(password) on C(hostssl), a rule open to every address, or a line that does
    not parse; C(public_schema_create) (PUBLIC may create in schema public; the finding names who granted it and
    calls it the old default only before PostgreSQL 15, when the schema's owner granted it, or on 15 and later
    when the schema is not owned by pg_database_owner, as after an upgrade); C(roles_added); C(roles_removed);
    C(role_attributes_changed); C(memberships_changed); C(grants_changed); and splinter's WARN lints
    C(function_search_path_mutable) (the message says when the function is SECURITY DEFINER, the dangerous case),
    C(extension_in_public), C(materialized_view_in_api), C(foreign_table_in_api), C(unsupported_reg_types),
    C(extension_versions_outdated), C(rls_policy_always_true), C(public_bucket_allows_listing),
    C(pg_graphql_anon_table_exposed), C(pg_graphql_authenticated_table_exposed),
    C(anon_security_definer_function_executable), C(authenticated_security_definer_function_executable). Info
    (status C(info), advice - shown apart from C(ok), never an alert): splinter's INFO lint C(rls_enabled_no_policy).
    By threshold (see O(thresholds)):
    C(failed_logins) (per client address, warning 10, critical 50 in the window), C(auth_new_addresses) (warning
    20), C(auth_repeated_signups) (warning 10, critical 50), C(auth_signup_burst) (sign-ups in one hour, warning
    50, critical 200), C(auth_token_revocations) (revocations beyond refresh rotation in one hour, warning 50,
    critical 200), C(auth_signin_burst) (sign-ins from one address within O(auth_signin_window_minutes), warning
    30, critical 150), C(auth_address_accounts) (different accounts signing in from one address within that
    window, warning 10, critical 50), C(auth_account_addresses) (different addresses one account signs in from
    within that window, warning 3, critical 10), C(auth_account_new_addresses) (addresses an account signed in
    from inside O(log_window_hours) and not in the O(auth_lookback_days) before, warning 2)."
  - "Every security lint of Supabase's database linter (splinter) is a check of the same name, with splinter's
    level (ERROR critical, WARN warning, INFO info) and conditions, so findings can be cross-referenced with the
    Supabase dashboard's advisors: 0002 C(auth_users_exposed), 0007 C(policy_exists_rls_disabled), 0008
    C(rls_enabled_no_policy), 0010 C(security_definer_view), 0011 C(function_search_path_mutable), 0013
    C(rls_disabled_in_public), 0014 C(extension_in_public), 0015 C(rls_references_user_metadata), 0016
    C(materialized_view_in_api), 0017 C(foreign_table_in_api), 0018 C(unsupported_reg_types), 0019
    C(insecure_queue_exposed_in_api), 0021 C(fkey_to_auth_unique), 0022 C(extension_versions_outdated), 0023
    C(sensitive_columns_exposed), 0024 C(rls_policy_always_true), 0025 C(public_bucket_allows_listing), 0026
    C(pg_graphql_anon_table_exposed), 0027 C(pg_graphql_authenticated_table_exposed), 0028
    C(anon_security_definer_function_executable), 0029 C(authenticated_security_definer_function_executable).
    Its performance lints are appcare.maintenance.pg_inspect_info's; 0012 (anonymous sign-ins) is a setting of
    the Auth service, not in the database. The README's lint catalogue lists all of them."
  - "Scope, as splinter's. The lints about what the API serves (C(rls_disabled_in_public),
    C(security_definer_view), C(materialized_view_in_api), C(foreign_table_in_api), C(sensitive_columns_exposed),
    C(auth_users_exposed), C(anon_security_definer_function_executable),
    C(authenticated_security_definer_function_executable)) look at the exposed schemas (see O(exposed_schemas))
    and, except C(auth_users_exposed), leave out O(exclude_schemas) (and the views, materialized views and
    foreign tables extensions own);
    C(insecure_queue_exposed_in_api) looks at the C(pgmq) queue tables when C(pgmq_public) is exposed. The RLS
    and policy lints (C(policy_exists_rls_disabled), C(rls_enabled_no_policy), C(rls_references_user_metadata),
    C(rls_policy_always_true)), C(function_search_path_mutable) and the pg_graphql lints look at every schema but
    O(exclude_schemas). C(unsupported_reg_types) and C(fkey_to_auth_unique) look at every schema. The checks
    about what an API role may do apply only when that role exists (one of O(api_roles), or C(anon) /
    C(authenticated) for the lints named after them); the pg_graphql lints only when the C(pg_graphql) extension
    is installed; C(public_bucket_allows_listing) only when C(storage.buckets) exists."
  - "Exceptions: C(function_search_path_mutable) leaves out aggregates (they cannot be given a search_path; their
    support functions are linted themselves); where splinter is narrower by accident we are not (partitioned
    tables count as tables; C(rls_references_user_metadata) also takes C(raw_user_meta_data) of C(auth.users),
    the same user-editable data)."
  - "Failed logins come from the PostgreSQL server log when O(log_path) is given (read on the host the module
    runs on): password and other authentication failures and connections refused by pg_hba.conf, per client
    address and per user, inside O(log_window_hours). Supported: the C(stderr) format with a
    C(log_line_prefix) that starts with C(%m) or C(%t) and holds C([%p]) (the default C('%m [%p] ')), and
    C(jsonlog). The client address comes from C(%h)/C(%r) in the prefix, the refusal message, or the
    C(connection received) line that C(log_connections = on) writes."
  - "Supabase Auth events come from C(auth.audit_log_entries) when it exists. Supabase Auth (GoTrue) writes
    only successful actions there - C(login), C(logout), C(user_signedup), C(user_repeated_signup),
    C(user_recovery_requested), C(token_refreshed), C(token_revoked), C(user_modified), C(user_deleted),
    MFA and identity actions - and nothing when C(GOTRUE_AUDIT_LOG_DISABLE_POSTGRES) is set. Failed sign-ins and
    rate-limited (HTTP 429) requests are B(not) in that table; they are only in the Auth service's logs. Every
    token refresh writes C(token_refreshed) and C(token_revoked) (for the replaced token), so
    C(auth_token_revocations) counts only revocations beyond refreshes (sign-outs, refresh-token reuse)."
  - "Suspicious sign-ins (the weekly review of suspicious IP addresses) count the C(login) action of
    C(auth.audit_log_entries) - one per successful sign-in by password, one-time code, magic link, OAuth or SSO;
    C(mfa_code_login), the second factor of a sign-in already counted, is not counted again. The account is
    the payload's C(actor_id) (named with C(actor_username), its e-mail or phone, where Auth wrote one), the
    address the C(ip_address) column; rows without either are left out. The database counts over a sliding
    window of O(auth_signin_window_minutes) ending at every sign-in, so large logs are not read into the
    module. C(auth_signin_burst) and C(auth_address_accounts) give one finding per address (C(address=...)),
    C(auth_account_addresses) and C(auth_account_new_addresses) one per account (C(account=<actor_id>)), with
    the counts in the window and the first and last sign-in in O(log_window_hours); the 50 worst are named and
    the message says how many more are over the threshold. C(auth_account_new_addresses) judges only accounts
    that signed in during the O(auth_lookback_days) before the window (for the others every address would be
    new) and is C(unknown) (not enough history) while the audit log is younger than the window plus those days.
    All four are C(unknown) when the audit log holds no sign-in while C(auth.users) shows recent ones."
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.connection
  - appcare.maintenance.schemas
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes against the baseline are returned in RV(changes) and as findings.
options:
  checks:
    description:
      - The checks to run, all by default. The C(failed_logins) check needs O(log_path); the C(auth_*) checks
        run only when C(auth.audit_log_entries) exists; the baseline checks only with O(baseline).
      - C(security_definer_search_path) is the old name of C(function_search_path_mutable) (which covers every
        function, not only SECURITY DEFINER ones); it still works, with a deprecation warning, and will be refused
        in a future release.
    type: list
    elements: str
    choices: [superusers, privileged_roles, password_hashes, passwordless_logins, untrusted_languages, ssl,
              password_encryption, log_connections, log_disconnections, hba_rules, public_schema_create,
              function_search_path_mutable, extension_in_public, extension_versions_outdated, unsupported_reg_types,
              auth_users_exposed, policy_exists_rls_disabled, rls_enabled_no_policy, security_definer_view,
              rls_disabled_in_public, rls_references_user_metadata, materialized_view_in_api, foreign_table_in_api,
              insecure_queue_exposed_in_api, fkey_to_auth_unique, sensitive_columns_exposed, rls_policy_always_true,
              public_bucket_allows_listing, pg_graphql_anon_table_exposed, pg_graphql_authenticated_table_exposed,
              anon_security_definer_function_executable, authenticated_security_definer_function_executable,
              failed_logins, auth_new_addresses,
              auth_repeated_signups, auth_signup_burst, auth_token_revocations, auth_signin_burst,
              auth_address_accounts, auth_account_addresses, auth_account_new_addresses, new_superusers, roles_added,
              roles_removed, role_attributes_changed, memberships_changed, grants_changed,
              security_definer_search_path]
  thresholds:
    description:
      - Per-check overrides of C(warning) and/or C(critical) for the checks judged by a number
        (C(failed_logins), C(auth_new_addresses), C(auth_repeated_signups), C(auth_signup_burst),
        C(auth_token_revocations), C(auth_signin_burst), C(auth_address_accounts), C(auth_account_addresses),
        C(auth_account_new_addresses)). Unknown names and keys are rejected.
      - "For example C({auth_signin_burst: {warning: 100, critical: null}}) where many users share one office
        or carrier address."
    type: dict
    default: {}
  allowed_superusers:
    description:
      - Roles allowed to be superusers.
    type: list
    elements: str
    default: [postgres, supabase_admin]
  allowed_privileged_roles:
    description:
      - Roles allowed to have CREATEROLE, CREATEDB, BYPASSRLS or REPLICATION. The default lists C(postgres) and
        the roles Supabase creates with such attributes.
    type: list
    elements: str
    default: [postgres, supabase_admin, supabase_auth_admin, supabase_storage_admin, supabase_replication_admin,
              supabase_realtime_admin, supabase_read_only_user, supabase_etl_admin, dashboard_user, service_role,
              authenticator]
  exposed_schemas:
    description:
      - Schemas the API (PostgREST / Supabase Data API) serves, used when the database does not say. Like
        splinter, the module first reads the setting C(pgrst.db_schemas) (comma-separated) as its session sees it
        (set for the database or the login role), then the value stored for role C(authenticator) (PostgREST's
        in-database configuration, C(ALTER ROLE authenticator SET pgrst.db_schemas = ...)); a value that names no
        schema counts as unset. RV(exposed_schemas) says which source was used.
    type: list
    elements: str
    default: [public]
  api_roles:
    description:
      - Roles the API uses for requests; those that exist are checked with C(has_table_privilege).
    type: list
    elements: str
    default: [anon, authenticated]
  log_path:
    description:
      - The PostgreSQL server log file, or its log directory (files modified inside the window are read), on the
        host the module runs on. Without it C(failed_logins) does not run.
    type: path
  log_window_hours:
    description:
      - The window for failed logins and Supabase Auth events, in hours (default one week, the weekly audit).
    type: float
    default: 168
  auth_lookback_days:
    description:
      - For C(auth_new_addresses) - an address is new when it signed in inside the window and not in this many
        days before it.
      - When C(auth.audit_log_entries) holds less history than O(log_window_hours) plus these days,
        C(auth_new_addresses) is C(unknown) (not enough history) rather than counting every address as new.
      - The same days are the history of each account for C(auth_account_new_addresses).
    type: int
    default: 30
  auth_signin_window_minutes:
    description:
      - The sliding window, in minutes, of C(auth_signin_burst), C(auth_address_accounts) and
        C(auth_account_addresses) - their thresholds count sign-ins, accounts or addresses inside any window this
        long within O(log_window_hours). More than 0, at most 1440.
    type: float
    default: 15
  baseline:
    description:
      - The access snapshot of an earlier run - the RV(snapshot) dict itself (for example
        C("{{ lookup('file', 'access/ims.json') | from_json }}") to read it on the controller), or the path of a
        JSON file with it on the host the module runs on.
    type: raw
notes:
  - O(exclude_schemas) applies to the grants in the snapshot and to the lints as described above (Scope).
seealso:
  - module: appcare.maintenance.pg_health_info
  - name: Supabase database linter
    description: The lints whose names, levels and conditions are reused here.
    link: https://supabase.com/docs/guides/database/database-linter
  - name: splinter
    description: The linter's source, one SQL file per lint.
    link: https://github.com/supabase/splinter
  - name: Supabase Auth audit logs
    description: What auth.audit_log_entries holds.
    link: https://supabase.com/docs/guides/auth/audit-logs
'''

EXAMPLES = r'''
- name: Weekly security audit, compared with last week's access snapshot
  appcare.maintenance.pg_audit_info:
    login_host: db.ims.example.org
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
    login_db: ims
    log_path: /var/log/postgresql/postgresql-15-main.log
    baseline: "{{ lookup('ansible.builtin.file', 'access/ims.json', errors='ignore') | default('null', true) | from_json }}"
  register: audit

- name: Keep this week's snapshot as the next baseline (on the controller)
  ansible.builtin.copy:
    content: "{{ audit.snapshot | to_nice_json }}"
    dest: access/ims.json
    mode: "0600"
  delegate_to: localhost

- name: A Supabase project's API exposure only, as a monitoring role
  appcare.maintenance.pg_audit_info:
    login_host: db.abcdefghijklmnop.supabase.co
    login_user: postgres
    login_password: "{{ vault_supabase_db_password }}"
    checks: [rls_disabled_in_public, policy_exists_rls_disabled, security_definer_view, auth_users_exposed]
    exposed_schemas: [public, api]
'''

RETURN = r'''
checks:
  description: The findings, in the collection's uniform shape (see the severity table in the description).
  returned: always
  type: list
  elements: dict
  sample:
    - name: rls_disabled_in_public
      status: critical
      value: null
      unit: null
      warning: null
      critical: null
      object: table=public.applications
      message: "table public.applications is readable by anon, authenticated through the API and row-level security
        is off, so every row is public; ALTER TABLE public.applications ENABLE ROW LEVEL SECURITY and add policies"
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: critical
exposed_schemas:
  description:
    - The schemas the API lints took as exposed - C(schemas) - and where they came from - C(source) - V(setting)
      (C(pgrst.db_schemas) as the module's session sees it), V(authenticator) (C(pgrst.db_schemas) stored for role
      C(authenticator)) or V(option) (O(exposed_schemas)).
  returned: always
  type: dict
  sample: {schemas: [public, graphql_public], source: setting}
login:
  description: Who audited - C(login_role), C(superuser), C(database), C(server_version_num).
  returned: always
  type: dict
  sample: {login_role: postgres, superuser: true, database: ims, server_version_num: 150008}
snapshot:
  description:
    - The access snapshot (C(format) appcare.access/1) - C(roles) with their attributes and memberships, and
      C(grants) as sorted strings such as C(SELECT ON table public.applications TO anon). No password hashes.
    - Store it and pass it as O(baseline) next time.
  returned: always
  type: dict
  sample:
    format: appcare.access/1
    taken_at: "2026-11-23T02:00:00+00:00"
    database: ims
    roles:
      ims_monitor: {superuser: false, login: true, inherit: true, createrole: false, createdb: false,
                    replication: false, bypassrls: false, connection_limit: -1, valid_until: null,
                    member_of: [pg_monitor]}
    grants: ["SELECT ON table public.applications TO ims_reader", "USAGE ON schema public TO PUBLIC"]
changes:
  description: What changed since O(baseline) - C(roles_added), C(roles_removed), C(new_superusers),
    C(role_attributes_changed), C(memberships_changed), C(grants_added), C(grants_removed).
  returned: when O(baseline) is given
  type: dict
  sample: {roles_added: [intruder], new_superusers: [intruder], roles_removed: [], role_attributes_changed: [],
           memberships_changed: [], grants_added: ["ALL ON table public.applications TO intruder"], grants_removed: []}
failed_logins:
  description: Failed logins in the window - C(by_address) (address, failures, users, first, last), C(by_user),
    C(files) read and C(lines_read).
  returned: when O(log_path) is readable
  type: dict
  sample: {window_hours: 168, files: [/var/log/postgresql/postgresql-15-main.log], lines_read: 5231,
           by_address: [{address: 203.0.113.9, failures: 57, users: [admin, postgres, root],
                         first: "2026-11-22T03:10:00+00:00", last: "2026-11-22T03:12:41+00:00"}],
           by_user: {postgres: 40, admin: 10, root: 7}}
auth_events:
  description:
    - Supabase Auth activity in the window - C(actions) (count per action), C(sign_ins_by_address),
      C(new_addresses).
    - With the sign-in checks also C(signin_window_minutes); C(signins_by_address) (up to 50 addresses, most
      sign-ins in one window first - C(address), C(sign_ins) and C(accounts) in O(log_window_hours),
      C(peak_sign_ins) and C(peak_accounts) in one window, C(first), C(last)); C(signins_by_account) (accounts
      that used more than one address, up to 50 - C(account), C(username), C(sign_ins), C(addresses),
      C(peak_addresses), C(first), C(last)).
  returned: when auth.audit_log_entries exists and is readable
  type: dict
  sample: {window_hours: 168, actions: {login: 310, token_refreshed: 2200, token_revoked: 2215},
           sign_ins_by_address: [{address: 198.51.100.7, sign_ins: 120, last: "2026-11-23T01:00:00+00:00"}],
           new_addresses: [203.0.113.50]}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import access as AC
from ansible_collections.appcare.maintenance.plugins.module_utils import audit as A
from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    Session,
    connect_kwargs,
    connection_argument_spec,
    failure_message,
)
from ansible_collections.appcare.maintenance.plugins.module_utils.schemas import exclude_schemas_spec


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(exclude_schemas_spec())
    argument_spec.update(
        checks=dict(type='list', elements='str', choices=A.ALL_CHECKS + list(A.RENAMED_CHECKS)),
        thresholds=dict(type='dict', default={}),
        allowed_superusers=dict(type='list', elements='str', default=list(A.DEFAULT_ALLOWED_SUPERUSERS)),
        allowed_privileged_roles=dict(type='list', elements='str', default=list(A.DEFAULT_ALLOWED_PRIVILEGED)),
        exposed_schemas=dict(type='list', elements='str', default=['public']),
        api_roles=dict(type='list', elements='str', default=['anon', 'authenticated']),
        log_path=dict(type='path'),
        log_window_hours=dict(type='float', default=168),
        auth_lookback_days=dict(type='int', default=30),
        auth_signin_window_minutes=dict(type='float', default=15),
        baseline=dict(type='raw'),
    )
    argument_spec.update(C.severity_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    try:
        A.validate(params)
        thresholds = C.merge_thresholds(A.DEFAULT_THRESHOLDS, params['thresholds'])
        C.validate_severity(params['severity'])
        baseline = AC.load_baseline(params['baseline'])
        connect_kwargs(params, 'validation only')
    except ConfigurationError as exc:
        module.fail_json(msg='invalid options: %s' % exc)
    selected, renamed = A.renamed_checks(params['checks'] or A.ALL_CHECKS)
    for notice in renamed:
        module.deprecate(notice, version='1.0.0', collection_name='appcare.maintenance')

    result = dict(changed=False)
    try:
        with Session(params, 'appcare.maintenance.pg_audit_info', read_only=True) as session:
            audit = A.Audit(session, params, thresholds)
            audit.run(selected)
            audit.run_events(selected)
            snapshot = AC.take(session, audit.roles(), audit.exclude, utcnow().isoformat())
            result.update(snapshot=snapshot, exposed_schemas=audit.facts['exposed_schemas'],
                          login=dict((k, audit.facts[k]) for k in ('login_role', 'superuser', 'database',
                                                                   'server_version_num')))
            if baseline is not None:
                changes = AC.diff(baseline, snapshot)
                result['changes'] = changes
                audit.findings.extend(AC.findings(changes, baseline, selected, params['login_db']))
            for key in ('failed_logins', 'auth_events'):
                if key in audit.facts:
                    result[key] = audit.facts[key]
            result['checks'] = list(audit.findings)
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('security audit', exc))
    C.finish(module, result)


if __name__ == '__main__':
    main()
