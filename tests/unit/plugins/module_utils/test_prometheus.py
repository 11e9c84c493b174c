# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report as Prometheus metrics, pure: names and units, label escaping, bounded cardinality, and that an
odd or tampered report never makes an invalid file or a status better than the truth. The real promtool,
node_exporter and Pushgateway are in tests/integration/test_prometheus_export.py."""

from __future__ import annotations

import datetime
import json
import math
import os
import re

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import prometheus as P
from ansible_collections.appcare.maintenance.plugins.module_utils import report as RP

NOW = datetime.datetime(2026, 11, 23, 2, 0, tzinfo=datetime.timezone.utc)
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>.*)\} (?P<value>\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def check(name, status, value=None, unit=None, **extra):
    found = dict(name=name, status=status, value=value, unit=unit, warning=None, critical=None,
                 object='db=ims', message='%s "quoted" \\ message\nwith SELECT secret FROM t' % name)
    found.update(extra)
    return found


def build(targets, tier='daily', started=None):
    run = {'tier': tier, 'started_at': (started or NOW - datetime.timedelta(seconds=90)).isoformat(),
           'targets': targets, 'tasks': [], 'schedule': []}
    return RP.build(run, NOW)


def parse(text):
    """{metric: {frozenset(labels): value}} of exposition text, asserting the grammar as it goes: every sample
    under its own HELP and TYPE, label values escaped, no duplicate series, no NaN."""
    metrics, current, declared = {}, None, set()
    assert text.endswith('\n')
    for line in text.splitlines():
        if line.startswith('# HELP '):
            current = line.split(' ')[2]
            assert current not in declared, 'metric %s declared twice' % current
            declared.add(current)
            metrics[current] = {}
            continue
        if line.startswith('# TYPE '):
            assert line.split(' ')[2] == current and line.split(' ')[3] in ('gauge', 'counter')
            continue
        match = SAMPLE.match(line)
        assert match, 'not a sample line: %r' % line
        assert match.group('name') == current, 'sample %s outside its HELP/TYPE block' % line
        labels, rest = [], match.group('labels')
        while rest:
            found = LABEL.match(rest)
            assert found, 'bad labels in %r' % line
            labels.append((found.group(1), found.group(2)))
            rest = rest[found.end():]
        key = frozenset(labels)
        assert key not in metrics[current], 'duplicate series %s' % line
        value = float(match.group('value'))
        assert not math.isnan(value)
        metrics[current][key] = value
    return metrics


def series(metrics, name, **labels):
    want = set(labels.items())
    return [v for key, v in metrics.get(name, {}).items() if want <= set(key)]


def one(metrics, name, **labels):
    found = series(metrics, name, **labels)
    assert len(found) == 1, '%s %s: %s' % (name, labels, metrics.get(name))
    return found[0]


def test_names_follow_prometheus_conventions():
    for name, kind, text in P.METRICS:
        full = P.PREFIX + name
        assert re.match(r'^appcare_[a-z][a-z0-9_]*$', full) and kind == 'gauge' and text
        assert not full.endswith(('_total', '_count', '_sum', '_bucket')), full  # no counters here
        assert not re.search(r'_(ms|milliseconds|minutes|hours|days|percent|kb|mb)(_|$)', full), full
    assert len(set(P.METRIC_NAMES)) == len(P.METRIC_NAMES)
    assert P.STATUS_VALUES == {'ok': 0, 'info': 1, 'unknown': 2, 'warning': 3, 'critical': 4}


def test_a_report_in_base_units():
    app = {'checks': [check('database_connection', 'ok', 12, 'ms', category='health'),
                      check('cache_hit_ratio', 'warning', 97.5, 'percent'),
                      check('database_size', 'critical', 2048, 'bytes'),
                      check('backup_age', 'ok', 2, 'hours', warning=19.2, critical=24, category='backups'),
                      check('backup_restore_time', 'ok', 1.5, 'minutes', critical=60, category='backups'),
                      check('capacity', 'info', 30, 'days'),
                      check('invalid_indexes', 'warning', 3, 'count'),
                      check('page_cls', 'ok', 0.1, 'score')],
           'backup': {'finished_at': (NOW - datetime.timedelta(hours=2)).isoformat(), 'bytes': 4096, 'verified': 'ok'},
           'pitr': {'window_start': '2026-11-20T02:00:00+00:00', 'window_end': '2026-11-23T01:00:00+00:00',
                    'finished_at': '2026-11-22T02:00:00+00:00', 'newest_backup': {'size_bytes': 777}},
           'pitr_drill': {'finished_at': '2026-11-23T01:30:00Z', 'result': 'ok', 'rto_seconds': 42.5,
                          'rpo_seconds': 3},
           'forecast': {'metric': 'database_size', 'days_left': 10.5},
           'log_review': {'severities': {'ERROR': 10, 'FATAL': 1, 'PANIC': 0, 'WARNING': 2, 'LOG': 99},
                          'new_patterns': 1}}
    down = {'checks': [], 'unreachable': 'ssh: no route'}
    metrics = parse(P.render(build({'app1': app, 'down1': down}), NOW, {'version': '0.1.0', 'ansible_version': '2.19'}))
    assert one(metrics, 'appcare_build_info') == 1
    assert ('version', '0.1.0') in list(metrics['appcare_build_info'])[0]
    assert one(metrics, 'appcare_run_last_success_timestamp_seconds', tier='daily') == NOW.timestamp()
    assert one(metrics, 'appcare_run_duration_seconds', tier='daily') == 90
    assert one(metrics, 'appcare_check_value_seconds', check='database_connection') == pytest.approx(0.012)
    assert one(metrics, 'appcare_check_value_seconds', check='backup_age') == 7200
    assert one(metrics, 'appcare_check_value_seconds', check='capacity') == 30 * 86400
    assert one(metrics, 'appcare_check_value_ratio', check='cache_hit_ratio') == pytest.approx(0.975)
    assert one(metrics, 'appcare_check_value_bytes', check='database_size') == 2048
    assert one(metrics, 'appcare_check_value', check='invalid_indexes') == 3
    assert not series(metrics, 'appcare_check_value', check='page_cls')  # a score has no base unit
    assert one(metrics, 'appcare_check_status', check='page_cls') == 0
    assert one(metrics, 'appcare_check_status', check='database_size', target='app1') == 4
    assert one(metrics, 'appcare_check_status', check='backup_age', category='backups') == 0
    assert one(metrics, 'appcare_target_status', target='app1') == 4
    assert one(metrics, 'appcare_target_status', target='down1') == 4
    assert one(metrics, 'appcare_target_unreachable', target='down1') == 1
    assert one(metrics, 'appcare_findings', target='app1', status='warning') == 2
    assert one(metrics, 'appcare_findings', target='down1', status='critical') == 0
    assert one(metrics, 'appcare_backup_age_seconds', target='app1', kind='dump') == 7200
    assert one(metrics, 'appcare_backup_size_bytes', kind='dump') == 4096
    assert one(metrics, 'appcare_backup_verified', kind='dump') == 1
    assert one(metrics, 'appcare_backup_rpo_seconds', target='app1') == 24 * 3600
    assert one(metrics, 'appcare_backup_size_bytes', kind='pgbackrest') == 777
    assert one(metrics, 'appcare_backup_age_seconds', kind='pgbackrest') == 86400
    assert one(metrics, 'appcare_pitr_window_seconds', source='pgbackrest') == 71 * 3600
    assert one(metrics, 'appcare_restore_drill_rto_seconds') == 42.5
    assert one(metrics, 'appcare_restore_drill_success') == 1
    assert one(metrics, 'appcare_restore_rto_target_seconds', kind='backup') == 3600
    assert one(metrics, 'appcare_capacity_time_left_seconds', metric='database_size') == 10.5 * 86400
    assert one(metrics, 'appcare_log_entries', severity='error') == 10
    assert not series(metrics, 'appcare_log_entries', severity='log')
    # every series carries the tier, so the files of several tiers never clash
    assert all(('tier', 'daily') in key for samples in metrics.values() for key in samples)
    assert set(metrics) <= set(P.METRIC_NAMES)


def test_label_values_are_escaped_and_messages_never_labels():
    name = 'db "one"\\two\nthree'
    text = P.render(build({name: {'checks': [check('connection', 'critical', 1, 'ms')]}}), NOW)
    metrics = parse(text)
    assert one(metrics, 'appcare_target_status', target='db \\"one\\"\\\\two\\nthree') == 4
    assert 'SELECT' not in text and 'message' not in text and 'db=ims' not in text
    assert P.escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_objects_fold_into_one_series_per_check():
    checks = [check('invalid_indexes', 'ok', 0, 'count', object='index=i%d' % i) for i in range(500)]
    checks.append(check('invalid_indexes', 'critical', 7, 'count', object='index=bad'))
    checks += [check('x' * 20 + str(i), 'warning') for i in range(P.MAX_CHECKS_PER_TARGET + 50)]
    checks.append(check('Not A Name; DROP', 'warning'))
    metrics = parse(P.render(build({'app1': {'checks': checks}}), NOW))
    assert one(metrics, 'appcare_check_status', check='invalid_indexes') == 4
    assert one(metrics, 'appcare_check_value', check='invalid_indexes') == 7  # the worst finding's value
    assert one(metrics, 'appcare_check_findings', check='invalid_indexes', status='ok') == 500
    assert one(metrics, 'appcare_check_findings', check='invalid_indexes', status='critical') == 1
    assert len(metrics['appcare_check_status']) <= P.MAX_CHECKS_PER_TARGET + 1
    assert one(metrics, 'appcare_check_status', check=P.OTHER_CHECK) == 3
    total = sum(series(metrics, 'appcare_findings', target='app1'))
    assert total == len(checks)  # folded, never lost


@pytest.mark.parametrize('odd', [
    {'value': float('nan')}, {'value': float('inf')}, {'value': True}, {'value': '12'}, {'value': None},
    {'unit': None}, {'unit': ['bytes']}, {'status': 'fine'}, {'status': None}, {'name': None}, {'category': 'x' * 300},
])
def test_an_odd_finding_makes_a_valid_file_and_no_good_status(odd):
    found = dict(check('database_size', 'ok', 10, 'bytes'), **odd)
    report = build({'app1': {'checks': []}})
    report['targets'][0]['checks'] = [found]  # past build(), as a tampered report would be
    metrics = parse(P.render(report, NOW))
    status = series(metrics, 'appcare_check_status')
    assert len(status) == 1
    if 'status' in odd:
        assert status == [2]  # unknown, never ok
        assert one(metrics, 'appcare_target_status') >= 2
    for name in ('appcare_check_value_bytes', 'appcare_check_value'):
        for value in series(metrics, name):
            assert math.isfinite(value)


def test_a_tampered_report_never_looks_fresh_or_good():
    future = (NOW + datetime.timedelta(days=3)).isoformat()
    report = build({'app1': {'checks': [check('backup_age', 'critical', 99, 'hours')],
                             'backup': {'finished_at': future, 'bytes': -5, 'verified': 'maybe'},
                             'pitr_drill': {'result': 'passed?', 'rto_seconds': float('nan'), 'finished_at': future},
                             'pitr': {'window_start': future, 'window_end': NOW.isoformat()},
                             'forecast': {'metric': 'x{y="1"}', 'days_left': 3},
                             'log_review': {'severities': 'ERROR'}}})
    report['targets'][0]['status'] = 'ok'  # says ok, but its finding is critical
    report['targets'][0]['failures'] = 'not a list'
    report['finished_at'] = future
    metrics = parse(P.render(report, NOW))
    assert one(metrics, 'appcare_target_status') == 4
    assert one(metrics, 'appcare_backup_age_seconds') == math.inf  # dated in the future: as good as none
    assert not series(metrics, 'appcare_backup_finished_timestamp_seconds')
    assert not series(metrics, 'appcare_backup_size_bytes')
    assert one(metrics, 'appcare_backup_verified') == 0
    assert one(metrics, 'appcare_restore_drill_success') == 0
    assert not series(metrics, 'appcare_restore_drill_rto_seconds')
    assert not series(metrics, 'appcare_restore_drill_timestamp_seconds')
    assert not series(metrics, 'appcare_pitr_window_seconds')
    assert not series(metrics, 'appcare_capacity_time_left_seconds')
    assert not series(metrics, 'appcare_run_last_success_timestamp_seconds')  # a run from the future is no run


@pytest.mark.parametrize('report', [None, {}, {'targets': 'x'}, {'targets': [None, 3, {'name': ''}, {'name': 7}]},
                                    {'tier': 5, 'targets': [{'name': 'a', 'checks': 'x'}]}])
def test_garbage_in_is_a_valid_file_out(report):
    metrics = parse(P.render(report, NOW))
    assert one(metrics, 'appcare_build_info', tier='adhoc', version='unknown') == 1


def test_a_little_clock_skew_is_not_the_future():
    ahead = (NOW + datetime.timedelta(seconds=60)).isoformat()
    metrics = parse(P.render(build({'app1': {'checks': [], 'backup': {'finished_at': ahead}}}), NOW))
    assert one(metrics, 'appcare_backup_age_seconds') == 0


def test_textfile_per_tier_atomic(tmp_path):
    daily = P.write_textfile(str(tmp_path), 'daily', P.render(build({'a': {'checks': []}}), NOW))
    weekly = P.write_textfile(str(tmp_path), 'weekly', P.render(build({'a': {'checks': []}}, 'weekly'), NOW))
    assert os.path.basename(daily) == 'appcare_daily.prom' and os.path.basename(weekly) == 'appcare_weekly.prom'
    assert P.textfile_name('../../etc/x y') == 'appcare_etc_x_y.prom'
    assert sorted(os.listdir(str(tmp_path))) == ['appcare_daily.prom', 'appcare_weekly.prom']  # no temporary left
    assert oct(os.stat(daily).st_mode & 0o777) == '0o644'


def test_export_reports_problems_and_does_not_raise(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    written, problems = P.export(build({'a': {'checks': []}}), NOW, prometheus_textfile_dir=str(blocker / 'sub'),
                                 pushgateway_url='ftp://nowhere')
    assert written is None and len(problems) == 2
    assert 'textfile' in problems[0] and 'http' in problems[1]
    assert P.export({'tier': 'daily'}, NOW) == (None, [])
    written, problems = P.export(build({'a': {'checks': []}}), NOW, prometheus_textfile_dir='prom', base_dir=str(tmp_path))
    assert problems == [] and written == str(tmp_path / 'prom' / 'appcare_daily.prom')


def test_push_url_and_an_unreachable_gateway():
    assert P.push_url('http://gw:9091/', 'daily') == 'http://gw:9091/metrics/job/appcare/tier/daily'
    assert P.push_url('http://gw:9091', 'a/b').startswith('http://gw:9091/metrics/job/appcare/tier@base64/')
    problem = P.push('http://127.0.0.1:1', 'daily', 'x 1\n', timeout=2)
    assert problem and 'cannot push' in problem


def _exprs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'expr' and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def test_the_dashboard_uses_only_our_metrics_and_has_what_grafana_needs():
    with open(os.path.join(REPO, 'contrib', 'grafana', 'appcare.json'), 'r', encoding='utf-8') as handle:
        dashboard = json.load(handle)
    assert isinstance(dashboard['schemaVersion'], int) and dashboard['schemaVersion'] >= 36
    assert dashboard['title'] and dashboard['uid'] and dashboard['panels']
    ids = [p['id'] for p in dashboard['panels']]
    assert len(ids) == len(set(ids))
    for panel in dashboard['panels']:
        assert panel['type'] in ('stat', 'table', 'timeseries', 'bargauge', 'gauge', 'text'), panel['type']
        assert panel['datasource']['type'] == 'prometheus'
        assert set(panel['gridPos']) == {'h', 'w', 'x', 'y'} and panel['gridPos']['x'] + panel['gridPos']['w'] <= 24
        assert panel['targets'] and len(set(t['refId'] for t in panel['targets'])) == len(panel['targets'])
        for query in panel['targets']:
            assert query['datasource']['type'] == 'prometheus' and query['expr']
    exprs = list(_exprs(dashboard))
    exprs += [v['definition'] for v in dashboard['templating']['list'] if v['type'] == 'query']
    used = set(name for expr in exprs for name in re.findall(r'\bappcare_[a-z0-9_]+', expr))
    assert used and used <= set(P.METRIC_NAMES), used - set(P.METRIC_NAMES)
    for expr in exprs:
        assert re.search(r'\bappcare_[a-z0-9_]+', expr), expr
    titles = ' '.join(p['title'] for p in dashboard['panels']).lower()
    for what in ('status', 'backup age', 'rto', 'rpo', 'capacity', 'top findings'):
        assert what in titles, what


def test_the_rules_use_only_our_metrics():
    with open(os.path.join(REPO, 'contrib', 'prometheus', 'appcare.rules.yml'), 'r', encoding='utf-8') as handle:
        text = handle.read()
    used = set(re.findall(r'\bappcare_[a-z0-9_]+', text)) - {'appcare_maintenance'}
    assert used and used <= set(P.METRIC_NAMES), used - set(P.METRIC_NAMES)
