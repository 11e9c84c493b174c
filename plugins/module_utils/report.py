# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report: what the maintenance_report callback gathers, the schedule it keeps, and the
self-contained HTML dashboard it renders (inline CSS and SVG, no external assets, opens offline)."""

from __future__ import annotations

import datetime
import html
import json
import os

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.history import write_atomic

TIER_PERIODS = {'daily': 1, 'weekly': 7, 'monthly': 30, 'quarterly': 91}
SEVERITY_ORDER = [C.CRITICAL, C.WARNING, C.UNKNOWN, C.OK]
KPI_CHECKS = (('connection', 'DB latency', 'ms'), ('connections_used', 'Connections used', '%'),
              ('cache_hit_ratio', 'Cache hit', '%'), ('database_size', 'Database size', 'bytes'),
              ('backup_age', 'Backup age', 'h'), ('restore_time', 'Restore time', 'min'))
COLORS = {C.CRITICAL: '#c0392b', C.WARNING: '#d68910', C.UNKNOWN: '#7f8c8d', C.OK: '#1e8449',
          'unreachable': '#6c3483', 'failed': '#c0392b'}


def target_status(target):
    if target.get('unreachable'):
        return C.CRITICAL
    statuses = [c['status'] for c in target.get('checks', [])]
    if target.get('failures'):
        statuses.append(C.CRITICAL)
    return C.worst_status(statuses)


def update_schedule(report_dir, tier, now):
    """Record this run of ``tier`` in schedule.json; return every tier's last run and next due time."""
    path = os.path.join(report_dir, 'schedule.json')
    try:
        with open(path, 'r', encoding='utf-8') as handle:
            last = json.load(handle)
    except (OSError, ValueError):
        last = {}
    if tier in TIER_PERIODS:
        last[tier] = now.isoformat()
        write_atomic(path, json.dumps(last, indent=1, sort_keys=True))
    schedule = []
    for name, days in TIER_PERIODS.items():
        when = last.get(name)
        due = None
        if when:
            due = (datetime.datetime.fromisoformat(when) + datetime.timedelta(days=days)).isoformat()
        schedule.append({'tier': name, 'every_days': days, 'last_run': when, 'next_due': due,
                         'overdue': bool(due and datetime.datetime.fromisoformat(due) < now)})
    return schedule


def kpis(target):
    values = {}
    for check in target.get('checks', []):
        for name, label, unit in KPI_CHECKS:
            if check['name'] != name or label in values:
                continue
            value = check.get('value')
            if unit == 'bytes':  # a size judged against a quota carries the size itself in size_bytes
                value = check.get('size_bytes', value if check.get('unit') == 'bytes' else None)
            elif check.get('unit') not in (None, unit, 'percent', 'hours', 'minutes'):
                value = None
            if value is not None:
                values[label] = {'value': value, 'unit': unit, 'status': check['status']}
    latencies = [e['latency_ms']['max'] for e in target.get('endpoints', []) if e.get('latency_ms')]
    if latencies:
        values['Slowest endpoint'] = {'value': max(latencies), 'unit': 'ms', 'status': C.OK}
    return values


def build(run, now):
    """The report dict from the gathered run."""
    targets = []
    totals = dict((s, 0) for s in SEVERITY_ORDER)
    for name in sorted(run['targets']):
        target = run['targets'][name]
        counts = dict((s, 0) for s in SEVERITY_ORDER)
        for check in target.get('checks', []):
            counts[check['status']] = counts.get(check['status'], 0) + 1
            totals[check['status']] = totals.get(check['status'], 0) + 1
        entry = dict(target, name=name, status=target_status(target), counts=counts, kpis=kpis(target))
        targets.append(entry)
    overall = C.worst_status([t['status'] for t in targets]) if targets else C.UNKNOWN
    return {'format': 'appcare.report/1', 'tier': run['tier'], 'playbook': run.get('playbook'),
            'started_at': run['started_at'], 'finished_at': now.isoformat(), 'status': overall, 'totals': totals,
            'targets': targets, 'tasks': run.get('tasks', []), 'schedule': run.get('schedule', [])}


def ran(tasks):
    """(roles, other task names) of a run, from names such as 'appcare.maintenance.backup : Back up'."""
    roles, others = [], []
    for name in tasks:
        if ' : ' in name:
            role = name.split(' : ', 1)[0].rsplit('.', 1)[-1]
            if role not in roles:
                roles.append(role)
        elif name not in others:
            others.append(name)
    return roles, others


