# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report's pure parts: target status, key figures, the summary table, the ``report`` convention, ages,
the fail gate, and the dashboard template (escaping, sections, the SVG it trusts)."""

from __future__ import annotations

import datetime
import json
import os

import pytest
from markupsafe import Markup

from ansible_collections.appcare.maintenance.plugins.module_utils import report as RP
from ansible_collections.appcare.maintenance.plugins.plugin_utils import dashboard as D

NOW = datetime.datetime(2026, 11, 23, 2, 0, tzinfo=datetime.timezone.utc)


def check(name, status, value=None, unit=None, **extra):
    found = dict(name=name, status=status, value=value, unit=unit, object='db=ims', message='%s <b>' % name)
    found.update(extra)
    return found


def run(targets):
    return {'tier': 'daily', 'started_at': NOW.isoformat(), 'targets': targets, 'tasks': [], 'schedule': []}


def test_status_kpis_and_summary():
    report = RP.build(run({
        'ims': {'checks': [check('database_connection', 'ok', 1.5, 'ms'),
                           check('database_size', 'warning', 88.0, 'percent', size_bytes=7 * 1024 ** 3)]},
        'down': {'checks': [], 'unreachable': 'connection refused'},
        'failing': {'checks': [check('database_connection', 'ok', 2.0, 'ms')], 'failures': [{'task': 't', 'msg': 'boom'}]},
    }), NOW)
    by_name = dict((t['name'], t) for t in report['targets'])
    assert by_name['ims']['status'] == 'warning' and by_name['down']['status'] == 'critical'
    assert by_name['failing']['status'] == 'critical' and report['status'] == 'critical'
    assert by_name['ims']['kpis']['Database size'] == {'value': 7 * 1024 ** 3, 'unit': 'bytes', 'status': 'warning'}
    assert by_name['ims']['kpis']['DB latency']['value'] == 1.5
    lines = RP.summary_lines(report)
    assert [line for line in lines if line.startswith('down') and 'UNREACHABLE' in line]
    assert lines[-1] == 'overall: CRITICAL'
    start = lines.index('to do - unreachable or failed: 2')
    assert lines[start + 1:start + 3] == ['  UNREACHABLE down (connection): connection refused', '  FAILED   failing t: boom']


def test_html_escapes_messages_and_names_roles():
    report = RP.build(run({'ims': {'checks': [check('invalid_indexes', 'warning', 1, 'count')]}}), NOW)
    report['tasks'] = ['appcare.maintenance.health_check : Check', 'appcare.maintenance.backup : Back up',
                       'appcare.maintenance.report : Send']
    report['ran'] = ['appcare.maintenance.health_check : Check', 'appcare.maintenance.report : Send']  # backup skipped
    page = D.render_html(report, {'ims: database size': '<svg xmlns="http://www.w3.org/2000/svg"></svg>'})
    assert 'invalid_indexes &lt;b&gt;' in page and 'invalid_indexes <b>' not in page
    assert 'This daily run: roles health_check, report</p>' in page
    assert '<svg' in page


def test_ran_names_the_roles_a_run_used():
    roles, others = RP.ran(['appcare.maintenance.dr_test : Validating arguments', 'appcare.maintenance.dr_test : Restore',
                            'appcare.maintenance.report : Send', 'Gather facts', 'Gather facts'])
    assert roles == ['dr_test', 'report'] and others == ['Gather facts']


# -- the report convention ------------------------------------------------------------------------------------
@pytest.mark.parametrize('before, report, after', [
    ({}, {'backup': {'id': 'b1', 'verified': None}}, {'backup': {'id': 'b1', 'verified': None}}),
    ({'backup': {'id': 'b1', 'bytes': 5, 'verified': None}}, {'backup': {'verified': 'ok', 'verified_level': 'catalog'}},
     {'backup': {'id': 'b1', 'bytes': 5, 'verified': 'ok', 'verified_level': 'catalog'}}),
    ({'actions': [{'table': 't1'}]}, {'actions': [{'table': 't2'}]}, {'actions': [{'table': 't1'}, {'table': 't2'}]}),
    ({}, {'actions': []}, {'actions': []}),
    ({'chart': '/old.svg'}, {'chart': '/new.svg'}, {'chart': '/new.svg'}),
    ({'metrics': {'a': 1}}, {'metrics': None}, {'metrics': {'a': 1}}),
    ({'endpoints': {'wrong': 'shape'}}, {'endpoints': [{'name': 'api'}]}, {'endpoints': [{'name': 'api'}]}),
    ({'checks': [1], 'failures': [2]}, {'checks': [3], 'failures': [4], 'unreachable': 'x', 'status': 'ok', 'kpis': {}},
     {'checks': [1], 'failures': [2]}),
    ({}, 'not a dict', {}),
    ({}, None, {}),
])
def test_merge_report_merges_dicts_extends_lists_replaces_the_rest(before, report, after):
    RP.merge_report(before, report)
    assert before == after


def test_merge_report_copies_what_it_starts_a_section_with():
    sections = {'backup': {'id': 'b1'}, 'actions': [{'table': 't'}]}
    target = {}
    assert RP.merge_report(target, sections) == ['backup', 'actions']
    RP.merge_report(target, {'backup': {'verified': 'ok'}, 'actions': [{'table': 'u'}]})
    assert sections == {'backup': {'id': 'b1'}, 'actions': [{'table': 't'}]}


@pytest.mark.parametrize('text, hours', [('2026-11-23T00:30:00+00:00', 1.5), ('2026-11-23T00:30:00Z', 1.5),
                                         ('2026-11-23T00:30:00', 1.5), ('2026-11-23T03:00:00+01:00', 0.0),
                                         ('yesterday', None)])
def test_hours_since(text, hours):
    assert RP.hours_since(text, NOW) == hours


def test_build_gives_every_section_with_finished_at_its_age_at_report_time():
    gathered = {'checks': [], 'backup': {'id': 'b1', 'finished_at': '2026-11-22T20:00:00+00:00'},
                'restore': {'finished_at': 'not a time'}, 'forecast': {'days_left': 3}}
    target = RP.build(run({'ims': gathered}), NOW)['targets'][0]
    assert target['backup'] == {'id': 'b1', 'finished_at': '2026-11-22T20:00:00+00:00', 'age_hours': 6.0}
    assert target['restore']['age_hours'] is None and 'age_hours' not in target['forecast']
    assert 'age_hours' not in gathered['backup']  # the gathered run is not changed


def test_maintenance_modules_report_their_actions_with_six_keys():
    from ansible_collections.appcare.maintenance.plugins.module_utils import maintenance as M

    actions = [{'index': 'public.i', 'table': 'public.t', 'operation': 'reindex', 'result': 'done', 'message': 'ok',
                'seconds': 1.5, 'sql': 'REINDEX ...', 'size_before': 10},
               {'table': 'public.t', 'operation': 'vacuum', 'result': 'planned', 'message': 'would vacuum'}]
    assert M.report_sections(actions) == {'actions': [
        {'index': 'public.i', 'table': 'public.t', 'operation': 'reindex', 'result': 'done', 'message': 'ok',
         'seconds': 1.5},
        {'index': None, 'table': 'public.t', 'operation': 'vacuum', 'result': 'planned', 'message': 'would vacuum',
         'seconds': None}]}


# -- the fail gate ----------------------------------------------------------------------------------------------
GATED = {
    'calm': {'checks': [check('database_connection', 'ok', 1.0, 'ms'), check('slow_queries', 'unknown')]},
    'warm': {'checks': [check('database_connection', 'ok', 1.0, 'ms'), check('invalid_indexes', 'warning', 1, 'count')]},
    'hot': {'checks': [check('database_size', 'critical', 99.0, 'percent'), check('invalid_indexes', 'warning', 1)]},
    'down': {'checks': [], 'unreachable': 'connection refused'},
    'broken': {'checks': [], 'failures': [{'task': 'Back up', 'msg': 'boom'}]},
}


@pytest.mark.parametrize('names, fail_on, reasons', [
    (['calm', 'warm', 'hot'], 'none', []),
    (['calm', 'warm', 'hot'], None, []),
    (['calm'], 'warning', []),  # unknown never trips the gate
    (['calm', 'warm'], 'critical', []),
    (['calm', 'warm'], 'warning', ['warm (invalid_indexes)']),
    (['calm', 'warm', 'hot'], 'warning', ['hot (database_size, invalid_indexes)', 'warm (invalid_indexes)']),
    (['calm', 'warm', 'hot'], 'critical', ['hot (database_size)']),
    (['calm', 'down', 'broken'], 'critical', ['broken (failed: Back up)', 'down (unreachable)']),
])
def test_gate_fails_the_run_at_fail_on_and_names_why(names, fail_on, reasons):
    report = RP.build(run(dict((name, GATED[name]) for name in names)), NOW)
    assert RP.gate(report, fail_on) == reasons


# -- the dashboard --------------------------------------------------------------------------------------------
@pytest.mark.parametrize('value, unit, text', [(None, 'ms', ''), (1.23456, 'ms', '1.23 ms'), (3, 'count', '3 count'),
                                               (1536, 'bytes', '1.5 kB'), (0, 'h', '0 h'), (2, '', '2 ')])
def test_quantity(value, unit, text):
    assert D.quantity(value, unit) == text


@pytest.mark.parametrize('text, trusted', [
    ('<svg xmlns="http://www.w3.org/2000/svg"><text>a</text></svg>', True),
    ('<?xml version="1.0"?>\n<svg width="1"></svg>', True),
    ('  <SVG></SVG>', True),
    ('<script>alert(1)</script><svg></svg>', False),
    ('<svgx>', False),
    ('a chart that failed', False),
])
def test_only_svg_documents_are_trusted(text, trusted):
    assert isinstance(D.trusted_svg(text), Markup) is trusted


def full_report():
    report = RP.build(run({
        'app': {'checks': [check('database_connection', 'ok', 1.5, 'ms'), check('database_size', 'critical', 91.0, 'percent'),
                           check('backup_age', 'ok', 0.5, 'hours')],
                'backup': {'id': 'app-<1>', 'bytes': 2048, 'finished_at': '2026-11-23T01:00:00+00:00',
                           'verified': 'failed'},
                'actions': [{'index': None, 'table': 'public.<t>', 'operation': 'vacuum', 'result': 'done',
                             'message': 'vacuumed'}],
                'deliveries': [{'channel': 'slack', 'alerts': 1, 'resolved': 0, 'ok': False, 'error': 'HTTP 500 <x>'}],
                'endpoints': [{'name': 'api', 'latency_ms': {'max': 812.0}}]},
        'down': {'checks': [], 'unreachable': 'refused "x"'},
    }), NOW)
    report['schedule'] = [{'tier': 'daily', 'every_days': 1, 'last_run': None, 'next_due': None, 'overdue': False}]
    return report


def test_dashboard_has_a_section_for_everything_the_run_reported():
    page = D.render_html(full_report(), {'app: database size': '<svg><text>size</text></svg>'})
    for section in ('overview', 'findings', 'backups', 'kpis', 'maintenance', 'alerts', 'schedule', 'trends'):
        assert '<section id="%s">' % section in page
    assert 'app-&lt;1&gt;' in page and '2.0 kB' in page and '1.0 h' in page  # age at report time
    assert 'public.&lt;t&gt;' in page and 'HTTP 500 &lt;x&gt;' in page and 'refused &#34;x&#34;' in page
    assert '812.0 ms' in page and '<svg><text>size</text></svg>' in page and 'never run' in page
    assert page.startswith('<!DOCTYPE html>') and 'None' not in page


def test_dashboard_leaves_out_what_the_run_did_not_do_and_escapes_a_chart_that_is_not_svg():
    report = RP.build(run({'ims': {'checks': []}}), NOW)
    page = D.render_html(report, {'ims: database size': '<script>alert(1)</script>'})
    assert 'No backup ran in this run.' in page and 'This daily run: no tasks' in page
    assert '<section id="maintenance">' not in page and '<section id="alerts">' not in page
    assert '<script>' not in page and '&lt;script&gt;alert(1)&lt;/script&gt;' in page


def test_dashboard_skips_sections_a_module_reported_in_another_shape():
    report = RP.build(run({'ims': {'checks': [], 'backup': 'b1', 'actions': {'table': 't'},
                                   'deliveries': ['slack', {'channel': 'hook', 'ok': True}]}}), NOW)
    page = D.render_html(report, {})
    assert 'No backup ran in this run.' in page and '<section id="maintenance">' not in page
    assert '<td>hook</td>' in page


def test_backup_panel_shows_database_files_platform_and_point_in_time_side_by_side():
    finished = (NOW - datetime.timedelta(hours=2)).isoformat()
    report = RP.build(run({'sb': {
        'checks': [],
        'backup': {'id': 'db-1', 'finished_at': finished, 'bytes': 2048, 'verified': 'ok'},
        'storage_backup': {'id': 'files-1', 'finished_at': finished, 'bytes': 4096, 'objects': 12, 'complete': False,
                           'verified': None},
        'supabase': {'project_ref': 'abcdefghijklmnopqrst', 'finished_at': finished, 'pitr_enabled': True,
                     'pitr_window_days': 7},
    }, 'selfhosted': {
        'checks': [],
        'pitr': {'stanza': 'main', 'window_start': '2026-11-20T00:00:00+00:00', 'window_end': '2026-11-23T01:59:00+00:00',
                 'newest_backup': {'label': '20261123-010000F', 'size_bytes': 1048576}, 'finished_at': finished,
                 'verify': {'status': 'failed'}},
    }}), NOW)
    rows = D.backup_rows(report['targets'])
    assert [(r['target'], r['kind']) for r in rows] == [
        ('sb', 'database'), ('sb', 'files'), ('sb', 'platform (Supabase)'), ('selfhosted', 'point in time (pgBackRest)')]
    assert rows[1]['detail'] == '12 objects (incomplete)' and rows[1]['verified'] is None
    assert rows[2]['detail'] == 'PITR on, 7 days' and rows[2]['verified'] == ''
    assert rows[3]['id'] == '20261123-010000F' and rows[3]['verified'] == 'failed'
    assert all(r['age_hours'] == 2.0 for r in rows)
    page = D.render_html(report, {})
    assert 'recoverable 2026-11-20T00:00:00+00:00 to 2026-11-23T01:59:00+00:00' in page
    assert '20261123-010000F' in page and 'files-1' in page and 'PITR on, 7 days' in page
    assert 'No backup ran in this run.' not in page


def test_backup_panel_ignores_sections_in_another_shape():
    report = RP.build(run({'x': {'checks': [], 'pitr': ['not', 'a', 'dict'], 'storage_backup': 'b',
                                 'supabase': {'services': {'db': 'ACTIVE_HEALTHY'}}}}), NOW)
    assert D.backup_rows(report['targets']) == []


def test_the_template_is_a_file_next_to_the_renderer():
    assert os.path.isfile(os.path.join(D.TEMPLATE_DIR, D.TEMPLATE))
    assert D.environment().autoescape is True


# -- advice (info) ----------------------------------------------------------------------------------------------
def test_info_is_advice_counted_apart_and_never_a_problem():
    report = RP.build(run({
        'ims': {'checks': [check('database_connection', 'ok', 1.5, 'ms'), check('unused_index', 'info', category='performance'),
                           check('unused_index', 'info', category='performance')]},
        'crm': {'checks': [check('invalid_indexes', 'warning', 1, 'count', category='performance')]},
    }), NOW)
    by_name = dict((t['name'], t) for t in report['targets'])
    assert by_name['ims']['status'] == 'info' and by_name['ims']['counts'] == {
        'critical': 0, 'warning': 0, 'unknown': 0, 'info': 2, 'ok': 1}
    assert report['totals']['info'] == 2 and report['status'] == 'warning'
    assert RP.gate(report, 'warning') == ['crm (invalid_indexes)']  # advice never trips the gate
    assert [(category, [name for name, _check in rows]) for category, rows in RP.todo(report)] == [('performance', ['crm'])]
    lines = RP.summary_lines(report)
    assert lines[0].split() == ['target', 'status', 'critical', 'warning', 'unknown', 'info', 'ok']
    assert lines[1].split() == ['crm', 'WARNING', '0', '1', '0', '0', '0']
    assert lines[2].split() == ['ims', 'INFO', '0', '0', '0', '2', '1']
    assert 'to do - performance: 1 warning' in lines and 'advice - performance: 2 info' in lines
    page = D.render_html(report, {})
    findings = page.split('<section id="findings">')[1].split('</section>')[0]
    advice = page.split('<section id="advice">')[1].split('</section>')[0]
    passed = page.split('<section id="passed">')[1].split('</section>')[0]
    assert 'unused_index' not in findings and 'invalid_indexes' in findings
    assert advice.count('<td>unused_index</td>') == 2 and 'unused_index' not in passed
    assert '<details>' in passed and '<details>' not in advice


def test_alerting_never_routes_advice():
    from ansible_collections.appcare.maintenance.plugins.module_utils import alerting as A

    rule = {'min_severity': 'warning', 'match': ['*'], 'targets': [], 'channels': ['ops']}
    findings = [dict(check('unused_index', 'info'), target='ims'), dict(check('invalid_indexes', 'warning'), target='ims')]
    assert [f['name'] for f, _channels in A.route(findings, [rule]).values()] == ['invalid_indexes']


# -- categories -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('action, finding, category', [
    ('appcare.maintenance.pg_audit_info', {}, 'security'),
    ('appcare.maintenance.tls_cert_info', {}, 'security'),
    ('appcare.maintenance.pg_inspect_info', {}, 'performance'),
    ('appcare.maintenance.pg_reindex', {}, 'performance'),
    ('appcare.maintenance.pg_vacuum', {}, 'performance'),
    ('appcare.maintenance.metrics_history', {}, 'performance'),
    ('appcare.maintenance.pg_health_info', {}, 'health'),
    ('appcare.maintenance.http_health_info', {}, 'health'),
    ('appcare.maintenance.pg_backup', {}, 'backups'),
    ('appcare.maintenance.pg_backup_verify', {}, 'backups'),
    ('pg_backup', {}, 'backups'),
    ('appcare.maintenance.notify', {}, 'other'),
    ('appcare.maintenance.pg_health_info', {'category': 'security'}, 'security'),  # the module's word wins
    ('appcare.maintenance.pg_health_info', {'category': 'nonsense'}, 'health'),  # but only a known category
    ('appcare.maintenance.pg_health_info', {'category': ['security']}, 'health'),
])
def test_category_of_a_finding(action, finding, category):
    assert RP.category_of(action, finding) == category


def weekly_report():
    checks = []
    for i in range(12):
        checks.append(check('rls_disabled_in_public', 'critical' if i < 2 else 'warning', object='public.t%d' % i,
                            category='security'))
    for i in range(10):
        checks.append(check('unused_index', 'info' if i % 2 else 'warning', category='performance'))
    for i in range(8):
        checks.append(check('backup_age', 'unknown' if i == 0 else 'ok', category='backups'))
    checks.append(check('odd_one', 'warning'))
    return RP.build(run({'ims': {'checks': checks}}), NOW)


def test_thirty_findings_read_as_a_to_do_list_per_category_worst_first():
    report = weekly_report()
    target = report['targets'][0]
    assert target['categories']['security'] == {'critical': 2, 'warning': 10, 'unknown': 0, 'info': 0, 'ok': 0}
    assert target['categories']['performance'] == {'critical': 0, 'warning': 5, 'unknown': 0, 'info': 5, 'ok': 0}
    assert list(target['categories']) == ['security', 'performance', 'backups', 'other']
    assert report['categories']['backups'] == {'critical': 0, 'warning': 0, 'unknown': 1, 'info': 0, 'ok': 7}
    groups = RP.todo(report)
    assert [category for category, _rows in groups] == ['security', 'performance', 'backups', 'other']
    security = [c['status'] for _name, c in groups[0][1]]
    assert security == ['critical'] * 2 + ['warning'] * 10
    lines = RP.summary_lines(report)
    start = lines.index('to do - security: 2 critical, 10 warning')
    assert lines[start + 1].startswith('  CRITICAL ims rls_disabled_in_public [public.t0]: rls_disabled_in_public <b>')
    assert 'to do - backups: 1 unknown' in lines and 'to do - other: 1 warning' in lines
    assert lines.index('to do - other: 1 warning') < lines.index('advice - performance: 5 info')
    page = D.render_html(report, {})
    findings = page.split('<section id="findings">')[1].split('</section>')[0]
    order = [findings.index('id="category-%s"' % c) for c in ('security', 'performance', 'backups', 'other')]
    assert order == sorted(order)
    assert findings.count('<tr><td><span class="badge"') == 12 + 5 + 1 + 1  # one line per problem, no ok or advice


def test_a_long_to_do_list_is_cut_in_the_text_but_not_in_the_dashboard():
    checks = [check('rls_disabled_in_public', 'warning', object='public.t%02d' % i, category='security') for i in range(40)]
    report = RP.build(run({'ims': {'checks': checks}}), NOW)
    lines = RP.summary_lines(report)
    assert len([line for line in lines if 'rls_disabled_in_public' in line]) == RP.TODO_LINES
    assert '  ... and 15 more in the dashboard' in lines
    assert D.render_html(report, {}).count('public.t') == 40
    long = RP.todo_line('ims', check('x', 'warning', message='m' * 500))
    assert len(long) == 160 and long.endswith('...')


# -- key figures this run did not measure --------------------------------------------------------------------------
def state_text(targets, fmt=RP.KPI_STATE_FORMAT):
    return json.dumps({'format': fmt, 'targets': targets})


def test_kpis_not_measured_come_from_the_state_with_their_age():
    earlier = '2026-11-20T02:00:00+00:00'
    known = RP.load_kpi_state(state_text({'ims': {
        'DB latency': {'value': 4.5, 'unit': 'ms', 'status': 'ok', 'measured_at': earlier},
        'Cache hit': {'value': 99.1, 'unit': '%', 'status': 'ok', 'measured_at': earlier},
        'Database size': {'value': 1024, 'unit': 'bytes', 'status': 'ok', 'measured_at': earlier}}}), NOW)
    report = RP.build(run({'ims': {'checks': [check('database_size', 'ok', 2048, 'bytes')]}}), NOW)
    state = RP.known_kpis(report, known, NOW)
    kpis = report['targets'][0]['kpis']
    assert kpis['Database size'] == {'value': 2048, 'unit': 'bytes', 'status': 'ok'}  # this run's wins
    assert kpis['DB latency'] == {'value': 4.5, 'unit': 'ms', 'status': 'ok', 'measured_at': earlier, 'stale': True,
                                  'age_hours': 72.0}
    assert state['targets']['ims']['Database size']['measured_at'] == NOW.isoformat()
    assert state['targets']['ims']['DB latency']['measured_at'] == earlier
    page = D.render_html(report, {})
    assert '3.0 d ago' in page and 'not measured in this run' in page
    assert RP.load_kpi_state(json.dumps(state), NOW)['ims']['Database size']['value'] == 2048  # round trip


@pytest.mark.parametrize('text', [None, '', 'not json', '[]', '{"format": "other/1", "targets": {}}',
                                  state_text([]), state_text({'ims': 'x'}), state_text({'ims': {'DB latency': 5}}),
                                  '{"format": "appcare.kpis/1", "targets": {"ims": {"DB latency": {"value": NaN, '
                                  '"unit": "ms", "measured_at": "2026-11-20T02:00:00+00:00"}}}}'])
def test_a_malformed_kpi_state_is_an_empty_one(text):
    assert RP.load_kpi_state(text, NOW) == {}


@pytest.mark.parametrize('item', [
    {'value': 5, 'unit': 'ms', 'status': 'ok', 'measured_at': '2026-11-24T02:00:00+00:00'},  # from the future
    {'value': 5, 'unit': 'ms', 'status': 'ok', 'measured_at': 'yesterday'},
    {'value': 5, 'unit': 'ms', 'status': 'ok'},
    {'value': '5', 'unit': 'ms', 'status': 'ok', 'measured_at': '2026-11-20T02:00:00+00:00'},
    {'value': True, 'unit': 'ms', 'status': 'ok', 'measured_at': '2026-11-20T02:00:00+00:00'},
    {'value': 5, 'unit': 'bytes', 'status': 'ok', 'measured_at': '2026-11-20T02:00:00+00:00'},  # not the label's unit
])
def test_an_untrusted_kpi_entry_is_dropped(item):
    assert RP.load_kpi_state(state_text({'ims': {'DB latency': item, 'Not a KPI': item}}), NOW) == {}


def test_a_kpi_entry_with_a_bad_status_stays_but_as_unknown():
    known = RP.load_kpi_state(state_text({'ims': {'DB latency': {
        'value': 5, 'unit': 'ms', 'status': '<b>', 'measured_at': '2026-11-23T01:58:00+00:00'}}}), NOW)
    assert known['ims']['DB latency']['status'] == 'unknown'


def test_update_kpis_writes_the_state_atomically_and_survives_a_bad_one(tmp_path):
    (tmp_path / RP.KPI_STATE).write_bytes(b'\xff\xfe not text')
    report = RP.build(run({'ims': {'checks': [check('database_connection', 'ok', 1.5, 'ms')]}}), NOW)
    RP.update_kpis(str(tmp_path), report, NOW)
    state = json.loads((tmp_path / RP.KPI_STATE).read_text())
    assert state['format'] == RP.KPI_STATE_FORMAT and state['targets']['ims']['DB latency']['value'] == 1.5
    assert [p.name for p in tmp_path.iterdir()] == [RP.KPI_STATE]  # no temporary file left


@pytest.mark.parametrize('hours, text', [(0.25, '15 min'), (5, '5 h'), (47.94, '47.9 h'), (72, '3.0 d'),
                                         (None, 'age unknown')])
def test_age(hours, text):
    assert D.age(hours) == text


# -- sessions -------------------------------------------------------------------------------------------------------
def test_dashboard_shows_who_holds_a_lock_and_never_the_query():
    finding = check('blocked_sessions', 'warning', 12.0, 'seconds', category='health',
                    sessions=[{'pid': 41, 'user': 'web', 'database': 'ims', 'application_name': 'api<1>',
                               'client_addr': '10.0.0.7', 'seconds': 12.0, 'blocked_by': [40],
                               'query': "UPDATE users SET token = 'secret-token'"}],
                    blockers=[{'pid': 40, 'user': 'batch', 'database': 'ims', 'application_name': 'nightly-import',
                               'client_addr': None, 'state': 'idle in transaction'}])
    page = D.render_html(RP.build(run({'ims': {'checks': [finding]}}), NOW), {})
    assert 'pid 41, user web, app api&lt;1&gt;, client 10.0.0.7, db ims, 12.0 s, blocked by pid 40' in page
    assert 'lock held by pid 40, user batch, app nightly-import, db ims, state idle in transaction' in page
    assert 'secret-token' not in page


# -- top errors (the log_review section of pg_log_info and supabase_logs_info) ---------------------------------------
def log_review(**extra):
    """pg_log_info's log_review section."""
    section = {
        'source': 'postgresql', 'finished_at': '2026-11-23T01:00:00+00:00',
        'window': {'start': '2026-11-16T01:00:00+00:00', 'end': '2026-11-23T01:00:00+00:00', 'hours': 168.0},
        'severities': {'PANIC': 0, 'FATAL': 1, 'ERROR': 7, 'WARNING': 0},
        'top_errors': [
            {'pattern': 'duplicate key value violates unique constraint "..."', 'severity': 'ERROR', 'sqlstate': '23505',
             'count': 3, 'first_seen': '2026-11-22T10:00:00+00:00', 'last_seen': '2026-11-22T11:00:00+00:00',
             'databases': ['ims'], 'users': ['web<1>'], 'clients': ['10.0.0.7'], 'example': 'x', 'new': True},
            {'pattern': 'column "..." does not exist', 'severity': 'ERROR', 'sqlstate': '42703', 'count': 1,
             'first_seen': '2026-11-01T10:00:00+00:00', 'last_seen': '2026-11-22T09:00:00+00:00',
             'databases': ['ims', 'crm'], 'users': ['report'], 'clients': [], 'example': 'y', 'new': False}],
        'new_patterns': 1, 'patterns_total': 2,
        'events': {'deadlocks': 1, 'lock_waits': 2, 'temp_files': 1, 'temp_bytes': 1802240, 'checkpoints_too_frequent': 0,
                   'autovacuum_max_seconds': 0, 'auth_failures': 12, 'restarts': 1},
        'missing_settings': ['log_lock_waits'],
    }
    section.update(extra)
    return section


