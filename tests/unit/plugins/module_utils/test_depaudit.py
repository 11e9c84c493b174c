# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of dependency_audit_info: the recorded outputs of npm audit, npm outdated and pip-audit
(tests/fixtures/dependency_audit/recorded) read into the result, the via chains followed to their advisories,
error answers named, the old npm 6 format recognised, and the findings judged with their thresholds."""

from __future__ import annotations

import copy
import json
import os

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils import depaudit as D
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError, ThresholdError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'fixtures', 'dependency_audit')
RECORDED = os.path.join(FIXTURES, 'recorded')
THRESHOLDS = D.merged_thresholds({})


def recorded(name):
    with open(os.path.join(RECORDED, name)) as handle:
        return json.load(handle)


def lock(project='npm-vulnerable'):
    with open(os.path.join(FIXTURES, project, 'package-lock.json')) as handle:
        return json.load(handle)


def by_name(items):
    return dict((i['name'], i) for i in items)


# -- npm audit ---------------------------------------------------------------------------------------------------
def test_clean_report_has_zero_counts():
    report = D.parse_npm_audit(recorded('npm-audit-v2-clean.json'))
    assert report['report_version'] == 2
    assert report['counts'] == {'critical': 0, 'high': 0, 'moderate': 0, 'low': 0, 'info': 0, 'total': 0}
    assert report['vulnerabilities'] == [] and report['advisories'] == [] and report['fixable'] == 0
    assert report['dependencies'] == 1


def test_via_chains_resolve_to_the_root_advisories():
    report = D.parse_npm_audit(recorded('npm-audit-v2-chains.json'))
    packages = by_name(report['vulnerabilities'])
    assert report['counts'] == {'critical': 3, 'high': 1, 'moderate': 0, 'low': 0, 'info': 0, 'total': 4}
    # worst first, then by name
    assert [p['name'] for p in report['vulnerabilities']] == ['minimist', 'mkdirp', 'optimist', 'lodash']
    advisories = dict((a['id'], a) for a in report['advisories'])
    minimist_ids = set(packages['minimist']['advisories'])
    assert {advisories[i]['url'] for i in minimist_ids} == {'https://github.com/advisories/GHSA-xvch-5gv4-984h',
                                                            'https://github.com/advisories/GHSA-vh95-rmgr-6w4m'}
    # mkdirp and optimist carry no advisory of their own: they are vulnerable through minimist
    assert packages['mkdirp']['via'] == ['minimist'] and set(packages['mkdirp']['advisories']) == minimist_ids
    assert set(packages['optimist']['advisories']) == minimist_ids
    critical = [a for a in report['advisories'] if a['severity'] == 'critical'][0]
    assert critical['package'] == 'minimist' and critical['title'] == 'Prototype Pollution in minimist'
    assert critical['range'] == '<0.2.4' and critical['cvss_score'] == 9.8 and critical['cwe'] == ['CWE-1321']
    assert sorted(critical['affects']) == ['minimist', 'mkdirp', 'optimist']
    lodash = by_name(report['vulnerabilities'])['lodash']
    assert lodash['direct'] is True and lodash['range'] == '<=4.17.20'
    assert sorted(advisories[i]['severity'] for i in lodash['advisories']) == ['high', 'moderate']


def test_fix_available_objects_and_semver_major():
    report = D.parse_npm_audit(recorded('npm-audit-v2-chains.json'))
    packages = by_name(report['vulnerabilities'])
    assert packages['optimist']['fix'] == {'name': 'optimist', 'version': '0.5.2', 'semver_major': True}
    assert packages['mkdirp']['fix'] == {'name': 'mkdirp', 'version': '0.5.6', 'semver_major': False}
    assert packages['lodash']['fix'] == {'name': 'lodash', 'version': '4.18.1', 'semver_major': False}
    assert report['fixable'] == 4 and report['fixable_semver_major'] == 2


@pytest.mark.parametrize('value, available, fix', [
    (True, True, None),
    (False, False, None),
    (None, False, None),
    ('yes', False, None),
    ({'name': 'x', 'version': '2.0.0', 'isSemVerMajor': True}, True, {'name': 'x', 'version': '2.0.0',
                                                                      'semver_major': True}),
])
def test_fix_available_shapes(value, available, fix):
    data = recorded('npm-audit-v2-chains.json')
    data['vulnerabilities']['lodash']['fixAvailable'] = value
    lodash = by_name(D.parse_npm_audit(data)['vulnerabilities'])['lodash']
    assert lodash['fix_available'] is available and lodash['fix'] == fix


def test_omit_dev_report_leaves_the_dev_package_out():
    report = D.parse_npm_audit(recorded('npm-audit-v2-omit-dev.json'))
    assert 'optimist' not in by_name(report['vulnerabilities'])
    assert report['counts']['total'] == 3


def test_a_via_cycle_ends():
    data = recorded('npm-audit-v2-chains.json')
    data['vulnerabilities']['minimist']['via'].append('mkdirp')  # mkdirp -> minimist -> mkdirp
    report = D.parse_npm_audit(data)
    packages = by_name(report['vulnerabilities'])
    assert set(packages['mkdirp']['advisories']) == set(packages['minimist']['advisories'])


def test_counts_come_from_the_packages_when_metadata_disagrees():
    data = recorded('npm-audit-v2-chains.json')
    data['metadata']['vulnerabilities'] = {'critical': 0, 'high': 0, 'moderate': 0, 'low': 0, 'info': 0}
    assert D.parse_npm_audit(data)['counts']['critical'] == 3
    del data['metadata']
    assert D.parse_npm_audit(data)['counts']['total'] == 4


def test_untrusted_entries_are_skipped_not_fatal():
    data = recorded('npm-audit-v2-chains.json')
    data['vulnerabilities']['junk'] = 'not an entry'
    data['vulnerabilities']['lodash']['via'].append({'title': 'no id'})
    data['vulnerabilities']['lodash']['severity'] = 'apocalyptic'
    data['vulnerabilities']['lodash']['nodes'].append(7)
    report = D.parse_npm_audit(data)
    lodash = by_name(report['vulnerabilities'])['lodash']
    assert 'junk' not in by_name(report['vulnerabilities'])
    assert lodash['severity'] == 'info' and lodash['nodes'] == ['node_modules/lodash']


def test_old_npm6_format_is_named():
    with pytest.raises(D.ToolAnswerError) as info:
        D.parse_npm_audit(recorded('npm-audit-v1-npm6.json'))
    assert info.value.kind == 'format'
    assert 'npm 6' in str(info.value) and 'auditReportVersion 1' in str(info.value)


def test_unknown_report_version_is_named():
    data = recorded('npm-audit-v2-clean.json')
    data['auditReportVersion'] = 3
    with pytest.raises(D.ToolAnswerError, match='auditReportVersion 3'):
        D.parse_npm_audit(data)


def test_registry_refusing_the_audit_endpoint():
    with pytest.raises(D.ToolAnswerError) as info:
        D.parse_npm_audit(recorded('npm-audit-error-405.json'), registry='https://registry.example.org/')
    assert info.value.kind == 'registry'
    text = str(info.value)
    assert '405 Method Not Allowed' in text and "does not answer npm's audit endpoint" in text
    assert 'registry.example.org' in text


def test_registry_unreachable():
    with pytest.raises(D.ToolAnswerError) as info:
        D.parse_npm_audit(recorded('npm-audit-error-econnrefused.json'), registry='http://127.0.0.1:9/')
    assert info.value.kind == 'registry'
    assert 'unreachable' in str(info.value) and 'ECONNREFUSED' in str(info.value)


def test_registry_credentials_never_reach_a_message():
    data = recorded('npm-audit-error-econnrefused.json')
    data['message'] = data['message'].replace('http://127.0.0.1:9/', 'http://ci:s3cret@127.0.0.1:9/')
    with pytest.raises(D.ToolAnswerError) as info:
        D.parse_npm_audit(data, registry='http://ci:s3cret@127.0.0.1:9/')
    assert 's3cret' not in str(info.value) and 'http://***@127.0.0.1:9/' in str(info.value)


@pytest.mark.parametrize('data', [[], 'text', 3, {'something': 'else'}])
def test_json_that_is_not_a_report(data):
    with pytest.raises(D.ToolAnswerError) as info:
        D.parse_npm_audit(data)
    assert info.value.kind == 'malformed'


def test_npm_error_object():
    with pytest.raises(D.ToolAnswerError) as info:
        D.parse_npm_audit({'error': {'code': 'ENOLOCK', 'summary': 'This command requires an existing lockfile.',
                                     'detail': 'Try creating one first with: npm i --package-lock-only'}}, code=1)
    assert info.value.kind == 'failed' and 'ENOLOCK' in str(info.value)


# -- npm outdated ------------------------------------------------------------------------------------------------
def test_outdated_without_node_modules_reads_current_from_the_lock():
    outdated = D.parse_npm_outdated(recorded('npm-outdated.json'), lock())
    assert [o['name'] for o in outdated] == ['mkdirp', 'lodash']  # furthest behind first
    mkdirp, lodash = outdated
    assert mkdirp['current'] == '0.5.1' and mkdirp['current_from'] == 'lock'
    assert (mkdirp['level'], mkdirp['behind'], mkdirp['major_behind']) == ('major', 3, 3)
    assert (lodash['level'], lodash['behind'], lodash['major_behind']) == ('minor', 1, 0)
    assert lodash['wanted'] == '4.17.20' and lodash['latest'] == '4.18.1'


def test_outdated_installed_uses_npm_current_and_finds_the_lock_entry():
    outdated = D.parse_npm_outdated(recorded('npm-outdated-installed.json'), lock())
    assert [(o['name'], o['current_from']) for o in outdated] == [('mkdirp', 'installed'), ('lodash', 'installed')]


def test_outdated_drops_what_is_current_when_nothing_is_installed():
    # npm lists a package it cannot find in node_modules even at its latest release (no "current")
    data = {'ms': {'wanted': '2.1.3', 'latest': '2.1.3', 'dependent': 'app'}}
    assert D.parse_npm_outdated(data, lock('npm-clean')) == []


def test_outdated_dev_packages_left_out_without_include_dev():
    data = {'optimist': {'wanted': '0.6.1', 'latest': '0.7.0', 'dependent': 'app'},
            'lodash': {'wanted': '4.17.20', 'latest': '4.18.1', 'dependent': 'app'}}
    assert {o['name'] for o in D.parse_npm_outdated(data, lock())} == {'optimist', 'lodash'}
    assert [o['name'] for o in D.parse_npm_outdated(data, lock(), include_dev=False)] == ['lodash']


def test_outdated_lists_and_a_package_called_error():
    data = {'error': {'current': '1.0.0', 'wanted': '1.0.0', 'latest': '2.0.0'},
            'x': [{'current': '1.0.0', 'wanted': '1.0.1', 'latest': '1.0.1', 'location': 'node_modules/x'},
                  {'current': '0.1.0', 'wanted': '0.1.0', 'latest': '1.0.1', 'location': 'node_modules/y/node_modules/x'}]}
    found = D.parse_npm_outdated(data, {})
    assert [(o['name'], o['current'], o['level']) for o in found] == [
        ('error', '1.0.0', 'major'), ('x', '0.1.0', 'major'), ('x', '1.0.0', 'patch')]


def test_outdated_with_an_npm6_lock_and_with_no_version_known():
    lock_v1 = {'lockfileVersion': 1, 'dependencies': {'lodash': {'version': '4.17.20', 'dev': True}}}
    data = {'lodash': {'wanted': '4.17.20', 'latest': '4.18.1'}, 'left-pad': {'wanted': '1.0.0', 'latest': '1.3.0'}}
    found = dict((o['name'], o) for o in D.parse_npm_outdated(data, lock_v1))
    assert found['lodash']['current'] == '4.17.20' and found['lodash']['dev'] is True
    assert found['left-pad']['current'] is None and found['left-pad']['current_from'] is None
    assert (found['left-pad']['level'], found['left-pad']['behind']) == ('minor', 3)
    assert [o['name'] for o in D.parse_npm_outdated(data, lock_v1, include_dev=False)] == ['left-pad']


def test_outdated_error_answer():
    with pytest.raises(D.ToolAnswerError):
        D.parse_npm_outdated({'error': {'code': 'E404', 'summary': 'Not Found'}}, {})
    with pytest.raises(D.ToolAnswerError):
        D.parse_npm_outdated(['not', 'an', 'object'], {})


@pytest.mark.parametrize('current, latest, expected', [
    ('0.5.1', '3.0.1', ('major', 3)),
    ('4.17.20', '4.18.1', ('minor', 1)),
    ('1.2.5', '1.2.8', ('patch', 3)),
    ('1.2.8', '1.2.8', (None, 0)),
    ('2.0.0', '1.9.0', (None, 0)),
    ('1.0.0-beta.1', '1.0.0', (None, 0)),
    (None, '1.0.0', (None, 0)),
    ('git+https://x', '1.0.0', (None, 0)),
])
def test_how_far_behind(current, latest, expected):
    assert D.how_far_behind(current, latest) == expected


# -- pip-audit ---------------------------------------------------------------------------------------------------
def test_pip_audit_skip_reason_is_reported():
    result = D.parse_pip_audit(recorded('pip-audit-skip-reason.json'), 'requirements.txt')
    assert result['audited'] == 0 and result['packages'] == []
    assert result['skipped'] == [{'name': 'requests',
                                  'reason': 'Dependency not found on PyPI and could not be audited: requests (2.19.0)'}]
    assert result['counts']['skipped'] == 1


def test_pip_audit_vulnerable_packages_and_fix_versions():
    result = D.parse_pip_audit(recorded('pip-audit-vulnerable.json'), 'requirements.txt')
    packages = by_name(result['packages'])
    assert set(packages) == {'requests', 'idna'}  # certifi has no vulnerability, ims-worker was skipped
    requests = packages['requests']
    assert requests['version'] == '2.19.0' and len(requests['vulnerabilities']) == 4
    assert requests['fix_versions'] == ['2.20.0', '2.31.0', '2.32.0', '2.32.4'] and requests['fix_available']
    assert 'CVE-2018-18074' in requests['vulnerabilities'][0]['aliases']
    assert packages['idna']['fix_available'] is False  # a vulnerability without a fixed release
    assert result['counts'] == {'packages': 4, 'audited': 3, 'vulnerable': 2, 'vulnerabilities': 5, 'fixable': 1,
                                'skipped': 1}
    assert result['skipped'][0]['name'] == 'ims-worker'


@pytest.mark.parametrize('data', [[], {'dependencies': 'x'}, {'fixes': []}])
def test_pip_audit_json_that_is_not_a_report(data):
    with pytest.raises(D.ToolAnswerError):
        D.parse_pip_audit(data)


def test_pip_audit_failures_are_named():
    unpinned = ('WARNING:pip_audit._cli:--no-deps is supported\n'
                'ERROR:pip_audit._cli:requirement requests is not pinned: requests (from RequirementLine(...))\n')
    error = D.pip_audit_failure(1, unpinned, 'pypi')
    assert error.kind == 'failed' and 'is not pinned' in str(error) and 'pin every line' in str(error)
    network = ('Traceback (most recent call last):\n  ...\nrequests.exceptions.ConnectionError: '
               "HTTPSConnectionPool(host='api.osv.dev', port=443): Max retries exceeded with url: /v1/query\n")
    error = D.pip_audit_failure(1, network, 'osv')
    assert error.kind == 'registry' and 'OSV' in str(error) and 'unreachable' in str(error)


# -- findings ------------------------------------------------------------------------------------------------------
def findings_for_npm(audit, outdated, thresholds=None, errors=None):
    findings = C.Findings(THRESHOLDS if thresholds is None else thresholds)
    D.npm_findings(findings, '/srv/app', audit, outdated, errors or {})
    return dict(((f['name'], f['object']), f) for f in findings)


def test_findings_of_the_vulnerable_project():
    found = findings_for_npm(D.parse_npm_audit(recorded('npm-audit-v2-chains.json')),
                             D.parse_npm_outdated(recorded('npm-outdated.json'), lock()))
    vulns = found[('dependency_vulnerabilities', 'npm=/srv/app')]
    assert vulns['status'] == C.CRITICAL and vulns['value'] == 5 and vulns['severity_found'] == 'critical'
    assert '3 critical, 1 high' in vulns['message'] and 'semver-major' in vulns['message']
    outdated = found[('dependency_outdated', 'npm=/srv/app')]
    assert outdated['status'] == C.WARNING and outdated['value'] == 3 and outdated['category'] == 'health'
    assert found[('dependency_audit', 'npm=/srv/app')]['status'] == C.OK


def test_findings_of_a_clean_project_stay_quiet():
    found = findings_for_npm(D.parse_npm_audit(recorded('npm-audit-v2-clean.json')), [])
    assert found[('dependency_vulnerabilities', 'npm=/srv/app')]['status'] == C.OK
    assert found[('dependency_vulnerabilities', 'npm=/srv/app')]['value'] == 0
    assert found[('dependency_outdated', 'npm=/srv/app')]['status'] == C.OK


def _only(severity):
    data = recorded('npm-audit-v2-clean.json')
    data['vulnerabilities'] = {'pkg': {'name': 'pkg', 'severity': severity, 'isDirect': True, 'via': [],
                                       'effects': [], 'range': '*', 'nodes': [], 'fixAvailable': False}}
    data['metadata']['vulnerabilities'][severity] = 1
    return D.parse_npm_audit(data)


@pytest.mark.parametrize('severity, status', [
    ('critical', C.CRITICAL), ('high', C.CRITICAL), ('moderate', C.WARNING), ('low', C.INFO), ('info', C.INFO)])
def test_default_levels_follow_audit_level_moderate(severity, status):
    found = findings_for_npm(_only(severity), None)
    assert found[('dependency_vulnerabilities', 'npm=/srv/app')]['status'] == status
    assert ('dependency_outdated', 'npm=/srv/app') not in found  # not run


@pytest.mark.parametrize('overrides, severity, status', [
    ({'warning': 'low', 'critical': 'critical'}, 'low', C.WARNING),
    ({'warning': 'low', 'critical': 'critical'}, 'high', C.WARNING),
    ({'warning': 'low', 'critical': 'critical'}, 'critical', C.CRITICAL),
    ({'warning': None, 'critical': 'high'}, 'moderate', C.INFO),
    ({'warning': 3, 'critical': 4}, 'high', C.WARNING),
])
def test_vulnerability_thresholds_by_name_or_rank(overrides, severity, status):
    thresholds = D.merged_thresholds({'dependency_vulnerabilities': overrides})
    found = findings_for_npm(_only(severity), None, thresholds)
    assert found[('dependency_vulnerabilities', 'npm=/srv/app')]['status'] == status


@pytest.mark.parametrize('limit, text', [(None, 'disabled'), (0, 'info or worse'), (2, 'moderate or worse'),
                                         (2.5, 'moderate or worse'), (4, 'critical or worse'),
                                         (5, 'never (above critical)'), (-3, 'info or worse')])
def test_threshold_in_words(limit, text):
    assert D._threshold_name(limit) == text


def test_messages_name_the_threshold_as_a_severity():
    found = findings_for_npm(_only('moderate'), None)
    assert found[('dependency_vulnerabilities', 'npm=/srv/app')]['message'].endswith(
        '(warning threshold: moderate or worse)')
    found = findings_for_npm(_only('low'), None)
    assert found[('dependency_vulnerabilities', 'npm=/srv/app')]['message'].endswith(
        '(below the warning threshold: moderate or worse)')


@pytest.mark.parametrize('overrides', [
    {'dependency_vulnerabilities': {'warning': 'severe'}},
    {'dependency_vulnerabilities': {'warning': 'high', 'critical': 'moderate'}},
    {'dependency_vulnerabilities': {'warning': 'none'}},
    {'dependency_outdated': {'warning': 'many'}},
    {'vulnerabilities': {'warning': 1}},
])
def test_bad_thresholds_are_refused(overrides):
    with pytest.raises(ConfigurationError):
        D.merged_thresholds(overrides)


def test_outdated_by_one_major_is_advice_and_threshold_moves_it():
    outdated = [{'name': 'a', 'current': '1.0.0', 'latest': '2.0.0', 'level': 'major', 'behind': 1,
                 'major_behind': 1}]
    found = findings_for_npm(None, outdated)
    assert found[('dependency_outdated', 'npm=/srv/app')]['status'] == C.INFO
    found = findings_for_npm(None, outdated, D.merged_thresholds({'dependency_outdated': {'warning': 0}}))
    assert found[('dependency_outdated', 'npm=/srv/app')]['status'] == C.WARNING


def test_tool_errors_become_unknown_findings():
    found = findings_for_npm(None, None, errors={'audit': 'npm registry x unreachable (npm audit): ECONNREFUSED',
                                                 'outdated': 'npm outdated did not finish within 5 s (timeout)'})
    assert found[('dependency_audit', 'npm=/srv/app')]['status'] == C.UNKNOWN
    assert 'ECONNREFUSED' in found[('dependency_audit', 'npm=/srv/app')]['message']
    assert found[('dependency_audit', 'npm_outdated=/srv/app')]['status'] == C.UNKNOWN
    assert ('dependency_vulnerabilities', 'npm=/srv/app') not in found


def python_found(result, error=None, severity='high'):
    findings = C.Findings(THRESHOLDS)
    D.python_findings(findings, result, error, 'requirements.txt', severity)
    return dict((f['name'], f) for f in findings)


def test_python_all_skipped_is_unknown_with_the_likely_cause():
    found = python_found(D.parse_pip_audit(recorded('pip-audit-skip-reason.json'), 'requirements.txt'))
    assert set(found) == {'dependency_audit'}
    assert found['dependency_audit']['status'] == C.UNKNOWN
    assert 'not found on PyPI' in found['dependency_audit']['message']
    assert 'unreachable' in found['dependency_audit']['message']
    assert found['dependency_audit']['skipped'][0]['name'] == 'requests'


@pytest.mark.parametrize('severity, status', [('high', C.CRITICAL), ('moderate', C.WARNING), ('low', C.INFO)])
def test_python_vulnerabilities_count_as_python_severity(severity, status):
    found = python_found(D.parse_pip_audit(recorded('pip-audit-vulnerable.json'), 'requirements.txt'),
                         severity=severity)
    assert found['dependency_vulnerabilities']['status'] == status
    assert 'requests 2.19.0' in found['dependency_vulnerabilities']['message']
    # the skipped package is reported, not dropped
    assert found['dependency_audit']['status'] == C.INFO and 'ims-worker' in found['dependency_audit']['message']


def test_python_clean_is_quiet():
    data = copy.deepcopy(recorded('pip-audit-vulnerable.json'))
    data['dependencies'] = [{'name': 'certifi', 'version': '2026.1.4', 'vulns': []}]
    found = python_found(D.parse_pip_audit(data))
    assert found['dependency_vulnerabilities']['status'] == C.OK
    assert found['dependency_audit']['status'] == C.OK


# -- options and the report section --------------------------------------------------------------------------------
def params(**kwargs):
    base = dict(path='/srv/app', ecosystems=None, include_dev=True, outdated=True, registry=None,
                npm_executable='npm', npm_timeout=120, requirements=None, python=None,
                pip_audit_executable='pip-audit', pip_audit_service='pypi', pip_audit_timeout=300,
                python_severity='high', thresholds={}, severity={})
    base.update(kwargs)
    return base


@pytest.mark.parametrize('kwargs, match', [
    (dict(npm_timeout=0), 'npm_timeout'),
    (dict(pip_audit_timeout=-1), 'pip_audit_timeout'),
    (dict(registry='registry.example.org'), 'registry'),
    (dict(ecosystems=['python']), 'requirements'),
    (dict(severity={'dependency_vulnerabilities': 'fatal'}), 'severity'),
])
def test_invalid_options(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        D.validate(params(**kwargs))


def test_threshold_error_is_a_configuration_error():
    assert issubclass(ThresholdError, ConfigurationError)


def test_npm_argv_never_installs_and_passes_the_options():
    argv = D.npm_argv('/usr/bin/npm', 'audit', params(include_dev=False, registry='http://127.0.0.1:1/',
                                                      npm_timeout=10))
    assert argv[:3] == ['/usr/bin/npm', 'audit', '--json']
    assert '--ignore-scripts' in argv and '--omit=dev' in argv and '--registry=http://127.0.0.1:1/' in argv
    assert '--fetch-timeout=8000' in argv
    assert '--omit=dev' not in D.npm_argv('npm', 'outdated', params(include_dev=False))


def test_report_section_is_capped_and_has_no_options():
    report = D.parse_npm_audit(recorded('npm-audit-v2-chains.json'))
    npm = dict(report, outdated=D.parse_npm_outdated(recorded('npm-outdated.json'), lock()))
    python = D.parse_pip_audit(recorded('pip-audit-vulnerable.json'), 'requirements.txt')
    result = {'npm': npm, 'python': {'packages': python['packages'], 'counts': python['counts'],
                                     'sources': ['requirements.txt']}}
    section = D.report_section('/srv/app', result)['dependencies']
    assert section['path'] == '/srv/app' and section['finished_at'].endswith('Z')
    assert section['npm']['counts']['total'] == 4 and section['npm']['fixable'] == 4
    assert section['outdated_major'] == 1 and section['vulnerable_total'] == 6
    assert [v['ecosystem'] for v in section['vulnerable']] == ['npm'] * 4 + ['python'] * 2
    minimist = section['vulnerable'][0]
    assert minimist['name'] == 'minimist' and len(minimist['advisories']) == 2  # one per advisory, not per range
    assert 'registry' not in json.dumps(section) and 'thresholds' not in json.dumps(section)
    many = dict(npm, vulnerabilities=[dict(npm['vulnerabilities'][0], name='p%d' % i) for i in range(40)])
    capped = D.report_section('/srv/app', {'npm': many, 'python': None})['dependencies']
    assert len(capped['vulnerable']) == D.REPORT_LIMIT and capped['vulnerable_total'] == 40
