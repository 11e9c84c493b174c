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
  - Gathers, per host, every C(checks) list the run's C(appcare.maintenance) modules return, the C(report) each
    of their results declares (see below), and the hosts that were unreachable or had a task fail (any task).
  - "The C(report) convention: a module's result may hold a key C(report), a dict of section name to value. A dict
    value is merged into that section of the host (C(dict.update)), a list value is appended to the section's
    list, any other value replaces the section; V(null) is ignored, and so are the sections the callback owns
    (C(checks), C(failures), C(unreachable), C(name), C(status), C(counts), C(kpis), C(categories)). Any section dict with
    C(finished_at) also gets C(age_hours), computed when the report is written. Every section goes into the JSON
    report; the dashboard shows C(backup) (C(id), C(finished_at), C(age_hours), C(bytes), C(verified)),
    C(actions) (C(index) or C(table), C(operation), C(result), C(message)), C(endpoints) (C(latency_ms.max) as a
    key figure), C(deliveries) (C(channel), C(alerts), C(resolved), C(ok), C(error)), C(log_review) (the Top
    errors - C(severities), C(top_errors) with the C(new) ones marked, C(new_patterns), C(events),
    C(missing_settings), a Supabase project's C(failed_signins)), C(api_traffic) (C(requests), C(error_rate_percent),
    C(latency_ms)), C(web_pages) (the Page timings - per page C(lcp_ms), C(cls), C(tbt_ms), C(ttfb_ms), C(load_ms),
    C(transfer_bytes), C(requests), C(status)), C(web_links) (the Broken links - C(pages_crawled), C(links_checked),
    C(broken_count), C(broken) with C(url), C(kinds), C(status), C(error), C(found_on)), C(dependencies) (the vulnerable
    packages - C(vulnerable) with C(name), C(severity), C(fix_available), C(fix_semver_major), C(vulnerable_total),
    C(npm.counts), C(npm.outdated), C(outdated_major)) and C(chart) (the path of an SVG trend chart); C(forecast) and
    C(metrics) are kept in the JSON. A new module adds to the report by
    returning C(report) - the callback needs no change."
  - At the end of the run it writes C(<report_dir>/<tier>-<UTC timestamp>.json), C(latest.json), a self-contained
    HTML dashboard C(<tier>-<UTC timestamp>.html) and C(latest.html) (inline CSS and SVG, no external assets, opens
    offline from disk, rendered from a Jinja2 template with autoescaping) - overall status per target with its
    counts per status and per category, the to-do list (critical, warning and unknown findings per category, worst
    first, with the sessions behind session findings - pid, user, application, client, the blocking pid and who
    holds the lock, never a query), the advice (V(info) findings) apart from the folded V(ok) ones, backup status
    (newest backup, its age, size, verified or not), the top errors of the log review (per target the totals per
    severity, the top error patterns with the new ones marked, the log's events, the settings the log lacks, a
    Supabase project's API traffic), the web application's page timings (each figure rated Good, Needs improvement or
    Poor by Google's limits), broken links with the pages they are on, vulnerable packages with their fixes and the
    count of packages a major version behind, key figures (latency, connections, cache hit, sizes), maintenance actions, alerts
    sent, the schedule (the roles and tasks this tier ran - not those only skipped -, when each tier
    last ran and is next due, kept in C(<report_dir>/schedule.json)) and the trend charts
    M(appcare.maintenance.metrics_history) wrote.
  - "Categories, as Supabase's advisors group findings: C(security) (pg_audit_info, tls_cert_info, dependency_audit_info),
    C(performance) (pg_inspect_info, pg_reindex, pg_vacuum, metrics_history, web_page_info), C(health) (pg_health_info,
    http_health_info, web_links_info),
    C(backups) (pg_backup, pg_backup_verify). A finding gets the category of the module that returned it, unless it
    has a C(category) key naming one of these; anything else is C(other)."
  - Key figures this run did not measure (the monthly tier runs no health check) show the newest known value with
    its age, from C(<report_dir>/kpis.json), which keeps the newest figures per target (written atomically; read back
    as untrusted - a malformed file is ignored, an entry with another unit or dated in the future is dropped).
  - Prints a compact summary table (target, worst status, counts per status) after the recap, then the to-do list
    per category (one line per finding, at most 25 per category) and the advice.
  - O(fail_on) is the collection's one fail gate - the C(report) role has none. When a target's status is at or
    above it (its worst finding from any module of the run; critical when it was unreachable or a task failed;
    V(unknown) never counts), the run ends with exit code 2 after the report is written, so an AWX job or a CI step
    shows red; the error names each such target and its findings.
  - The tier comes from the extra variable C(tier) or C(appcare_tier), or the play variable C(appcare_tier);
    the play (or extra) variables C(appcare_report_dir) and C(appcare_report_fail_on) override the options below.
  - Only findings and what modules declare in C(report) are written - never module arguments - and results of
    C(no_log) tasks are left out, so secrets do not reach the report files.
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
    description:
      - End the run with exit code 2 when a target's status is at or above this severity (V(none) never).
      - The play variable C(appcare_report_fail_on) overrides it, for example to fail only the daily tier.
    type: str
    default: none
    choices: [none, warning, critical]
    env:
      - name: APPCARE_REPORT_FAIL_ON
    ini:
      - section: appcare_maintenance_report
        key: fail_on
  prometheus_textfile_dir:
    description:
      - Also write the report as Prometheus metrics to C(<dir>/appcare_<tier>.prom) (a temporary file in the same
        directory, then a rename), for node_exporter's textfile collector (C(--collector.textfile.directory)). See
        C(docs/prometheus.md) for the metrics. Relative paths are under the directory the run starts in.
      - The play (or extra) variable C(appcare_prometheus_textfile_dir) overrides it. Unset, nothing is written.
      - A directory that cannot be written is a warning, not a failed run.
    type: path
    version_added: 0.1.0
    env:
      - name: APPCARE_PROMETHEUS_TEXTFILE_DIR
    ini:
      - section: appcare_maintenance_report
        key: prometheus_textfile_dir
  pushgateway_url:
    description:
      - Also push the same metrics to this Prometheus Pushgateway (HTTP PUT to
        C(<url>/metrics/job/appcare/tier/<tier>), which replaces that group; 10 seconds timeout).
      - The play (or extra) variable C(appcare_pushgateway_url) overrides it. A failed push is a warning, not a
        failed run.
    type: str
    version_added: 0.1.0
    env:
      - name: APPCARE_PUSHGATEWAY_URL
    ini:
      - section: appcare_maintenance_report
        key: pushgateway_url
'''

import json
import os
import sys

from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import prometheus as PM
from ansible_collections.appcare.maintenance.plugins.module_utils import report as RP
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.files import write_atomic
from ansible_collections.appcare.maintenance.plugins.plugin_utils import dashboard

PREFIX = 'appcare.maintenance.'


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'appcare.maintenance.maintenance_report'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = utcnow()
        self.targets = {}
        self.tasks = []
        self.ran = []  # names of the tasks that ran (ok, changed or failed) on some host - not only skipped
        self.tier = None
        self.report_dir = None
        self.fail_on = None
        self.prometheus = {}  # prometheus_textfile_dir / pushgateway_url from play or extra variables
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
            if self.fail_on is None and value in RP.FAIL_ON:
                self.fail_on = value
            for option in PM.OPTIONS:
                value = self._render(play, source.get('appcare_' + option))
                if option not in self.prometheus and isinstance(value, str) and value:
                    self.prometheus[option] = value

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
        if data.get('skipped'):
            return
        task = result._task.get_name()
        if task and task not in self.ran:
            self.ran.append(task)
        if data.get('_ansible_no_log') or not action.startswith(PREFIX):
            return
        for check in data.get('checks') or []:
            if isinstance(check, dict) and 'name' in check and check.get('status') in C.STATUS_ORDER:
                target['checks'].append(dict(check, task=task, category=RP.category_of(action, check)))
        RP.merge_report(target, data.get('report'))

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
        now = utcnow()
        tier = self.tier or self.get_option('tier')
        report_dir = self.report_dir or self.get_option('report_dir')
        if not os.path.isabs(report_dir):
            report_dir = os.path.join(self.cwd, report_dir)
        fail_on = self.fail_on or self.get_option('fail_on')
        run = {'tier': tier, 'playbook': self.playbook, 'started_at': self.started.isoformat(),
               'targets': self.targets, 'tasks': self.tasks, 'ran': self.ran}
        try:
            run['schedule'] = RP.update_schedule(report_dir, tier, now)
        except OSError as exc:
            self._display.warning('maintenance_report: cannot update the schedule in %s: %s' % (report_dir, exc))
            run['schedule'] = []
        report = RP.build(run, now)
        try:
            RP.update_kpis(report_dir, report, now)
        except OSError as exc:
            self._display.warning('maintenance_report: cannot keep the key figures in %s: %s' % (report_dir, exc))
        stamp = now.strftime('%Y%m%dT%H%M%SZ')
        charts = {}
        for target in report['targets']:
            path = target.get('chart')
            if isinstance(path, str) and os.path.isfile(path):
                try:
                    with open(path, 'r', encoding='utf-8') as handle:
                        charts['%s: database size' % target['name']] = handle.read()
                except OSError:
                    pass
        try:
            text = json.dumps(report, indent=1, sort_keys=True, default=str)
            for name in ('%s-%s.json' % (tier, stamp), 'latest.json'):
                write_atomic(os.path.join(report_dir, name), text, mode=0o644)
        except OSError as exc:
            self._display.warning('maintenance_report: cannot write the report to %s: %s' % (report_dir, exc))
        prometheus = dict((o, self.prometheus.get(o) or self.get_option(o)) for o in PM.OPTIONS)
        for problem in PM.export(report, now, base_dir=self.cwd, ansible_version=ansible_version, **prometheus)[1]:
            self._display.warning('maintenance_report: %s' % problem)
        written = None
        try:
            page = dashboard.render_html(report, charts)
            for name in ('%s-%s.html' % (tier, stamp), 'latest.html'):
                write_atomic(os.path.join(report_dir, name), page, mode=0o644)
            written = os.path.join(report_dir, 'latest.html')
        except OSError as exc:
            self._display.warning('maintenance_report: cannot write the dashboard to %s: %s' % (report_dir, exc))
        except Exception as exc:  # pylint: disable=broad-except
            # A section a module reported in a shape the template cannot show must not cost the run its gate.
            self._display.warning('maintenance_report: cannot render the dashboard: %s: %s'
                                  % (type(exc).__name__, exc))
        self._display.banner('APPCARE MAINTENANCE REPORT (%s)' % tier)
        for line in RP.summary_lines(report):
            self._display.display(line)
        if written:
            self._display.display('dashboard: %s' % written)
        reasons = RP.gate(report, fail_on)
        if reasons:
            self._display.error('maintenance_report: the run has %s findings (fail_on=%s): %s'
                                % (report['status'], fail_on, '; '.join(reasons)))
            sys.stdout.flush()
            raise SystemExit(2)  # a callback cannot set the exit code otherwise
