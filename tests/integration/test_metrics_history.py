# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""metrics_history on real files: appends, the capacity forecast on histories with a known slope, too
little history, a shrinking database, a failed append that does not fail the task, and the SVG chart; and
the whole chain from a real review."""

from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET

from modrunner import run_module

GB = 1024 ** 3
START = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)


def write_history(directory, target, points):
    with open(directory / ('%s.jsonl' % target), 'w') as handle:
        for day, size in points:
            handle.write(json.dumps({'at': (START + datetime.timedelta(days=day)).isoformat(), 'target': target,
                                     'database_size': size}) + '\n')


def test_known_slope_gives_exact_days(tmp_path):
    # 10 GB growing 1 GB a day for 10 days; 85 % of 100 GB is 85 GB: 65 days after the last point.
    write_history(tmp_path, 'ims', [(day, (10 + day) * GB) for day in range(11)])
    result = run_module('metrics_history', {'dest': str(tmp_path), 'target': 'ims', 'size_quota': '100GB'})
    assert result.rc == 0, result.raw
    forecast = result['forecast']
    assert forecast['growth_per_day'] == GB and forecast['r2'] == 1.0 and forecast['points'] == 11
    assert forecast['days_left'] == 65.0
    assert forecast['reaches_on'].startswith('2027-01-15')  # day 10 (Nov 11) + 65 days
    capacity = result['checks'][0]
    assert capacity['name'] == 'capacity' and capacity['status'] == 'warning' and capacity['value'] == 65.0
    assert result['appended'] is False and result['changed'] is True  # the chart was written
    root = ET.parse(result['chart']).getroot()
    assert root.tag.endswith('svg') and 'capacity threshold' in open(result['chart']).read()
    soon = run_module('metrics_history', {'dest': str(tmp_path), 'target': 'ims', 'size_quota': '30GB', 'chart': False})
    assert soon['checks'][0]['status'] == 'critical' and soon['checks'][0]['value'] == 5.5
    assert 'reaches 85% of its quota of 30.0 GB in 5.5 days' in soon['checks'][0]['message']
    past = run_module('metrics_history', {'dest': str(tmp_path), 'target': 'ims', 'size_quota': '20GB', 'chart': False})
    assert past['checks'][0]['status'] == 'critical' and 'past 85%' in past['checks'][0]['message']
    roomy = run_module('metrics_history', {'dest': str(tmp_path), 'target': 'ims', 'size_quota': '1TB', 'chart': False})
    assert roomy['checks'][0]['status'] == 'ok' and roomy['forecast']['days_left'] > 800


def test_too_little_history_says_so(tmp_path):
    write_history(tmp_path, 'new', [(0, GB), (1, 2 * GB)])
    result = run_module('metrics_history', {'dest': str(tmp_path), 'target': 'new', 'size_quota': '8GB'})
    capacity = result['checks'][0]
    assert capacity['status'] == 'unknown' and 'not enough history' in capacity['message']
    assert '2 measurement(s)' in capacity['message'] and result['forecast']['days_left'] is None


def test_shrinking_database_is_not_growing(tmp_path):
    write_history(tmp_path, 'shrinks', [(day, (20 - day) * GB) for day in range(6)])
    result = run_module('metrics_history', {'dest': str(tmp_path), 'target': 'shrinks', 'size_quota': '8GB'})
    capacity = result['checks'][0]
    assert capacity['status'] == 'ok' and 'not growing' in capacity['message']
    assert result['forecast']['growth_per_day'] == -GB and result['forecast']['days_left'] is None


def test_append_check_mode_and_failed_append(tmp_path):
    args = {'dest': str(tmp_path / 'history'), 'target': 'ims/prod db', 'metrics': {'database_size': 5 * GB},
            'at': '2026-11-20T02:00:00+00:00'}
    first = run_module('metrics_history', args)
    assert first['appended'] is True and first['history_file'].endswith('ims_prod_db.jsonl')
    line = json.loads(open(first['history_file']).read())
    assert line['database_size'] == 5 * GB and line['target'] == 'ims/prod db'
    dry = run_module('metrics_history', dict(args, at='2026-11-21T02:00:00+00:00'), check_mode=True)
    assert dry['appended'] is False and dry['changed'] is False
    assert len(open(first['history_file']).readlines()) == 1
    blocked = tmp_path / 'not-a-directory'
    blocked.write_text('a file where the history directory should be')
    failed = run_module('metrics_history', dict(args, dest=str(blocked)))
    assert failed.rc == 0 and not failed.failed
    assert failed['appended'] is False and 'append_error' in failed
    assert 'could not append' in failed.raw and failed['checks'][0]['status'] == 'unknown'


def test_torn_line_is_skipped(tmp_path):
    write_history(tmp_path, 'ims', [(day, (10 + day) * GB) for day in range(4)])
    with open(tmp_path / 'ims.jsonl', 'a') as handle:
        handle.write('{"at": "2026-11-05T00:00:00+00:00", "database_si')
    result = run_module('metrics_history', {'dest': str(tmp_path), 'target': 'ims', 'size_quota': '100GB', 'chart': False})
    assert result['forecast']['points'] == 4 and 'do not parse' in result.raw


def test_review_to_history_chain(target, tmp_path):
    review = target.run('pg_inspect_info', sections=['sizes', 'connections', 'cache'])
    for day in range(3):
        result = run_module('metrics_history', {'dest': str(tmp_path), 'target': 'ims', 'metrics': review['metrics'],
                                                'at': (START + datetime.timedelta(days=day)).isoformat()})
        assert result['appended'] is True
    assert result['forecast']['points'] == 3 and result['forecast']['growth_per_day'] == 0
    lines = [json.loads(line) for line in open(result['history_file'])]
    assert lines[0]['database_size'] == review['metrics']['database_size'] and 'connections' in lines[0]
