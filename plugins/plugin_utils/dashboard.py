# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report's self-contained HTML dashboard (inline CSS and SVG, no external assets, opens offline from
disk), rendered on the controller from templates/dashboard.html.j2 with autoescaping.

Controller-only (plugin_utils, not module_utils): it needs Jinja2, which ships with ansible-core on the
controller but is never sent to targets. The template is a file next to this one; the collection loader
imports this module from the collection's directory on disk - from a collection path and from a tarball
installed with ansible-galaxy alike - so ``__file__`` locates it."""

from __future__ import annotations

import os
import re

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import report as RP

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'templates')
TEMPLATE = 'dashboard.html.j2'
COLORS = {C.CRITICAL: '#c0392b', C.WARNING: '#d68910', C.UNKNOWN: '#7f8c8d', C.INFO: '#2471a3', C.OK: '#1e8449',
          'unreachable': '#6c3483', 'failed': '#c0392b'}
# What the page calls each status in a heading: info findings are advice, not problems.
GROUP_TITLES = {C.CRITICAL: 'critical', C.WARNING: 'warning', C.UNKNOWN: 'unknown', C.INFO: 'advice', C.OK: 'ok'}
KPI_LABELS = [label for _name, label, _unit in RP.KPI_CHECKS] + ['Slowest endpoint']
# An SVG document as metrics_history.svg_chart writes it: optional XML declaration, then the <svg> element.
_SVG = re.compile(r'\A\s*(<\?xml[^>]*\?>\s*)?<svg[\s>]', re.IGNORECASE)

_environment = None


def quantity(value, unit):
    """A value with its unit for a table cell: bytes in binary multiples, floats to two decimals, '' for None."""
    if value is None:
        return ''
    if unit == 'bytes':
        return C.human_bytes(value)
    if isinstance(value, float):
        value = round(value, 2)
    return '%s %s' % (value, unit)


def age(hours):
    """An age in hours as the page shows it: minutes under an hour, hours under two days, days beyond."""
    if not isinstance(hours, (int, float)) or isinstance(hours, bool):
        return 'age unknown'
    if hours < 1:
        return '%d min' % max(0, round(hours * 60))
    if hours < 48:
        return '%s h' % round(hours, 1)
    return '%s d' % round(hours / 24.0, 1)


def trusted_svg(svg):
    """The one place the dashboard inserts markup unescaped: trend charts the collection's own metrics_history
    drew (it escapes every text it writes into them). Anything that is not an SVG document stays escaped text."""
    return Markup(svg) if isinstance(svg, str) and _SVG.match(svg) else svg


def _rows(targets, section):
    """(target, entry) for every dict in the list section ``section`` of each target; a module that reported
    something else there is left out rather than break the page."""
    return [(t['name'], entry) for t in targets if isinstance(t.get(section), list)
            for entry in t[section] if isinstance(entry, dict)]


def _who(session):
    """One session of a finding's ``sessions`` or ``blockers`` as the page shows it: pid, role, application, client
    and database (never its query text)."""
    if not isinstance(session, dict):
        return ''
    parts = ['pid %s' % session.get('pid')]
    for key, label in (('user', 'user'), ('application_name', 'app'), ('client_addr', 'client'),
                       ('database', 'db'), ('state', 'state')):
        if session.get(key) not in (None, ''):
            parts.append('%s %s' % (label, session[key]))
    if session.get('seconds') is not None:
        parts.append('%s s' % session['seconds'])
    if session.get('blocked_by'):
        parts.append('blocked by pid %s' % ', '.join(str(p) for p in session['blocked_by']))
    return ', '.join(parts)


def sessions(check):
    """The lines the page shows under a finding about sessions: its sessions, then who holds the locks."""
    lines = []
    for key, prefix in (('sessions', ''), ('blockers', 'lock held by ')):
        items = check.get(key)
        if isinstance(items, list):
            lines.extend(prefix + _who(item) for item in items[:10] if isinstance(item, dict))
    return lines


def _dict(value):
    return value if isinstance(value, dict) else {}


def backup_rows(targets):
    """The backup panel: per target, side by side, the database backup (pg_backup), the files (storage_backup), the
    platform's own backups (supabase_project_info) and point-in-time recovery (pgbackrest_info/_backup) - each row
    ``kind``, ``id``, ``finished_at``, ``age_hours``, ``bytes``, ``verified`` (None: not verified, '': not ours to
    verify) and ``detail``."""
    rows = []
    for target in targets:
        name = target['name']
        database = _dict(target.get('backup'))
        if database:
            rows.append(dict(target=name, kind='database', id=database.get('id'), finished_at=database.get('finished_at'),
                             age_hours=database.get('age_hours'), bytes=database.get('bytes'),
                             verified=database.get('verified'), detail=''))
        files = _dict(target.get('storage_backup'))
        if files:
            detail = '%s objects' % files['objects'] if isinstance(files.get('objects'), int) else ''
            if files.get('complete') is False:
                detail += ' (incomplete)'
            rows.append(dict(target=name, kind='files', id=files.get('id'), finished_at=files.get('finished_at'),
                             age_hours=files.get('age_hours'), bytes=files.get('bytes'), verified=files.get('verified'),
                             detail=detail.strip()))
        platform = _dict(target.get('supabase'))
        if platform and ('finished_at' in platform or 'pitr_enabled' in platform):
            pitr_on = platform.get('pitr_enabled')
            detail = 'PITR on' if pitr_on else ('PITR off' if pitr_on is False else '')
            if pitr_on and platform.get('pitr_window_days') is not None:
                detail += ', %s days' % platform['pitr_window_days']
            rows.append(dict(target=name, kind='platform (Supabase)', id=platform.get('project_ref'),
                             finished_at=platform.get('finished_at'), age_hours=platform.get('age_hours'), bytes=None,
                             verified='', detail=detail))
        pitr = _dict(target.get('pitr'))
        if pitr:
            newest = _dict(pitr.get('newest_backup')) or _dict(pitr.get('last_backup'))
            verify = _dict(pitr.get('verify'))
            window = ''
            if pitr.get('window_start') and pitr.get('window_end'):
                window = 'recoverable %s to %s' % (pitr['window_start'], pitr['window_end'])
            elif 'window_start' in pitr:
                window = 'no recoverable window'
            rows.append(dict(target=name, kind='point in time (pgBackRest)', id=newest.get('label'),
                             finished_at=pitr.get('finished_at', newest.get('finished_at')),
                             age_hours=pitr.get('age_hours'), bytes=newest.get('size_bytes'),
                             verified=verify.get('status') if verify else '', detail=window))
    return rows


def view(report, charts):
    """What each section of the dashboard shows, from the report dict and ``charts`` (title -> SVG text)."""
    targets = report['targets']
    findings = [{'category': category, 'rows': rows,
                 'counts': [(s, len([r for r in rows if r[1]['status'] == s])) for s in RP.PROBLEMS]}
                for category, rows in RP.todo(report)]
    advice = [(category, name, check) for category, rows in RP.todo(report, (C.INFO,)) for name, check in rows]
    passed = [(t['name'], c) for t in targets for c in t.get('checks', []) if c['status'] == C.OK]
    categories = [c for c in RP.CATEGORIES + (RP.OTHER,) if any(c in t.get('categories', {}) for t in targets)]
    problems = []
    for target in targets:
        if target.get('unreachable'):
            problems.append((target['name'], '(connection)', target['unreachable']))
        problems.extend((target['name'], f['task'], f['msg']) for f in target.get('failures', []))
    roles, others = RP.ran(report.get('ran', report['tasks']))
    parts = (['roles ' + ', '.join(roles)] if roles else []) + (['tasks ' + ', '.join(others[:20])] if others else [])
    return {
        'report': report,
        'findings': findings,
        'advice': advice,
        'passed': passed,
        'categories': categories,
        'statuses': RP.SEVERITY_ORDER,
        'problems': problems,
        'backups': backup_rows(targets),
        'kpi_labels': KPI_LABELS,
        'kpi_rows': [(t['name'], [t['kpis'].get(label) for label in KPI_LABELS]) for t in targets],
        'kpi_stale': any(item.get('stale') for t in targets for item in t['kpis'].values()),
        'actions': _rows(targets, 'actions'),
        'deliveries': _rows(targets, 'deliveries'),
        'ran': '; '.join(parts) or 'no tasks',
        'charts': [(title, trusted_svg(svg)) for title, svg in sorted(charts.items())],
    }


def environment():
    global _environment  # pylint: disable=global-statement
    if _environment is None:
        env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=True, undefined=StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True,
                          finalize=lambda value: '' if value is None else value)
        env.filters.update(quantity=quantity, human_bytes=C.human_bytes, sessions=sessions, age=age)
        env.globals.update(colors=COLORS, C=C, titles=GROUP_TITLES)
        _environment = env
    return _environment


def render_html(report, charts):
    """A self-contained HTML dashboard of ``report``. ``charts`` maps a title to inline SVG text."""
    return environment().get_template(TEMPLATE).render(**view(report, charts))
