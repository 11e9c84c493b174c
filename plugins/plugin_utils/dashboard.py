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


# The log's severities, worst first, and the status whose colour each gets on the page.
LOG_SEVERITIES = (('PANIC', C.CRITICAL), ('FATAL', C.CRITICAL), ('ERROR', C.WARNING), ('WARNING', C.INFO))


def _count(value):
    """A count read from a report section: a non-negative int (a bool or anything else is not one), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _names(value, limit=5):
    """A list of names (databases, users, clients) as one cell: the first ``limit`` and how many more."""
    if not isinstance(value, list):
        return ''
    names = [str(item) for item in value if isinstance(item, (str, int))]
    return ', '.join(names[:limit]) + (' +%d' % (len(names) - limit) if len(names) > limit else '')


def _events(events):
    """The log events of a ``log_review`` section as (label, text) lines, only those that happened. Each event is a
    count, or a dict with its count and figures (the module's full ``events``), or a list (per address, restarts)."""
    lines = []

    def counted(key, label, figures=()):
        value = events.get(key)
        item = _dict(value)
        count = _count(item.get('count')) if item else _count(value)
        if isinstance(value, list):
            count = len([v for v in value if isinstance(v, dict)])
        if not count:
            return
        extra = [text % _number(item[name]) for name, text in figures if _number(item.get(name)) is not None]
        lines.append((label, ', '.join(['%d' % count] + extra)))

    counted('deadlocks', 'deadlocks')
    counted('lock_waits', 'lock waits', [('max_ms', 'longest %.0f ms')])
    temp = _dict(events.get('temp_files'))
    count = _count(temp.get('count')) if temp else _count(events.get('temp_files'))
    total = _count(temp.get('total_bytes')) if temp else _count(events.get('temp_bytes'))
    if count:
        largest = _count(temp.get('max_bytes'))
        lines.append(('temporary files', '%d%s%s' % (count, ', %s in all' % C.human_bytes(total) if total is not None else '',
                                                     ', largest %s' % C.human_bytes(largest) if largest is not None else '')))
    counted('checkpoints_too_frequent', 'checkpoints too frequent')
    counted('autovacuum_slow', 'slow autovacuum runs', [('max_seconds', 'longest %g s')])
    longest = _number(events.get('autovacuum_max_seconds'))
    if longest:
        lines.append(('longest autovacuum run', quantity(longest, 's')))
    if isinstance(events.get('auth_failures'), list):
        lines.extend(_per_address('authentication failures', events['auth_failures'], 'failures'))
    else:
        counted('auth_failures', 'authentication failures')
    restarts = events.get('restarts')
    if isinstance(restarts, list):
        restarts = [r for r in restarts if isinstance(r, dict)]
        if restarts:
            lines.append(('restarts', '%d: %s' % (len(restarts), ', '.join(
                ' '.join(str(r[k]) for k in ('kind', 'when') if r.get(k)) for r in restarts[:5]))))
    else:
        counted('restarts', 'server starts and restarts')
    return lines


def _per_address(label, rows, key):
    """Failures per client address (pg_log_info's auth_failures, supabase_logs_info's failed and rate-limited
    sign-ins) as one line: the total, how many addresses, the worst five."""
    rows = [r for r in rows if isinstance(r, dict) and _count(r.get(key))] if isinstance(rows, list) else []
    if not rows:
        return []
    total = sum(r[key] for r in rows)
    worst = ', '.join('%s (%d)' % (r.get('address'), r[key]) for r in rows[:5])
    return [(label, '%d from %d address%s: %s' % (total, len(rows), '' if len(rows) == 1 else 'es', worst))]


def _window(review):
    """The window a review read: its hours (``window.hours`` or ``window_hours``), else its start and end."""
    window = review.get('window')
    if isinstance(window, str):
        return window
    window = _dict(window)
    hours = _number(window.get('hours', review.get('window_hours')))
    if hours is not None:
        return 'last %g h' % hours
    return '%s to %s' % (window['start'], window['end']) if window.get('start') and window.get('end') else ''


def _api_traffic(traffic):
    """Supabase's API traffic (the edge logs) as (label, text) lines: requests, the 5xx rate, latency."""
    lines = []
    if _count(traffic.get('requests')) is not None:
        lines.append(('requests', '%d' % traffic['requests']))
    if _number(traffic.get('error_rate_percent')) is not None:
        errors = _count(traffic.get('errors_5xx'))
        lines.append(('server errors (5xx)', quantity(float(traffic['error_rate_percent']), '%')
                      + (' (%d)' % errors if errors is not None else '')))
    if _count(traffic.get('errors_4xx')) is not None:
        lines.append(('client errors (4xx)', '%d' % traffic['errors_4xx']))
    latency = _dict(traffic.get('latency_ms'))
    for key in ('p50', 'p95', 'p99'):
        if _number(latency.get(key)) is not None:
            lines.append(('latency %s' % key, quantity(latency[key], 'ms')))
    return lines


def log_review_rows(targets):
    """The "Top errors" panel: per target with a ``log_review`` section (pg_log_info, supabase_logs_info), its
    totals per severity, the top error patterns with the new ones marked, the log's events, the settings the log
    lacks and, for Supabase, the API's real traffic. Anything in another shape is left out."""
    panels = []
    for target in targets:
        review = _dict(target.get('log_review'))
        if not review:
            continue
        severities = _dict(review.get('severities'))
        errors = []
        for entry in review.get('top_errors') if isinstance(review.get('top_errors'), list) else []:
            if isinstance(entry, dict) and entry.get('pattern') not in (None, ''):
                errors.append(dict(pattern=str(entry['pattern']), severity=str(entry.get('severity') or ''),
                                   sqlstate=entry.get('sqlstate') or '', count=_count(entry.get('count')),
                                   last_seen=entry.get('last_seen') or '', databases=_names(entry.get('databases')),
                                   users=_names(entry.get('users')), new=entry.get('new') is True))
        # the settings the log lacks: their names, or each with its value and advice
        missing = [m if isinstance(m, dict) else {'setting': m} for m in review.get('missing_settings') or []
                   if isinstance(m, str) or isinstance(m, dict) and m.get('setting')] \
            if isinstance(review.get('missing_settings'), list) else []
        new = review.get('new_patterns')  # a count, or the new patterns themselves
        events = _events(_dict(review.get('events')))
        events.extend(_per_address('failed sign-ins', review.get('failed_signins'), 'count'))
        events.extend(_per_address('rate-limited sign-ins', review.get('rate_limited'), 'count'))
        panels.append(dict(
            target=target['name'], source=str(review.get('source') or ''), finished_at=review.get('finished_at'),
            window=_window(review),
            severities=[(name, status, _count(severities.get(name)) or 0) for name, status in LOG_SEVERITIES],
            errors=errors, new_patterns=len(new) if isinstance(new, list) else _count(new),
            patterns_total=_count(review.get('patterns_total')), events=events, missing=missing,
            api=_api_traffic(_dict(target.get('api_traffic')))))
    return panels


# Google's limits for the Core Web Vitals (web.dev/articles/vitals: "Good" up to the first, "Poor" above the second),
# Lighthouse's desktop scoring for Total Blocking Time, web.dev's for time to first byte, and the guides' 3 seconds
# for the load event (no "Poor" level: above it the page needs improvement). Fixed here, whatever the run's
# thresholds: the findings judge by those; the page timings say where a figure stands on Google's scale.
WEB_VITALS = (('lcp_ms', 'LCP', 'ms', 2500, 4000), ('cls', 'CLS', '', 0.1, 0.25), ('tbt_ms', 'TBT', 'ms', 200, 600),
              ('ttfb_ms', 'TTFB', 'ms', 800, 1800), ('load_ms', 'load', 'ms', 3000, None))
RATINGS = {'good': ('Good', C.OK), 'needs_improvement': ('Needs improvement', C.WARNING), 'poor': ('Poor', C.CRITICAL)}


def rating(value, good, poor):
    """'good', 'needs_improvement' or 'poor' of a figure against its limits (a figure at a limit is still on the
    better side, as Google rates them); None when there is no figure."""
    value = _number(value)
    if value is None:
        return None
    if value <= good:
        return 'good'
    return 'needs_improvement' if poor is None or value <= poor else 'poor'


def _figure(value, unit):
    if unit == 'ms':
        return '%.0f ms' % value
    return ('%.3f' % value).rstrip('0').rstrip('.') if isinstance(value, float) else str(value)


def web_page_rows(targets):
    """The "Page timings" panel: one row per page of each target's ``web_pages`` section (web_page_info) - its name
    and URL, each Web Vital with its figure and rating, bytes and requests, and the page's status. Pages in another
    shape are left out."""
    rows = []
    for target in targets:
        section = _dict(target.get('web_pages'))
        for page in section.get('pages') if isinstance(section.get('pages'), list) else []:
            if not isinstance(page, dict) or not isinstance(page.get('url'), str):
                continue
            cells = []
            for key, label, unit, good, poor in WEB_VITALS:
                value = _number(page.get(key))
                rated = rating(value, good, poor)
                cells.append(dict(label=label, text=_figure(value, unit) if value is not None else '',
                                  rating=RATINGS[rated][0] if rated else '', status=RATINGS[rated][1] if rated else None))
            status = page.get('status') if page.get('status') in C.STATUS_ORDER else None
            transfer = _count(page.get('transfer_bytes'))
            rows.append(dict(target=target['name'], name=str(page.get('name') or page['url']), url=page['url'],
                             cells=cells, bytes=C.human_bytes(transfer) if transfer is not None else '',
                             requests=_count(page.get('requests')), status=status,
                             finished_at=section.get('finished_at')))
    return rows


def web_link_panels(targets):
    """The "Broken links" panel: per target with a ``web_links`` section (web_links_info), the crawl's figures and
    each broken target - URL, kinds, status or error, the pages it is found on. Anything in another shape is left
    out."""
    panels = []
    for target in targets:
        section = _dict(target.get('web_links'))
        if not section:
            continue
        broken = []
        for entry in section.get('broken') if isinstance(section.get('broken'), list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get('url'), str):
                continue
            found_on = [p for p in entry.get('found_on') or [] if isinstance(p, str)] \
                if isinstance(entry.get('found_on'), list) else []
            status = _count(entry.get('status'))
            error = str(entry.get('error') or '')
            broken.append(dict(url=entry['url'], kinds=_names(entry.get('kinds')),
                               problem=error or ('HTTP %d' % status if status is not None else ''),
                               status=status, found_on=found_on[:5], more=max(0, len(found_on) - 5)))
        count = _count(section.get('broken_count'))
        panels.append(dict(target=target['name'], start_urls=_names(section.get('start_urls'), 3),
                           pages_crawled=_count(section.get('pages_crawled')),
                           links_checked=_count(section.get('links_checked')),
                           broken_count=count if count is not None else len(broken), broken=broken,
                           not_listed=max(0, (count or 0) - len(broken))))
    return panels


# npm's severities, worst first, and the status whose colour each gets on the page.
DEPENDENCY_SEVERITIES = {'critical': C.CRITICAL, 'high': C.CRITICAL, 'moderate': C.WARNING, 'low': C.INFO, 'info': C.INFO}


def dependency_panels(targets):
    """The "Dependencies" panel: per target with a ``dependencies`` section (dependency_audit_info), the checkout,
    npm's counts per severity, the vulnerable packages (name, severity, fix available, semver-major fix) and how many
    npm packages are a major version or more behind."""
    panels = []
    for target in targets:
        section = _dict(target.get('dependencies'))
        if not section:
            continue
        packages = []
        for entry in section.get('vulnerable') if isinstance(section.get('vulnerable'), list) else []:
            if not isinstance(entry, dict) or entry.get('name') in (None, ''):
                continue
            severity = str(entry.get('severity') or '')
            advisories = [str(a) for a in entry.get('advisories') or [] if isinstance(a, (str, int))] \
                if isinstance(entry.get('advisories'), list) else []
            packages.append(dict(ecosystem=str(entry.get('ecosystem') or ''), name=str(entry['name']),
                                 severity=severity, status=DEPENDENCY_SEVERITIES.get(severity, C.UNKNOWN),
                                 fix_available=entry.get('fix_available') if isinstance(entry.get('fix_available'), bool) else None,
                                 semver_major=entry.get('fix_semver_major') is True,
                                 direct=entry.get('direct') is True, advisories=advisories[:3]))
        npm = _dict(section.get('npm'))
        counts = _dict(npm.get('counts'))
        python = _dict(section.get('python'))
        total = _count(section.get('vulnerable_total'))
        panels.append(dict(target=target['name'], path=str(section.get('path') or ''),
                           counts=[(name, status, _count(counts.get(name)) or 0) for name, status in
                                   DEPENDENCY_SEVERITIES.items()] if counts else [],
                           packages=packages, vulnerable_total=total if total is not None else len(packages),
                           not_listed=max(0, (total or 0) - len(packages)),
                           outdated=_count(npm.get('outdated')), outdated_major=_count(section.get('outdated_major')),
                           # no counts: the audit did not answer (its dependency_audit finding says why)
                           audited=bool(counts) or bool(_dict(python.get('counts')))))
    return panels


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
        'log_reviews': log_review_rows(targets),
        'web_pages': web_page_rows(targets),
        'web_links': web_link_panels(targets),
        'dependencies': dependency_panels(targets),
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
