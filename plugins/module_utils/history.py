# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Metrics history (one JSON line per run and target), the capacity forecast over it, and an SVG chart.

The forecast is a least-squares line through (time, size): its slope is the growth per day, and where it
crosses ``capacity_share`` percent of the quota is the day the database reaches it. Days are counted from
the newest measurement, so the answer does not change with the moment it is read.
"""

from __future__ import annotations

import datetime
import json
import os
import re

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C

DEFAULT_THRESHOLDS = {'capacity': {'warning': 90, 'critical': 30, 'direction': C.BELOW, 'unit': 'days'}}
SECONDS_PER_DAY = 86400.0


def file_stem(text):
    """The file-name stem of a target (or metric) in the history directory: every character other than letters,
    digits, dot, dash and underscore becomes one ``_`` - character for character, unlike ``files.safe_name``
    (which folds runs and strips the ends). History files already written are named by this rule, so it stays."""
    return re.sub(r'[^A-Za-z0-9._-]', '_', text) or 'target'


def history_path(directory, target):
    return os.path.join(directory, file_stem(target) + '.jsonl')


def parse_time(text):
    moment = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def append(directory, target, metrics, at):
    """Append one line; returns the path. The line is written with one write() of a complete line."""
    os.makedirs(directory, exist_ok=True)
    path = history_path(directory, target)
    line = json.dumps(dict(metrics, at=at, target=target), sort_keys=True, default=str) + '\n'
    with open(path, 'a', encoding='utf-8') as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def read(directory, target):
    """The target's entries, oldest first; lines that do not parse (a torn write) are skipped and counted."""
    path = history_path(directory, target)
    entries, skipped = [], 0
    if not os.path.isfile(path):
        return entries, skipped
    with open(path, 'r', encoding='utf-8') as handle:
        for line in handle:
            try:
                entry = json.loads(line)
                entry['_at'] = parse_time(entry['at'])
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            entries.append(entry)
    entries.sort(key=lambda e: e['_at'])
    return entries, skipped


