# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report's pure parts: target status, key figures, the summary table and the HTML escaping."""

from __future__ import annotations

import datetime

from ansible_collections.appcare.maintenance.plugins.module_utils import report as RP

NOW = datetime.datetime(2026, 11, 23, 2, 0, tzinfo=datetime.timezone.utc)


def check(name, status, value=None, unit=None, **extra):
    return dict(name=name, status=status, value=value, unit=unit, object='db=ims', message='%s <b>' % name, **extra)


def run(targets):
    return {'tier': 'daily', 'started_at': NOW.isoformat(), 'targets': targets, 'tasks': [], 'schedule': []}


def test_status_kpis_and_summary():
    report = RP.build(run({
        'ims': {'checks': [check('connection', 'ok', 1.5, 'ms'),
                           check('database_size', 'warning', 88.0, 'percent', size_bytes=7 * 1024 ** 3)]},
        'down': {'checks': [], 'unreachable': 'connection refused'},
        'failing': {'checks': [check('connection', 'ok', 2.0, 'ms')], 'failures': [{'task': 't', 'msg': 'boom'}]},
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
    page = RP.render_html(report, {'ims: database size': '<svg xmlns="http://www.w3.org/2000/svg"></svg>'})
    assert 'invalid_indexes &lt;b&gt;' in page and 'invalid_indexes <b>' not in page
    assert 'roles health_check, report' in page and '<svg' in page


def test_ran_names_the_roles_a_run_used():
    roles, others = RP.ran(['appcare.maintenance.dr_test : Validating arguments', 'appcare.maintenance.dr_test : Restore',
                            'appcare.maintenance.report : Send', 'Gather facts', 'Gather facts'])
    assert roles == ['dr_test', 'report'] and others == ['Gather facts']
