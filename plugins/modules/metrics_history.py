#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: metrics_history
short_description: Keep a target's figures over time and forecast when it reaches its capacity
version_added: 0.1.0
description:
  - Appends one line of figures (usually the RV(appcare.maintenance.pg_inspect_info#module:metrics) of a review)
    to the target's history - a JSON-lines file C(<dest>/<target>.jsonl) - and forecasts from the whole history.
  - The forecast is a least-squares line through the O(metric) over time - its slope is the growth per day - and
    the day that line reaches O(capacity_share) percent of O(size_quota) (85 % by default, the guides' capacity
    warning). Days are counted from the newest measurement. The result is the C(capacity) finding (warning
    below 90 days, critical below 30, critical once past the share); without enough history (O(min_points)) it
    is C(unknown) and says so; a shrinking or flat series is C(ok) (not growing); without a quota only the growth
    is reported.
  - Writes an SVG chart of the metric over time, with the forecast line and the capacity threshold, to
    C(<dest>/<target>-<metric>.svg) (O(chart)); the run report embeds it.
  - Run it where the history should live - usually the controller, with C(delegate_to) C(localhost).
  - A failed append (full disk, no permission) never fails the task - the module warns, returns
    RV(appended=false) with the reason, and still forecasts from the history it could read.
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Forecasts from the existing history; appends nothing and writes no chart.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  dest:
    description: The history directory the module writes (created when missing).
    type: path
    required: true
  target:
    description: The target's name, usually C(inventory_hostname); characters other than letters, digits, C(.),
      C(-) and C(_) become C(_) in file names.
    type: str
    required: true
  metrics:
    description: The figures to append (numbers, or dicts of numbers); nothing is appended without them.
    type: dict
  at:
    description: The time of the figures (ISO 8601); default now (UTC).
    type: str
  metric:
    description: The figure to forecast.
    type: str
    default: database_size
  size_quota:
    description: The capacity the forecast is judged against, such as V(8GB) (a Supabase plan's disk, a volume).
    type: str
  capacity_share:
    description: The share of O(size_quota), in percent, the forecast counts the days to.
    type: float
    default: 85
  min_points:
    description: Measurements needed before a forecast is made.
    type: int
    default: 3
  chart:
    description: Write the SVG chart.
    type: bool
    default: true
  thresholds:
    description: Overrides of C(warning)/C(critical) for C(capacity) (days left; a smaller value is worse).
    type: dict
    default: {}
seealso:
  - module: appcare.maintenance.pg_inspect_info
'''

EXAMPLES = r'''
- name: Weekly review, then keep its figures and forecast on the controller
  appcare.maintenance.pg_inspect_info:
    login_db: ims
  register: review

- name: Append to the history and forecast against the plan's 8 GB disk
  appcare.maintenance.metrics_history:
    dest: "{{ playbook_dir }}/../history"
    target: "{{ inventory_hostname }}"
    metrics: "{{ review.metrics }}"
    size_quota: 8GB
  delegate_to: localhost
  register: capacity

- name: Forecast only (nothing appended), stricter warning
  appcare.maintenance.metrics_history:
    dest: /srv/appcare/history
    target: ims-production
    size_quota: 100GB
    thresholds:
      capacity: {warning: 180, critical: 60}
  delegate_to: localhost
'''

RETURN = r'''
appended:
  description: Whether a line was appended.
  returned: always
  type: bool
  sample: true
append_error:
  description: Why the append failed.
  returned: when the append failed
  type: str
  sample: "[Errno 28] No space left on device"
history_file:
  description: The target's history file.
  returned: always
  type: str
  sample: /srv/appcare/history/ims-production.jsonl
forecast:
  description:
    - C(metric), C(points), C(growth_per_day) (units of the metric, bytes for sizes), C(r2) of the fit,
      C(span_days), C(threshold) (the share of the quota), C(days_left) (from the newest measurement),
      C(reaches_on), C(latest), C(latest_at), C(enough_history), and C(reason) when there is no day count.
  returned: always
  type: dict
  sample: {metric: database_size, points: 12, growth_per_day: 52428800.0, r2: 0.98, span_days: 77.0,
           threshold: 7301444403.2, days_left: 96.4, reaches_on: "2027-02-27T02:00:00+00:00",
           latest: 2254857830, latest_at: "2026-11-23T02:00:00+00:00", enough_history: true}
checks:
  description: The C(capacity) finding, in the collection's uniform shape.
  returned: always
  type: list
  elements: dict
  sample:
    - name: capacity
      status: ok
      value: 96.4
      unit: days
      warning: 90
      critical: 30
      object: target=ims-production
      message: "database_size grows 50.0 MB per day and reaches 85% of its quota of 8.0 GB in 96.4 days (on
        2027-02-27)"
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: ok
chart:
  description: Path of the SVG chart.
  returned: when written
  type: str
  sample: /srv/appcare/history/ims-production-database_size.svg
report:
  description:
    - What this run adds to the run report of the P(appcare.maintenance.maintenance_report#callback) callback (the
      callback's C(report) convention) - section C(forecast) (RV(forecast), merged into the target's forecast)
      and, when a chart was written, section C(chart) (RV(chart); the dashboard shows it under Trends).
  returned: always
  type: dict
  contains:
    forecast:
      description: RV(forecast).
      returned: always
      type: dict
    chart:
      description: RV(chart).
      returned: when written
      type: str
  sample:
    forecast: {metric: database_size, points: 12, growth_per_day: 52428800.0, days_left: 96.4, enough_history: true}
    chart: /srv/appcare/history/ims-production-database_size.svg
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import history as H
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.files import write_atomic


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='path', required=True),
            target=dict(type='str', required=True),
            metrics=dict(type='dict'),
            at=dict(type='str'),
            metric=dict(type='str', default='database_size'),
            size_quota=dict(type='str'),
            capacity_share=dict(type='float', default=85),
            min_points=dict(type='int', default=3),
            chart=dict(type='bool', default=True),
            thresholds=dict(type='dict', default={}),
            **C.severity_spec()
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        quota = C.parse_size(params['size_quota'], 'size_quota', allow_zero=False)
        if not 0 < params['capacity_share'] <= 100:
            raise ConfigurationError('capacity_share must be above 0 and at most 100, got %s' % params['capacity_share'])
        if params['min_points'] < 2:
            raise ConfigurationError('min_points must be at least 2 (a line needs two points)')
        thresholds = C.merge_thresholds(H.DEFAULT_THRESHOLDS, params['thresholds'])
        C.validate_severity(params['severity'])
        at = params['at'] or utcnow().isoformat()
        try:
            H.parse_time(at)
        except ValueError as exc:
            raise ConfigurationError('at: %r is not an ISO 8601 time' % at) from exc
    except ConfigurationError as exc:
        module.fail_json(msg='invalid options: %s' % exc)

    directory = params['dest']
    result = dict(changed=False, appended=False, history_file=H.history_path(directory, params['target']))
    if params['metrics'] and not module.check_mode:
        try:
            H.append(directory, params['target'], params['metrics'], at)
            result.update(appended=True, changed=True)
        except (OSError, TypeError, ValueError) as exc:
            result['append_error'] = str(exc)
            module.warn('could not append to the history of %s: %s (the review itself is not affected)'
                        % (params['target'], exc))
    try:
        entries, skipped = H.read(directory, params['target'])
    except OSError as exc:
        entries, skipped = [], 0
        module.warn('could not read the history of %s: %s' % (params['target'], exc))
    if skipped:
        module.warn('%d line(s) of %s do not parse and were skipped' % (skipped, result['history_file']))
    forecast = H.forecast(entries, params['metric'], quota, params['capacity_share'], params['min_points'])
    finding = H.capacity_finding(forecast, thresholds, params['target'], quota, params['capacity_share'])
    result.update(forecast=forecast, checks=[finding])
    if params['chart'] and not module.check_mode and entries:
        path = os.path.join(directory, '%s-%s.svg' % (H.file_stem(params['target']), H.file_stem(params['metric'])))
        try:
            write_atomic(path, H.svg_chart(entries, params['metric'], forecast, '%s: %s' % (
                params['target'], params['metric'])), mode=0o644)
            result.update(chart=path, changed=True)
        except OSError as exc:
            module.warn('could not write the chart %s: %s' % (path, exc))
    result['report'] = dict((key, result[key]) for key in ('forecast', 'chart') if key in result)
    C.finish(module, result)


if __name__ == '__main__':
    main()
