# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role: defaults and meta/argument_specs.yml agree, variables carry the role's prefix, and the role has a
preflight, a README that lists every variable, and a molecule scenario of its own."""

from __future__ import annotations

import os

import pytest
import yaml

from modrunner import REPO_ROOT

ROLES = sorted(os.listdir(os.path.join(REPO_ROOT, 'roles')))


def load(*parts):
    with open(os.path.join(REPO_ROOT, *parts)) as handle:
        return yaml.safe_load(handle)


def test_the_roles_the_design_names():
    assert ROLES == ['backup', 'backup_verify', 'db_optimize', 'dr_test', 'health_check', 'performance_review',
                     'report', 'security_audit']


@pytest.mark.parametrize('role', ROLES)
def test_defaults_match_argument_specs(role):
    defaults = load('roles', role, 'defaults', 'main.yml')
    options = load('roles', role, 'meta', 'argument_specs.yml')['argument_specs']['main']['options']
    assert set(defaults) == set(options), 'defaults and argument_specs list different variables'
    for name, value in defaults.items():
        assert name.startswith(role + '_'), '%s is not prefixed with the role name' % name
        assert options[name].get('default') == value, '%s: default %r, argument spec %r' % (
            name, value, options[name].get('default'))
        assert options[name].get('description'), '%s has no description' % name


@pytest.mark.parametrize('role', ROLES)
def test_preflight_readme_and_molecule_scenario(role):
    tasks = load('roles', role, 'tasks', 'main.yml')
    assert tasks[0]['ansible.builtin.import_tasks'] == 'preflight.yml'
    preflight = load('roles', role, 'tasks', 'preflight.yml')
    assert preflight[0]['ansible.builtin.assert']['fail_msg']
    with open(os.path.join(REPO_ROOT, 'roles', role, 'README.md')) as handle:
        readme = handle.read()
    for name in load('roles', role, 'defaults', 'main.yml'):
        assert '`%s`' % name in readme, '%s is not in the README' % name
    scenario = os.path.join(REPO_ROOT, 'molecule', role)
    for name in ('molecule.yml', 'converge.yml', 'verify.yml'):
        assert os.path.isfile(os.path.join(scenario, name)), 'molecule/%s/%s is missing' % (role, name)
