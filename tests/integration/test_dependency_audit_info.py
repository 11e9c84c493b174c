# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dependency_audit_info with the real npm and pip-audit on small projects (tests/fixtures/dependency_audit):
a project pinned to versions with published advisories is audited for real and fires, a current one stays
quiet, npm outdated asks the real registry, and the configured registry and vulnerability services are asked
too - their answer, whichever it is where the tests run, is asserted (a report, or the named finding of a
service that refuses or cannot be reached)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import report as R
from modrunner import run_module

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fixtures', 'dependency_audit')
sys.path.insert(0, FIXTURES)
from advisory_registry import AdvisoryRegistry  # noqa: E402

NPM = shutil.which('npm')
PIP_AUDIT = shutil.which('pip-audit') or shutil.which('pip-audit', path=os.path.dirname(sys.executable))
needs_npm = pytest.mark.skipif(NPM is None, reason='npm is not installed (apt-get install nodejs npm)')
needs_pip_audit = pytest.mark.skipif(PIP_AUDIT is None, reason='pip-audit is not installed (pip install pip-audit)')


def checks_of(result):
    return dict(((c['name'], c['object']), c) for c in result['checks'])


@pytest.fixture(scope='module')
def registry():
    with AdvisoryRegistry() as front:
        yield front


@pytest.fixture
def project(tmp_path):
    """A copy of a fixture project (the tools must not write into the repository)."""
    def copy(name):
        dest = str(tmp_path / name)
        shutil.copytree(os.path.join(FIXTURES, name), dest)
        return dest
    return copy


@needs_npm
def test_vulnerable_project_fires(registry, project):
    path = project('npm-vulnerable')
    result = run_module('dependency_audit_info', {'path': path, 'registry': registry.url})
    assert result.rc == 0, result.raw
    assert result['changed'] is False and result['status'] == 'critical'
    found = checks_of(result)
    vulns = found[('dependency_vulnerabilities', 'npm=%s' % path)]
    assert vulns['status'] == 'critical' and vulns['severity_found'] == 'critical'
    npm = result['npm']
    assert npm['report_version'] == 2 and npm['lock_file'] == 'package-lock.json'
    # only npm outdated needs the public registry (through the front); the audit is the front's own
    assert set(npm['errors']) <= ({'outdated'} if registry.upstream_errors else set()), npm['errors']
    assert npm['counts'] == {'critical': 3, 'high': 1, 'moderate': 0, 'low': 0, 'info': 0, 'total': 4}
    packages = dict((p['name'], p) for p in npm['vulnerabilities'])
    assert packages['mkdirp']['via'] == ['minimist'] and packages['mkdirp']['advisories']
    assert packages['optimist']['fix']['semver_major'] is True
    urls = {a['url'] for a in npm['advisories']}
    assert 'https://github.com/advisories/GHSA-35jh-r3h4-6jhm' in urls
    assert 'https://github.com/advisories/GHSA-xvch-5gv4-984h' in urls
    # npm asked the advisory endpoint once, with the locked packages
    assert ('POST', '/-/npm/v1/security/advisories/bulk') in registry.requests
    # npm outdated for real (package metadata from the public registry, through the front)
    if registry.upstream_errors:
        pytest.skip('the public npm registry did not answer npm outdated: %s' % registry.upstream_errors[0])
    outdated = dict((o['name'], o) for o in npm['outdated'])
    assert outdated['mkdirp']['current'] == '0.5.1' and outdated['mkdirp']['current_from'] == 'lock'
    assert outdated['mkdirp']['level'] == 'major' and outdated['mkdirp']['major_behind'] >= 3
    assert outdated['lodash']['current'] == '4.17.20'
    assert 'optimist' not in outdated  # 0.6.1 is its latest release
    assert found[('dependency_outdated', 'npm=%s' % path)]['status'] == 'warning'
    section = result['report']['dependencies']
    assert section['path'] == path and section['npm']['counts']['critical'] == 3
    assert section['vulnerable'][0]['severity'] == 'critical' and section['outdated_major'] >= 1
    assert registry.url not in str(section)  # options stay out of the report
    assert not os.path.exists(os.path.join(path, 'node_modules'))  # nothing was installed


@needs_npm
def test_dev_dependencies_left_out(registry, project):
    path = project('npm-vulnerable')
    result = run_module('dependency_audit_info', {'path': path, 'registry': registry.url, 'include_dev': False,
                                                  'outdated': False})
    assert result.rc == 0, result.raw
    assert 'optimist' not in [p['name'] for p in result['npm']['vulnerabilities']]
    assert result['npm']['counts']['total'] == 3 and result['npm']['outdated'] is None
    assert ('dependency_outdated', 'npm=%s' % path) not in checks_of(result)


@needs_npm
def test_thresholds_and_severity(registry, project):
    path = project('npm-vulnerable')
    result = run_module('dependency_audit_info', {
        'path': path, 'registry': registry.url, 'outdated': False,
        'thresholds': {'dependency_vulnerabilities': {'warning': 'low', 'critical': None}},
        'severity': {'dependency_outdated': 'info'}})
    assert result.rc == 0, result.raw
    vulns = checks_of(result)[('dependency_vulnerabilities', 'npm=%s' % path)]
    assert vulns['status'] == 'warning' and vulns['warning'] == 1 and vulns['critical'] is None


