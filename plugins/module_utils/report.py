# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report: what the maintenance_report callback gathers (the ``report`` convention of module results),
the schedule it keeps, the summary table and the fail gate. The HTML dashboard is rendered on the controller by
plugin_utils/dashboard.py from a Jinja2 template."""

from __future__ import annotations

import datetime
import json
import os

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.files import write_atomic

TIER_PERIODS = {'daily': 1, 'weekly': 7, 'monthly': 30, 'quarterly': 91}
SEVERITY_ORDER = [C.CRITICAL, C.WARNING, C.UNKNOWN, C.OK]
KPI_CHECKS = (('database_connection', 'DB latency', 'ms'), ('connections_used', 'Connections used', '%'),
              ('cache_hit_ratio', 'Cache hit', '%'), ('database_size', 'Database size', 'bytes'),
              ('backup_age', 'Backup age', 'h'), ('backup_restore_time', 'Restore time', 'min'))
FAIL_ON = ('none', C.WARNING, C.CRITICAL)
# Keys of a target the callback and build() own; a module's ``report`` cannot write them.
RESERVED_SECTIONS = frozenset(('checks', 'failures', 'unreachable', 'name', 'status', 'counts', 'kpis'))


def merge_report(target, sections):
    """Merge a module result's ``report`` (section name -> value) into the gathered ``target``: a dict updates
    the section's dict, a list extends the section's list, any other value replaces the section; None and the
    reserved sections are ignored. Returns the names of the sections it wrote."""
    written = []
    if not isinstance(sections, dict):
        return written
    for name, value in sections.items():
        if not isinstance(name, str) or name in RESERVED_SECTIONS or value is None:
            continue
        current = target.get(name)
        if isinstance(value, dict):
            if isinstance(current, dict):
                current.update(value)
            else:
                target[name] = dict(value)
        elif isinstance(value, (list, tuple)):
            if isinstance(current, list):
                current.extend(value)
            else:
                target[name] = list(value)
        else:
            target[name] = value
        written.append(name)
    return written


def hours_since(text, now):
    """Hours from the ISO 8601 time ``text`` (naive means UTC) to ``now``; None when it does not parse."""
    try:
        moment = datetime.datetime.fromisoformat(str(text).replace('Z', '+00:00'))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return round((now - moment).total_seconds() / 3600.0, 2)


def with_ages(target, now):
    """A copy of ``target`` in which every section dict that has ``finished_at`` also has ``age_hours`` at
    ``now`` (the report's time, not the time the module ran)."""
    aged = dict(target)
    for name, value in target.items():
        if isinstance(value, dict) and value.get('finished_at') is not None:
            aged[name] = dict(value, age_hours=hours_since(value['finished_at'], now))
    return aged


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
        write_atomic(path, json.dumps(last, indent=1, sort_keys=True), mode=0o644)
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
        target = with_ages(run['targets'][name], now)
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


def gate(report, fail_on):
    """The run's one fail gate: what makes the run fail at ``fail_on`` (none, warning or critical) - each target
    whose status (its worst finding; critical when it was unreachable or a task failed) is at or above it, with
    the findings that put it there. Empty when the run passes; ``unknown`` never trips it."""
    if fail_on not in (C.WARNING, C.CRITICAL):
        return []
    floor = C.STATUS_ORDER.index(fail_on)
    reasons = []
    for target in report['targets']:
        if C.STATUS_ORDER.index(target['status']) < floor:
            continue
        why = ['unreachable'] if target.get('unreachable') else []
        why += ['failed: %s' % f['task'] for f in target.get('failures', [])]
        for check in target.get('checks', []):
            if C.STATUS_ORDER.index(check['status']) >= floor and check['name'] not in why:
                why.append(check['name'])
        reasons.append('%s (%s)' % (target['name'], ', '.join(why)))
    return reasons
