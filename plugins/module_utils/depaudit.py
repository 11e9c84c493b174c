# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an application checkout depends on: ``npm audit`` and ``npm outdated`` for a package-lock.json,
``pip-audit`` for pinned requirements files or a Python environment, and the findings of
``dependency_audit_info``.

The tools run as child processes with a timeout each (their whole process group is killed when it passes).
Their answers are read back as untrusted input: a report that cannot be read, an old report format, a
registry or vulnerability service that cannot be reached become ``dependency_audit`` findings of status
``unknown`` with the cause - never an empty, passing result. Nothing here installs packages or runs the
audited project's scripts: ``npm audit`` and ``npm outdated`` read the lock file and the registry's metadata,
and ``pip-audit`` gets ``--no-deps --disable-pip`` for requirements files (no virtual environment is built)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C
from ansible_collections.appcare.maintenance.plugins.module_utils.clock import iso, utcnow
from ansible_collections.appcare.maintenance.plugins.module_utils.errors import (
    AppcareError,
    ConfigurationError,
    DependencyError,
)

# npm's severities, worst first; the rank is the value of dependency_vulnerabilities.
SEVERITIES = ('critical', 'high', 'moderate', 'low', 'info')
SEVERITY_RANK = {'none': 0, 'info': 1, 'low': 2, 'moderate': 3, 'high': 4, 'critical': 5}
ECOSYSTEMS = ('npm', 'python')
PIP_AUDIT_SERVICES = ('pypi', 'osv')
LOCK_FILES = ('npm-shrinkwrap.json', 'package-lock.json')  # npm prefers the shrinkwrap when both exist
# The module's findings are security ones (report.ACTION_CATEGORIES); being behind is upkeep, not a known hole.
OUTDATED_CATEGORY = 'health'
REPORT_LIMIT = 25  # vulnerable packages listed in the run report; the result lists them all
TEXT_LIMIT = 400  # characters of a tool's own words quoted in a message

DEFAULT_THRESHOLDS = {
    # The worst severity found, as a rank (0 none, 1 info, 2 low, 3 moderate, 4 high, 5 critical): warning above
    # low (moderate), critical above moderate (high, critical) - the guides' npm audit --audit-level moderate.
    'dependency_vulnerabilities': {'warning': 2, 'critical': 3, 'direction': C.ABOVE, 'unit': 'severity'},
    # Major versions the furthest-behind package lags its latest release: two or more is a warning (a release
    # line that old seldom gets fixes); anything less is advice (info).
    'dependency_outdated': {'warning': 1, 'critical': None, 'direction': C.ABOVE, 'unit': 'major versions'},
}

NPM_INSTALL_HINT = 'install Node.js and npm (Debian/Ubuntu: apt-get install nodejs npm), or give npm_executable'
PIP_AUDIT_INSTALL_HINT = ('install pip-audit (pip install pip-audit, into the Python that runs the module or '
                          'any directory in PATH), or give pip_audit_executable')
NETWORK_ERRORS = ('ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH',
                  'ENETUNREACH', 'network timeout', 'socket hang up', 'ConnectionError', 'ConnectTimeout',
                  'ReadTimeout', 'NameResolutionError', 'ProxyError', 'Max retries exceeded')
# pip-audit's PyPI service says this when PyPI's JSON API has no answer for a release - also when the API
# cannot be reached through a mirror or proxy that only serves the package index.
PIP_NOT_FOUND = 'not found on PyPI'


class ProjectError(AppcareError):
    """The checkout lacks a file the audit needs (package.json, the lock file, a requirements file)."""