# supabase_logs_info's shape: the new patterns listed, sign-ins per address, the API's traffic apart
SUPABASE_REVIEW = {'source': 'supabase', 'window_hours': 168, 'severities': {'ERROR': 2}, 'top_errors': [],
                   'new_patterns': [], 'rate_limited': [],
                   'failed_signins': [{'address': '198.51.100.4', 'count': 64, 'paths': {'/token': 64}},
                                      {'address': '198.51.100.5', 'count': 3}]}
SUPABASE_TRAFFIC = {'requests': 120000, 'errors_5xx': 7500, 'errors_4xx': 310, 'error_rate_percent': 6.25,
                    'latency_ms': {'p50': 40, 'p95': 812.5, 'p99': 2400}}


def test_top_errors_show_per_target_with_new_patterns_marked():
    report = RP.build(run({
        'ims': {'checks': [check('log_new_patterns', 'warning', 1, 'count')], 'log_review': log_review()},
        'sb': {'checks': [], 'log_review': SUPABASE_REVIEW, 'api_traffic': SUPABASE_TRAFFIC},
        'quiet': {'checks': []},
    }), NOW)
    panels = D.log_review_rows(report['targets'])
    assert [p['target'] for p in panels] == ['ims', 'sb']
    ims, sb = panels
    assert [e['new'] for e in ims['errors']] == [True, False] and ims['new_patterns'] == 1
    assert ims['severities'] == [('PANIC', 'critical', 0), ('FATAL', 'critical', 1), ('ERROR', 'warning', 7),
                                 ('WARNING', 'info', 0)]
    assert ims['window'] == 'last 168 h'
    assert ims['events'] == [('deadlocks', '1'), ('lock waits', '2'), ('temporary files', '1, 1.7 MB in all'),
                             ('authentication failures', '12'), ('server starts and restarts', '1')]
    assert ims['missing'] == [{'setting': 'log_lock_waits'}]
    assert dict(sb['api']) == {'requests': '120000', 'server errors (5xx)': '6.25 % (7500)', 'client errors (4xx)': '310',
                               'latency p50': '40 ms', 'latency p95': '812.5 ms', 'latency p99': '2400 ms'}
    assert sb['events'] == [('failed sign-ins', '67 from 2 addresses: 198.51.100.4 (64), 198.51.100.5 (3)')]
    assert sb['new_patterns'] == 0 and sb['window'] == 'last 168 h' and sb['errors'] == []
    page = D.render_html(report, {})
    section = page.split('<section id="errors">')[1].split('</section>')[0]
    new_row = section.split('<tr class="new">')[1].split('</tr>')[0]
    assert 'NEW' in new_row and 'duplicate key value violates unique constraint &#34;...&#34;' in new_row
    assert 'web&lt;1&gt;' in new_row and '23505' in new_row and '2026-11-22T11:00:00+00:00' in new_row
    assert section.count('<tr class="new">') == 1 and 'column &#34;...&#34; does not exist' in section
    assert 'ims, crm' in section and '1 new since the last review' in section
    assert 'The log lacks for this review: <b>log_lock_waits</b>' in section
    assert 'API traffic' in section and '812.5 ms' in section
    assert '<h3>quiet' not in section and 'None' not in page


