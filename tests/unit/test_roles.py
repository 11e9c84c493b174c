# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role: defaults and meta/argument_specs.yml agree, variables carry the role's prefix, and the role has a
preflight, a README that lists every variable, and a molecule scenario of its own. The database connection is
set once (the private role _connection) and applied only where a role runs a database module; the molecule
scenarios state only what differs from the shared config."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import connection_argument_spec
from modrunner import REPO_ROOT

# The roles users run; a private role (leading underscore, as prometheus-community's _common) serves the others.
ROLES = sorted(name for name in os.listdir(os.path.join(REPO_ROOT, 'roles')) if not name.startswith('_'))
CONNECTION_ROLE = 'appcare.maintenance._connection'
CONNECTION_DEFAULTS = {'group/appcare.maintenance.postgresql': '{{ _appcare_db_connection }}'}
# module option <- inventory variable
CONNECTION_VARIABLES = {
    'login_host': 'appcare_db_host', 'login_port': 'appcare_db_port', 'login_unix_socket': 'appcare_db_unix_socket',
    'login_user': 'appcare_db_user', 'login_password': 'appcare_db_password', 'login_db': 'appcare_db_name',
    'ssl_mode': 'appcare_db_ssl_mode', 'ca_cert': 'appcare_db_ca_cert', 'connect_timeout': 'appcare_db_connect_timeout',
}


def load(*parts):
    with open(os.path.join(REPO_ROOT, *parts)) as handle:
        return yaml.safe_load(handle)


def test_the_roles_the_design_names():
    assert ROLES == ['app_review', 'backup', 'backup_verify', 'db_optimize', 'dr_test', 'health_check', 'log_review',
                     'performance_review', 'pitr_backup', 'pitr_setup', 'report', 'security_audit']


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


def postgresql_group():
    return {'appcare.maintenance.' + name for name in load('meta', 'runtime.yml')['action_groups']['postgresql']}


def task_items(tasks):
    """Every task and block of a task list, nested blocks included."""
    for task in tasks or []:
        yield task
        for key in ('block', 'rescue', 'always'):
            yield from task_items(task.get(key))


def dependencies(role):
    return [dep['role'] if isinstance(dep, dict) else dep for dep in load('roles', role, 'meta', 'main.yml').get('dependencies') or []]


def database_modules(role, filename):
    """The modules of the postgresql action group that a task file of ``role`` runs."""
    tasks = load('roles', role, 'tasks', filename)
    return {key for task in task_items(tasks) for key in task if key in postgresql_group()}


def test_the_connection_is_set_once():
    connection = load('roles', '_connection', 'vars', 'main.yml')
    assert list(connection) == ['_appcare_db_connection']
    options = connection['_appcare_db_connection']
    assert set(options) == set(CONNECTION_VARIABLES)
    assert set(options) <= set(connection_argument_spec()), 'not an option of the database modules'
    for option, variable in CONNECTION_VARIABLES.items():
        assert re.match(r'^\{\{ %s \| default\(' % variable, options[option]), (option, options[option])
    # and nowhere else: no role or playbook names a login option from the appcare_db_* variables by itself
    for folder in ('roles', 'playbooks'):
        for root, _dirs, files in os.walk(os.path.join(REPO_ROOT, folder)):
            for name in files:
                if name.endswith('.yml') and not root.endswith(os.path.join('_connection', 'vars')):
                    with open(os.path.join(root, name)) as handle:
                        text = handle.read()
                    for option in ('login_host', 'login_port', 'login_db', 'ssl_mode'):
                        assert not re.search(r'\b%s:' % option, text), '%s sets %s itself' % (name, option)
                    # ca_cert is also the CA option of http_health_info and tls_cert_info, which are no database modules
                    assert not re.search(r'\bca_cert:.*\bappcare_db_', text), '%s sets ca_cert itself' % name