@needs_npm
def test_clean_project_stays_quiet(registry, project):
    path = project('npm-clean')
    result = run_module('dependency_audit_info', {'path': path, 'registry': registry.url})
    assert result.rc == 0, result.raw
    found = checks_of(result)
    assert found[('dependency_vulnerabilities', 'npm=%s' % path)]['status'] == 'ok'
    if registry.upstream_errors:
        assert found[('dependency_audit', 'npm=%s' % path)]['status'] == 'unknown'  # named, never quiet
        pytest.skip('the public npm registry did not answer npm outdated: %s' % registry.upstream_errors[0])
    assert found[('dependency_audit', 'npm=%s' % path)]['status'] == 'ok'
    # ms ^2.1.3 is current; npm lists it anyway when node_modules is absent - it must not count as outdated
    assert result['npm']['outdated'] == [] or all(o['level'] for o in result['npm']['outdated'])
    assert found[('dependency_outdated', 'npm=%s' % path)]['status'] in ('ok', 'info')
    assert result['status'] in ('ok', 'info')
    assert result['report']['dependencies']['vulnerable'] == []


@needs_npm
def test_check_mode_is_the_same(registry, project):
    path = project('npm-clean')
    result = run_module('dependency_audit_info', {'path': path, 'registry': registry.url, 'outdated': False},
                        check_mode=True)
    assert result.rc == 0, result.raw
    assert result['changed'] is False and result['npm']['counts']['total'] == 0


@needs_npm
def test_the_configured_registry_answers_or_is_named(project):
    """The registry npm is configured with, asked for real: a report where its audit endpoint answers; where it
    refuses (a mirror that allows GET and HEAD only answers 405) or cannot be reached, the named finding."""
    path = project('npm-vulnerable')
    result = run_module('dependency_audit_info', {'path': path, 'outdated': False, 'npm_timeout': 90})
    assert result.rc == 0, result.raw
    found = checks_of(result)
    audit = found[('dependency_audit', 'npm=%s' % path)]
    if audit['status'] == 'ok':
        vulns = found[('dependency_vulnerabilities', 'npm=%s' % path)]
        assert vulns['status'] == 'critical'  # lodash 4.17.20 and minimist 0.0.8 have published advisories
        assert {'lodash', 'minimist'} <= {p['name'] for p in result['npm']['vulnerabilities']}
    else:
        assert audit['status'] == 'unknown'
        assert 'npm registry' in audit['message'] and ('refused' in audit['message'] or 'unreachable'
                                                       in audit['message']), audit['message']
        assert result['npm']['errors']['audit'] == audit['message']
        assert ('dependency_vulnerabilities', 'npm=%s' % path) not in found  # not known is not "none"


@needs_pip_audit
def test_pip_audit_requirements_for_real(project):
    """pip-audit on requirements pinned to requests 2.19.0 (published advisories): the vulnerabilities where
    the service answers; where it does not, every package is skipped and that is unknown, not ok."""
    path = project('python')
    result = run_module('dependency_audit_info', {'path': path, 'requirements': ['requirements-vulnerable.txt'],
                                                  'pip_audit_timeout': 120})
    assert result.rc == 0, result.raw
    assert result['npm'] is None
    found = checks_of(result)
    audit = found[('dependency_audit', 'python=requirements-vulnerable.txt')]
    if result['python']['packages']:
        requests = result['python']['packages'][0]
        assert requests['name'] == 'requests' and requests['version'] == '2.19.0' and requests['fix_available']
        assert found[('dependency_vulnerabilities', 'python=requirements-vulnerable.txt')]['status'] == 'critical'
    else:
        assert audit['status'] == 'unknown', audit
        assert result['python']['skipped'][0]['name'] == 'requests'
        assert result['python']['skipped'][0]['reason']
        assert ('dependency_vulnerabilities', 'python=requirements-vulnerable.txt') not in found
    assert result['report']['dependencies']['python']['sources'] == ['requirements-vulnerable.txt']


@needs_pip_audit
def test_pip_audit_of_an_environment(tmp_path):
    venv = str(tmp_path / 'venv')
    subprocess.run([sys.executable, '-m', 'venv', venv], check=True)
    python = os.path.join(venv, 'bin', 'python')
    result = run_module('dependency_audit_info', {'path': str(tmp_path), 'python': python,
                                                  'pip_audit_timeout': 120})
    assert result.rc == 0, result.raw
    label = 'environment of %s' % python
    audit = checks_of(result)[('dependency_audit', 'python=%s' % label)]
    assert result['python']['errors'] == {} and result['python']['sources'] == [label]
    listed = [p['name'] for p in result['python']['packages']] + [s['name'] for s in result['python']['skipped']]
    # the new environment was audited (its pip), not the one pip-audit runs in
    assert 'pip-audit' not in listed and 'cyclonedx-python-lib' not in listed
    if audit['status'] == 'unknown':
        assert 'pip' in listed and 'audited nothing' in audit['message']
    else:
        assert audit['status'] in ('ok', 'info')


def test_module_is_a_security_action():
    assert R.ACTION_CATEGORIES['dependency_audit_info'] == 'security'