def test_the_full_events_of_pg_log_info_show_their_figures_too():
    events = {'deadlocks': 0, 'lock_waits': {'count': 2, 'max_ms': 1500.4},
              'temp_files': {'count': 1, 'total_bytes': 2048, 'max_bytes': 2048}, 'checkpoints_too_frequent': 3,
              'autovacuum_slow': {'count': 1, 'max_seconds': 720.5, 'slowest': []},
              'auth_failures': [{'address': '203.0.113.9', 'failures': 12, 'users': ['admin']}],
              'restarts': [{'when': '2026-11-22T03:00:00+00:00', 'kind': 'crash'}]}
    report = RP.build(run({'ims': {'checks': [], 'log_review': log_review(events=events)}}), NOW)
    assert D.log_review_rows(report['targets'])[0]['events'] == [
        ('lock waits', '2, longest 1500 ms'), ('temporary files', '1, 2.0 kB in all, largest 2.0 kB'),
        ('checkpoints too frequent', '3'), ('slow autovacuum runs', '1, longest 720.5 s'),
        ('authentication failures', '12 from 1 address: 203.0.113.9 (12)'), ('restarts', '1: crash 2026-11-22T03:00:00+00:00')]
    missing = [{'setting': 'log_temp_files', 'value': '-1', 'advice': "ALTER SYSTEM SET log_temp_files = 0 <now>"}]
    page = D.render_html(RP.build(run({'ims': {'checks': [], 'log_review': log_review(missing_settings=missing)}}), NOW), {})
    assert '<td>log_temp_files</td><td>-1</td><td>ALTER SYSTEM SET log_temp_files = 0 &lt;now&gt;</td>' in page


