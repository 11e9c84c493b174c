# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: maintenance_report
type: aggregate
short_description: Run report of the appcare.maintenance tiers - JSON, an offline HTML dashboard, a summary table
version_added: 0.1.0
description:
  - Gathers, per host, every C(checks) list the run's C(appcare.maintenance) modules return, their backup,
    verification, maintenance, probe, alert and forecast facts, and the hosts that were unreachable or had a task
    fail (any task).
  - At the end of the run it writes C(<report_dir>/<tier>-<UTC timestamp>.json), C(latest.json), a self-contained
    HTML dashboard C(<tier>-<UTC timestamp>.html) and C(latest.html) (inline CSS and SVG, no external assets, opens
    offline from disk) - overall status per target, findings grouped by severity with their messages, backup status
    (newest backup, its age, size, verified or not), key figures (latency, connections, cache hit, sizes), maintenance
    actions, alerts sent, the schedule (what this tier ran, when each tier last ran and is next due, kept in
    C(<report_dir>/schedule.json)) and the trend charts M(appcare.maintenance.metrics_history) wrote.
  - Prints a compact summary table (target, worst status, counts) after the recap.
  - With O(fail_on) the run ends with exit code 2 when a finding at or above that severity (or an unreachable or
    failed host) exists, so an AWX job or a CI step shows red.
  - The tier comes from the extra variable C(tier) or C(appcare_tier), or the play variable C(appcare_tier);
    the play variables C(appcare_report_dir) and C(appcare_report_fail_on) override the options below.
  - Only findings and selected facts are written - never module arguments - and results of C(no_log) tasks are
    left out, so secrets do not reach the report files.