def fit(points):
    """Least-squares line through (x, y) points: (slope, intercept, r2)."""
    count = float(len(points))
    mean_x = sum(x for x, _y in points) / count
    mean_y = sum(y for _x, y in points) / count
    sxx = sum((x - mean_x) ** 2 for x, _y in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    syy = sum((y - mean_y) ** 2 for _x, y in points)
    if sxx == 0:
        return None, None, None
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    r2 = (sxy * sxy) / (sxx * syy) if syy else 1.0
    return slope, intercept, r2


def forecast(entries, metric, quota, share, min_points):
    """Growth per day of ``metric`` and the days until it reaches ``share`` percent of ``quota``."""
    series = [(e['_at'], e[metric]) for e in entries if isinstance(e.get(metric), (int, float))]
    result = {'metric': metric, 'points': len(series), 'growth_per_day': None, 'r2': None,
              'threshold': quota * share / 100.0 if quota else None, 'days_left': None, 'reaches_on': None,
              'latest': series[-1][1] if series else None,
              'latest_at': series[-1][0].isoformat() if series else None, 'enough_history': False}
    if len(series) < min_points or (series[-1][0] - series[0][0]).total_seconds() <= 0:
        result['reason'] = ('%d measurement(s) of %s; a forecast needs at least %d over more than one moment'
                            % (len(series), metric, min_points))
        return result
    origin = series[0][0]
    points = [((t - origin).total_seconds() / SECONDS_PER_DAY, float(v)) for t, v in series]
    slope, intercept, r2 = fit(points)
    result.update(enough_history=True, growth_per_day=round(slope, 3), r2=round(r2, 4),
                  span_days=round(points[-1][0], 3))
    if not quota:
        result['reason'] = 'no quota given: growth only'
        return result
    if slope <= 0:
        result['reason'] = 'not growing'
        return result
    last_x = points[-1][0]
    fitted_now = slope * last_x + intercept
    days = (result['threshold'] - fitted_now) / slope
    result['days_left'] = round(days, 2)
    result['reaches_on'] = (series[-1][0] + datetime.timedelta(days=days)).isoformat()
    return result


def capacity_finding(result, thresholds, target, quota, share):
    spec = thresholds['capacity']
    share = '%g' % share
    obj = 'target=%s' % target
    if not result['enough_history']:
        return C.finding('capacity', C.UNKNOWN, 'not enough history for a forecast: %s' % result['reason'],
                         unit='days', warning=spec['warning'], critical=spec['critical'], obj=obj)
    growth = C.human_bytes(result['growth_per_day']) if result['metric'].endswith('size') else result['growth_per_day']
    if result['days_left'] is None:
        return C.finding('capacity', C.OK, '%s grows %s per day over %s days (%s)' % (
            result['metric'], growth, result['span_days'], result['reason']), unit='days',
            warning=spec['warning'], critical=spec['critical'], obj=obj, growth_per_day=result['growth_per_day'])
    if result['days_left'] <= 0:
        status = C.CRITICAL
        message = '%s is past %s%% of its quota of %s (growing %s per day)' % (
            result['metric'], share, C.human_bytes(quota), growth)
        return C.finding('capacity', status, message, value=result['days_left'], unit='days', warning=spec['warning'],
                         critical=spec['critical'], obj=obj, growth_per_day=result['growth_per_day'])
    return C.evaluate('capacity', result['days_left'], spec['warning'], spec['critical'], C.BELOW, 'days', obj,
                      '%s grows %s per day and reaches %s%% of its quota of %s in {value} days (on %s)'
                      % (result['metric'], growth, share, C.human_bytes(quota), result['reaches_on'][:10]),
                      growth_per_day=result['growth_per_day'])


def _escape(text):
    return str(text).replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')


def svg_chart(entries, metric, result, title, width=640, height=300):
    """A self-contained SVG line chart of ``metric`` over time, with the forecast line and the threshold."""
    series = [(e['_at'], float(e[metric])) for e in entries if isinstance(e.get(metric), (int, float))]
    pad_l, pad_r, pad_t, pad_b = 70, 20, 30, 40
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
             'font-family="sans-serif" font-size="11">' % (width, height, width, height),
             '<rect width="100%" height="100%" fill="white"/>',
             '<text x="%d" y="18" font-size="13">%s</text>' % (pad_l, _escape(title))]
    if len(series) < 2:
        parts.append('<text x="%d" y="%d">not enough history yet (%d point(s))</text>'
                     % (pad_l, height // 2, len(series)))
        return ''.join(parts) + '</svg>'
    t0, t1 = series[0][0], series[-1][0]
    end = t1
    if result.get('reaches_on') and result.get('days_left') is not None and 0 < result['days_left'] < 3650:
        end = parse_time(result['reaches_on'])
    values = [v for _t, v in series] + ([result['threshold']] if result.get('threshold') else [])
    low, high = min(values + [0.0]), max(values) * 1.05 or 1.0
    span = (end - t0).total_seconds() or 1.0

    def x(moment):
        return pad_l + (width - pad_l - pad_r) * (moment - t0).total_seconds() / span

    def y(value):
        return height - pad_b - (height - pad_t - pad_b) * (value - low) / ((high - low) or 1.0)

    parts.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>' % (pad_l, height - pad_b, width - pad_r,
                                                                            height - pad_b))
    parts.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>' % (pad_l, pad_t, pad_l, height - pad_b))
    for fraction in (0, 0.5, 1):
        value = low + (high - low) * fraction
        label = C.human_bytes(value) if metric.endswith('size') else '%.0f' % value
        parts.append('<text x="4" y="%.1f">%s</text>' % (y(value) + 4, _escape(label)))
    parts.append('<text x="%d" y="%d">%s</text>' % (pad_l, height - 8, _escape(t0.date().isoformat())))
    parts.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (width - pad_r, height - 8,
                                                                      _escape(end.date().isoformat())))
    if result.get('threshold'):
        ty = y(result['threshold'])
        parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c0392b" stroke-dasharray="4 3"/>'
                     % (pad_l, ty, width - pad_r, ty))
        parts.append('<text x="%d" y="%.1f" fill="#c0392b" text-anchor="end">capacity threshold</text>'
                     % (width - pad_r, ty - 4))
    points = ' '.join('%.1f,%.1f' % (x(t), y(v)) for t, v in series)
    parts.append('<polyline fill="none" stroke="#2c7be5" stroke-width="2" points="%s"/>' % points)
    if result.get('growth_per_day') and result.get('enough_history'):
        last_t, last_v = series[-1]
        days = (end - last_t).total_seconds() / SECONDS_PER_DAY
        parts.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#2c7be5" stroke-dasharray="2 3"/>'
                     % (x(last_t), y(last_v), x(end), y(last_v + result['growth_per_day'] * days)))
    return ''.join(parts) + '</svg>'
