# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report as Prometheus metrics: the text exposition format for node_exporter's textfile collector
(``<dir>/appcare_<tier>.prom``, written atomically) and, optionally, a push to a Pushgateway.

``render(report, now)`` is pure: the built report (``report.build``) in, the exposition text out. Everything
read from the report is treated as untrusted: a status outside ``checks.STATUS_ORDER`` is ``unknown``, a value
that is not a finite number is left out, a backup finished in the future has an age of ``+Inf`` (it never looks
fresh), and label values are bounded - no messages, no query text, no finding ``object`` (findings of one check
are folded into its worst status and a count per status).

Every series carries the ``tier`` label, so the files of several tiers in one textfile directory (and their
Pushgateway groups) never hold the same series twice, which node_exporter would refuse.

Status numbers are the index in ``checks.STATUS_ORDER``: 0 ok, 1 info, 2 unknown, 3 warning, 4 critical.
"""

from __future__ import annotations

import base64
import datetime
import math
import numbers
import os
import re
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import report as RP
from ansible_collections.appcare.maintenance.plugins.module_utils.files import safe_name, write_atomic

PREFIX = 'appcare_'
STATUS_VALUES = dict((status, index) for index, status in enumerate(C.STATUS_ORDER))
# A finding's value is exported only in a base unit: seconds, bytes, a ratio 0-1 - or as a plain count.
SECONDS = {'seconds': 1.0, 's': 1.0, 'ms': 0.001, 'minutes': 60.0, 'min': 60.0, 'hours': 3600.0, 'h': 3600.0,
           'days': 86400.0}
RATIOS = {'percent': 0.01, '%': 0.01, 'ratio': 1.0}
BYTES = {'bytes': 1.0}
COUNTS = ('count',)
CHECK_NAME = re.compile(r'^[a-z][a-z0-9_]{0,79}$')
OTHER_CHECK = '_other'  # where findings with a name that is not a finding name go, so they still count
MAX_LABEL = 128
MAX_CHECKS_PER_TARGET = 400
FUTURE_SKEW_SECONDS = RP.FUTURE_SKEW_SECONDS
LOG_SEVERITIES = ('WARNING', 'ERROR', 'FATAL', 'PANIC')
PUSH_TIMEOUT = 10
# The run report callback's options (and, prefixed appcare_, its play variables) that export() takes.
OPTIONS = ('prometheus_textfile_dir', 'pushgateway_url')
# HELP and TYPE of every metric this file writes, in the order written. The dashboard and the rules may use
# only these names (a test checks it).
METRICS = (
    ('build_info', 'gauge', 'Versions of the collection and of ansible-core that wrote these metrics (always 1).'),
    ('run_last_success_timestamp_seconds', 'gauge',
     'When the tier\'s run last finished and wrote its report (Unix time); findings do not make a run fail.'),
    ('run_duration_seconds', 'gauge', 'How long the tier\'s last run took.'),
    ('target_status', 'gauge', 'Worst status of a target: 0 ok, 1 info, 2 unknown, 3 warning, 4 critical '
                               '(critical when unreachable or a task failed).'),
    ('target_unreachable', 'gauge', '1 when the target was unreachable in the last run.'),
    ('target_failed_tasks', 'gauge', 'Tasks that failed on the target in the last run.'),
    ('findings', 'gauge', 'Findings of the last run per target and status.'),
    ('check_status', 'gauge', 'Worst status of a check on a target: 0 ok, 1 info, 2 unknown, 3 warning, 4 critical.'),
    ('check_findings', 'gauge', 'Findings of a check on a target per status (one per object the check judged).'),
    ('check_value_seconds', 'gauge', 'Measured value of a check given in a unit of time (of its worst finding).'),
    ('check_value_bytes', 'gauge', 'Measured value of a check given in bytes (of its worst finding).'),
    ('check_value_ratio', 'gauge', 'Measured value of a check given in percent, as a ratio 0-1 (of its worst finding).'),
    ('check_value', 'gauge', 'Measured value of a check given as a count, such as the objects it found (of its worst '
                    'finding).'),
    ('backup_age_seconds', 'gauge', 'Age of the newest backup at report time (+Inf when its time lies in the future).'),
    ('backup_finished_timestamp_seconds', 'gauge', 'When the newest backup finished (Unix time); left out when it lies '
                                                   'in the future.'),
    ('backup_size_bytes', 'gauge', 'Size of the newest backup.'),
    ('backup_verified', 'gauge', '1 when the newest backup was verified ok in this run, else 0.'),
    ('backup_rpo_seconds', 'gauge', 'Recovery point objective: the backup age at which backup_age turns critical.'),
    ('restore_drill_rto_seconds', 'gauge', 'Time the last restore drill took until the database answered (achieved RTO).'),
    ('restore_drill_rpo_seconds', 'gauge', 'Data the last restore drill could not recover, as time (achieved RPO).'),
    ('restore_drill_success', 'gauge', '1 when the last restore drill passed, 0 when it failed.'),
    ('restore_drill_timestamp_seconds', 'gauge', 'When the last restore drill finished (Unix time).'),
    ('restore_rto_target_seconds', 'gauge', 'Recovery time objective: the restore time at which a restore check turns '
                                            'critical.'),
    ('pitr_window_seconds', 'gauge', 'Point-in-time recovery window: how far back the database can be restored.'),
    ('pitr_window_end_timestamp_seconds', 'gauge', 'Newest point the database can be restored to (Unix time).'),
    ('capacity_time_left_seconds', 'gauge', 'Forecast time until a metric reaches its threshold (from its trend).'),
    ('log_entries', 'gauge', 'PostgreSQL log entries per severity in the last log review.'),
    ('log_new_patterns', 'gauge', 'Error patterns the last log review saw for the first time.'),
)
METRIC_NAMES = tuple(PREFIX + name for name, _type, _help in METRICS)


# -- reading the report, trusting nothing -------------------------------------------------------------------------

def _number(value):
    """``value`` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _time(text):
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _status(value):
    return value if value in STATUS_VALUES else C.UNKNOWN