def summary_lines(report):
    width = max([len(t['name']) for t in report['targets']] + [6])
    lines = ['%-*s  %-11s %8s %7s %7s %4s' % (width, 'target', 'status', 'critical', 'warning', 'unknown', 'ok')]
    for target in report['targets']:
        status = 'UNREACHABLE' if target.get('unreachable') else target['status'].upper()
        counts = target['counts']
        lines.append('%-*s  %-11s %8d %7d %7d %4d' % (width, target['name'], status, counts[C.CRITICAL],
                                                      counts[C.WARNING], counts[C.UNKNOWN], counts[C.OK]))
    lines.append('overall: %s' % report['status'].upper())
    return lines


# -- HTML -----------------------------------------------------------------------------------------------
def _e(value):
    return html.escape('' if value is None else str(value))


def _badge(status):
    return '<span class="badge" style="background:%s">%s</span>' % (COLORS.get(status, '#555'), _e(status.upper()))


def _value(value, unit):
    if value is None:
        return ''
    if unit == 'bytes':
        return C.human_bytes(value)
    if isinstance(value, float):
        value = round(value, 2)
    return '%s %s' % (value, unit)


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f4f6f8;color:#222}
header{background:#1f2d3d;color:#fff;padding:16px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c8d1db;font-size:13px}main{padding:16px 24px}
section{background:#fff;border-radius:6px;padding:12px 16px;margin-bottom:16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:16px;margin:4px 0 10px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e5e8eb;vertical-align:top}
th{background:#f0f2f4}.badge{color:#fff;border-radius:3px;padding:1px 6px;font-size:11px;font-weight:bold}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #e5e8eb;border-radius:6px;padding:10px 14px;
min-width:180px}.card h3{margin:0 0 6px;font-size:14px}.muted{color:#7f8c8d}details summary{cursor:pointer}
.svg{overflow-x:auto}
"""


def render_html(report, charts):
    """A self-contained HTML dashboard. ``charts`` maps a title to inline SVG text."""
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<title>appcare.maintenance %s report</title><style>%s</style></head><body>' % (_e(report['tier']), CSS),
           '<header><h1>appcare.maintenance &mdash; %s run %s</h1><p>%s to %s &middot; playbook %s</p></header><main>'
           % (_e(report['tier']), _badge(report['status']), _e(report['started_at']), _e(report['finished_at']),
              _e(report.get('playbook')))]
    # Health overview
    out.append('<section id="overview"><h2>Health overview</h2><div class="cards">')
    for target in report['targets']:
        counts = target['counts']
        note = ' (unreachable)' if target.get('unreachable') else ''
        out.append('<div class="card"><h3>%s %s%s</h3><div class="muted">%d critical &middot; %d warning &middot; '
                   '%d unknown &middot; %d ok</div></div>'
                   % (_e(target['name']), _badge(target['status']), _e(note), counts[C.CRITICAL], counts[C.WARNING],
                      counts[C.UNKNOWN], counts[C.OK]))
    out.append('</div></section>')
    # Findings by severity
    out.append('<section id="findings"><h2>Findings</h2>')
    for severity in SEVERITY_ORDER:
        rows = [(t['name'], c) for t in report['targets'] for c in t.get('checks', []) if c['status'] == severity]
        if not rows:
            continue
        table = ['<table><tr><th>target</th><th>check</th><th>object</th><th>value</th><th>message</th></tr>']
        for name, check in rows:
            table.append('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                _e(name), _e(check['name']), _e(check.get('object')), _e(_value(check.get('value'), check.get('unit') or '')),
                _e(check.get('message'))))
        table.append('</table>')
        heading = '%s %d %s' % (_badge(severity), len(rows), 'finding(s)')
        if severity == C.OK:
            out.append('<details><summary>%s</summary>%s</details>' % (heading, ''.join(table)))
        else:
            out.append('<h3>%s</h3>%s' % (heading, ''.join(table)))
    problems = [(t['name'], t) for t in report['targets'] if t.get('unreachable') or t.get('failures')]
    if problems:
        out.append('<h3>%s unreachable or failed</h3><table><tr><th>target</th><th>task</th><th>message</th></tr>'
                   % _badge(C.CRITICAL))
        for name, target in problems:
            if target.get('unreachable'):
                out.append('<tr><td>%s</td><td>(connection)</td><td>%s</td></tr>' % (_e(name), _e(target['unreachable'])))
            for failure in target.get('failures', []):
                out.append('<tr><td>%s</td><td>%s</td><td>%s</td></tr>' % (_e(name), _e(failure['task']),
                                                                           _e(failure['msg'])))
        out.append('</table>')
    out.append('</section>')
    # Backups
    out.append('<section id="backups"><h2>Backup status</h2>')
    backups = [(t['name'], t['backup']) for t in report['targets'] if t.get('backup')]
    if backups:
        out.append('<table><tr><th>target</th><th>newest backup</th><th>finished</th><th>age</th><th>size</th>'
                   '<th>verified</th></tr>')
        for name, backup in backups:
            verified = backup.get('verified')
            if verified == 'ok':
                state = _badge(C.OK) + ' ok'
            else:
                state = _badge(C.WARNING if verified is None else C.CRITICAL) + ' ' + _e(verified or 'not verified')
            size = C.human_bytes(backup['bytes']) if backup.get('bytes') is not None else ''
            out.append('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                _e(name), _e(backup.get('id')), _e(backup.get('finished_at')), _e(_value(backup.get('age_hours'), 'h')),
                _e(size), state))
        out.append('</table>')
    else:
        out.append('<p class="muted">No backup ran in this run.</p>')
    out.append('</section>')
    # KPIs
    out.append('<section id="kpis"><h2>Key figures</h2><table><tr><th>target</th>')
    labels = [label for _n, label, _u in KPI_CHECKS] + ['Slowest endpoint']
    out.append(''.join('<th>%s</th>' % _e(label) for label in labels) + '</tr>')
    for target in report['targets']:
        cells = []
        for label in labels:
            item = target['kpis'].get(label)
            cells.append('<td>%s</td>' % (_e(_value(item['value'], item['unit'])) if item else '<span class="muted">-</span>'))
        out.append('<tr><td>%s</td>%s</tr>' % (_e(target['name']), ''.join(cells)))
    out.append('</table></section>')
    # Maintenance actions
    actions = [(t['name'], a) for t in report['targets'] for a in t.get('actions', [])]
    if actions:
        out.append('<section id="maintenance"><h2>Maintenance actions</h2><table><tr><th>target</th><th>object</th>'
                   '<th>operation</th><th>result</th><th>message</th></tr>')
        for name, action in actions:
            out.append('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                _e(name), _e(action.get('index') or action.get('table')), _e(action.get('operation')),
                _e(action.get('result')), _e(action.get('message'))))
        out.append('</table></section>')
    # Alerts
    deliveries = [(t['name'], d) for t in report['targets'] for d in t.get('deliveries', [])]
    if deliveries:
        out.append('<section id="alerts"><h2>Alerts sent</h2><table><tr><th>target</th><th>channel</th><th>alerts</th>'
                   '<th>resolved</th><th>delivered</th></tr>')
        for name, delivery in deliveries:
            out.append('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                _e(name), _e(delivery.get('channel')), _e(delivery.get('alerts')), _e(delivery.get('resolved')),
                _badge(C.OK) if delivery.get('ok') else _badge(C.CRITICAL) + ' ' + _e(delivery.get('error'))))
        out.append('</table></section>')
    # Schedule
    out.append('<section id="schedule"><h2>Maintenance schedule</h2><table><tr><th>tier</th><th>every</th>'
               '<th>last run</th><th>next due</th></tr>')
    for item in report['schedule']:
        due = _e(item['next_due'] or 'never run')
        if item['overdue']:
            due += ' ' + _badge(C.WARNING)
        out.append('<tr><td>%s</td><td>%s days</td><td>%s</td><td>%s</td></tr>' % (
            _e(item['tier']), item['every_days'], _e(item['last_run'] or '-'), due))
    roles, others = ran(report['tasks'])
    parts = (['roles ' + ', '.join(roles)] if roles else []) + (['tasks ' + ', '.join(others[:20])] if others else [])
    out.append('</table><p class="muted">This %s run: %s</p></section>' % (
        _e(report['tier']), _e('; '.join(parts) or 'no tasks')))
    # Trends
    if charts:
        out.append('<section id="trends"><h2>Trends</h2>')
        for title, svg in sorted(charts.items()):
            out.append('<h3>%s</h3><div class="svg">%s</div>' % (_e(title), svg))
        out.append('</section>')
    out.append('</main></body></html>')
    return '\n'.join(out)
