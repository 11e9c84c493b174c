#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pg_inspect_info
short_description: Weekly performance review of a PostgreSQL database in one call
version_added: 0.1.0
description:
  - Reviews one database over a single read-only session and returns, per section, the data (sorted, cut to
    O(top_n) where long) and uniform findings (RV(checks)); also RV(metrics), the figures worth keeping in a
    history (see M(appcare.maintenance.metrics_history)).
  - "C(slow_queries) - pg_stat_statements top O(top_n) by total and by mean time with calls, rows, mean/max and
    shared-buffer hit share, and the time of the last statistics reset; finding C(slow_queries) per statement
    whose mean is above 2000 ms (warning), C(unknown) without the extension."
  - "C(index_usage) - unused indexes (no scan since the statistics reset; primary keys, unique and constraint
    indexes are never reported), duplicate indexes (valid indexes on the same table with the same access method,
    key and INCLUDE columns, operator classes, collations, sort order (C(DESC), C(NULLS FIRST)), expressions and
    predicate, and for unique ones the same C(NULLS NOT DISTINCT) and deferrability; a plain index on the key of a
    unique one is its duplicate), invalid indexes; findings C(unused_index), C(duplicate_index), C(invalid_indexes)
    (warning). One recommendation per index: of
    duplicate indexes, C(duplicate_index) keeps the one that backs a constraint (primary key, unique, exclusion,
    or the key a foreign key references), else one that enforces uniqueness, else the most scanned, else the
    first by name, and tells to drop the others only; C(unused_index) knows these groups - an unused duplicate
    is sent to the C(duplicate_index) advice and the copy kept is never told to be dropped - so the advice never
    drops every copy. The indexes of tables an extension owns are left out of both (the extension's to manage)."
  - "C(seq_scans) - tables of at least O(min_table_size) by rows read sequentially; finding C(seq_scans) when
    more than 50 % of a table's scans are sequential (warning)."
  - "C(sizes) - per table heap, indexes, TOAST and total, and the database total; finding C(database_size) (ok,
    informational - judge the size against a quota with M(appcare.maintenance.pg_health_info) or
    M(appcare.maintenance.metrics_history))."
  - "C(bloat) - B(estimated) wasted bytes and share for tables and btree indexes of at least
    O(min_table_size), computed from the statistics (row counts, average column widths, fillfactor) without
    reading a page; it is as fresh as the last ANALYZE and is an estimate, not a measurement (pgstattuple
    measures). Findings C(table_bloat), C(index_bloat) (warning above 30 %, critical above 60 %)."
  - "C(bloat) also applies splinter's C(table_bloat) rule, beside our estimate and under its own name
    C(table_bloat_excessive) (info): splinter's estimate (a 23-byte tuple header and the statistics' average
    widths, aligned to 4 bytes, the null bitmap weighted by the largest null share, pages of the block size
    minus 20 bytes) for every heap table, whatever O(min_table_size); it fires when the table holds more than 70
    B(times) the pages the estimate expects (a ratio, not a percentage) and more than 20 MB of them are waste;
    C(unknown) when a table of more than 20 MB has no column statistics (never analysed, or the login role may
    not SELECT it).
    C(table_bloat) (our percentage, with thresholds) keeps its name and meaning; the two answer different
    questions (how much is wasted, and whether a table is grossly oversized)."
  - "C(vacuum) - dead tuples against each table's autovacuum threshold (per-table settings honoured), hours
    since the last (auto)vacuum and (auto)analyze; findings C(vacuum_overdue) (dead tuples past the threshold,
    warning) and C(autovacuum_disabled) (per table, warning; server-wide, critical)."
  - "C(foreign_keys) - foreign keys without a supporting index: a valid index whose leading key columns are
    the foreign key's columns in the foreign key's order, without a predicate (a partial index, one with the
    columns in another order or only as INCLUDE columns does not count); finding C(unindexed_foreign_key)
    (warning) with the CREATE INDEX that fixes it. Tables an extension owns are left out."
  - "C(primary_keys) - tables (not views, not partitioned parents: their partitions are tables) without a
    primary key; finding C(no_primary_key) (info) per table. A unique constraint is not a primary key."
  - "C(policies) - row level security policies. C(auth_rls_initplan) (warning) per policy, on a table with RLS
    on, whose USING or WITH CHECK calls auth.uid(), auth.jwt(), auth.role(), auth.email() or
    current_setting() other than as the whole target of a sub-select, as in (select auth.uid()): PostgreSQL
    evaluates such a call for every row instead of once per statement. Each call is judged, so one wrapped call
    does not excuse another; the expressions are read with only C(pg_catalog) on the search_path, so the
    functions are always printed with their schema. C(multiple_permissive_policies) (warning) per table, role and
    action (SELECT, INSERT, UPDATE, DELETE; a FOR ALL policy counts for each, a policy for PUBLIC for every role)
    with more than one permissive policy: each is evaluated for every row. Roles that bypass RLS, C(pg_*) and
    C(supabase*admin) roles are left out."
  - "Splinter's PERFORMANCE lints (Supabase's database linter) and their findings here, splinter's level first -
    C(unindexed_foreign_keys) (INFO) is C(unindexed_foreign_key) (warning; stricter: no partial index, columns
    in order, key columns only); C(auth_rls_initplan) (WARN) is C(auth_rls_initplan) (warning);
    C(no_primary_key) (INFO) is C(no_primary_key) (info); C(unused_index) (INFO) is C(unused_index) (warning;
    indexes that back a constraint and those under O(min_unused_index_size) are left out, and duplicates get
    one advice); C(multiple_permissive_policies) (WARN) is C(multiple_permissive_policies) (warning);
    C(duplicate_index) (WARN) is C(duplicate_index) (warning; compared on the catalogue, not on the index's
    definition text); C(table_bloat) (INFO) is C(table_bloat_excessive) (info). O(severity) changes any of
    these levels."
  - "The lints that have splinter's names (C(no_primary_key), C(auth_rls_initplan),
    C(multiple_permissive_policies)) leave out splinter's schemas (C(auth), C(storage), C(extensions),
    C(realtime), C(pgroonga), C(vault) and the other extensions' schemas; C(auth_rls_initplan) keeps
    C(realtime), whose policies on C(realtime.messages) are the application's, as splinter does, but the default
    O(exclude_schemas) leaves it out) as well as O(exclude_schemas), and tables an extension owns; application
    schemas are never left out by either list."
  - "C(cache) - per-table share of heap block reads served from shared buffers, for tables with at least
    O(min_cache_blocks) reads; finding C(table_cache_hit) below 90 % (warning)."
  - "C(connections) - sessions per role and state, and per role against its connection limit; finding
    C(role_connections) (warning above 80 %, critical above 95 % of the role's limit)."
  - Supabase-managed schemas are left out by default (O(exclude_schemas)).
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
    description: Nothing to diff.
options:
  sections:
    description: The sections to run, all by default.
    type: list
    elements: str
    choices: [slow_queries, index_usage, seq_scans, sizes, bloat, vacuum, foreign_keys, primary_keys, policies, cache,
              connections]
  top_n:
    description: How many rows long lists keep.
    type: int
    default: 20
  min_table_size:
    description:
      - Tables and indexes smaller than this are left out of C(seq_scans) and C(bloat) (their figures are noise).
        A size such as V(10MB) or a number of bytes.
    type: str
    default: 10MB
  min_unused_index_size:
    description: Unused indexes smaller than this are not reported.
    type: str
    default: '0'
  min_cache_blocks:
    description: Tables with fewer heap block reads than this are left out of C(cache).
    type: int
    default: 1000
  thresholds:
    description:
      - Overrides of C(warning)/C(critical) for C(slow_queries) (ms), C(seq_scans) (percent),
        C(table_bloat) and C(index_bloat) (percent), C(table_cache_hit) (percent, a smaller value is worse) and
        C(role_connections) (percent). Unknown names and keys are rejected.
    type: dict
    default: {}
notes:
  - O(exclude_schemas) applies to every section that lists tables, indexes or foreign keys.
seealso:
  - module: appcare.maintenance.metrics_history
  - module: appcare.maintenance.pg_health_info
  - module: appcare.maintenance.pg_reindex
  - module: appcare.maintenance.pg_vacuum
'''

EXAMPLES = r'''
- name: Weekly performance review
  appcare.maintenance.pg_inspect_info:
    login_host: db.ims.example.org
    login_user: ims_monitor
    login_password: "{{ vault_ims_monitor_password }}"
    login_db: ims
  register: review

- name: Keep the figures and forecast the growth (on the controller)
  appcare.maintenance.metrics_history:
    dest: "{{ playbook_dir }}/history"
    target: "{{ inventory_hostname }}"
    metrics: "{{ review.metrics }}"
    size_quota: 8GB
  delegate_to: localhost

- name: Only the slow queries and unindexed foreign keys, top 5
  appcare.maintenance.pg_inspect_info:
    login_db: ims
    sections: [slow_queries, foreign_keys]
    top_n: 5
'''

RETURN = r'''
checks:
  description: The findings of the sections that ran (see the description), in the collection's uniform shape.
  returned: always
  type: list
  elements: dict
  sample:
    - name: unindexed_foreign_key
      status: warning
      value: null
      unit: null
      warning: null
      critical: null
      object: constraint=public.documents.documents_application_id_fkey
      message: "foreign key documents_application_id_fkey on public.documents (application_id) has no index that
        starts with its columns in their order and covers every row (no predicate): deletes and updates in
        applications scan public.documents; CREATE INDEX CONCURRENTLY ON public.documents (application_id)"
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: warning
sections:
  description:
    - The data of each section that ran, by section name, plus C(stats_reset) (when the database's statistics were
      last reset - "unused" means unused since then).
  returned: always
  type: dict
  sample:
    stats_reset: null
    slow_queries: {by_total_time: [{queryid: "-4032", query: "SELECT ...", role: ims_app, calls: 12000, rows: 12000,
                                    total_ms: 9300.5, mean_ms: 0.8, max_ms: 40.2, hit_percent: 99.9}],
                   by_mean_time: [], stats_reset: "2026-11-01T00:00:00+00:00"}
    index_usage: {unused: [{index: public.idx_old, table: public.applications, scans: 0, bytes: 1302528}],
                  duplicates: [{keep: public.applications_pkey, redundant: [public.applications_id_idx],
                                bytes: 270336}],
                  invalid: []}
    sizes: {database_bytes: 52117504, table_count: 3, tables: [{table: public.documents, heap_bytes: 3219456,
            index_bytes: 1351680, toast_bytes: 8192, total_bytes: 4579328}]}
    bloat: {method: estimate from statistics, tables: [], indexes: [],
            excessive: [{table: public.events, pages: 6637, ratio: 112.5, wasted_bytes: 53886976}]}
    primary_keys: {without: [{table: public.audit_trail, bytes: 8192}]}
    policies: {per_row_calls: [{policy: own_notes, table: public.notes, command: SELECT, calls: [auth.uid()]}],
               multiple_permissive: [{table: public.docs, role: authenticated, action: SELECT,
                                      policies: [read_own, read_public]}]}
metrics:
  description: Figures for the history - C(database_size), C(table_count), C(largest_tables), C(connections),
    C(cache_hit_ratio), C(slow_queries), C(dead_tuples) (those of the sections that ran).
  returned: always
  type: dict
  sample: {database_size: 52117504, table_count: 3, connections: 4, cache_hit_ratio: 99.2, slow_queries: 0,
           dead_tuples: 120, largest_tables: {public.documents: 4579328}}
report:
  description:
    - What this run adds to the run report of the P(appcare.maintenance.maintenance_report#callback) callback (the
      callback's C(report) convention) - section C(metrics) (RV(metrics), merged into the target's metrics), or
      nothing when no section measured any.
  returned: always
  type: dict
  contains:
    metrics:
      description: RV(metrics).
      returned: when RV(metrics) is not empty
      type: dict
  sample:
    metrics: {database_size: 52117504, table_count: 3, connections: 4, cache_hit_ratio: 99.2}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import review as RV
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
        sections=dict(type='list', elements='str', choices=RV.SECTIONS),
        top_n=dict(type='int', default=20),
        min_table_size=dict(type='str', default='10MB'),
        min_unused_index_size=dict(type='str', default='0'),
        min_cache_blocks=dict(type='int', default=1000),
        thresholds=dict(type='dict', default={}),
    )
    argument_spec.update(C.severity_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        if params['top_n'] < 1:
            raise ConfigurationError('top_n must be at least 1, got %s' % params['top_n'])
        if params['min_cache_blocks'] < 0:
            raise ConfigurationError('min_cache_blocks must be 0 or more, got %s' % params['min_cache_blocks'])
        params['_min_table_bytes'] = C.parse_size(params['min_table_size'], 'min_table_size')
        params['_min_index_bytes'] = C.parse_size(params['min_unused_index_size'], 'min_unused_index_size') or 0
        thresholds = C.merge_thresholds(RV.DEFAULT_THRESHOLDS, params['thresholds'])
        C.validate_severity(params['severity'])
        connect_kwargs(params, 'validation only')
    except ConfigurationError as exc:
        module.fail_json(msg='invalid options: %s' % exc)
    selected = params['sections'] or RV.SECTIONS

    try:
        with Session(params, 'appcare.maintenance.pg_inspect_info', read_only=True) as session:
            review = RV.Inspection(session, params, thresholds)
            findings = list(review.run(selected))
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('performance review', exc))
    C.finish(module, dict(changed=False, checks=findings, sections=review.data, metrics=review.metrics,
                          report=dict(metrics=review.metrics) if review.metrics else {}))


if __name__ == '__main__':
    main()