def _worse(a, b):
    return a if STATUS_VALUES[a] >= STATUS_VALUES[b] else b


def _label(value):
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_LABEL]


def _check_name(name):
    return name if isinstance(name, str) and CHECK_NAME.match(name) else OTHER_CHECK


def _age(finished, now):
    """Seconds from ``finished`` to ``now``: 0 for a time a little ahead, +Inf for one further ahead (a time
    that cannot be trusted is as good as no backup at all)."""
    seconds = (now - finished).total_seconds()
    if seconds < 0:
        return 0.0 if -seconds <= FUTURE_SKEW_SECONDS else math.inf
    return seconds


# -- the exposition format -----------------------------------------------------------------------------------------

def escape_label(value):
    """A label value as the exposition format wants it: backslash, double quote and line feed escaped."""
    return _label(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def format_value(value):
    if math.isinf(value):
        return '+Inf' if value > 0 else '-Inf'
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class _Samples(object):
    """Samples per metric; the same series twice keeps the first (no duplicate series in a file)."""

    def __init__(self, tier):
        self.tier = tier
        self.series = dict((name, {}) for name, _type, _help in METRICS)

    def add(self, metric_, value_, **labels):
        number = value_ if isinstance(value_, float) and math.isinf(value_) else _number(value_)
        if number is None:
            return
        labels = dict(tier=self.tier, **labels)
        key = tuple(sorted((k, _label(v)) for k, v in labels.items()))
        self.series[metric_].setdefault(key, number)

    def text(self):
        lines = []
        for name, kind, text in METRICS:
            samples = self.series[name]
            if not samples:
                continue
            lines.append('# HELP %s%s %s' % (PREFIX, name, text.replace('\\', '\\\\').replace('\n', ' ')))
            lines.append('# TYPE %s%s %s' % (PREFIX, name, kind))
            for key in sorted(samples):
                labels = ','.join('%s="%s"' % (k, escape_label(v)) for k, v in key)
                lines.append('%s%s{%s} %s' % (PREFIX, name, labels, format_value(samples[key])))
        return '\n'.join(lines) + '\n' if lines else ''


# -- what goes in -------------------------------------------------------------------------------------------------

def _checks(samples, name, target):
    folded = {}
    for check in target.get('checks') or []:
        if not isinstance(check, dict):
            continue
        key = _check_name(check.get('name'))
        if key not in folded and len(folded) >= MAX_CHECKS_PER_TARGET:
            key = OTHER_CHECK
        status = _status(check.get('status'))
        entry = folded.setdefault(key, {'status': status, 'worst': check, 'counts': {}, 'category': RP.OTHER})
        if STATUS_VALUES[status] > STATUS_VALUES[entry['status']]:
            entry['status'], entry['worst'] = status, check
        entry['counts'][status] = entry['counts'].get(status, 0) + 1
        category = check.get('category')
        if category in RP.CATEGORIES:
            entry['category'] = category
    for check, entry in folded.items():
        samples.add('check_status', STATUS_VALUES[entry['status']], target=name, check=check,
                    category=entry['category'])
        for status, count in entry['counts'].items():
            samples.add('check_findings', count, target=name, check=check, status=status)
        if check == OTHER_CHECK:
            continue
        worst = entry['worst']
        size = _number(worst.get('size_bytes'))  # a size judged against a quota (in percent) carries the size
        if size is not None and size >= 0:
            samples.add('check_value_bytes', size, target=name, check=check)
        value, unit = _number(worst.get('value')), worst.get('unit')
        if value is None or not isinstance(unit, str):
            continue
        if unit in SECONDS:
            samples.add('check_value_seconds', value * SECONDS[unit], target=name, check=check)
        elif unit in BYTES:
            samples.add('check_value_bytes', value, target=name, check=check)
        elif unit in RATIOS:
            samples.add('check_value_ratio', value * RATIOS[unit], target=name, check=check)
        elif unit in COUNTS:
            samples.add('check_value', value, target=name, check=check)
        if check.endswith('backup_age') and unit in SECONDS:
            rpo = _number(worst.get('critical'))
            if rpo is not None and rpo > 0:
                kind = 'storage' if check.startswith('storage_') else 'supabase' if check.startswith(
                    'supabase_') else 'database'
                samples.add('backup_rpo_seconds', rpo * SECONDS[unit], target=name, kind=kind)
        if check in ('backup_restore_time', 'pitr_restore_time', 'storage_backup_restore_time') and unit in SECONDS:
            rto = _number(worst.get('critical'))
            if rto is not None and rto > 0:
                samples.add('restore_rto_target_seconds', rto * SECONDS[unit], target=name,
                            kind=check[:-len('_restore_time')])
    return folded


def _backup(samples, name, kind, section, now, size_key='bytes'):
    if not isinstance(section, dict):
        return
    finished = _time(section.get('finished_at'))
    if finished is not None:
        samples.add('backup_age_seconds', _age(finished, now), target=name, kind=kind)
        if (finished - now).total_seconds() <= FUTURE_SKEW_SECONDS:
            samples.add('backup_finished_timestamp_seconds', finished.timestamp(), target=name, kind=kind)
    if isinstance(section.get(size_key), numbers.Real) and _number(section[size_key]) is not None \
            and section[size_key] >= 0:
        samples.add('backup_size_bytes', section[size_key], target=name, kind=kind)
    if 'verified' in section:
        samples.add('backup_verified', 1 if section.get('verified') == 'ok' else 0, target=name, kind=kind)


def _sections(samples, name, target, now):
    _backup(samples, name, 'dump', target.get('backup'), now)
    _backup(samples, name, 'storage', target.get('storage_backup'), now)
    pitr = target.get('pitr')
    if isinstance(pitr, dict):
        newest = pitr.get('newest_backup') if isinstance(pitr.get('newest_backup'), dict) else {}
        _backup(samples, name, 'pgbackrest', dict(finished_at=pitr.get('finished_at'), bytes=newest.get('size_bytes')),
                now)
        start, end = _time(pitr.get('window_start')), _time(pitr.get('window_end'))
        if start is not None and end is not None and start <= end <= now + datetime.timedelta(
                seconds=FUTURE_SKEW_SECONDS):
            samples.add('pitr_window_seconds', (end - start).total_seconds(), target=name, source='pgbackrest')
            samples.add('pitr_window_end_timestamp_seconds', end.timestamp(), target=name, source='pgbackrest')
    supabase = target.get('supabase')
    if isinstance(supabase, dict):
        days = _number(supabase.get('pitr_window_days'))
        if days is not None and days >= 0 and supabase.get('pitr_enabled') is True:
            samples.add('pitr_window_seconds', days * 86400.0, target=name, source='supabase')
    drill = target.get('pitr_drill')
    if isinstance(drill, dict):
        finished = _time(drill.get('finished_at'))
        for key, metric in (('rto_seconds', 'restore_drill_rto_seconds'), ('rpo_seconds', 'restore_drill_rpo_seconds')):
            value = _number(drill.get(key))
            if value is not None and value >= 0:
                samples.add(metric, value, target=name, kind='pitr')
        # Only a drill that says ok passed; anything else (failed, missing, odd) counts as failed.
        samples.add('restore_drill_success', 1 if drill.get('result') == 'ok' else 0, target=name, kind='pitr')
        if finished is not None and (finished - now).total_seconds() <= FUTURE_SKEW_SECONDS:
            samples.add('restore_drill_timestamp_seconds', finished.timestamp(), target=name, kind='pitr')
    forecast = target.get('forecast')
    if isinstance(forecast, dict):
        days = _number(forecast.get('days_left'))
        metric = forecast.get('metric')
        if days is not None and days >= 0 and isinstance(metric, str) and CHECK_NAME.match(metric):
            samples.add('capacity_time_left_seconds', days * 86400.0, target=name, metric=metric)
    review = target.get('log_review')
    if isinstance(review, dict):
        severities = review.get('severities') if isinstance(review.get('severities'), dict) else {}
        for severity in LOG_SEVERITIES:
            count = _number(severities.get(severity))
            if count is not None and count >= 0:
                samples.add('log_entries', count, target=name, severity=severity.lower())
        count = _number(review.get('new_patterns'))
        if count is not None and count >= 0:
            samples.add('log_new_patterns', count, target=name)


def render(report, now, versions=None):
    """The exposition text of a built run report (``report.build``) at ``now`` (an aware datetime). ``versions``:
    {'version': collection version, 'ansible_version': ansible-core version} for ``appcare_build_info``."""
    report = report if isinstance(report, dict) else {}
    tier = report.get('tier') if isinstance(report.get('tier'), str) and report.get('tier') else 'adhoc'
    samples = _Samples(tier)
    versions = versions or {}
    samples.add('build_info', 1, version=str(versions.get('version') or 'unknown'),
                ansible_version=str(versions.get('ansible_version') or 'unknown'))
    started, finished = _time(report.get('started_at')), _time(report.get('finished_at'))
    if finished is not None and (finished - now).total_seconds() <= FUTURE_SKEW_SECONDS:
        samples.add('run_last_success_timestamp_seconds', finished.timestamp())
        if started is not None and started <= finished:
            samples.add('run_duration_seconds', (finished - started).total_seconds())
    targets = report.get('targets') if isinstance(report.get('targets'), list) else []
    for target in targets:
        if not isinstance(target, dict) or not isinstance(target.get('name'), str) or not target['name']:
            continue
        name = target['name']
        folded = _checks(samples, name, target)
        # The target's status is never better than what its findings, failures and reachability say.
        status = _status(target.get('status'))
        for entry in folded.values():
            status = _worse(status, entry['status'])
        failures = target.get('failures') if isinstance(target.get('failures'), list) else []
        if target.get('unreachable') or failures:
            status = C.CRITICAL
        samples.add('target_status', STATUS_VALUES[status], target=name)
        samples.add('target_unreachable', 1 if target.get('unreachable') else 0, target=name)
        samples.add('target_failed_tasks', len(failures), target=name)
        counts = dict((s, 0) for s in RP.SEVERITY_ORDER)
        for entry in folded.values():
            for key, count in entry['counts'].items():
                counts[key] += count
        for key in RP.SEVERITY_ORDER:
            samples.add('findings', counts[key], target=name, status=key)
        _sections(samples, name, target, now)
    return samples.text()


# -- where it goes --------------------------------------------------------------------------------------------------

def textfile_name(tier):
    """The file of a tier in the textfile directory: one per tier, so the tiers never overwrite each other."""
    return 'appcare_%s.prom' % safe_name(str(tier or 'adhoc')).replace('.', '_')


def write_textfile(directory, tier, text):
    """Write ``text`` to ``<directory>/appcare_<tier>.prom`` through a temporary file in the same directory and
    a rename (node_exporter's textfile collector reads only ``*.prom``, never the temporary file). Returns the
    path."""
    path = os.path.join(directory, textfile_name(tier))
    write_atomic(path, text, mode=0o644)
    return path


def push_url(base, tier):
    """``<base>/metrics/job/appcare/tier/<tier>``; a tier with characters a path cannot carry goes base64."""
    tier = str(tier or 'adhoc')
    if re.match(r'^[A-Za-z0-9_.-]+$', tier) and tier not in ('.', '..'):
        part = 'tier/%s' % tier
    else:
        part = 'tier@base64/%s' % base64.urlsafe_b64encode(tier.encode('utf-8')).decode('ascii')
    return '%s/metrics/job/appcare/%s' % (base.rstrip('/'), part)


def push(base, tier, text, timeout=PUSH_TIMEOUT):
    """PUT ``text`` to the Pushgateway at ``base`` (it replaces the group job=appcare, tier=<tier>). Returns None
    when it was accepted, else the error as a sentence - never raises, so a Pushgateway that is down costs the
    run nothing but a warning."""
    if not isinstance(base, str) or not re.match(r'^https?://[^/\s]+', base):
        return 'pushgateway_url must be an http:// or https:// URL'
    try:
        answer = open_url(push_url(base, tier), data=text.encode('utf-8'), method='PUT', timeout=timeout,
                          headers={'Content-Type': 'text/plain; version=0.0.4; charset=utf-8'},
                          follow_redirects='none')
        code = answer.getcode()
        answer.close()
    except HTTPError as exc:
        try:
            body = exc.read(300).decode('utf-8', 'replace').strip()
        except Exception:  # pylint: disable=broad-except
            body = ''
        return 'the Pushgateway at %s answered HTTP %s%s' % (base, exc.code, ': %s' % body if body else '')
    except URLError as exc:
        return 'cannot push to the Pushgateway at %s: %s' % (base, exc.reason)
    except Exception as exc:  # pylint: disable=broad-except
        # open_url's own errors (TLS validation, connection) and socket errors: a warning, never a failed run.
        return 'cannot push to the Pushgateway at %s: %s' % (base, exc)
    if code not in (200, 202):
        return 'the Pushgateway at %s answered HTTP %s' % (base, code)
    return None


def collection_version():
    """The collection's version from its MANIFEST.json (an installed collection) or galaxy.yml (a checkout)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        with open(os.path.join(root, 'MANIFEST.json'), 'r', encoding='utf-8') as handle:
            found = re.search(r'"version"\s*:\s*"([^"]+)"', handle.read())
    except OSError:
        try:
            with open(os.path.join(root, 'galaxy.yml'), 'r', encoding='utf-8') as handle:
                found = re.search(r'^version:\s*["\']?([^"\'\s]+)', handle.read(), re.M)
        except OSError:
            found = None
    return found.group(1) if found else None


def export(report, now, prometheus_textfile_dir=None, pushgateway_url=None, base_dir=None, ansible_version=None):
    """What the run report callback calls once the report is built: write the textfile and/or push. Returns
    (written path or None, [problems as sentences]); never raises for an unwritable directory or a failed push."""
    textfile_dir = prometheus_textfile_dir
    if not textfile_dir and not pushgateway_url:
        return None, []
    tier = report.get('tier') if isinstance(report, dict) else None
    try:
        text = render(report, now, {'version': collection_version(), 'ansible_version': ansible_version})
    except Exception as exc:  # pylint: disable=broad-except
        # The metrics are an extra: a report they cannot be made from must not cost the run its report and gate.
        return None, ['cannot make the Prometheus metrics: %s: %s' % (type(exc).__name__, exc)]
    written, problems = None, []
    if textfile_dir:
        directory = textfile_dir if os.path.isabs(textfile_dir) else os.path.join(base_dir or os.getcwd(), textfile_dir)
        try:
            written = write_textfile(directory, tier, text)
        except OSError as exc:
            problems.append('cannot write the Prometheus textfile in %s: %s' % (directory, exc))
    if pushgateway_url:
        problem = push(pushgateway_url, tier, text)
        if problem:
            problems.append(problem)
    return written, problems