@pytest.mark.parametrize('role', ROLES)
def test_roles_apply_the_connection_where_they_run_database_modules(role):
    """module_defaults wraps exactly the concerns that run a module of the postgresql action group, and a role
    that has any depends on the private role, so it connects the same way on its own as in the tier playbooks."""
    main = load('roles', role, 'tasks', 'main.yml')
    wrapped, unwrapped = set(), set()
    for item in main:
        imports = [task['ansible.builtin.import_tasks'] for task in task_items([item])
                   if 'ansible.builtin.import_tasks' in task]
        if 'module_defaults' in item:
            assert item['module_defaults'] == CONNECTION_DEFAULTS, item['name']
            assert any(database_modules(role, name) for name in imports), \
                '%s: module_defaults around no database module' % item['name']
            wrapped.update(imports)
        else:
            unwrapped.update(imports)
    for name in unwrapped:
        assert not database_modules(role, name), '%s runs %s without the connection' % (name, database_modules(role, name))
    for name in os.listdir(os.path.join(REPO_ROOT, 'roles', role, 'tasks')):
        if name != 'main.yml':
            assert all('module_defaults' not in task for task in task_items(load('roles', role, 'tasks', name))), name
    assert (CONNECTION_ROLE in dependencies(role)) == bool(wrapped), dependencies(role)


def test_the_connection_variables_are_documented_once():
    with open(os.path.join(REPO_ROOT, 'README.md')) as handle:
        readme = handle.read()
    using_it = readme.split('## Using it', 1)[1].split('\n## ', 1)[0]
    for option, variable in CONNECTION_VARIABLES.items():
        assert re.search(r'^\| `%s` \| `%s` \|' % (variable, option), using_it, re.M), variable
    for role in ROLES:
        with open(os.path.join(REPO_ROOT, 'roles', role, 'README.md')) as handle:
            text = handle.read()
        assert 'Connection:' in text
        if CONNECTION_ROLE in dependencies(role):
            assert '`appcare_db_*`' in text and '(../../README.md#connection-variables)' in text, role
        for variable in CONNECTION_VARIABLES.values():
            assert '`%s`' % variable not in text, '%s lists %s again' % (role, variable)


# Scenarios without a database state the port of what they start instead: app_review's local application site
# (demo/appsite.py), started in its prepare and stopped in its cleanup.
SITE_SCENARIOS = {'app_review': 'appsite_port'}


def test_molecule_scenarios_state_only_what_differs():
    base = load('.config', 'molecule', 'config.yml')
    scenarios = sorted(name for name in os.listdir(os.path.join(REPO_ROOT, 'molecule'))
                       if os.path.isfile(os.path.join(REPO_ROOT, 'molecule', name, 'molecule.yml')))
    assert scenarios == ROLES
    ports = {}
    for name in scenarios:
        scenario = load('molecule', name, 'molecule.yml')
        host = scenario['provisioner']['inventory']['host_vars']['instance']
        port = SITE_SCENARIOS.get(name, 'appcare_db_port')
        assert list(host) == [port] and set(scenario) <= {'ansible', 'provisioner', 'scenario'}, name
        ports[host[port]] = name
        if name in SITE_SCENARIOS:
            # its own prepare and cleanup (the site, no server), and the role runs no database module
            assert scenario['ansible'] == {'playbooks': {'prepare': 'prepare.yml', 'cleanup': 'cleanup.yml'}}, name
            assert not any(database_modules(name, f) for f in os.listdir(os.path.join(REPO_ROOT, 'roles', name, 'tasks')))
            for playbook in ('prepare.yml', 'cleanup.yml'):
                assert os.path.isfile(os.path.join(REPO_ROOT, 'molecule', name, playbook)), name
        elif 'ansible' in scenario:
            assert scenario['ansible'] == {'playbooks': {'prepare': 'prepare.yml'}}, name
            assert os.path.isfile(os.path.join(REPO_ROOT, 'molecule', name, 'prepare.yml')), name
        sequence = (scenario.get('scenario') or base['scenario'])['test_sequence']
        assert sequence != base['scenario']['test_sequence'] or 'scenario' not in scenario, name
        # a role that changes something runs once in --check first; idempotence where a second run has nothing to do
        if name == 'health_check':
            assert 'check' not in sequence
        else:
            assert sequence.index('check') < sequence.index('converge'), name
        if name in ('app_review', 'health_check', 'db_optimize', 'log_review', 'pitr_setup', 'report'):
            assert sequence.index('converge') < sequence.index('idempotence') < sequence.index('verify'), name
    assert len(ports) == len(scenarios), 'two scenarios share a port'
