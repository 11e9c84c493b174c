# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_inspect_info covers every PERFORMANCE lint of Supabase's linter (splinter), against real PostgreSQL 18 and 15
servers: each lint where it fires and its clean counterpart where it stays quiet.

splinter's lint -> our finding: ``no_primary_key`` (INFO -> info), ``auth_rls_initplan`` (WARN -> warning),
``multiple_permissive_policies`` (WARN -> warning), ``table_bloat`` (INFO -> ``table_bloat_excessive``, info),
``unindexed_foreign_keys`` (-> ``unindexed_foreign_key``), ``unused_index``, ``duplicate_index``.
"""

from __future__ import annotations

from conftest import wait_until
from supabase_like import supabase_like


def by_object(result, name):
    return dict((c['object'], c) for c in result['checks'] if c['name'] == name)


def fired(result, name):
    return dict((c['object'], c) for c in result['checks'] if c['name'] == name and c['status'] != 'ok')


def quiet(result, name):
    found = [c for c in result['checks'] if c['name'] == name]
    assert len(found) == 1 and found[0]['status'] == 'ok', found
    return found[0]


# -- no_primary_key (splinter 0004, INFO) ----------------------------------------------------------------------------

def test_no_primary_key_is_advice_per_table(target):
    target.sql('CREATE TABLE public.events (at timestamptz, what text)')
    target.sql('CREATE TABLE public.keyed (id int PRIMARY KEY)')
    target.sql('CREATE TABLE public.unique_only (code text UNIQUE NOT NULL)')  # a unique key is not a primary key
    target.sql('CREATE SCHEMA app')
    target.sql('CREATE TABLE app.imports (line text)')
    target.sql('CREATE TABLE public.measures (at date, v int) PARTITION BY RANGE (at)')  # partitioned: its partitions
    target.sql("CREATE TABLE public.measures_2026 PARTITION OF public.measures FOR VALUES FROM ('2026-01-01') TO "
               "('2027-01-01')")
    result = target.run('pg_inspect_info', sections=['primary_keys'])
    assert result.rc == 0, result.raw
    found = fired(result, 'no_primary_key')
    assert set(found) == {'table=public.events', 'table=public.unique_only', 'table=app.imports',
                          'table=public.measures_2026'}, found
    assert all(c['status'] == 'info' for c in found.values())
    assert result['status'] == 'info'  # advice: never worse than info
    assert 'ADD PRIMARY KEY' in found['table=public.events']['message']
    assert {r['table'] for r in result['sections']['primary_keys']['without']} == {
        'public.events', 'public.unique_only', 'app.imports', 'public.measures_2026'}


def test_no_primary_key_quiet_when_every_table_has_one(target):
    target.sql('CREATE TABLE public.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, what text)')
    target.sql('CREATE TABLE public.pairs (a int, b int, PRIMARY KEY (a, b))')
    result = target.run('pg_inspect_info', sections=['primary_keys'])
    quiet(result, 'no_primary_key')
    assert result['sections']['primary_keys'] == {'without': []}


def test_splinter_lints_leave_out_splinters_schemas_ours_and_extension_tables(target):
    # pgroonga: splinter leaves it out, our default does not; _supavisor: ours does, splinter's does not;
    # app: an application schema, reported by both; an extension's table is left out wherever it is.
    for schema in ('pgroonga', '_supavisor', 'app'):
        target.sql('CREATE SCHEMA %s' % schema)
        target.sql('CREATE TABLE %s.loose (v int)' % schema)
    target.sql('CREATE TABLE public.ext_owned (v int)')
    target.sql('ALTER EXTENSION pg_stat_statements ADD TABLE public.ext_owned')
    target.sql('CREATE TABLE public.mine (v int)')
    default = target.run('pg_inspect_info', sections=['primary_keys'])
    assert set(fired(default, 'no_primary_key')) == {'table=app.loose', 'table=public.mine'}
    everything = target.run('pg_inspect_info', sections=['primary_keys'], exclude_schemas=[])
    assert set(fired(everything, 'no_primary_key')) == {'table=app.loose', 'table=public.mine', 'table=_supavisor.loose'}
    mine = target.run('pg_inspect_info', sections=['primary_keys'], exclude_schemas=['app'])
    assert set(fired(mine, 'no_primary_key')) == {'table=public.mine', 'table=_supavisor.loose'}


# -- auth_rls_initplan (splinter 0003, WARN) ------------------------------------------------------------------------

def notes_table(target):
    supabase_like(target)
    target.sql('CREATE TABLE public.notes (id int PRIMARY KEY, owner uuid, editor uuid, team text, body text)')
    target.sql('ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY')


def test_auth_rls_initplan_fires_for_calls_evaluated_per_row(target):
    notes_table(target)
    target.sql('CREATE POLICY bare_uid ON public.notes FOR SELECT TO authenticated USING (owner = auth.uid())')
    target.sql("CREATE POLICY bare_setting ON public.notes FOR INSERT TO authenticated "
               "WITH CHECK (team = current_setting('app.team', true))")
    target.sql("CREATE POLICY bare_jwt_in_check ON public.notes FOR UPDATE TO authenticated "
               "USING (owner = (select auth.uid())) WITH CHECK ((auth.jwt() ->> 'role') = 'editor')")
    # one wrapped call does not excuse another that is not (splinter's text match would let this one pass)
    target.sql('CREATE POLICY half_wrapped ON public.notes FOR DELETE TO authenticated '
               'USING (owner = (select auth.uid()) OR editor = auth.uid())')
    # a correlated sub-query runs for each row too, and auth.role() inside it with it
    target.sql('CREATE TABLE public.members (team text, user_id uuid, role text)')
    target.sql('CREATE POLICY in_subquery ON public.notes FOR SELECT TO anon USING (EXISTS (SELECT 1 FROM public.members m '
               'WHERE m.team = notes.team AND m.role = auth.role()))')
    result = target.run('pg_inspect_info', sections=['policies'])
    assert result.rc == 0, result.raw
    found = fired(result, 'auth_rls_initplan')
    assert set(found) == {'policy=public.notes.%s' % name for name in
                          ('bare_uid', 'bare_setting', 'bare_jwt_in_check', 'half_wrapped', 'in_subquery')}, found
    assert all(c['status'] == 'warning' for c in found.values())
    assert 'calls auth.uid() for every row' in found['policy=public.notes.bare_uid']['message']
    assert '(select auth.uid())' in found['policy=public.notes.bare_uid']['message']
    assert 'current_setting()' in found['policy=public.notes.bare_setting']['message']
    assert 'auth.jwt()' in found['policy=public.notes.bare_jwt_in_check']['message']
    calls = dict((r['policy'], r['calls']) for r in result['sections']['policies']['per_row_calls'])
    assert calls['bare_jwt_in_check'] == ['auth.jwt()']  # its auth.uid() is wrapped
    assert calls['half_wrapped'] == ['auth.uid()'] and calls['bare_setting'] == ['current_setting()']
    assert '(select current_setting(...))' in found['policy=public.notes.bare_setting']['message']
    assert 'auth.role()' in found['policy=public.notes.in_subquery']['message']


def test_auth_rls_initplan_quiet_when_every_call_is_a_sub_select(target):
    notes_table(target)
    target.sql('CREATE POLICY own ON public.notes FOR SELECT TO authenticated USING (owner = (select auth.uid()))')
    target.sql("CREATE POLICY editors ON public.notes FOR UPDATE TO authenticated USING (owner = (select auth.uid())) "
               "WITH CHECK ((select auth.jwt() ->> 'role') = 'editor' AND team = (select current_setting('app.team')))")
    target.sql("CREATE POLICY by_mail ON public.notes FOR DELETE TO authenticated USING (body = (select auth.email()))")
    # RLS off: the policy is never applied, as splinter the lint leaves it alone
    target.sql('CREATE TABLE public.drafts (id int PRIMARY KEY, owner uuid)')
    target.sql('CREATE POLICY bare ON public.drafts USING (owner = auth.uid())')
    # whatever search_path the review's session gets, auth.uid() is recognised (pg_get_expr prints uid() when auth
    # is on the search_path)
    target.sql('ALTER DATABASE %s SET search_path = auth, public' % target.dbname)
    result = target.run('pg_inspect_info', sections=['policies'])
    check = quiet(result, 'auth_rls_initplan')
    assert 'no policy of the 3' in check['message']
    target.sql('ALTER TABLE public.drafts ENABLE ROW LEVEL SECURITY')
    after = target.run('pg_inspect_info', sections=['policies'])
    assert set(fired(after, 'auth_rls_initplan')) == {'policy=public.drafts.bare'}


# -- multiple_permissive_policies (splinter 0006, WARN) ---------------------------------------------------------------

def test_multiple_permissive_policies_per_table_role_and_action(target):
    supabase_like(target)
    target.sql('CREATE TABLE public.docs (id int PRIMARY KEY, owner uuid, public boolean)')
    target.sql('CREATE TABLE public.tasks (id int PRIMARY KEY, owner uuid)')
    for table in ('docs', 'tasks'):
        target.sql('ALTER TABLE public.%s ENABLE ROW LEVEL SECURITY' % table)
    target.sql('CREATE POLICY read_own ON public.docs FOR SELECT TO authenticated USING (owner = (select auth.uid()))')
    target.sql('CREATE POLICY read_public ON public.docs FOR SELECT TO authenticated, anon USING (public)')
    # FOR ALL covers UPDATE as well: two permissive policies for authenticated's UPDATE, one for the other actions
    target.sql('CREATE POLICY manage_own ON public.tasks FOR ALL TO authenticated USING (owner = (select auth.uid()))')
    target.sql('CREATE POLICY fix_any ON public.tasks FOR UPDATE TO authenticated USING (true)')
    result = target.run('pg_inspect_info', sections=['policies'])
    assert result.rc == 0, result.raw
    found = fired(result, 'multiple_permissive_policies')
    assert set(found) == {'table=public.docs,role=authenticated,action=SELECT',
                          'table=public.tasks,role=authenticated,action=UPDATE'}, found
    docs = found['table=public.docs,role=authenticated,action=SELECT']
    assert docs['status'] == 'warning' and docs['value'] == 2 and '(read_own, read_public)' in docs['message']
    assert {'table': 'public.tasks', 'role': 'authenticated', 'action': 'UPDATE', 'policies': ['fix_any', 'manage_own']} \
        in result['sections']['policies']['multiple_permissive']


def test_multiple_permissive_policies_quiet_for_one_policy_restrictive_ones_and_rls_bypass(target):
    supabase_like(target)
    target.sql('CREATE TABLE public.docs (id int PRIMARY KEY, owner uuid, public boolean)')
    target.sql('ALTER TABLE public.docs ENABLE ROW LEVEL SECURITY')
    target.sql('CREATE POLICY read ON public.docs FOR SELECT TO authenticated '
               'USING (public OR owner = (select auth.uid()))')
    target.sql('CREATE POLICY write ON public.docs FOR UPDATE TO authenticated USING (owner = (select auth.uid()))')
    target.sql('CREATE POLICY only_public ON public.docs AS RESTRICTIVE FOR SELECT TO authenticated USING (public)')
    # service_role bypasses row level security: its policies are never evaluated
    target.sql('CREATE POLICY svc_a ON public.docs FOR SELECT TO service_role USING (true)')
    target.sql('CREATE POLICY svc_b ON public.docs FOR SELECT TO service_role USING (public)')
    result = target.run('pg_inspect_info', sections=['policies'])
    quiet(result, 'multiple_permissive_policies')
    assert result['sections']['policies']['multiple_permissive'] == []


def test_policy_lints_follow_splinters_schema_lists(target):
    # realtime.messages' policies are the application's (Realtime Authorization): splinter's auth_rls_initplan
    # reads them, its multiple_permissive_policies does not; our default exclude_schemas leaves realtime out.
    supabase_like(target)
    target.sql('CREATE SCHEMA realtime')
    target.sql('CREATE TABLE realtime.messages (id bigint PRIMARY KEY, topic text, owner uuid)')
    target.sql('ALTER TABLE realtime.messages ENABLE ROW LEVEL SECURITY')
    target.sql('CREATE POLICY listen ON realtime.messages FOR SELECT TO authenticated USING (owner = auth.uid())')
    target.sql("CREATE POLICY listen_topic ON realtime.messages FOR SELECT TO authenticated USING (topic = 'news')")
    default = target.run('pg_inspect_info', sections=['policies'])
    quiet(default, 'auth_rls_initplan')
    quiet(default, 'multiple_permissive_policies')
    everything = target.run('pg_inspect_info', sections=['policies'], exclude_schemas=[])
    assert set(fired(everything, 'auth_rls_initplan')) == {'policy=realtime.messages.listen'}
    quiet(everything, 'multiple_permissive_policies')


# -- table_bloat (splinter 0020, INFO) as table_bloat_excessive -------------------------------------------------------

def test_excessive_table_bloat_follows_splinters_rule_beside_our_estimate(target):
    # 1.5 million narrow rows, 99 of each 100 deleted across every page: the table keeps its ~50 MB for ~15000 rows,
    # more than 70 times the pages they need and more than 20 MB of waste.
    target.sql('CREATE TABLE public.churn (id int) WITH (autovacuum_enabled = false)')
    target.sql('INSERT INTO public.churn SELECT generate_series(1, 1500000)')
    target.sql('DELETE FROM public.churn WHERE id % 100 <> 0')
    # half deleted: bloated by our estimate, far from splinter's limit
    target.sql('CREATE TABLE public.half (id int, note text) WITH (autovacuum_enabled = false)')
    target.sql("INSERT INTO public.half SELECT g, 'note ' || g FROM generate_series(1, 600000) g")
    target.sql('DELETE FROM public.half WHERE id % 2 = 0')
    target.sql('VACUUM ANALYZE public.churn')
    target.sql('VACUUM ANALYZE public.half')
    result = target.run('pg_inspect_info', sections=['bloat'], min_table_size='1MB')
    assert result.rc == 0, result.raw
    excessive = fired(result, 'table_bloat_excessive')
    assert list(excessive) == ['table=public.churn'], excessive
    churn = excessive['table=public.churn']
    assert churn['status'] == 'info' and churn['value'] > 70 and churn['unit'] == 'ratio', churn
    assert "splinter's table_bloat rule" in churn['message']
    ours = fired(result, 'table_bloat')
    assert ours['table=public.churn']['status'] == 'critical'
    assert ours['table=public.half']['status'] in ('warning', 'critical')  # ours fires, splinter's rule does not
    assert [r['table'] for r in result['sections']['bloat']['excessive']] == ['public.churn']
    # min_table_size only bounds our estimate: splinter's rule still reads every table
    large = target.run('pg_inspect_info', sections=['bloat'], min_table_size='1GB')
    assert list(fired(large, 'table_bloat_excessive')) == ['table=public.churn']
    quiet(large, 'table_bloat')


def test_excessive_table_bloat_quiet_for_a_large_packed_table(target):
    target.sql('CREATE TABLE public.packed (id int, note text) WITH (autovacuum_enabled = false)')
    target.sql("INSERT INTO public.packed SELECT g, 'note ' || g FROM generate_series(1, 600000) g")
    target.sql('VACUUM public.packed')  # counts the pages, gathers no column statistics
    unanalysed = target.run('pg_inspect_info', sections=['bloat'], min_table_size='1MB')
    check = unanalysed.check('table_bloat_excessive')
    assert check['status'] == 'unknown' and 'public.packed' in check['message'] and 'never analysed' in check['message']
    target.sql('ANALYZE public.packed')
    assert target.sql("SELECT pg_relation_size('public.packed')")[0][0] > 20 * 1024 * 1024
    result = target.run('pg_inspect_info', sections=['bloat'], min_table_size='1MB')
    quiet(result, 'table_bloat_excessive')
    quiet(result, 'table_bloat')
    assert result['sections']['bloat']['excessive'] == []


# -- the lints we had: unindexed_foreign_keys, duplicate_index, unused_index ----------------------------------------

def test_foreign_key_support_needs_its_columns_leading_in_order_without_predicate(target):
    target.sql('CREATE TABLE public.orders (region int, id int, PRIMARY KEY (region, id))')
    for name in ('lines_in_order', 'lines_reversed', 'lines_partial', 'lines_included', 'lines_longer'):
        target.sql('CREATE TABLE public.%s (n int PRIMARY KEY, region int, order_id int, note text, '
                   'FOREIGN KEY (region, order_id) REFERENCES public.orders)' % name)
    target.sql('CREATE INDEX ON public.lines_in_order (region, order_id)')
    target.sql('CREATE INDEX ON public.lines_reversed (order_id, region)')
    target.sql('CREATE INDEX ON public.lines_partial (region, order_id) WHERE note IS NULL')
    target.sql('CREATE INDEX ON public.lines_included (region) INCLUDE (order_id)')
    target.sql('CREATE INDEX ON public.lines_longer (region, order_id, note)')  # leading columns, in order: support
    result = target.run('pg_inspect_info', sections=['foreign_keys'])
    assert result.rc == 0, result.raw
    found = fired(result, 'unindexed_foreign_key')
    assert set(found) == {'constraint=public.%s.%s_region_order_id_fkey' % (t, t)
                          for t in ('lines_reversed', 'lines_partial', 'lines_included')}, found
    assert 'CREATE INDEX CONCURRENTLY ON public.lines_reversed (region, order_id)' in \
        found['constraint=public.lines_reversed.lines_reversed_region_order_id_fkey']['message']
    target.sql('CREATE INDEX ON public.lines_reversed (region, order_id)')
    target.sql('CREATE INDEX ON public.lines_partial (region, order_id)')
    target.sql('CREATE INDEX ON public.lines_included (region, order_id)')
    quiet(target.run('pg_inspect_info', sections=['foreign_keys']), 'unindexed_foreign_key')


def test_duplicate_and_unused_index_as_splinter_names_them(target):
    target.sql('CREATE TABLE public.items (id int PRIMARY KEY, a int, b text)')
    target.sql("INSERT INTO public.items SELECT g, g % 50, 'b' || g FROM generate_series(1, 2000) g")
    target.sql('CREATE INDEX items_a ON public.items (a)')
    target.sql('CREATE INDEX items_a_copy ON public.items (a)')
    target.sql('CREATE INDEX items_b ON public.items (b)')
    target.sql('ANALYZE public.items')
    target.sql('SET enable_seqscan = off; SET enable_bitmapscan = off; SELECT * FROM public.items WHERE b = $$b7$$')
    assert wait_until(lambda: target.sql("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'items_b'")[0][0])
    result = target.run('pg_inspect_info', sections=['index_usage'])
    assert set(fired(result, 'duplicate_index')) == {'index=public.items_a_copy'}
    assert set(fired(result, 'unused_index')) == {'index=public.items_a', 'index=public.items_a_copy'}
    target.sql('DROP INDEX public.items_a_copy')
    after = target.run('pg_inspect_info', sections=['index_usage'])
    quiet(after, 'duplicate_index')
    assert set(fired(after, 'unused_index')) == {'index=public.items_a'}


def test_index_lints_leave_out_the_tables_of_extensions(target):
    target.sql('CREATE TABLE public.ext_data (id int PRIMARY KEY, a int)')
    target.sql('CREATE INDEX ext_data_a ON public.ext_data (a)')
    target.sql('CREATE INDEX ext_data_a_copy ON public.ext_data (a)')
    target.sql('CREATE TABLE public.ext_child (id int PRIMARY KEY, data_id int REFERENCES public.ext_data)')
    target.sql('CREATE TABLE public.app_data (id int PRIMARY KEY, a int)')
    target.sql('CREATE INDEX app_data_a ON public.app_data (a)')
    target.sql('CREATE INDEX app_data_a_copy ON public.app_data (a)')
    result = target.run('pg_inspect_info', sections=['index_usage', 'foreign_keys'])
    assert set(fired(result, 'duplicate_index')) == {'index=public.ext_data_a_copy', 'index=public.app_data_a_copy'}
    assert 'index=public.ext_data_a' in fired(result, 'unused_index')
    assert set(fired(result, 'unindexed_foreign_key')) == {'constraint=public.ext_child.ext_child_data_id_fkey'}
    for table in ('ext_data', 'ext_child'):
        target.sql('ALTER EXTENSION pg_stat_statements ADD TABLE public.%s' % table)
    owned = target.run('pg_inspect_info', sections=['index_usage', 'foreign_keys'])
    assert set(fired(owned, 'duplicate_index')) == {'index=public.app_data_a_copy'}
    assert set(fired(owned, 'unused_index')) == {'index=public.app_data_a', 'index=public.app_data_a_copy'}
    quiet(owned, 'unindexed_foreign_key')
