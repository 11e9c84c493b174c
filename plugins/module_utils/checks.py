# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that turns measurements into findings.

Every judging module returns ``checks`` (a list of findings of one shape) and ``status`` (the worst
of them); reports, alerts and history read only that shape.
"""

from __future__ import annotations

import math
import numbers
import re

from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError, ThresholdError

OK = 'ok'
INFO = 'info'  # advice (splinter's INFO level): nothing is wrong, something may be worth doing
WARNING = 'warning'
CRITICAL = 'critical'
UNKNOWN = 'unknown'

# Worst last. "info" (advice) ranks just above "ok"; "unknown" (we could not measure) above it but below a
# real warning. Neither alerts nor trips the fail gate.
STATUS_ORDER = (OK, INFO, UNKNOWN, WARNING, CRITICAL)
# The levels a fired finding can have, and that O(severity) may give a check.
SEVERITY_LEVELS = (INFO, WARNING, CRITICAL)

ABOVE = 'above'  # a larger value is worse (latency, usage)
BELOW = 'below'  # a smaller value is worse (cache hit ratio, days left)


def worst_status(checks_or_statuses):
    """Return the worst status of a list of findings (dicts) or status strings; ``ok`` when empty."""
    worst = OK
    for item in checks_or_statuses:
        status = item['status'] if isinstance(item, dict) else item
        if STATUS_ORDER.index(status) > STATUS_ORDER.index(worst):
            worst = status
    return worst


def _is_number(value):
    # NaN and infinity would silently disable an alert: not numbers for a threshold.
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def validate_thresholds(name, warning, critical, direction=ABOVE):
    """Reject thresholds that are not numbers or that contradict each other.

    With ``direction=above`` the warning threshold must not be larger than the critical one; with
    ``direction=below`` it must not be smaller. Either may be ``None`` (that level is disabled).
    """
    if direction not in (ABOVE, BELOW):
        raise ThresholdError('%s: direction must be "above" or "below", got %r' % (name, direction))
    for level, value in (('warning', warning), ('critical', critical)):
        if value is not None and not _is_number(value):
            raise ThresholdError('%s: %s threshold must be a number, got %r' % (name, level, value))
    if warning is None or critical is None:
        return
    if direction == ABOVE and warning > critical:
        raise ThresholdError(
            '%s: warning threshold %s is above the critical threshold %s (a larger value is worse here,'
            ' so warning must be <= critical)' % (name, warning, critical))
    if direction == BELOW and warning < critical:
        raise ThresholdError(
            '%s: warning threshold %s is below the critical threshold %s (a smaller value is worse here,'
            ' so warning must be >= critical)' % (name, warning, critical))


def status_for(value, warning=None, critical=None, direction=ABOVE):
    """Status of ``value`` against the thresholds; a threshold is crossed when passed strictly."""
    if value is None:
        return UNKNOWN
    if direction == ABOVE:
        def crossed(threshold):
            return threshold is not None and value > threshold
    else:
        def crossed(threshold):
            return threshold is not None and value < threshold
    if crossed(critical):
        return CRITICAL
    if crossed(warning):
        return WARNING
    return OK


def finding(name, status, message, value=None, unit=None, warning=None, critical=None, obj=None, **extra):
    """Build one finding in the collection's ``checks`` shape."""
    if status not in STATUS_ORDER:
        raise ValueError('unknown status %r' % status)
    result = {
        'name': name,
        'status': status,
        'value': value,
        'unit': unit,
        'warning': warning,
        'critical': critical,
        'object': obj,
        'message': message,
    }
    result.update(extra)
    return result


def evaluate(name, value, warning=None, critical=None, direction=ABOVE, unit=None, obj=None, message=None,
             **extra):
    """Judge a measured value against thresholds and return the finding.

    ``message`` may hold ``{value}``, ``{unit}``, ``{status}``, ``{warning}`` and ``{critical}``
    placeholders; the threshold that was crossed is appended, so the reader sees why it fired.
    """
    validate_thresholds(name, warning, critical, direction)
    status = status_for(value, warning, critical, direction)
    text = message or '{value} {unit}'
    # Plain replacement, not str.format(): messages carry query texts and names that may hold braces.
    for key, sub in (('value', _fmt(value)), ('unit', unit or ''), ('status', status), ('warning', warning),
                     ('critical', critical)):
        text = text.replace('{%s}' % key, str(sub))
    text = text.strip()
    if status in (WARNING, CRITICAL):
        limit = critical if status == CRITICAL else warning
        text += ' (%s threshold: %s %s)' % (status, 'above' if direction == ABOVE else 'below', _fmt(limit))
    return finding(name, status, text, value=value, unit=unit, warning=warning, critical=critical, obj=obj,
                   **extra)


