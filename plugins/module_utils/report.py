# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report: what the maintenance_report callback gathers (the ``report`` convention of module results),
the schedule it keeps, the summary table and the fail gate. The HTML dashboard is rendered on the controller by
plugin_utils/dashboard.py from a Jinja2 template."""

from __future__ import annotations

import datetime
import json
import math
import os

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.files import write_atomic

TIER_PERIODS = {'daily': 1, 'weekly': 7, 'monthly': 30, 'quarterly': 91}
# Worst first: what the report lists and counts. ``info`` is advice - shown apart from the problems and from ok.
SEVERITY_ORDER = [C.CRITICAL, C.WARNING, C.UNKNOWN, C.INFO, C.OK]
PROBLEMS = (C.CRITICAL, C.WARNING, C.UNKNOWN)
# The categories of Supabase's advisors, in the report's order; a finding no module placed goes to ``other``.
CATEGORIES = ('security', 'performance', 'health', 'backups')
OTHER = 'other'
# The category of a finding is the one of the module that produced it, unless the finding names one (``category``).
ACTION_CATEGORIES = {'pg_audit_info': 'security', 'tls_cert_info': 'security', 'pg_maintenance_roles': 'security',
                     'dependency_audit_info': 'security',
                     'pg_inspect_info': 'performance', 'pg_reindex': 'performance', 'pg_vacuum': 'performance',
                     'metrics_history': 'performance',
                     'web_page_info': 'performance',
                     'pg_health_info': 'health', 'http_health_info': 'health',
                     'pg_log_info': 'health',  # its log_auth_failures findings say category security
                     'web_links_info': 'health',
                     'supabase_logs_info': 'health',  # its auth_* findings say category security
                     'pg_backup': 'backups', 'pg_backup_verify': 'backups',
                     'storage_backup': 'backups', 'storage_backup_verify': 'backups',
                     'pgbackrest_info': 'backups', 'pgbackrest_backup': 'backups',
                     'pgbackrest_restore_drill': 'backups',
                     'supabase_project_info': 'backups'}  # its supabase_service findings say category health
KPI_STATE = 'kpis.json'
KPI_STATE_FORMAT = 'appcare.kpis/1'
FUTURE_SKEW_SECONDS = 300  # a clock a little ahead is not "from the future"
TODO_LINES = 25  # per category in the text summary; the dashboard lists them all
KPI_CHECKS = (('database_connection', 'DB latency', 'ms'), ('connections_used', 'Connections used', '%'),
              ('cache_hit_ratio', 'Cache hit', '%'), ('database_size', 'Database size', 'bytes'),
              ('backup_age', 'Backup age', 'h'), ('backup_restore_time', 'Restore time', 'min'))
FAIL_ON = ('none', C.WARNING, C.CRITICAL)
# Keys of a target the callback and build() own; a module's ``report`` cannot write them.
RESERVED_SECTIONS = frozenset(('checks', 'failures', 'unreachable', 'name', 'status', 'counts', 'kpis', 'categories'))


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
    """The worst finding of a target; critical when it was unreachable or a task failed. Advice (info) counts as
    the worst only when nothing else was found, as in ``checks.worst_status``."""
    if target.get('unreachable'):
        return C.CRITICAL
    statuses = [c['status'] for c in target.get('checks', []) if c.get('status') in C.STATUS_ORDER]
    if target.get('failures'):
        statuses.append(C.CRITICAL)
    return C.worst_status(statuses)


def category_of(action, finding):
    """The category of a finding: the ``category`` the module put on it when it names one of CATEGORIES, otherwise
    the category of the module (``action``, with or without the collection prefix), otherwise ``other``."""
    named = finding.get('category') if isinstance(finding, dict) else None
    if named in CATEGORIES:
        return named
    return ACTION_CATEGORIES.get(str(action or '').rsplit('.', 1)[-1], OTHER)


def category_counts(checks):
    """{category: {status: count}} of ``checks`` for the categories that have findings, in CATEGORIES order."""
    counts = {}
    for check in checks:
        category = check.get('category') if check.get('category') in CATEGORIES else OTHER
        counts.setdefault(category, dict((s, 0) for s in SEVERITY_ORDER))
        counts[category][check['status']] = counts[category].get(check['status'], 0) + 1
    return dict((c, counts[c]) for c in CATEGORIES + (OTHER,) if c in counts)


def _rank(status):
    return SEVERITY_ORDER.index(status) if status in SEVERITY_ORDER else len(SEVERITY_ORDER)


def todo(report, statuses=PROBLEMS):
    """The run's to-do list: [(category, [(target name, finding)...])] of the findings whose status is in
    ``statuses``, per category in CATEGORIES order (``other`` last), worst first, then by target and check."""
    groups = {}
    for target in report['targets']:
        for check in target.get('checks', []):
            if check.get('status') in statuses:
                category = check.get('category') if check.get('category') in CATEGORIES else OTHER
                groups.setdefault(category, []).append((target['name'], check))
    result = []
    for category in CATEGORIES + (OTHER,):
        if category in groups:
            rows = sorted(groups[category], key=lambda row: (_rank(row[1]['status']), row[0], row[1]['name'],
                                                             str(row[1].get('object') or '')))
            result.append((category, rows))
    return result


def todo_line(name, check, width=160):
    """One line of the to-do list: status, target, check [object]: message (cut to ``width``)."""
    obj = check.get('object')
    text = '%-8s %s %s%s: %s' % (check['status'].upper(), name, check['name'], ' [%s]' % obj if obj else '',
                                 ' '.join(str(check.get('message') or '').split()))
    return text if len(text) <= width else text[:width - 3] + '...'


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
        entry = dict(target, name=name, status=target_status(target), counts=counts, kpis=kpis(target),
                     categories=category_counts(target.get('checks', [])))
        targets.append(entry)
    overall = C.worst_status([t['status'] for t in targets]) if targets else C.UNKNOWN
    return {'format': 'appcare.report/1', 'tier': run['tier'], 'playbook': run.get('playbook'),
            'started_at': run['started_at'], 'finished_at': now.isoformat(), 'status': overall, 'totals': totals,
            'categories': category_counts([c for t in targets for c in t.get('checks', [])]),
            'targets': targets, 'tasks': run.get('tasks', []), 'ran': run.get('ran', run.get('tasks', [])),
            'schedule': run.get('schedule', [])}


# -- key figures this run did not measure: the newest known ones, with their age ------------------------------
KPI_UNITS = dict([(label, unit) for _name, label, unit in KPI_CHECKS] + [('Slowest endpoint', 'ms')])


def _parse_time(text):
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _kpi_entry(label, item, now):
    """A key figure read back from the state file, validated; None when it cannot be trusted: an unknown label, a
    value that is not a finite number, a unit other than the label's, a time that does not parse or lies ahead
    of ``now``."""
    if label not in KPI_UNITS or not isinstance(item, dict):
        return None
    value = item.get('value')
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if item.get('unit') != KPI_UNITS[label]:
        return None
    measured = _parse_time(item.get('measured_at'))
    if measured is None or (measured - now).total_seconds() > FUTURE_SKEW_SECONDS:
        return None
    status = item.get('status') if item.get('status') in C.STATUS_ORDER else C.UNKNOWN
    return {'value': value, 'unit': KPI_UNITS[label], 'status': status, 'measured_at': measured.isoformat()}


def load_kpi_state(text, now):
    """{target: {label: entry}} from the text of the KPI state file; whatever does not validate is left out (a
    malformed file is an empty state, a bad or future-dated entry is dropped), so nothing read back passes as
    fresh or as a figure it is not."""
    try:
        state = json.loads(text)
    except (TypeError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get('format') != KPI_STATE_FORMAT or not isinstance(
            state.get('targets'), dict):
        return {}
    known = {}
    for name, figures in state['targets'].items():
        if not isinstance(name, str) or not isinstance(figures, dict):
            continue
        entries = dict((label, _kpi_entry(label, item, now)) for label, item in figures.items()
                       if isinstance(label, str))
        entries = dict((label, entry) for label, entry in entries.items() if entry)
        if entries:
            known[name] = entries
    return known


def known_kpis(report, known, now):
    """Fill each target's key figures this run did not measure from ``known`` (load_kpi_state), marked ``stale``
    with ``measured_at`` and ``age_hours``; return the new state (this run's figures at ``now``, the others as
    they were) as the dict to write back."""
    state = dict((name, dict(figures)) for name, figures in known.items())
    for target in report['targets']:
        figures = state.setdefault(target['name'], {})
        for label, item in target['kpis'].items():
            figures[label] = {'value': item['value'], 'unit': item['unit'], 'status': item['status'],
                              'measured_at': now.isoformat()}
        for label, item in known.get(target['name'], {}).items():
            if label not in target['kpis']:
                target['kpis'][label] = dict(item, stale=True, age_hours=hours_since(item['measured_at'], now))
    return {'format': KPI_STATE_FORMAT, 'updated': now.isoformat(),
            'targets': dict((name, figures) for name, figures in sorted(state.items()) if figures)}


def update_kpis(report_dir, report, now):
    """Read ``<report_dir>/kpis.json``, fill the report's missing key figures from it (``known_kpis``) and write it
    back atomically with this run's figures."""
    path = os.path.join(report_dir, KPI_STATE)
    try:
        with open(path, 'r', encoding='utf-8') as handle:
            text = handle.read(1024 * 1024)
    except (OSError, UnicodeDecodeError):
        text = None
    state = known_kpis(report, load_kpi_state(text, now), now)
    write_atomic(path, json.dumps(state, indent=1, sort_keys=True), mode=0o644)
    return state


