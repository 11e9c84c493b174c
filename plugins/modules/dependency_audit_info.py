#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: dependency_audit_info
short_description: Known vulnerabilities and outdated packages of an application checkout (npm audit, pip-audit)
version_added: 0.1.0
description:
  - Runs on the host where the application's checkout lives. For a Node.js project (C(package.json) with
    C(package-lock.json) or C(npm-shrinkwrap.json)) it runs C(npm audit --json) and C(npm outdated --json); for
    Python it runs C(pip-audit -f json) on pinned requirements files (O(requirements)) or on the environment of an
    interpreter (O(python)).
  - Nothing is installed and none of the project's scripts run - C(npm audit) and C(npm outdated) read the lock
    file and the registry's package metadata (with C(--ignore-scripts)); requirements files are audited with
    C(--no-deps --disable-pip), so they must pin every package (C(name==version)), as a C(pip-compile) or
    C(pip freeze) output does.
  - Reads npm 7 and later (C(auditReportVersion) 2). The old npm 6 report format is reported as such
    (C(dependency_audit) V(unknown)), not guessed at.
  - "Findings (object C(npm=<path>) or C(python=<source>)):
    C(dependency_vulnerabilities) - the worst severity found, as a rank: 0 none, 1 info, 2 low, 3 moderate, 4 high,
    5 critical; by default V(critical) for any high or critical vulnerability, V(warning) for moderate and V(info)
    for low or info (the guides' C(npm audit --audit-level moderate)). pip-audit's services give no severity, so a
    Python vulnerability counts as O(python_severity).
    C(dependency_outdated) - how many major versions the furthest-behind npm package lags its latest release:
    V(warning) at two or more, V(info) for any other outdated package, V(ok) when none is.
    C(dependency_audit) - whether a tool's answer could be used: V(unknown) with the cause when it could not
    (registry or vulnerability service unreachable or refusing, timeout, unreadable or old-format output, every
    Python package skipped); V(info) when pip-audit skipped some packages (each listed with its reason)."
  - A missing tool or a missing lock or requirements file fails the module with what to install or which file to
    create; an unreachable registry or a tool that hangs does not (its finding says so).
author:
  - appcare maintainers (@appcare)
requirements:
  - npm 7 or later (Debian/Ubuntu package C(npm)) for Node.js projects
  - pip-audit for Python (C(pip install pip-audit))
extends_documentation_fragment:
  - appcare.maintenance.severity
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  path:
    description: The application's checkout (the directory with C(package.json), and the base of O(requirements)).
    type: path
    required: true
  ecosystems:
    description:
      - What to audit. By default V(npm) when O(path) has a C(package.json), and V(python) when O(requirements) or
        O(python) is given.
      - Naming V(npm) makes a missing C(package.json) or lock file a failure instead of a skip.
    type: list
    elements: str
    choices: [npm, python]
  include_dev:
    description: Audit the C(devDependencies) too (V(false) runs C(npm audit --omit=dev) and leaves development
      packages out of the outdated list). They run on developers' and CI machines, so they are audited by default,
      as plain C(npm audit) does.
    type: bool
    default: true
  outdated:
    description: Run C(npm outdated) as well.
    type: bool
    default: true
  registry:
    description: The npm registry to ask (C(npm --registry)) instead of the one npm is configured with. It must
      answer npm's audit endpoint (a mirror that serves only package downloads does not). Credentials belong in
      npm's configuration (C(.npmrc)), not in this URL; any in it are masked in messages.
    type: str
  npm_executable:
    description: The npm command or its path.
    type: str
    default: npm
  npm_timeout:
    description: Seconds each npm command may take; then it is stopped and C(dependency_audit) is V(unknown).
    type: float
    default: 120
  requirements:
    description: Pinned requirements files to audit with pip-audit, relative to O(path) or absolute.
    type: list
    elements: path
  python:
    description: The interpreter of a Python environment (a virtualenv's C(bin/python)) whose installed packages
      pip-audit audits; the environment needs pip.
    type: path
  pip_audit_executable:
    description: The pip-audit command or its path; looked up in C(PATH) and then beside the Python running the
      module.
    type: str
    default: pip-audit
  pip_audit_service:
    description: pip-audit's vulnerability service - V(pypi) (PyPI's JSON API) or V(osv) (api.osv.dev).
    type: str
    choices: [pypi, osv]
    default: pypi
  pip_audit_timeout:
    description: Seconds each pip-audit run may take; then it is stopped and C(dependency_audit) is V(unknown).
    type: float
    default: 300
  python_severity:
    description: The severity a Python vulnerability counts as in C(dependency_vulnerabilities) (pip-audit reports
      none). V(high) by default, so that an unrated vulnerability is not ranked below a known moderate one.
    type: str
    choices: [low, moderate, high, critical]
    default: high
  thresholds:
    description:
      - Overrides of C(warning)/C(critical) for C(dependency_vulnerabilities) and C(dependency_outdated).
      - "For C(dependency_vulnerabilities) give a severity name - it fires at that severity or worse
        (C({warning: low, critical: critical})) - or a rank (it fires above it; 0 none, 1 info, 2 low, 3 moderate,
        4 high, 5 critical); V(null) disables a level."
      - For C(dependency_outdated), major versions behind (it fires above them; by default warning above 1, critical
        disabled).
    type: dict
    default: {}
seealso:
  - name: npm audit
    description: The npm command this module runs.
    link: https://docs.npmjs.com/cli/commands/npm-audit
  - name: pip-audit
    description: The Python auditor this module runs.
    link: https://pypi.org/project/pip-audit/
'''

EXAMPLES = r'''
- name: Audit the application's Node.js dependencies (weekly security audit)
  appcare.maintenance.dependency_audit_info:
    path: /srv/ims/current
  register: dependencies

- name: Production packages only, Python requirements too, warning already at low
  appcare.maintenance.dependency_audit_info:
    path: /srv/ims/current
    include_dev: false
    requirements: [requirements.txt]
    thresholds:
      dependency_vulnerabilities: {warning: low, critical: high}

- name: The packages installed in the application's virtualenv, through OSV
  appcare.maintenance.dependency_audit_info:
    path: /srv/worker
    ecosystems: [python]
    python: /srv/worker/.venv/bin/python
    pip_audit_service: osv
    pip_audit_timeout: 120
'''

RETURN = r'''
checkout:
  description: The checkout audited (O(path)).
  returned: always
  type: str
  sample: /srv/ims/current
npm:
  description:
    - The npm audit and outdated results, or V(null) when npm was not audited.
    - C(counts) are vulnerable packages by severity (C(critical), C(high), C(moderate), C(low), C(info), C(total)),
      as npm counts them; C(dependencies) the number of dependencies npm audited.
    - C(vulnerabilities) has one entry per vulnerable package, worst first - C(severity), C(direct), C(range) (the
      vulnerable versions), C(nodes), C(via) (the vulnerable packages it depends on), C(advisories) (ids of the
      advisories it is vulnerable through, the C(via) chains followed to the packages that carry them),
      C(fix_available) and C(fix) (what C(npm audit fix) would install - C(name), C(version), C(semver_major) - when
      npm names it).
    - C(advisories) has one entry per advisory - C(id), C(package), C(title), C(url), C(severity), C(range),
      C(cwe), C(cvss_score) and C(affects) (the vulnerable packages it reaches).
    - C(outdated) lists packages with a newer release - C(current) (from C(node_modules), or the lock file when
      none is installed, see C(current_from); V(null) when neither has it, and C(level) then compares C(wanted)),
      C(wanted), C(latest), C(level) (major, minor or patch), C(behind) (how many versions of that level),
      C(major_behind), C(dev); V(null) when not run or not answered.
    - C(errors) maps C(audit)/C(outdated) to the reason its answer could not be used.
  returned: always
  type: dict
  sample:
    lock_file: package-lock.json
    lockfile_version: 3
    include_dev: true
    report_version: 2
    counts: {critical: 1, high: 1, moderate: 0, low: 0, info: 0, total: 2}
    dependencies: 5
    vulnerabilities:
      - name: minimist
        severity: critical
        direct: false
        range: "<=0.2.3"
        nodes: [node_modules/minimist]
        via: []
        effects: [mkdirp]
        advisories: ["100001"]
        fix_available: true
        fix: {name: mkdirp, version: 0.5.6, semver_major: false}
    advisories:
      - id: "100001"
        package: minimist
        title: Prototype Pollution in minimist
        url: https://github.com/advisories/GHSA-xvch-5gv4-984h
        severity: critical
        range: "<0.2.4"
        cwe: [CWE-1321]
        cvss_score: 9.8
        affects: [minimist, mkdirp]
    fixable: 2
    fixable_semver_major: 0
    outdated:
      - {name: mkdirp, current: 0.5.1, current_from: lock, wanted: 0.5.1, latest: 3.0.1, level: major, behind: 3,
         major_behind: 3, dev: false, dependent: app, type: null}
    errors: {}
python:
  description:
    - The pip-audit results, or V(null) when Python was not audited. C(sources) lists what was audited
      (requirements files, an interpreter's environment); C(counts) has C(vulnerable) packages,
      C(vulnerabilities), C(fixable) and C(skipped).
    - C(packages) lists each vulnerable package - C(name), C(version), C(source), C(vulnerabilities) (C(id),
      C(aliases), C(fix_versions)), C(fix_versions) and C(fix_available) (every vulnerability has a fixed release).
    - C(skipped) lists what pip-audit could not audit, each with pip-audit's C(reason).
  returned: always
  type: dict
  sample:
    sources: [requirements.txt]
    service: pypi
    counts: {vulnerable: 1, vulnerabilities: 2, fixable: 1, skipped: 1}
    packages:
      - name: requests
        version: 2.19.0
        source: requirements.txt
        vulnerabilities:
          - {id: PYSEC-2018-28, aliases: [CVE-2018-18074, GHSA-x84v-xcm2-53pg], fix_versions: [2.20.0]}
          - {id: GHSA-j8r2-6x86-q33q, aliases: [CVE-2023-32681, PYSEC-2023-74], fix_versions: [2.31.0]}
        fix_versions: [2.20.0, 2.31.0]
        fix_available: true
    skipped:
      - {name: ims-worker, reason: "Dependency not found on PyPI and could not be audited: ims-worker (1.4.0)",
         source: requirements.txt}
    errors: {}
checks:
  description: The findings, in the collection's uniform shape.
  returned: always
  type: list
  elements: dict
  sample:
    - name: dependency_vulnerabilities
      status: critical
      value: 5
      unit: severity
      warning: 2
      critical: 3
      object: npm=/srv/ims/current
      severity_found: critical
      message: "2 vulnerable npm packages in /srv/ims/current: 1 critical, 1 high; minimist (critical), lodash (high);
        2 with a fix available (0 of them a semver-major change) (critical threshold: above 3)"
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: critical
report:
  description: What the run report shows (the C(appcare.maintenance.maintenance_report) callback merges it) - the
    C(dependencies) section - C(finished_at), C(path), C(npm) (C(counts), C(fixable), C(dependencies), C(outdated)),
    C(python) (C(counts), C(sources)), C(vulnerable) (at most 25 packages, worst first - C(ecosystem), C(name),
    C(severity), C(fix_available) and the first advisories), C(vulnerable_total) and C(outdated_major) (npm packages
    a major version or more behind).
  returned: success
  type: dict
  sample: {dependencies: {finished_at: "2026-12-04T15:40:00.000000Z", path: /srv/ims/current,
                          npm: {counts: {critical: 1, high: 1, moderate: 0, low: 0, info: 0, total: 2}, fixable: 2,
                                dependencies: 5, outdated: 2},
                          python: null,
                          vulnerable: [{ecosystem: npm, name: minimist, severity: critical, direct: false,
                                        fix_available: true, fix_semver_major: false,
                                        advisories: [Prototype Pollution in minimist]}],
                          vulnerable_total: 2, outdated_major: 1}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import depaudit as D
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import (
    AppcareError,
    ConfigurationError,
    failure_message,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            ecosystems=dict(type='list', elements='str', choices=list(D.ECOSYSTEMS)),
            include_dev=dict(type='bool', default=True),
            outdated=dict(type='bool', default=True),
            registry=dict(type='str'),
            npm_executable=dict(type='str', default='npm'),
            npm_timeout=dict(type='float', default=120),
            requirements=dict(type='list', elements='path'),
            python=dict(type='path'),
            pip_audit_executable=dict(type='str', default='pip-audit'),
            pip_audit_service=dict(type='str', choices=list(D.PIP_AUDIT_SERVICES), default='pypi'),
            pip_audit_timeout=dict(type='float', default=300),
            python_severity=dict(type='str', choices=['low', 'moderate', 'high', 'critical'], default='high'),
            thresholds=dict(type='dict', default={}),
            **C.severity_spec()
        ),
        supports_check_mode=True,
    )
    try:
        thresholds = D.validate(module.params)
    except ConfigurationError as exc:
        module.fail_json(msg=failure_message('dependency audit', exc))
    try:
        result = D.audit(module.params, thresholds)
    except (AppcareError, OSError) as exc:
        module.fail_json(msg=failure_message('dependency audit', exc))
    C.finish(module, result)


if __name__ == '__main__':
    main()
