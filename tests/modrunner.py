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


def run_module(name, args, check_mode=False, env=None):
    payload = dict(args)
    payload['_ansible_check_mode'] = check_mode
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': payload}, handle)
        path = handle.name
    try:
        run_env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT)
        run_env.update(env or {})
        proc = subprocess.run([sys.executable, os.path.join(MODULES_DIR, name + '.py'), path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env, check=False)
    finally:
        os.unlink(path)
    try:
        result = ModuleResult(json.loads(proc.stdout))
    except ValueError:
        raise AssertionError('module %s printed no JSON (rc %d):\n%s\n%s' % (name, proc.returncode, proc.stdout,
                                                                             proc.stderr)) from None
    result.rc = proc.returncode
    result.raw = proc.stdout + proc.stderr
    return result


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
