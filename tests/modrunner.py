# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the collection's modules and playbooks for real: a module as its own Python process (the way
Ansible runs it on a managed host), a playbook with ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, 'collections')
MODULES_DIR = os.path.join(COLLECTIONS_ROOT, 'ansible_collections', 'appcare', 'maintenance', 'plugins', 'modules')


class ModuleResult(dict):
    """The module's JSON result, plus the raw output and return code."""

    rc = 0
    raw = ''

    @property
    def failed(self):
        return bool(self.get('failed'))

    def check(self, name):
        """The finding called ``name`` (fails the test if absent)."""
        found = [c for c in self.get('checks', []) if c['name'] == name]
        assert len(found) == 1, 'expected one %s finding in %s' % (name, self.get('checks'))
        return found[0]


class RunningModule(object):
    """A module started in the background; ``finish()`` waits for it and returns its result."""

    def __init__(self, name, args, check_mode=False, env=None, preexec_fn=None):
        self.name = name
        payload = dict(args)
        payload['_ansible_check_mode'] = check_mode
        with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as handle:
            json.dump({'ANSIBLE_MODULE_ARGS': payload}, handle)
            self.args_file = handle.name
        run_env = dict(os.environ)
        run_env['PYTHONPATH'] = os.pathsep.join(p for p in (COLLECTIONS_ROOT, (env or {}).get('PYTHONPATH')) if p)
        run_env.update({k: v for k, v in (env or {}).items() if k != 'PYTHONPATH'})
        self.proc = subprocess.Popen([sys.executable, os.path.join(MODULES_DIR, name + '.py'), self.args_file],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env,
                                     preexec_fn=preexec_fn)

    def finish(self, timeout=300):
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate()
            raise AssertionError('module %s did not finish within %s s:\n%s\n%s'
                                 % (self.name, timeout, stdout, stderr)) from None
        finally:
            os.unlink(self.args_file)
        try:
            result = ModuleResult(json.loads(stdout))
        except ValueError:
            raise AssertionError('module %s printed no JSON (rc %d):\n%s\n%s' % (self.name, self.proc.returncode,
                                                                                 stdout, stderr)) from None
        result.rc = self.proc.returncode
        result.raw = stdout + stderr
        return result


def start_module(name, args, check_mode=False, env=None, preexec_fn=None):
    return RunningModule(name, args, check_mode, env, preexec_fn)


def run_module(name, args, check_mode=False, env=None, preexec_fn=None):
    return RunningModule(name, args, check_mode, env, preexec_fn).finish()


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS_ROOT,
        'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH': 'false',
        'ANSIBLE_CONFIG': os.path.join(REPO_ROOT, 'ansible.cfg'),
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_RETRY_FILES_ENABLED': 'false',
        'ANSIBLE_LOCALHOST_WARNING': 'false',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': 'false',
    })
    env.update(extra or {})
    return env


def run_playbook(playbook, inventory=None, extra_vars=None, options=(), env=None, cwd=None):
    """ansible-playbook from this interpreter's environment; returns the CompletedProcess."""
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')]
    if inventory:
        argv += ['-i', inventory]
    if extra_vars:
        argv += ['-e', json.dumps(extra_vars)]
    argv += list(options) + [playbook]
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=ansible_env(env), cwd=cwd or REPO_ROOT, check=False)