def test_top_errors_are_absent_without_a_log_review_and_skip_other_shapes():
    report = RP.build(run({'ims': {'checks': []}}), NOW)
    assert D.log_review_rows(report['targets']) == []
    assert '<section id="errors">' not in D.render_html(report, {})
    odd = RP.build(run({'a': {'checks': [], 'log_review': ['not', 'a', 'dict']},
                        'b': {'checks': [], 'log_review': log_review(top_errors=['x', {'count': 2}, {'pattern': 'p', 'count': 'many'}],
                                                                     severities='none', events=[], missing_settings='x',
                                                                     window=7)}}), NOW)
    panels = D.log_review_rows(odd['targets'])
    assert [p['target'] for p in panels] == ['b']
    assert [(e['pattern'], e['count']) for e in panels[0]['errors']] == [('p', None)]
    assert panels[0]['events'] == [] and panels[0]['missing'] == [] and panels[0]['severities'][2] == ('ERROR', 'warning', 0)
    assert '<section id="errors">' in D.render_html(odd, {})


# -- the web application (web_page_info's web_pages, web_links_info's web_links, dependency_audit_info's dependencies) --
WEB_PAGES = {'finished_at': '2026-11-23T01:00:00+00:00', 'pages': [
    {'url': 'https://shop.example.org/', 'name': 'home', 'lcp_ms': 2500.0, 'cls': 0.02, 'tbt_ms': 250.0, 'ttfb_ms': 1900.0,
     'load_ms': 3400.5, 'transfer_bytes': 1843210, 'requests': 41, 'status': 'critical'},
    {'url': 'https://shop.example.org/<cart>', 'name': 'https://shop.example.org/<cart>', 'lcp_ms': 4100.0, 'cls': 0.3,
     'tbt_ms': None, 'ttfb_ms': 80.0, 'load_ms': 1200.0, 'transfer_bytes': 2048, 'requests': 7, 'status': 'warning'},
    'not a page', {'name': 'no url'}]}