def ran(tasks):
    """(roles, other task names) of a run, from names such as 'appcare.maintenance.backup : Back up' - pass the
    names of the tasks that ran (ok, changed or failed on some host), not of those that were only skipped."""
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
    """The text summary after the recap: per target its status and counts, the run's to-do list per category
    (critical, warning, unknown - worst first, one line each) and, apart, the advice (info)."""
    width = max([len(t['name']) for t in report['targets']] + [6])
    columns = list(SEVERITY_ORDER)
    lines = ['%-*s  %-11s %s' % (width, 'target', 'status', ' '.join('%8s' % s for s in columns))]
    for target in report['targets']:
        status = 'UNREACHABLE' if target.get('unreachable') else target['status'].upper()
        counts = target['counts']
        lines.append('%-*s  %-11s %s' % (width, target['name'], status,
                                         ' '.join('%8d' % counts.get(s, 0) for s in columns)))
    broken = [(t['name'], 'UNREACHABLE', '(connection)', t['unreachable']) for t in report['targets']
              if t.get('unreachable')]
    broken += [(t['name'], 'FAILED', f.get('task'), f.get('msg')) for t in report['targets'] for f in t.get('failures', [])
               if isinstance(f, dict)]
    if broken:
        lines.append('to do - unreachable or failed: %d' % len(broken))
        for name, what, task, message in broken:
            text = '%-8s %s %s: %s' % (what, name, task, ' '.join(str(message or '').split()))
            lines.append('  ' + (text if len(text) <= 160 else text[:157] + '...'))
    for title, statuses in (('to do', PROBLEMS), ('advice', (C.INFO,))):
        for category, rows in todo(report, statuses):
            summary = ', '.join('%d %s' % (n, s) for s, n in
                                ((s, len([r for r in rows if r[1]['status'] == s])) for s in statuses) if n)
            lines.append('%s - %s: %s' % (title, category, summary))
            lines.extend('  ' + todo_line(name, check) for name, check in rows[:TODO_LINES])
            if len(rows) > TODO_LINES:
                lines.append('  ... and %d more in the dashboard' % (len(rows) - TODO_LINES))
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