requirements:
  - enable it with C(callbacks_enabled = appcare.maintenance.maintenance_report) in C(ansible.cfg) (the
    collection's playbooks ship one) or C(ANSIBLE_CALLBACKS_ENABLED)
options:
  report_dir:
    description: Directory of the report files (relative paths are under the directory the run starts in).
    type: path
    default: reports
    env:
      - name: APPCARE_REPORT_DIR
    ini:
      - section: appcare_maintenance_report
        key: report_dir
  tier:
    description: The tier name when no variable gives it.
    type: str
    default: adhoc
    env:
      - name: APPCARE_TIER
    ini:
      - section: appcare_maintenance_report
        key: tier
  fail_on:
    description: End the run with exit code 2 when a finding at or above this severity exists (V(none) never).
    type: str
    default: none
    choices: [none, warning, critical]
    env:
      - name: APPCARE_REPORT_FAIL_ON
    ini:
      - section: appcare_maintenance_report
        key: fail_on
'''

import datetime
import os
import sys

from ansible.plugins.callback import CallbackBase

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import report as RP
from ansible_collections.appcare.maintenance.plugins.module_utils.history import write_atomic

PREFIX = 'appcare.maintenance.'


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _hours_since(text, now):
    try:
        moment = datetime.datetime.fromisoformat(str(text).replace('Z', '+00:00'))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return round((now - moment).total_seconds() / 3600.0, 2)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'appcare.maintenance.maintenance_report'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = _utcnow()
        self.targets = {}
        self.tasks = []
        self.tier = None
        self.report_dir = None
        self.fail_on = None
        self.playbook = None
        self.cwd = os.getcwd()

    # -- configuration ----------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        self.playbook = os.path.basename(getattr(playbook, '_file_name', '') or '')

    def v2_playbook_on_play_start(self, play):
        try:
            play_vars = play.get_vars() or {}
        except Exception:  # pylint: disable=broad-except
            play_vars = {}
        extra = {}
        try:
            extra = play.get_variable_manager().extra_vars or {}
        except Exception:  # pylint: disable=broad-except
            pass
        for source in (extra, play_vars):
            for key in ('appcare_tier', 'tier'):
                value = self._render(play, source.get(key))
                if self.tier is None and isinstance(value, str) and value:
                    self.tier = value
            value = self._render(play, source.get('appcare_report_dir'))
            if self.report_dir is None and isinstance(value, str) and value:
                self.report_dir = value
            value = self._render(play, source.get('appcare_report_fail_on'))
            if self.fail_on is None and value in ('none', 'warning', 'critical'):
                self.fail_on = value

    @staticmethod
    def _render(play, value):
        """Template a play variable such as "{{ playbook_dir }}/reports"; None when it cannot be rendered."""
        if not isinstance(value, str) or '{{' not in value:
            return value
        try:
            from ansible.template import Templar  # pylint: disable=import-outside-toplevel
            manager = play.get_variable_manager()
            templar = Templar(loader=play._loader, variables=manager.get_vars(play=play))
            rendered = templar.template(value)
            return rendered if isinstance(rendered, str) and '{{' not in rendered else None
        except Exception:  # pylint: disable=broad-except
            return None

    def v2_playbook_on_task_start(self, task, is_conditional):
        name = task.get_name()
        if name and name not in self.tasks:
            self.tasks.append(name)

    # -- results ----------------------------------------------------------------------------------
    def _target(self, result):
        return self.targets.setdefault(result._host.get_name(), {'checks': []})

    def _action(self, result):
        task = result._task
        return getattr(task, 'resolved_action', None) or task.action or ''

    def _gather(self, result, data):
        action = self._action(result)
        target = self._target(result)
        if data.get('_ansible_no_log') or not action.startswith(PREFIX) or data.get('skipped'):
            return
        module = action[len(PREFIX):]
        task = result._task.get_name()
        for check in data.get('checks') or []:
            if isinstance(check, dict) and 'name' in check and 'status' in check:
                target['checks'].append(dict(check, task=task))
        now = _utcnow()
        if module == 'pg_backup' and data.get('manifest'):
            manifest = data['manifest']
            target['backup'] = {'id': manifest.get('id'), 'path': data.get('path'), 'bytes': data.get('bytes'),
                                'finished_at': manifest.get('finished_at'),
                                'age_hours': _hours_since(manifest.get('finished_at'), now),
                                'verified': (manifest.get('verification') or {}).get('result')}
        elif module == 'pg_backup_verify' and data.get('result'):
            backup = target.setdefault('backup', {'id': os.path.basename(str(data.get('backup') or ''))})
            backup['verified'] = data['result']
            backup['verified_level'] = data.get('level')
        elif module in ('pg_reindex', 'pg_vacuum'):
            target.setdefault('actions', []).extend(
                dict((k, a.get(k)) for k in ('index', 'table', 'operation', 'result', 'message', 'seconds'))
                for a in data.get('actions') or [])
        elif module == 'http_health_info':
            target['endpoints'] = [dict((k, e.get(k)) for k in ('name', 'url', 'status_codes', 'latency_ms',
                                                                'error_rate'))
                                   for e in data.get('endpoints') or []]
        elif module == 'notify':
            target.setdefault('deliveries', []).extend(
                dict((k, d.get(k)) for k in ('channel', 'type', 'alerts', 'resolved', 'ok', 'error'))
                for d in data.get('deliveries') or [])
        elif module == 'metrics_history':
            target['forecast'] = data.get('forecast')
            if data.get('chart'):
                target['chart'] = data['chart']
        elif module == 'pg_inspect_info' and data.get('metrics'):
            target['metrics'] = data['metrics']

    def _each(self, result):
        data = result._result
        if isinstance(data.get('results'), list):
            for item in data['results']:
                if isinstance(item, dict):
                    self._gather(result, item)
        else:
            self._gather(result, data)

    def v2_runner_on_ok(self, result):
        self._each(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._each(result)
        if ignore_errors:
            return
        data = result._result
        message = '(output hidden by no_log)' if data.get('_ansible_no_log') else data.get('msg') or 'failed'
        self._target(result).setdefault('failures', []).append({'task': result._task.get_name(),
                                                               'msg': str(message)[:2000]})

    def v2_runner_on_unreachable(self, result):
        self._target(result)['unreachable'] = str(result._result.get('msg') or 'unreachable')[:2000]

    # -- the end ----------------------------------------------------------------------------------
    def v2_playbook_on_stats(self, stats):
        for host in stats.processed:
            self.targets.setdefault(host, {'checks': []})
        now = _utcnow()
        tier = self.tier or self.get_option('tier')
        report_dir = self.report_dir or self.get_option('report_dir')
        if not os.path.isabs(report_dir):
            report_dir = os.path.join(self.cwd, report_dir)
        fail_on = self.fail_on or self.get_option('fail_on')
        run = {'tier': tier, 'playbook': self.playbook, 'started_at': self.started.isoformat(),
               'targets': self.targets, 'tasks': self.tasks}
        try:
            run['schedule'] = RP.update_schedule(report_dir, tier, now)
        except OSError as exc:
            self._display.warning('maintenance_report: cannot update the schedule in %s: %s' % (report_dir, exc))
            run['schedule'] = []
        report = RP.build(run, now)
        stamp = now.strftime('%Y%m%dT%H%M%SZ')
        charts = {}
        for target in report['targets']:
            path = target.get('chart')
            if path and os.path.isfile(path):
                try:
                    with open(path, 'r', encoding='utf-8') as handle:
                        charts['%s: database size' % target['name']] = handle.read()
                except OSError:
                    pass
        try:
            import json  # pylint: disable=import-outside-toplevel
            text = json.dumps(report, indent=1, sort_keys=True, default=str)
            for name in ('%s-%s.json' % (tier, stamp), 'latest.json'):
                write_atomic(os.path.join(report_dir, name), text)
            page = RP.render_html(report, charts)
            for name in ('%s-%s.html' % (tier, stamp), 'latest.html'):
                write_atomic(os.path.join(report_dir, name), page)
            written = os.path.join(report_dir, 'latest.html')
        except OSError as exc:
            self._display.warning('maintenance_report: cannot write the report to %s: %s' % (report_dir, exc))
            written = None
        self._display.banner('APPCARE MAINTENANCE REPORT (%s)' % tier)
        for line in RP.summary_lines(report):
            self._display.display(line)
        if written:
            self._display.display('dashboard: %s' % written)
        if fail_on in (C.WARNING, C.CRITICAL):
            if C.STATUS_ORDER.index(report['status']) >= C.STATUS_ORDER.index(fail_on) and report['status'] != C.UNKNOWN:
                self._display.error('maintenance_report: the run has %s findings (fail_on=%s)'
                                    % (report['status'], fail_on))
                sys.stdout.flush()
                raise SystemExit(2)  # a callback cannot set the exit code otherwise