WEB_LINKS = {'finished_at': '2026-11-23T01:00:00+00:00', 'start_urls': ['https://shop.example.org/'], 'pages_crawled': 8,
             'links_checked': 24, 'broken_count': 3, 'broken': [
                 {'url': 'https://shop.example.org/history.html', 'kinds': ['a'], 'status': 404, 'error': 'HTTP 404',
                  'found_on': ['https://shop.example.org/p%d' % n for n in range(7)]},
                 {'url': 'https://cdn.example.org/<x>.js', 'kinds': ['script'], 'status': None, 'error': 'refused',
                  'found_on': ['https://shop.example.org/']},
                 {'kinds': ['img']}]}
DEPENDENCIES = {'finished_at': '2026-11-23T01:00:00+00:00', 'path': '/srv/ims/current',
                'npm': {'counts': {'critical': 1, 'high': 1, 'moderate': 0, 'low': 0, 'info': 0, 'total': 2},
                        'fixable': 2, 'dependencies': 5, 'outdated': 2},
                'python': None, 'vulnerable_total': 3, 'outdated_major': 1, 'vulnerable': [
                    {'ecosystem': 'npm', 'name': 'minimist', 'severity': 'critical', 'direct': False, 'fix_available': True,
                     'fix_semver_major': False, 'advisories': ['Prototype Pollution in minimist']},
                    {'ecosystem': 'npm', 'name': 'optimist<1>', 'severity': 'moderate', 'direct': True,
                     'fix_available': True, 'fix_semver_major': True, 'advisories': []},
                    'broken', {'severity': 'high'}]}


