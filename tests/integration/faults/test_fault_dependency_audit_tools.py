# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dependency_audit_info survives what goes wrong around the tools: npm or pip-audit not installed, a missing
lock or requirements file (clear failures saying what to do, never a traceback); a registry on a closed port, a
registry that accepts and never answers, a vulnerability service out of reach, a tool that prints broken JSON or
the old npm 6 format, a tool that hangs (findings of status unknown with the cause, within the timeout, and the
hung process group is gone)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time

import pytest

from modrunner import run_module

TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(TESTS, 'fixtures', 'dependency_audit')
sys.path.insert(0, FIXTURES)
from advisory_registry import AdvisoryRegistry  # noqa: E402

NPM = shutil.which('npm')
PIP_AUDIT = shutil.which('pip-audit') or shutil.which('pip-audit', path=os.path.dirname(sys.executable))
needs_npm = pytest.mark.skipif(NPM is None, reason='npm is not installed (apt-get install nodejs npm)')
needs_pip_audit = pytest.mark.skipif(PIP_AUDIT is None, reason='pip-audit is not installed (pip install pip-audit)')


def checks_of(result):
    return dict(((c['name'], c['object']), c) for c in result['checks'])


def closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def vulnerable(tmp_path):
    dest = str(tmp_path / 'app')
    shutil.copytree(os.path.join(FIXTURES, 'npm-vulnerable'), dest)
    return dest


def stand_in(tmp_path, name, body):
    """An executable that stands in for a tool that misbehaves (prints broken JSON, hangs)."""
    path = str(tmp_path / name)
    with open(path, 'w') as handle:
        handle.write('#!%s\n%s\n' % (sys.executable, body))
    os.chmod(path, 0o755)
    return path


def assert_clean_failure(result, *phrases):
    assert result.failed, result
    assert result['msg'].startswith('dependency audit failed: '), result['msg']
    for phrase in phrases:
        assert phrase in result['msg'], result['msg']
    assert 'Traceback' not in result.raw


# -- what is missing: clear failures -----------------------------------------------------------------------------
def test_npm_missing_from_path(vulnerable, tmp_path):
    empty = tmp_path / 'empty-bin'
    empty.mkdir()
    result = run_module('dependency_audit_info', {'path': vulnerable}, env={'PATH': str(empty)})
    assert_clean_failure(result, 'npm not found in PATH', 'apt-get install nodejs npm')


def test_npm_executable_that_does_not_exist(vulnerable, tmp_path):
    result = run_module('dependency_audit_info', {'path': vulnerable,
                                                  'npm_executable': str(tmp_path / 'bin' / 'npm')})
    assert_clean_failure(result, 'not found or not executable', 'apt-get install nodejs npm')


def test_pip_audit_missing(tmp_path):
    (tmp_path / 'requirements.txt').write_text('requests==2.19.0\n')
    result = run_module('dependency_audit_info', {'path': str(tmp_path), 'requirements': ['requirements.txt'],
                                                  'pip_audit_executable': str(tmp_path / 'bin' / 'pip-audit')})
    assert_clean_failure(result, 'pip-audit executable', 'pip install pip-audit')


@needs_npm
def test_lock_file_missing(tmp_path):
    shutil.copy(os.path.join(FIXTURES, 'npm-vulnerable', 'package.json'), str(tmp_path))
    result = run_module('dependency_audit_info', {'path': str(tmp_path)})
    assert_clean_failure(result, 'no package-lock.json', str(tmp_path), 'npm install --package-lock-only')
    assert not os.path.exists(str(tmp_path / 'package-lock.json'))  # never written for the user


@needs_npm
def test_package_json_missing_when_npm_is_asked_for(tmp_path):
    result = run_module('dependency_audit_info', {'path': str(tmp_path), 'ecosystems': ['npm']})
    assert_clean_failure(result, 'no package.json in %s' % tmp_path)


def test_nothing_to_audit(tmp_path):
    result = run_module('dependency_audit_info', {'path': str(tmp_path)})
    assert_clean_failure(result, 'nothing to audit', 'package.json')


def test_path_that_is_not_a_directory(tmp_path):
    result = run_module('dependency_audit_info', {'path': str(tmp_path / 'gone')})
    assert_clean_failure(result, 'is not a directory')


@needs_npm
def test_lock_file_that_is_not_json(tmp_path):
    shutil.copy(os.path.join(FIXTURES, 'npm-vulnerable', 'package.json'), str(tmp_path))
    (tmp_path / 'package-lock.json').write_text('{"lockfileVersion": 3, "packages": {')
    result = run_module('dependency_audit_info', {'path': str(tmp_path)})
    assert_clean_failure(result, 'package-lock.json cannot be read as JSON')