def judge(thresholds, name, value, message, obj=None, **extra):
    """``evaluate`` of check ``name`` against its entry in ``thresholds`` (merged by ``merge_thresholds``): its
    warning and critical levels, direction and unit."""
    spec = thresholds[name]
    return evaluate(name, value, spec.get('warning'), spec.get('critical'), spec.get('direction', ABOVE),
                    spec.get('unit'), obj, message, **extra)


def first_limit(spec):
    """The level at which a check starts to fire, from its entry in the merged thresholds: its warning level, or
    its critical level when warning is disabled (``{warning: null, critical: N}``); None when both are disabled."""
    warning = spec.get('warning')
    return warning if warning is not None else spec.get('critical')


def past_first_limit(spec, value):
    """Whether ``value`` fires the check of ``spec``: it is past ``first_limit(spec)`` in the check's direction
    (above it, or below it for "below is bad" checks such as a cache hit ratio), strictly as in ``status_for``.
    A section reports the values that fire one by one, and judges its "nothing fired" summary only otherwise."""
    limit = first_limit(spec)
    if value is None or limit is None:
        return False
    return value < limit if spec.get('direction', ABOVE) == BELOW else value > limit


def unknown(thresholds, name, message, obj=None, **extra):
    """The ``unknown`` finding of check ``name`` (it could not be measured), with its thresholds when it has any."""
    spec = thresholds.get(name, {})
    return finding(name, UNKNOWN, message, unit=spec.get('unit'), warning=spec.get('warning'),
                   critical=spec.get('critical'), obj=obj, **extra)


class Findings(list):
    """The findings of one run, in order, with the run's thresholds and the object a finding is about unless it
    names another (``db=<name>``): ``add`` one with a given status, ``ok`` for a check that found nothing,
    ``judge`` a measured value, ``unknown`` for what could not be measured; ``status`` is the worst."""

    def __init__(self, thresholds=None, obj=None):
        super().__init__()
        self.thresholds = thresholds or {}
        self.obj = obj

    def _keep(self, item):
        self.append(item)
        return item

    def add(self, name, status, message, obj=None, value=None, unit=None, **extra):
        return self._keep(finding(name, status, message, value=value, unit=unit, obj=obj or self.obj, **extra))

    def ok(self, name, message, value=0, unit='count', obj=None, **extra):
        return self.add(name, OK, message, obj=obj, value=value, unit=unit, **extra)

    def judge(self, name, value, message, obj=None, **extra):
        return self._keep(judge(self.thresholds, name, value, message, obj or self.obj, **extra))

    def unknown(self, name, message, obj=None, **extra):
        return self._keep(unknown(self.thresholds, name, message, obj or self.obj, **extra))

    def info(self, name, message, obj=None, value=None, unit=None, **extra):
        """Advice: the check fired at splinter's INFO level - shown apart from ``ok``, never an alert."""
        return self.add(name, INFO, message, obj=obj, value=value, unit=unit, **extra)

    @property
    def status(self):
        return worst_status(self)


def _fmt(value):
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        if abs(value) >= 1:
            return ('%.2f' % value).rstrip('0').rstrip('.')
        return '%.6g' % value
    return value


def severity_spec():
    """The O(severity) option every judging module has (doc fragment appcare.maintenance.severity)."""
    return dict(severity=dict(type='dict', default={}))


def validate_severity(overrides):
    """Reject a O(severity) entry that is not a check name mapped to info, warning or critical."""
    if not isinstance(overrides, dict):
        raise ThresholdError('severity must be a dict of check name to info, warning or critical, got %r' % (overrides,))
    for name, level in overrides.items():
        if not isinstance(name, str) or not re.match(r'^[a-z][a-z0-9_]*$', name):
            raise ThresholdError('severity: %r is not a check name (lower case letters, digits and _)' % (name,))
        if level not in SEVERITY_LEVELS:
            raise ThresholdError('severity.%s must be one of %s, got %r' % (name, ', '.join(SEVERITY_LEVELS), level))