def section_of(page, name):
    return page.split('<section id="%s">' % name)[1].split('</section>')[0]


def test_page_timings_rate_each_figure_by_googles_limits():
    report = RP.build(run({'shop': {'checks': [], 'web_pages': WEB_PAGES}, 'db': {'checks': []}}), NOW)
    rows = D.web_page_rows(report['targets'])
    assert [(r['target'], r['name']) for r in rows] == [('shop', 'home'), ('shop', 'https://shop.example.org/<cart>')]
    home, cart = [dict((c['label'], (c['text'], c['rating'])) for c in r['cells']) for r in rows]
    # a figure at Google's limit is still Good; TTFB above 1.8 s is Poor; the load event has the guides' 3 s only
    assert home == {'LCP': ('2500 ms', 'Good'), 'CLS': ('0.02', 'Good'), 'TBT': ('250 ms', 'Needs improvement'),
                    'TTFB': ('1900 ms', 'Poor'), 'load': ('3400 ms', 'Needs improvement')}
    assert cart == {'LCP': ('4100 ms', 'Poor'), 'CLS': ('0.3', 'Poor'), 'TBT': ('', ''), 'TTFB': ('80 ms', 'Good'),
                    'load': ('1200 ms', 'Good')}
    assert rows[0]['bytes'] == '1.8 MB' and rows[0]['requests'] == 41 and rows[0]['status'] == 'critical'
    assert D.rating(0.1, 0.1, 0.25) == 'good' and D.rating(0.25, 0.1, 0.25) == 'needs_improvement'
    assert D.rating(None, 1, 2) is None and D.rating(True, 1, 2) is None
    section = section_of(D.render_html(report, {}), 'pages')
    assert '<th>LCP</th><th>CLS</th><th>TBT</th><th>TTFB</th><th>load</th>' in section
    assert '4100 ms <span class="rating" style="color:#c0392b">Poor</span>' in section
    assert 'https://shop.example.org/&lt;cart&gt;' in section and '<cart>' not in section
    assert '<td>db</td>' not in section