def test_requirements_file_missing(tmp_path):
    result = run_module('dependency_audit_info', {'path': str(tmp_path), 'requirements': ['requirements.txt']})
    assert_clean_failure(result, 'requirements file %s not found' % (tmp_path / 'requirements.txt'))


@pytest.mark.parametrize('args, phrase', [
    ({'npm_timeout': 0}, 'npm_timeout must be more than 0'),
    ({'registry': 'registry.example.org'}, 'registry must be an http'),
    ({'thresholds': {'dependency_vulnerabilities': {'warning': 'severe'}}}, 'dependency_vulnerabilities'),
    ({'ecosystems': ['python']}, 'give requirements'),
])
def test_invalid_options_before_any_work(tmp_path, args, phrase):
    result = run_module('dependency_audit_info', dict({'path': str(tmp_path / 'never-read')}, **args))
    assert result.failed and result['msg'].startswith('invalid options: ') and phrase in result['msg'], result


# -- answers that cannot be used: unknown findings ---------------------------------------------------------------
@needs_npm
def test_registry_unreachable(vulnerable):
    registry = 'http://127.0.0.1:%d/' % closed_port()
    started = time.monotonic()
    result = run_module('dependency_audit_info', {'path': vulnerable, 'registry': registry, 'npm_timeout': 60})
    assert result.rc == 0 and not result.failed, result.raw
    assert time.monotonic() - started < 45
    found = checks_of(result)
    audit = found[('dependency_audit', 'npm=%s' % vulnerable)]
    assert audit['status'] == 'unknown' and 'unreachable' in audit['message'] and registry in audit['message']
    assert ('dependency_vulnerabilities', 'npm=%s' % vulnerable) not in found
    # npm outdated either fails the same way or answers from npm's own metadata cache; never a failed module
    assert (('dependency_outdated', 'npm=%s' % vulnerable) in found
            or found[('dependency_audit', 'npm_outdated=%s' % vulnerable)]['status'] == 'unknown')
    assert result['npm']['counts'] is None and 'audit' in result['npm']['errors']


@needs_npm
def test_registry_that_never_answers_times_out(vulnerable):
    with AdvisoryRegistry(mode='hang') as front:
        started = time.monotonic()
        result = run_module('dependency_audit_info', {'path': vulnerable, 'registry': front.url, 'npm_timeout': 5,
                                                      'outdated': False})
        elapsed = time.monotonic() - started
    assert result.rc == 0 and not result.failed, result.raw
    assert elapsed < 20, elapsed
    audit = checks_of(result)[('dependency_audit', 'npm=%s' % vulnerable)]
    assert audit['status'] == 'unknown'
    assert 'timeout' in audit['message'] or 'unreachable' in audit['message'], audit['message']


@needs_npm
def test_registry_answering_broken_json(vulnerable):
    with AdvisoryRegistry(mode='garbage') as front:
        result = run_module('dependency_audit_info', {'path': vulnerable, 'registry': front.url, 'outdated': False,
                                                      'npm_timeout': 60})
    assert result.rc == 0 and not result.failed, result.raw
    audit = checks_of(result)[('dependency_audit', 'npm=%s' % vulnerable)]
    assert audit['status'] == 'unknown' and 'answered with broken JSON' in audit['message'], audit
    assert result['npm']['vulnerabilities'] == []


def test_tool_printing_broken_json(vulnerable, tmp_path):
    npm = stand_in(tmp_path, 'npm', 'import sys\nsys.stdout.write(\'{"auditReportVersion": 2, "vulnerabilities": {\')\n'
                                    'sys.exit(1)')
    result = run_module('dependency_audit_info', {'path': vulnerable, 'npm_executable': npm})
    assert result.rc == 0 and not result.failed, result.raw
    found = checks_of(result)
    audit = found[('dependency_audit', 'npm=%s' % vulnerable)]
    assert audit['status'] == 'unknown' and 'npm audit printed no readable JSON (exit 1)' in audit['message']
    assert found[('dependency_audit', 'npm_outdated=%s' % vulnerable)]['status'] == 'unknown'


def test_old_npm6_report(vulnerable, tmp_path):
    recorded = os.path.join(FIXTURES, 'recorded', 'npm-audit-v1-npm6.json')
    npm = stand_in(tmp_path, 'npm', 'import sys\nif sys.argv[1] == "audit":\n    sys.stdout.write(open(%r).read())\n'
                                    '    sys.exit(1)\nsys.stdout.write("{}")' % recorded)
    result = run_module('dependency_audit_info', {'path': vulnerable, 'npm_executable': npm})
    assert result.rc == 0, result.raw
    found = checks_of(result)
    audit = found[('dependency_audit', 'npm=%s' % vulnerable)]
    assert audit['status'] == 'unknown' and 'npm 6' in audit['message'] and 'npm 7 or later' in audit['message']
    assert found[('dependency_outdated', 'npm=%s' % vulnerable)]['status'] == 'ok'