def apply_severity(checks, overrides):
    """Give the fired findings (info, warning, critical) of each check named in ``overrides`` the level set there,
    keeping the level the collection gave it in ``default_status``. A finding that found nothing (ok) or could not
    measure (unknown) keeps its status: an override says how much a problem matters, not whether there is one.
    Returns the names of the checks whose findings changed."""
    changed = []
    for item in checks:
        level = (overrides or {}).get(item.get('name'))
        if level is None or item.get('status') not in SEVERITY_LEVELS or item['status'] == level:
            continue
        item.setdefault('default_status', item['status'])
        item['status'] = level
        if item['name'] not in changed:
            changed.append(item['name'])
    return changed


def finish(module, result, overrides=None):
    """Apply the module's O(severity) to ``result['checks']``, set ``result['status']`` to the worst of them, and
    exit: the one way a judging module returns its findings."""
    if overrides is None:
        overrides = module.params.get('severity') or {}
    checks = result.get('checks') or []
    apply_severity(checks, overrides)
    result['status'] = worst_status(checks)
    module.exit_json(**result)


def merge_thresholds(defaults, overrides):
    """Merge user ``thresholds`` into the defaults and validate the result.

    ``defaults`` maps check name to ``{'warning': .., 'critical': .., 'direction': ..}``; ``overrides``
    maps check name to a dict with ``warning`` and/or ``critical``. Unknown check names and unknown keys
    are rejected, so a typo cannot silently disable an alert.
    """
    merged = dict((name, dict(spec)) for name, spec in defaults.items())
    for name, override in (overrides or {}).items():
        if name not in merged:
            raise ThresholdError('thresholds: %r is not a check with thresholds; valid: %s'
                                 % (name, ', '.join(sorted(merged))))
        if not isinstance(override, dict):
            raise ThresholdError('thresholds.%s must be a dict with warning and/or critical, got %r'
                                 % (name, override))
        unknown = set(override) - {'warning', 'critical'}
        if unknown:
            raise ThresholdError('thresholds.%s: unknown key(s) %s; use warning and critical'
                                 % (name, ', '.join(sorted(unknown))))
        for level in ('warning', 'critical'):
            if level in override:
                merged[name][level] = _coerce_number(name, level, override[level])
    for name, spec in merged.items():
        validate_thresholds(name, spec.get('warning'), spec.get('critical'), spec.get('direction', ABOVE))
    return merged


def renamed_thresholds(overrides, renamed):
    """``overrides`` with the old names of renamed checks (``renamed`` maps old to new) changed to the new ones,
    and a notice per old name used, for the module to pass to ``deprecate``. Refuses both names at once."""
    result, notices = dict(overrides or {}), []
    for old, new in renamed.items():
        if old not in result:
            continue
        if new in result:
            raise ThresholdError('thresholds: give %s or its old name %s, not both' % (new, old))
        result[new] = result.pop(old)
        notices.append('thresholds.%s is now thresholds.%s (the finding was renamed); the old name will be '
                       'refused in a future release' % (old, new))
    return result, notices


def _coerce_number(name, level, value):
    # Values from YAML / Jinja may arrive as strings ("80"); accept those, refuse anything else.
    if value is None or _is_number(value):
        return value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return int(number) if number.is_integer() and '.' not in value else number
    raise ThresholdError('%s: %s threshold must be a number, got %r' % (name, level, value))


def human_bytes(value):
    """1536 -> '1.5 kB' (binary multiples), for messages."""
    if value is None:
        return 'unknown'
    for unit in ('B', 'kB', 'MB', 'GB', 'TB'):
        if abs(value) < 1024 or unit == 'TB':
            return ('%d %s' % (value, unit)) if unit == 'B' else ('%.1f %s' % (value, unit))
        value = value / 1024.0


SIZE_UNITS = {'': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3, 't': 1024 ** 4}


def parse_size(value, option, allow_zero=True):
    """'10MB', '512 kB', '1.5GiB', '8G' or a number of bytes -> bytes (binary multiples); None stays None."""
    if value in (None, ''):
        return None
    match = re.match(r'^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)[iI]?[bB]?\s*$', str(value))
    if not match:
        raise ConfigurationError('%s: %r is not a size (use for example 8GB, 500MB, 512kB or a number of bytes)'
                                 % (option, value))
    size = int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])
    if size <= 0 and not allow_zero:
        raise ConfigurationError('%s must be larger than 0, got %r' % (option, value))
    return size