def test_broken_links_list_each_target_with_the_pages_it_is_on():
    report = RP.build(run({'shop': {'checks': [], 'web_links': WEB_LINKS}}), NOW)
    panel, = D.web_link_panels(report['targets'])
    assert (panel['pages_crawled'], panel['links_checked'], panel['broken_count']) == (8, 24, 3)
    assert [(b['url'], b['kinds'], b['problem'], b['more']) for b in panel['broken']] == [
        ('https://shop.example.org/history.html', 'a', 'HTTP 404', 2), ('https://cdn.example.org/<x>.js', 'script', 'refused', 0)]
    assert len(panel['broken'][0]['found_on']) == 5 and panel['not_listed'] == 1
    section = section_of(D.render_html(report, {}), 'links')
    assert 'https://cdn.example.org/&lt;x&gt;.js' in section and '+2 more' in section
    assert '8 page(s) crawled, 24 target(s) checked' in section and '1 more broken target(s) not listed' in section
    quiet = RP.build(run({'shop': {'checks': [], 'web_links': dict(WEB_LINKS, broken=[], broken_count=0)}}), NOW)
    assert 'No broken link, image, stylesheet or script.' in section_of(D.render_html(quiet, {}), 'links')


def test_vulnerable_packages_with_their_fix_and_the_outdated_major_count():
    report = RP.build(run({'shop': {'checks': [], 'dependencies': DEPENDENCIES}}), NOW)
    panel, = D.dependency_panels(report['targets'])
    assert [(p['name'], p['severity'], p['status'], p['fix_available'], p['semver_major']) for p in panel['packages']] == [
        ('minimist', 'critical', 'critical', True, False), ('optimist<1>', 'moderate', 'warning', True, True)]
    assert panel['counts'][:3] == [('critical', 'critical', 1), ('high', 'critical', 1), ('moderate', 'warning', 0)]
    assert (panel['vulnerable_total'], panel['not_listed'], panel['outdated'], panel['outdated_major']) == (3, 1, 2, 1)
    section = section_of(D.render_html(report, {}), 'dependencies')
    assert 'optimist&lt;1&gt;' in section and 'Prototype Pollution in minimist' in section
    assert '<b>1</b> a major version or more behind' in section and '3 vulnerable package(s)' in section
    assert '1 more vulnerable package(s)' in section
    # an audit that did not answer (no counts) is not shown as a clean one
    unanswered = RP.build(run({'shop': {'checks': [], 'dependencies': dict(
        DEPENDENCIES, npm={'counts': None, 'outdated': 0}, vulnerable=[], vulnerable_total=0)}}), NOW)
    section = section_of(D.render_html(unanswered, {}), 'dependencies')
    assert 'The audit did not answer' in section and 'No vulnerable package' not in section
    assert 'vulnerable package(s)' not in section


