# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report's pure parts: target status, key figures, the summary table, the ``report`` convention, ages,
the fail gate, and the dashboard template (escaping, sections, the SVG it trusts)."""

from __future__ import annotations

import datetime
import os

import pytest
from markupsafe import Markup

from ansible_collections.appcare.maintenance.plugins.module_utils import report as RP
from ansible_collections.appcare.maintenance.plugins.plugin_utils import dashboard as D

NOW = datetime.datetime(2026, 11, 23, 2, 0, tzinfo=datetime.timezone.utc)


def check(name, status, value=None, unit=None, **extra):
    return dict(name=name, status=status, value=value, unit=unit, object='db=ims', message='%s <b>' % name, **extra)


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


def test_html_escapes_messages_and_names_roles():
    report = RP.build(run({'ims': {'checks': [check('invalid_indexes', 'warning', 1, 'count')]}}), NOW)
    report['tasks'] = ['appcare.maintenance.health_check : Check', 'appcare.maintenance.report : Send']
    page = D.render_html(report, {'ims: database size': '<svg xmlns="http://www.w3.org/2000/svg"></svg>'})
    assert 'invalid_indexes &lt;b&gt;' in page and 'invalid_indexes <b>' not in page
    assert 'roles health_check, report' in page and '<svg' in page


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


def test_the_template_is_a_file_next_to_the_renderer():
    assert os.path.isfile(os.path.join(D.TEMPLATE_DIR, D.TEMPLATE))
    assert D.environment().autoescape is True