class ToolAnswerError(AppcareError):
    """A tool ran but its answer cannot be used; ``kind`` names why (timeout, registry, format, malformed,
    failed)."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


# -- options ---------------------------------------------------------------------------------------------------------
def vulnerability_thresholds(overrides):
    """``overrides`` with severity names accepted for dependency_vulnerabilities: ``warning: moderate`` fires at
    moderate or worse, so it becomes the rank just below (low, 2); numbers pass as given (fired strictly above)."""
    result = dict(overrides or {})
    spec = result.get('dependency_vulnerabilities')
    if isinstance(spec, dict):
        spec = dict(spec)
        for level in ('warning', 'critical'):
            value = spec.get(level)
            if isinstance(value, str) and value.strip().lower() in SEVERITY_RANK:
                name = value.strip().lower()
                if name == 'none':
                    raise ConfigurationError('thresholds.dependency_vulnerabilities.%s: "none" would fire on every '
                                             'project; give info, low, moderate, high or critical, or null to '
                                             'disable the level' % level)
                spec[level] = SEVERITY_RANK[name] - 1
        result['dependency_vulnerabilities'] = spec
    return result


def merged_thresholds(overrides):
    return C.merge_thresholds(DEFAULT_THRESHOLDS, vulnerability_thresholds(overrides))


def validate(params):
    """Refuse contradictory options before any file or tool is touched (ConfigurationError)."""
    thresholds = merged_thresholds(params.get('thresholds'))
    C.validate_severity(params.get('severity') or {})
    for name in ('npm_timeout', 'pip_audit_timeout'):
        if params.get(name) is not None and params[name] <= 0:
            raise ConfigurationError('%s must be more than 0 seconds, got %s' % (name, params[name]))
    for ecosystem in params.get('ecosystems') or ():
        if ecosystem not in ECOSYSTEMS:
            raise ConfigurationError('ecosystems: %r is not one of %s' % (ecosystem, ', '.join(ECOSYSTEMS)))
    if params.get('registry') and not re.match(r'^https?://[^\s/]+', params['registry']):
        raise ConfigurationError('registry must be an http:// or https:// URL, got %r' % params['registry'])
    if params.get('python_severity') not in (None,) + SEVERITIES[:-1]:
        raise ConfigurationError('python_severity must be one of %s' % ', '.join(SEVERITIES[:-1]))
    if 'python' in (params.get('ecosystems') or ()) and not (params.get('requirements') or params.get('python')):
        raise ConfigurationError('ecosystems includes python: give requirements (pinned requirements files) or '
                                 'python (the interpreter of the environment to audit)')
    return thresholds


def chosen_ecosystems(params):
    """The ecosystems to audit: those asked for, or (by default) npm when the checkout has a package.json and
    python when requirements or python is given."""
    if params.get('ecosystems'):
        return list(dict.fromkeys(params['ecosystems']))
    found = []
    if os.path.isfile(os.path.join(params['path'], 'package.json')):
        found.append('npm')
    if params.get('requirements') or params.get('python'):
        found.append('python')
    if not found:
        raise ProjectError('nothing to audit in %s: it has no package.json, and neither requirements nor python is '
                           'given' % params['path'])
    return found


# -- running a tool --------------------------------------------------------------------------------------------------
def find_executable(name, what, hint, extra_dirs=()):
    """The absolute path of ``name`` (a path, or a command looked up in PATH and then ``extra_dirs``)."""
    if os.sep in name:
        if os.path.isfile(name) and os.access(name, os.X_OK):
            return name
        raise DependencyError('%s executable %s not found or not executable: %s' % (what, name, hint))
    found = shutil.which(name)
    for directory in extra_dirs:
        if found:
            break
        found = shutil.which(name, path=directory)
    if not found:
        raise DependencyError('%s not found in PATH (%s): %s' % (name, os.environ.get('PATH', ''), hint))
    return found


def run_tool(argv, cwd, timeout, env=None, what=None):
    """Run ``argv`` in ``cwd`` with no stdin; returns ``(returncode, stdout, stderr)``. When ``timeout`` seconds
    pass, the tool's whole process group is killed (npm starts children) and ToolAnswerError('timeout') raised."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors='replace', start_new_session=True)
    except OSError as exc:
        raise ToolAnswerError('failed', '%s could not be started: %s' % (argv[0], exc.strerror or exc)) from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.communicate()
        raise ToolAnswerError('timeout', '%s did not finish within %s s (timeout) and was stopped'
                              % (what or os.path.basename(argv[0]), _num(timeout))) from None
    return proc.returncode, stdout, stderr


def _num(value):
    return int(value) if float(value).is_integer() else value


def _clip(text, limit=TEXT_LIMIT):
    """A tool's words on one line, shortened, with the credentials of any URL in them (a registry given as
    https://user:token@host/) masked: they end up in findings and the run report."""
    text = _redact(' '.join(str(text or '').split()))
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _redact(text):
    return re.sub(r'(?<=//)[^/@\s]+@', '***@', text or '')


def _load_json(stdout, what, code, stderr):
    try:
        return json.loads(stdout)
    except ValueError:
        said = _clip(stderr) or _clip(stdout) or 'no output'
        raise ToolAnswerError('malformed', '%s printed no readable JSON (exit %s): %s' % (what, code, said)) from None


def _is_network(text):
    return any(marker in (text or '') for marker in NETWORK_ERRORS)