def test_web_sections_are_absent_without_them_and_skip_other_shapes():
    report = RP.build(run({'db': {'checks': []}}), NOW)
    page = D.render_html(report, {})
    for name in ('pages', 'links', 'dependencies'):
        assert '<section id="%s">' % name not in page
    assert D.web_page_rows(report['targets']) == [] and D.web_link_panels(report['targets']) == []
    assert D.dependency_panels(report['targets']) == []
    odd = RP.build(run({'a': {'checks': [], 'web_pages': {'pages': 'none'}, 'web_links': ['x'], 'dependencies': 'y'},
                        'b': {'checks': [], 'web_pages': ['x'], 'web_links': {'broken': 'x', 'broken_count': 'many'},
                              'dependencies': {'vulnerable': {'x': 1}, 'npm': [], 'outdated_major': -1}}}), NOW)
    assert D.web_page_rows(odd['targets']) == []
    links, = D.web_link_panels(odd['targets'])
    assert links['target'] == 'b' and links['broken'] == [] and links['broken_count'] == 0
    deps, = D.dependency_panels(odd['targets'])
    assert deps['packages'] == [] and deps['outdated_major'] is None and deps['audited'] is False
    page = D.render_html(odd, {})
    assert '<section id="pages">' not in page and '<section id="links">' in page and 'None' not in page