def _alive(marker):
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                    if marker.encode() in handle.read():
                        return True
            except OSError:
                pass
    return False


def test_npm_that_hangs_is_stopped_with_its_children(vulnerable, tmp_path):
    marker = '4242.%d' % os.getpid()
    npm = stand_in(tmp_path, 'npm', 'import subprocess\nsubprocess.Popen(["sleep", "%s"])\n'
                                    'subprocess.call(["sleep", "%s"])' % (marker, marker))
    started = time.monotonic()
    result = run_module('dependency_audit_info', {'path': vulnerable, 'npm_executable': npm, 'npm_timeout': 2})
    elapsed = time.monotonic() - started
    assert result.rc == 0 and not result.failed, result.raw
    assert elapsed < 15, elapsed  # two commands, 2 s each
    found = checks_of(result)
    audit = found[('dependency_audit', 'npm=%s' % vulnerable)]
    assert audit['status'] == 'unknown' and 'did not finish within 2 s (timeout)' in audit['message']
    assert 'did not finish within 2 s' in found[('dependency_audit', 'npm_outdated=%s' % vulnerable)]['message']
    time.sleep(0.2)
    assert not _alive(marker), 'a child of the hung tool is still running'


def test_pip_audit_that_hangs(tmp_path):
    (tmp_path / 'requirements.txt').write_text('requests==2.19.0\n')
    tool = stand_in(tmp_path, 'pip-audit', 'import time\ntime.sleep(600)')
    result = run_module('dependency_audit_info', {'path': str(tmp_path), 'requirements': ['requirements.txt'],
                                                  'pip_audit_executable': tool, 'pip_audit_timeout': 2})
    assert result.rc == 0, result.raw
    audit = checks_of(result)[('dependency_audit', 'python=requirements.txt')]
    assert audit['status'] == 'unknown' and 'pip-audit did not finish within 2 s (timeout)' in audit['message']
    assert result['python']['errors'] == {'requirements.txt': audit['message']}


def test_pip_audit_printing_broken_json(tmp_path):
    (tmp_path / 'requirements.txt').write_text('requests==2.19.0\n')
    tool = stand_in(tmp_path, 'pip-audit', 'print(\'{"dependencies": [{"name": "requests", \')')
    result = run_module('dependency_audit_info', {'path': str(tmp_path), 'requirements': ['requirements.txt'],
                                                  'pip_audit_executable': tool})
    assert result.rc == 0, result.raw
    audit = checks_of(result)[('dependency_audit', 'python=requirements.txt')]
    assert audit['status'] == 'unknown' and 'pip-audit printed no readable JSON' in audit['message']


@needs_pip_audit
@pytest.mark.parametrize('service', ['osv', 'pypi'])
def test_vulnerability_service_unreachable(tmp_path, service):
    (tmp_path / 'requirements.txt').write_text('requests==2.19.0\n')
    proxy = 'http://127.0.0.1:%d' % closed_port()
    result = run_module('dependency_audit_info', {'path': str(tmp_path), 'requirements': ['requirements.txt'],
                                                  'pip_audit_service': service, 'pip_audit_timeout': 60},
                        env={'HTTPS_PROXY': proxy, 'https_proxy': proxy, 'NO_PROXY': '', 'no_proxy': ''})
    assert result.rc == 0 and not result.failed, result.raw
    audit = checks_of(result)[('dependency_audit', 'python=requirements.txt')]
    assert audit['status'] == 'unknown' and 'unreachable' in audit['message'], audit['message']
    assert ('OSV' if service == 'osv' else "PyPI's JSON API") in audit['message']


@needs_pip_audit
def test_unpinned_requirements(tmp_path):
    shutil.copy(os.path.join(FIXTURES, 'python', 'requirements-unpinned.txt'), str(tmp_path))
    result = run_module('dependency_audit_info', {'path': str(tmp_path),
                                                  'requirements': ['requirements-unpinned.txt']})
    assert result.rc == 0 and not result.failed, result.raw
    audit = checks_of(result)[('dependency_audit', 'python=requirements-unpinned.txt')]
    assert audit['status'] == 'unknown' and 'is not pinned' in audit['message'] and 'pin every line' in \
        audit['message']