# -- npm ---------------------------------------------------------------------------------------------------------------
def npm_project(path):
    """``(package.json path, lock file path, lock data)`` of the checkout, or ProjectError naming what is missing
    and how to make it without installing anything."""
    manifest = os.path.join(path, 'package.json')
    if not os.path.isfile(manifest):
        raise ProjectError('no package.json in %s: npm audit needs the checkout of a Node.js project' % path)
    for name in LOCK_FILES:
        lock = os.path.join(path, name)
        if os.path.isfile(lock):
            break
    else:
        raise ProjectError('no package-lock.json (or npm-shrinkwrap.json) in %s: run npm install '
                           '--package-lock-only --ignore-scripts there (it writes the lock file without installing '
                           'anything) and commit it' % path)
    try:
        with open(lock, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ProjectError('%s cannot be read as JSON: %s' % (lock, _clip(exc, 200))) from exc
    if not isinstance(data, dict) or not isinstance(data.get('lockfileVersion'), int):
        raise ProjectError('%s is not an npm lock file (no lockfileVersion)' % lock)
    return manifest, lock, data


def npm_env():
    env = dict(os.environ)
    # No update check, funding notes or colour; never run the project's lifecycle scripts.
    env.update(npm_config_update_notifier='false', npm_config_fund='false', npm_config_color='false',
               npm_config_ignore_scripts='true', npm_config_yes='false', NO_UPDATE_NOTIFIER='1')
    return env


def npm_argv(npm, command, params):
    timeout_ms = max(1000, int(params['npm_timeout'] * 800))  # npm gives up on the registry before we stop it
    argv = [npm, command, '--json', '--ignore-scripts', '--fetch-retries=1', '--fetch-retry-mintimeout=1000',
            '--fetch-retry-maxtimeout=5000', '--fetch-timeout=%d' % timeout_ms]
    if command == 'audit' and not params.get('include_dev', True):
        argv.append('--omit=dev')
    if params.get('registry'):
        argv.append('--registry=%s' % params['registry'])
    return argv


def npm_error_text(data):
    """npm's own error of a JSON answer (``{"error": {...}}`` or npm-registry-fetch's ``{"message": ...}``)."""
    error = data.get('error')
    parts = []
    if isinstance(data.get('message'), str):
        parts.append(data['message'])
    if isinstance(error, dict):
        for key in ('code', 'summary', 'detail'):
            if isinstance(error.get(key), str) and error[key].strip() and error[key] not in parts:
                parts.append(error[key])
    elif isinstance(error, str):
        parts.append(error)
    return _clip('; '.join(parts))


def classify_npm_failure(data, code, stderr, what, registry):
    """The ToolAnswerError for an npm answer that is not a report."""
    said = npm_error_text(data) if isinstance(data, dict) else ''
    said = said or _clip(stderr) or 'no message'
    where = _redact(registry) or 'the configured registry'
    if 'invalid json response body' in said:
        return ToolAnswerError('malformed', 'npm registry %s answered with broken JSON (%s): %s' % (where, what, said))
    if _is_network(said) or _is_network(stderr):
        return ToolAnswerError('registry', 'npm registry %s unreachable (%s): %s' % (where, what, said))
    status = data.get('statusCode') if isinstance(data, dict) else None
    if isinstance(status, int) or re.match(r'^\d{3} ', said):
        advice = ''
        if status in (404, 405, 501) or re.match(r'^(404|405|501) ', said):
            advice = (' - this registry (or a mirror or proxy in front of it) does not answer npm\'s audit '
                      'endpoint; give registry the URL of one that does')
        return ToolAnswerError('registry', 'npm registry %s refused the request (%s): %s%s'
                               % (where, what, said, advice))
    return ToolAnswerError('failed', '%s failed (exit %s): %s' % (what, code, said))


def run_npm_audit(npm, path, params):
    code, stdout, stderr = run_tool(npm_argv(npm, 'audit', params), path, params['npm_timeout'], npm_env(),
                                    'npm audit')
    if not stdout.strip():
        raise classify_npm_failure(None, code, stderr, 'npm audit', params.get('registry'))
    data = _load_json(stdout, 'npm audit', code, stderr)
    return parse_npm_audit(data, code, stderr, params.get('registry'))


def parse_npm_audit(data, code=1, stderr='', registry=None):
    """The npm audit report (npm 7 and later, ``auditReportVersion: 2``) as the module returns it; an npm 6
    report, an error answer or anything else raises ToolAnswerError."""
    if not isinstance(data, dict):
        raise ToolAnswerError('malformed', 'npm audit printed JSON that is not a report (a %s)' % type(data).__name__)
    version = data.get('auditReportVersion')
    if version == 2 and isinstance(data.get('vulnerabilities'), dict):
        return _parse_v2(data)
    if version is None and isinstance(data.get('advisories'), dict) and 'actions' in data:
        raise ToolAnswerError('format', 'npm audit answered in the old report format of npm 6 (auditReportVersion 1, '
                              'advisories and actions), which this module does not read: use npm 7 or later')
    if version not in (None, 2):
        raise ToolAnswerError('format', 'npm audit answered with auditReportVersion %r; this module reads version 2 '
                              '(npm 7 and later)' % (version,))
    if 'error' in data or 'message' in data:
        raise classify_npm_failure(data, code, stderr, 'npm audit', registry)
    raise ToolAnswerError('malformed', 'npm audit printed JSON without auditReportVersion or vulnerabilities: %s'
                          % _clip(json.dumps(data), 200))


def _severity(value):
    return value if value in SEVERITY_RANK and value != 'none' else 'info'


def _str(value):
    return value if isinstance(value, str) else None


def _fix(value):
    """npm's fixAvailable: true/false, or the package npm would install and whether that is a semver-major change."""
    if isinstance(value, dict):
        return True, {'name': _str(value.get('name')), 'version': _str(value.get('version')),
                      'semver_major': bool(value.get('isSemVerMajor'))}
    return bool(value is True), None


def _parse_v2(data):
    entries = dict((name, entry) for name, entry in data['vulnerabilities'].items()
                   if isinstance(name, str) and isinstance(entry, dict))
    advisories = {}
    direct = {}  # package -> ids of the advisories against the package itself
    for name, entry in entries.items():
        direct[name] = []
        for item in entry.get('via') or ():
            if not isinstance(item, dict):
                continue
            key = item.get('source') if isinstance(item.get('source'), (int, str)) else item.get('url')
            if key is None:
                continue
            key = str(key)
            direct[name].append(key)
            if key not in advisories:
                cvss = item.get('cvss') if isinstance(item.get('cvss'), dict) else {}
                advisories[key] = {
                    'id': key, 'package': _str(item.get('name')) or name, 'title': _str(item.get('title')),
                    'url': _str(item.get('url')), 'severity': _severity(item.get('severity')),
                    'range': _str(item.get('range')),
                    'cwe': [c for c in item.get('cwe') or () if isinstance(c, str)],
                    'cvss_score': cvss.get('score') if C._is_number(cvss.get('score')) else None,
                    'affects': []}

    def roots(name, seen):
        """Ids of the advisories ``name`` is vulnerable through: its own and those of the packages in its via
        chain, followed to the packages that carry the advisories (cycles end where they close)."""
        if name in seen or name not in entries:
            return []
        seen.add(name)
        found = list(direct.get(name, ()))
        for item in entries[name].get('via') or ():
            if isinstance(item, str):
                found.extend(roots(item, seen))
        return list(dict.fromkeys(found))

    packages = []
    for name in sorted(entries):
        entry = entries[name]
        fix_available, fix = _fix(entry.get('fixAvailable'))
        ids = roots(name, set())
        for key in ids:
            if name not in advisories[key]['affects']:
                advisories[key]['affects'].append(name)
        packages.append({
            'name': name,
            'severity': _severity(entry.get('severity')),
            'direct': bool(entry.get('isDirect')),
            'range': _str(entry.get('range')),
            'nodes': [n for n in entry.get('nodes') or () if isinstance(n, str)],
            'via': [v for v in entry.get('via') or () if isinstance(v, str)],
            'effects': [e for e in entry.get('effects') or () if isinstance(e, str)],
            'advisories': ids,
            'fix_available': fix_available,
            'fix': fix,
        })
    packages.sort(key=lambda p: (-SEVERITY_RANK[p['severity']], p['name']))
    counts = _counts(data.get('metadata'), packages)
    meta = data.get('metadata') if isinstance(data.get('metadata'), dict) else {}
    deps = meta.get('dependencies') if isinstance(meta.get('dependencies'), dict) else {}
    total = deps.get('total') if isinstance(deps.get('total'), int) else None
    ordered = sorted(advisories.values(), key=lambda a: (-SEVERITY_RANK[a['severity']], a['package'], a['id']))
    return {
        'report_version': 2,
        'counts': counts,
        'dependencies': total,
        'vulnerabilities': packages,
        'advisories': ordered,
        'fixable': sum(1 for p in packages if p['fix_available']),
        'fixable_semver_major': sum(1 for p in packages if p['fix'] and p['fix']['semver_major']),
    }


def _counts(metadata, packages):
    """Vulnerable packages by severity: npm's metadata when it is whole and agrees with the packages listed,
    else counted from the packages (what the report lists is what is counted)."""
    computed = dict((s, 0) for s in SEVERITIES)
    for package in packages:
        computed[package['severity']] += 1
    computed['total'] = len(packages)
    given = metadata.get('vulnerabilities') if isinstance(metadata, dict) else None
    if isinstance(given, dict) and all(isinstance(given.get(s), int) and given[s] >= 0 for s in SEVERITIES):
        counts = dict((s, given[s]) for s in SEVERITIES)
        counts['total'] = sum(counts.values())
        if counts == computed:
            return counts
    return computed


# -- npm outdated ------------------------------------------------------------------------------------------------------
def run_npm_outdated(npm, path, params, lock):
    # Exit 1 is npm's normal answer when something is outdated: the JSON on stdout is what counts.
    code, stdout, stderr = run_tool(npm_argv(npm, 'outdated', params), path, params['npm_timeout'], npm_env(),
                                    'npm outdated')
    if not stdout.strip():
        if code == 0:
            return []
        raise classify_npm_failure(None, code, stderr, 'npm outdated', params.get('registry'))
    data = _load_json(stdout, 'npm outdated', code, stderr)
    if _is_npm_error(data):
        raise classify_npm_failure(data, code, stderr, 'npm outdated', params.get('registry'))
    return parse_npm_outdated(data, lock, params.get('include_dev', True))


def _is_npm_error(data):
    # A package may be called "error": npm's own error object has a code or summary, a package entry has neither.
    error = data.get('error') if isinstance(data, dict) else None
    return isinstance(error, dict) and ('code' in error or 'summary' in error) and 'latest' not in error


def _lock_packages(lock):
    packages = lock.get('packages') if isinstance(lock, dict) else None
    return packages if isinstance(packages, dict) else {}


def _lock_entry(lock, location, name):
    """The lock file's entry of a package: ``packages[<location>]`` (lockfileVersion 2 and 3), else npm 6's
    ``dependencies[<name>]`` (lockfileVersion 1)."""
    entry = _lock_packages(lock).get(location)
    if not isinstance(entry, dict) and isinstance(lock, dict) and isinstance(lock.get('dependencies'), dict):
        entry = lock['dependencies'].get(name)
    return entry if isinstance(entry, dict) else {}


def _lock_key(location, name):
    # npm outdated gives an installed package's absolute location; the lock file keys it from node_modules/ on.
    if location and 'node_modules/' in location:
        return location[location.index('node_modules/'):]
    return 'node_modules/%s' % name


def parse_npm_outdated(data, lock=None, include_dev=True):
    """npm outdated's answer as a list of ``{name, current, wanted, latest, behind, level, major_behind, dev}``.

    Without node_modules npm leaves ``current`` out and lists every dependency, even one at its latest release;
    the version is then read from the lock file, and what is current is dropped."""
    if not isinstance(data, dict):
        raise ToolAnswerError('malformed', 'npm outdated printed JSON that is not an object of packages')
    if _is_npm_error(data):
        raise classify_npm_failure(data, 1, '', 'npm outdated', None)
    result = []
    for name, entries in data.items():
        for entry in entries if isinstance(entries, list) else [entries]:
            if not isinstance(entry, dict):
                continue
            location = _lock_key(_str(entry.get('location')), name)
            info = _lock_entry(lock, location, name)
            current, source = _str(entry.get('current')), 'installed'
            if current is None:
                current, source = _str(info.get('version')), 'lock'
            wanted, latest = _str(entry.get('wanted')), _str(entry.get('latest'))
            dev = bool(info.get('dev'))
            if dev and not include_dev:
                continue
            if current is None:
                # neither installed nor locked: judge what the manifest's range gives against the latest release
                source = None
                level, behind = how_far_behind(wanted, latest)
            else:
                level, behind = how_far_behind(current, latest)
            if level is None and (current is None or current == wanted):
                continue  # nothing newer: npm lists it only because node_modules is absent
            result.append({'name': name, 'current': current, 'current_from': source, 'wanted': wanted,
                           'latest': latest, 'level': level, 'behind': behind,
                           'major_behind': behind if level == 'major' else 0, 'dev': dev,
                           'dependent': _str(entry.get('dependent')), 'type': _str(entry.get('type'))})
    result.sort(key=lambda o: (-o['major_behind'], ('major', 'minor', 'patch', None).index(o['level']), o['name']))
    return result


def _version(text):
    match = re.match(r'^\s*v?(\d+)\.(\d+)\.(\d+)', text or '')
    return tuple(int(x) for x in match.groups()) if match else None


def how_far_behind(current, latest):
    """``(level, count)``: the most significant part in which ``latest`` is ahead of ``current`` and by how
    many (``('major', 3)`` for 0.5.1 -> 3.0.1, ``('minor', 1)`` for 4.17.20 -> 4.18.1); ``(None, 0)`` when
    not behind or not comparable."""
    have, newest = _version(current), _version(latest)
    if have is None or newest is None or newest <= have:
        return None, 0
    for level, index in (('major', 0), ('minor', 1), ('patch', 2)):
        if newest[index] != have[index]:
            return level, newest[index] - have[index]
    return None, 0


# -- pip-audit ---------------------------------------------------------------------------------------------------------
def pip_audit_runs(params):
    """The pip-audit runs to make: one for the requirements files (pinned, no dependency resolution, no pip),
    one for the interpreter's environment; each ``(source label, extra argv, extra env)``."""
    runs = []
    files = []
    for name in params.get('requirements') or ():
        full = name if os.path.isabs(name) else os.path.join(params['path'], name)
        if not os.path.isfile(full):
            raise ProjectError('requirements file %s not found' % full)
        files.append(full)
    if files:
        argv = []
        for full in files:
            argv += ['-r', full]
        runs.append((', '.join(os.path.relpath(f, params['path']) if f.startswith(params['path'].rstrip(os.sep) + os.sep)
                               else f for f in files), argv + ['--no-deps', '--disable-pip'], {}))
    if params.get('python'):
        python = params['python']
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise ProjectError('python %s is not an executable interpreter (give the bin/python of the '
                               'environment to audit)' % python)
        # pip-audit lists an environment through pip_api, which runs the interpreter named here.
        runs.append(('environment of %s' % python, [], {'PIPAPI_PYTHON_LOCATION': python}))
    return runs


def run_pip_audit(pip_audit, params, label, extra, extra_env):
    service = params.get('pip_audit_service') or 'pypi'
    timeout = params['pip_audit_timeout']
    argv = [pip_audit, '-f', 'json', '--progress-spinner', 'off', '--aliases', 'on', '--desc', 'off',
            '-s', service, '--timeout', str(max(1, min(30, int(timeout))))] + extra
    env = dict(os.environ)
    env.update(extra_env)
    code, stdout, stderr = run_tool(argv, params['path'], timeout, env, 'pip-audit')
    if not stdout.strip():
        raise pip_audit_failure(code, stderr, service)
    data = _load_json(stdout, 'pip-audit', code, stderr)
    return parse_pip_audit(data, label, service)


def pip_audit_failure(code, stderr, service):
    lines = [ln.strip() for ln in (stderr or '').splitlines() if ln.strip()]
    errors = [ln.split(':', 2)[-1].strip() for ln in lines if ln.startswith('ERROR:')]
    last = lines[-1] if lines else 'no message'
    said = _clip('; '.join(errors) or last)
    if _is_network(stderr):
        where = 'OSV (api.osv.dev)' if service == 'osv' else "PyPI's JSON API"
        return ToolAnswerError('registry', 'the vulnerability service %s is unreachable (pip-audit): %s'
                               % (where, said))
    if 'is not pinned' in said:
        said += ' - requirements files are audited without resolving them: pin every line (name==version), ' \
                'for example with pip-compile or pip freeze'
    return ToolAnswerError('failed', 'pip-audit failed (exit %s): %s' % (code, said))


def parse_pip_audit(data, label='requirements', service='pypi'):
    """pip-audit's JSON as ``{source, service, counts, packages, skipped, fixes}``: each package with its
    vulnerabilities and the versions that fix them; each skipped package with pip-audit's reason."""
    if not isinstance(data, dict) or not isinstance(data.get('dependencies'), list):
        raise ToolAnswerError('malformed', 'pip-audit printed JSON without a list of dependencies')
    packages, skipped, audited = [], [], 0
    for dep in data['dependencies']:
        if not isinstance(dep, dict) or not isinstance(dep.get('name'), str):
            continue
        if dep.get('skip_reason') is not None:
            skipped.append({'name': dep['name'], 'reason': _clip(dep['skip_reason'], 300)})
            continue
        audited += 1
        vulns = []
        for vuln in dep.get('vulns') or ():
            if not isinstance(vuln, dict) or not isinstance(vuln.get('id'), str):
                continue
            vulns.append({'id': vuln['id'],
                          'aliases': [a for a in vuln.get('aliases') or () if isinstance(a, str)],
                          'fix_versions': [v for v in vuln.get('fix_versions') or () if isinstance(v, str)]})
        if vulns:
            fixes = sorted({v for item in vulns for v in item['fix_versions']}, key=_sort_key)
            packages.append({'name': dep['name'], 'version': _str(dep.get('version')), 'source': label,
                             'vulnerabilities': vulns, 'fix_versions': fixes,
                             'fix_available': all(item['fix_versions'] for item in vulns)})
    packages.sort(key=lambda p: p['name'])
    return {'source': label, 'service': service, 'audited': audited, 'packages': packages, 'skipped': skipped,
            'counts': {'packages': audited + len(skipped), 'audited': audited, 'vulnerable': len(packages),
                       'vulnerabilities': sum(len(p['vulnerabilities']) for p in packages),
                       'fixable': sum(1 for p in packages if p['fix_available']), 'skipped': len(skipped)}}


def _sort_key(version):
    parsed = _version(version)
    return (0, parsed, version) if parsed else (1, (), version)


# -- findings --------------------------------------------------------------------------------------------------------
def vulnerability_finding(findings, obj, worst, summary, details):
    """dependency_vulnerabilities judged on the worst severity's rank, its thresholds named as severities; a
    vulnerability below the thresholds (low, info by default) is advice (info), not ok."""
    spec = findings.thresholds['dependency_vulnerabilities']
    rank = SEVERITY_RANK[worst]
    status = C.status_for(rank, spec.get('warning'), spec.get('critical'), C.ABOVE)
    if status in (C.WARNING, C.CRITICAL):
        limit = spec['critical'] if status == C.CRITICAL else spec['warning']
        message = '%s (%s threshold: %s)' % (summary, status, _threshold_name(limit))
    elif rank > 0:
        status = C.INFO
        message = '%s (below the warning threshold: %s)' % (summary, _threshold_name(C.first_limit(spec)))
    else:
        message = summary
    return findings.add('dependency_vulnerabilities', status, message, obj=obj, value=rank, unit=spec.get('unit'),
                        warning=spec.get('warning'), critical=spec.get('critical'), severity_found=worst, **details)


def _threshold_name(limit):
    """A rank threshold in words: above 2 is "moderate or worse"."""
    if limit is None:
        return 'disabled'
    names = dict((rank, name) for name, rank in SEVERITY_RANK.items())
    first = int(math.floor(limit)) + 1
    if first > SEVERITY_RANK['critical']:
        return 'never (above critical)'
    return '%s or worse' % names[max(first, 1)]


def npm_findings(findings, path, audit, outdated, errors):
    obj = 'npm=%s' % path
    if 'audit' in errors:
        findings.unknown('dependency_audit', errors['audit'], obj=obj, tool='npm audit')
    elif audit is not None:
        counts = audit['counts']
        findings.ok('dependency_audit', 'npm audit read %s (%s dependencies)'
                    % (path, audit['dependencies'] if audit['dependencies'] is not None else 'unknown'),
                    obj=obj, tool='npm audit', value=audit['dependencies'], unit='dependencies')
        worst = next((s for s in SEVERITIES if counts[s]), 'none')
        if counts['total']:
            names = ', '.join('%s (%s)' % (p['name'], p['severity']) for p in audit['vulnerabilities'][:8])
            more = ' and %d more' % (len(audit['vulnerabilities']) - 8) if len(audit['vulnerabilities']) > 8 else ''
            summary = ('%d vulnerable npm packages in %s: %s; %s%s; %d with a fix available (%d of them a '
                       'semver-major change)' % (counts['total'], path, _counts_text(counts), names, more,
                                                 audit['fixable'], audit['fixable_semver_major']))
        else:
            summary = 'no known vulnerabilities in the npm dependencies of %s' % path
        vulnerability_finding(findings, obj, worst, summary, {'counts': counts})
    if 'outdated' in errors:
        findings.unknown('dependency_audit', errors['outdated'], obj='npm_outdated=%s' % path, tool='npm outdated')
    elif outdated is not None:
        outdated_finding(findings, obj, path, outdated)


def outdated_finding(findings, obj, path, outdated):
    furthest = max([o['major_behind'] for o in outdated] or [0])
    majors = [o for o in outdated if o['major_behind']]
    if not outdated:
        findings.ok('dependency_outdated', 'every npm dependency of %s is at its latest release' % path, obj=obj,
                    unit='major versions', category=OUTDATED_CATEGORY)
        return
    listed = ', '.join('%s %s -> %s' % (o['name'], o['current'], o['latest']) for o in outdated[:8])
    summary = ('%d outdated npm packages in %s (%d a major version or more behind, the furthest %d): %s'
               % (len(outdated), path, len(majors), furthest, listed))
    item = findings.judge('dependency_outdated', furthest, summary, obj=obj, outdated=len(outdated),
                          outdated_major=len(majors), category=OUTDATED_CATEGORY)
    if item['status'] == C.OK:
        item['status'] = C.INFO


def python_findings(findings, result, error, label, python_severity):
    obj = 'python=%s' % label
    if error:
        findings.unknown('dependency_audit', error, obj=obj, tool='pip-audit')
        return
    counts = result['counts']
    skipped = result['skipped']
    if skipped and not result['audited']:
        reasons = sorted({s['reason'] for s in skipped})
        hint = ''
        if any(PIP_NOT_FOUND in r for r in reasons):
            hint = (' - when every package is "not found", the vulnerability service is most likely unreachable '
                    'from this host (PyPI\'s JSON API behind a mirror or proxy); try pip_audit_service: osv')
        findings.unknown('dependency_audit', 'pip-audit audited nothing in %s: every package (%d) was skipped (%s)%s'
                         % (label, len(skipped), _clip('; '.join(reasons), 300), hint), obj=obj, tool='pip-audit',
                         skipped=skipped)
        return
    if skipped:
        findings.info('dependency_audit', 'pip-audit skipped %d of %d packages in %s: %s' % (
            len(skipped), counts['packages'], label,
            _clip('; '.join('%s: %s' % (s['name'], s['reason']) for s in skipped), 300)),
            obj=obj, tool='pip-audit', value=len(skipped), unit='packages', skipped=skipped)
    else:
        findings.ok('dependency_audit', 'pip-audit audited %d packages in %s' % (counts['audited'], label),
                    obj=obj, tool='pip-audit', value=counts['audited'], unit='packages')
    if counts['vulnerable']:
        names = ', '.join('%s %s (%s)' % (p['name'], p['version'], ', '.join(v['id'] for v in p['vulnerabilities']))
                          for p in result['packages'][:8])
        summary = ('%d known vulnerabilities in %d Python packages of %s (%s services give no severity; counted as '
                   '%s): %s; %d with a fixed release' % (counts['vulnerabilities'], counts['vulnerable'], label,
                                                         result['service'], python_severity, names,
                                                         counts['fixable']))
        worst = python_severity
    else:
        summary = 'no known vulnerabilities in the %d audited Python packages of %s' % (counts['audited'], label)
        worst = 'none'
    vulnerability_finding(findings, obj, worst, summary, {'counts': counts})


def _counts_text(counts):
    return ', '.join('%d %s' % (counts[s], s) for s in SEVERITIES if counts[s]) or 'none'


# -- the run -----------------------------------------------------------------------------------------------------------
def audit(params, thresholds):
    """Run the audits ``params`` ask for and return the module's result (without ``status``; ``checks.finish``
    sets it). Raises DependencyError for a missing tool and ProjectError for a missing file before any tool runs."""
    path = params['path']
    if not os.path.isdir(path):
        raise ProjectError('path %s is not a directory (give the application\'s checkout)' % path)
    ecosystems = chosen_ecosystems(params)
    npm = pip_audit = lock = lock_path = None
    runs = []
    if 'npm' in ecosystems:
        npm = find_executable(params.get('npm_executable') or 'npm', 'npm', NPM_INSTALL_HINT)
        _manifest, lock_path, lock = npm_project(path)
    if 'python' in ecosystems:
        pip_audit = find_executable(params.get('pip_audit_executable') or 'pip-audit', 'pip-audit',
                                    PIP_AUDIT_INSTALL_HINT, extra_dirs=(os.path.dirname(sys.executable),))
        runs = pip_audit_runs(params)

    findings = C.Findings(thresholds)
    # No top-level 'path': AnsibleModule would add that path's file attributes to the result.
    result = {'changed': False, 'checkout': path, 'npm': None, 'python': None}
    if npm:
        audit_report = outdated = None
        errors = {}
        try:
            audit_report = run_npm_audit(npm, path, params)
        except ToolAnswerError as exc:
            errors['audit'] = str(exc)
        if params.get('outdated', True):
            try:
                outdated = run_npm_outdated(npm, path, params, lock)
            except ToolAnswerError as exc:
                errors['outdated'] = str(exc)
        result['npm'] = {
            'lock_file': os.path.basename(lock_path),
            'lockfile_version': lock.get('lockfileVersion'),
            'include_dev': bool(params.get('include_dev', True)),
            'report_version': audit_report['report_version'] if audit_report else None,
            'counts': audit_report['counts'] if audit_report else None,
            'dependencies': audit_report['dependencies'] if audit_report else None,
            'vulnerabilities': audit_report['vulnerabilities'] if audit_report else [],
            'advisories': audit_report['advisories'] if audit_report else [],
            'fixable': audit_report['fixable'] if audit_report else None,
            'fixable_semver_major': audit_report['fixable_semver_major'] if audit_report else None,
            'outdated': outdated,
            'errors': errors,
        }
        npm_findings(findings, path, audit_report, outdated, errors)
    if pip_audit:
        sources, packages, skipped, errors = [], [], [], {}
        for label, extra, extra_env in runs:
            try:
                answer = run_pip_audit(pip_audit, params, label, extra, extra_env)
            except ToolAnswerError as exc:
                errors[label] = str(exc)
                python_findings(findings, None, str(exc), label, params.get('python_severity') or 'high')
                continue
            sources.append(label)
            packages.extend(answer['packages'])
            skipped.extend(dict(s, source=label) for s in answer['skipped'])
            python_findings(findings, answer, None, label, params.get('python_severity') or 'high')
        result['python'] = {
            'sources': sources,
            'service': params.get('pip_audit_service') or 'pypi',
            'counts': {'vulnerable': len(packages),
                       'vulnerabilities': sum(len(p['vulnerabilities']) for p in packages),
                       'fixable': sum(1 for p in packages if p['fix_available']),
                       'skipped': len(skipped)} if sources else None,
            'packages': packages,
            'skipped': skipped,
            'errors': errors,
        }
    result['checks'] = list(findings)
    result['report'] = report_section(path, result)
    return result


def report_section(path, result):
    """The run report's ``dependencies`` section: counts, the worst vulnerable packages (capped) and how many
    packages are a major version behind. No options or secrets."""
    npm, python = result.get('npm'), result.get('python')
    vulnerable = []
    if npm:
        for package in npm['vulnerabilities']:
            seen, advisories = set(), []
            for advisory in npm['advisories']:
                if package['name'] in advisory['affects'] and (advisory['url'] or advisory['id']) not in seen:
                    seen.add(advisory['url'] or advisory['id'])
                    advisories.append({'title': advisory['title'], 'url': advisory['url'],
                                       'severity': advisory['severity']})
            vulnerable.append({'ecosystem': 'npm', 'name': package['name'], 'severity': package['severity'],
                               'direct': package['direct'], 'fix_available': package['fix_available'],
                               'fix_semver_major': bool(package['fix'] and package['fix']['semver_major']),
                               'advisories': advisories[:3]})
    if python:
        for package in python['packages']:
            vulnerable.append({'ecosystem': 'python', 'name': package['name'], 'version': package['version'],
                               'severity': None, 'fix_available': package['fix_available'],
                               'fix_versions': package['fix_versions'][:3],
                               'advisories': [{'title': v['id'], 'url': None, 'severity': None}
                                              for v in package['vulnerabilities']][:3]})
    outdated = (npm or {}).get('outdated')
    section = {
        'finished_at': iso(utcnow()),
        'path': path,
        'npm': {'counts': npm['counts'], 'fixable': npm['fixable'], 'dependencies': npm['dependencies'],
                'outdated': len(outdated) if outdated is not None else None} if npm else None,
        'python': {'counts': python['counts'], 'sources': python['sources']} if python else None,
        'vulnerable': vulnerable[:REPORT_LIMIT],
        'vulnerable_total': len(vulnerable),
        'outdated_major': sum(1 for o in outdated if o['major_behind']) if outdated is not None else None,
    }
    return {'dependencies': section}
