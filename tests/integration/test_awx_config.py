# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller configuration as code (awx/), proved without an AWX server.

First the configuration itself: every job template names a playbook, project, inventory, credential, execution
environment and notification that exist; every schedule a template, at the guides' cadence; every variable a
credential type injects is one a role reads; secrets are marked secret and never stored; ansible-lint passes.

Then the job templates launched the way AWX launches them - ansible-runner with the template's playbook, an
inventory, the template's extra variables plus the survey's default answers, and the credential types' injectors
rendered (Jinja, as the controller does) over the credential inputs into extra variables and files: the daily
template for real against a real PostgreSQL (its run status and its run report), the others with --syntax-check
(their playbooks, roles and variables resolve; a real run of each tier is tests/integration/test_tiers.py's)."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from jinja2 import StrictUndefined, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from modrunner import COLLECTIONS_ROOT, REPO_ROOT, run_module
from pgserver import SUPERUSER_PASSWORD

AWX = os.path.join(REPO_ROOT, 'awx')
BIN = os.path.dirname(sys.executable)
BUILTIN_CREDENTIAL_TYPES = {'Vault', 'Machine', 'Source Control'}
# The variables configure.yml sets for the data files (awx/configure.yml's play vars).
CONFIGURE_VARS = {'appcare_awx_organization', 'appcare_awx_report_dir', 'appcare_awx_job_slice_count'}


class DataLoader(yaml.SafeLoader):
    """YAML as Ansible reads it, with !unsafe (a string Ansible does not template) as a plain string."""


DataLoader.add_constructor('!unsafe', lambda loader, node: loader.construct_scalar(node))


def load(name):
    with open(os.path.join(AWX, 'vars', name)) as handle:
        return yaml.load(handle, Loader=DataLoader)  # noqa: S506 - a SafeLoader subclass


@pytest.fixture(scope='module')
def config():
    data = {}
    for path in sorted(glob.glob(os.path.join(AWX, 'vars', '*.yml'))):
        data.update(load(os.path.basename(path)))
    return data


def by_name(items):
    names = [item['name'] for item in items]
    assert len(names) == len(set(names)), 'duplicate names: %s' % names
    return {item['name']: item for item in items}


# ---------------------------------------------------------------------------------------------------------------
# The configuration is consistent

def test_every_data_file_is_loaded_by_configure(config):
    with open(os.path.join(AWX, 'configure.yml')) as handle:
        play = yaml.safe_load(handle)[0]
    files = {os.path.basename(p) for p in glob.glob(os.path.join(AWX, 'vars', '*.yml'))}
    assert {os.path.basename(p) for p in play['vars_files']} == files
    assert CONFIGURE_VARS <= set(play['vars'])
    modules = {next(k for k in task if k.startswith('awx.awx.')): task['loop'] for task in play['tasks']}
    for module in ('credential_type', 'credential', 'project', 'execution_environment', 'inventory', 'inventory_source',
                   'notification_template', 'job_template', 'schedule'):
        variable = modules['awx.awx.' + module].strip('{} ')
        assert variable in config, '%s loops over %s, which no data file defines' % (module, variable)


def test_every_template_names_what_exists(config):
    projects = by_name(config['controller_projects'])
    inventories = by_name(config['controller_inventories'])
    credentials = by_name(config['controller_credentials'])
    environments = by_name(config['controller_execution_environments'])
    notifications = by_name(config['controller_notifications'])
    templates = by_name(config['controller_templates'])
    playbooks = {t['playbook'] for t in templates.values()}
    assert playbooks == {'playbooks/daily.yml', 'playbooks/weekly.yml', 'playbooks/monthly.yml',
                         'playbooks/quarterly.yml', 'playbooks/setup_roles.yml'}
    for template in templates.values():
        assert os.path.isfile(os.path.join(REPO_ROOT, template['playbook'])), template['playbook']
        assert template['project'] in projects and template['inventory'] in inventories
        assert template['execution_environment'] in environments
        assert set(template['credentials']) <= set(credentials), template['credentials']
        assert set(template['notification_templates_error']) <= set(notifications)
        assert template['survey_enabled'] and template['survey_spec']['spec']
        assert template['ask_job_type_on_launch'] and template['ask_tags_on_launch'] and template['ask_limit_on_launch']
        assert 'job_slice_count' in template
        # At most one credential per type: the controller refuses two of one kind on a template.
        kinds = [credentials[name]['credential_type'] for name in template['credentials']]
        assert len(kinds) == len(set(kinds)), template['name']
    for project in projects.values():
        assert project.get('default_environment', next(iter(environments))) in environments


def test_the_inventory_source_is_the_example_inventory(config):
    inventories = by_name(config['controller_inventories'])
    projects = by_name(config['controller_projects'])
    for source in config['controller_inventory_sources']:
        assert source['inventory'] in inventories and source['source_project'] in projects
        assert source['source'] == 'scm'
        assert os.path.isfile(os.path.join(REPO_ROOT, source['source_path'], 'hosts.yml'))


def test_every_credential_has_an_existing_type_and_no_secret(config):
    types = by_name(config['controller_credential_types'])
    for credential in config['controller_credentials']:
        kind = credential['credential_type']
        assert kind in types or kind in BUILTIN_CREDENTIAL_TYPES, kind
        if kind not in types:
            secret_ids = {'vault_password', 'password', 'ssh_key_data'}
        else:
            fields = types[kind]['inputs']['fields']
            secret_ids = {f['id'] for f in fields if f.get('secret')}
            assert set(credential['inputs']) <= {f['id'] for f in fields}, credential['name']
            missing = set(types[kind]['inputs'].get('required', [])) - set(credential['inputs'])
            assert not missing, '%s lacks %s' % (credential['name'], missing)
        for key, value in credential['inputs'].items():
            if key in secret_ids:
                assert re.fullmatch(r"\{\{ vault_\w+( \| default\(''\))? \}\}", value), \
                    '%s: %s must come from a vault variable, not %r' % (credential['name'], key, value)


def test_secrets_are_marked_secret(config):
    for kind in config['controller_credential_types']:
        for field in kind['inputs']['fields']:
            sounds_secret = re.search(r'password|secret|token|service_role_key|slack_url', field['id'])
            assert bool(field.get('secret')) == bool(sounds_secret), '%s: %s' % (kind['name'], field['id'])


def role_variables():
    """Every variable a role reads: its defaults and argument specs, and the connection variables of _connection."""
    names = set()
    for path in glob.glob(os.path.join(REPO_ROOT, 'roles', '*', 'defaults', 'main.yml')):
        with open(path) as handle:
            names |= set(yaml.safe_load(handle) or {})
    for path in glob.glob(os.path.join(REPO_ROOT, 'roles', '*', 'meta', 'argument_specs.yml')):
        with open(path) as handle:
            for spec in (yaml.safe_load(handle) or {}).get('argument_specs', {}).values():
                names |= set(spec.get('options', {}))
    with open(os.path.join(REPO_ROOT, 'roles', '_connection', 'vars', 'main.yml')) as handle:
        names |= set(re.findall(r'\b(appcare_db_\w+)\b', handle.read()))
    return names


def test_every_injected_variable_is_one_a_role_reads(config):
    read = role_variables()
    assert {'appcare_db_host', 'appcare_db_password', 'appcare_db_ca_cert', 'health_check_supabase_key',
            'report_channels'} <= read
    for kind in config['controller_credential_types']:
        injected = set(kind['injectors'].get('extra_vars', {}))
        assert injected, kind['name']
        assert injected <= read, '%s injects %s, which no role reads' % (kind['name'], injected - read)
        assert not kind['injectors'].get('env'), 'the roles read variables, not the environment'


def template_sources(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from template_sources(value)
    elif isinstance(node, list):
        for value in node:
            yield from template_sources(value)
    else:
        yield node


def test_injectors_use_only_their_inputs(config):
    env = ImmutableSandboxedEnvironment()
    for kind in config['controller_credential_types']:
        ids = {f['id'] for f in kind['inputs']['fields']}
        for source in template_sources(kind['injectors']):
            used = meta.find_undeclared_variables(env.parse(source)) - {'tower'}
            assert used <= ids, '%s: %s uses %s' % (kind['name'], source, used - ids)


def test_the_survey_variables_are_read_where_they_act(config):
    with open(os.path.join(REPO_ROOT, 'plugins', 'callback', 'maintenance_report.py')) as handle:
        callback = handle.read()
    for template in config['controller_templates']:
        with open(os.path.join(REPO_ROOT, template['playbook'])) as handle:
            playbook = handle.read()
        for question in template['survey_spec']['spec']:
            variable = question['variable']
            assert variable in playbook or "'%s'" % variable in callback, variable
            if question['type'] == 'multiplechoice':
                assert question['default'] in question['choices']
        assert set(template.get('extra_vars', {})) <= {'appcare_report_dir'}


def test_the_schedules_follow_the_cadence(config):
    from dateutil.rrule import rrulestr
    templates = by_name(config['controller_templates'])
    schedules = by_name(config['controller_schedules'])
    scheduled = {s['unified_job_template'] for s in schedules.values()}
    assert scheduled == {'appcare daily', 'appcare weekly', 'appcare monthly', 'appcare quarterly'}
    assert scheduled <= set(templates)
    runs = {}
    for schedule in schedules.values():
        assert re.fullmatch(r'DTSTART;TZID=UTC:\d{8}T\d{6} RRULE:\S+', schedule['rrule']), schedule['rrule']
        rule = rrulestr(schedule['rrule'].replace(' RRULE:', '\nRRULE:').replace(';TZID=UTC', ''))
        runs[schedule['unified_job_template']] = list(rule[:5])
    assert all(r.hour < 7 for times in runs.values() for r in times), 'the tiers run at night'
    daily = runs['appcare daily']
    assert all((b - a).days == 1 for a, b in zip(daily, daily[1:], strict=False))
    assert all(r.weekday() == 0 for r in runs['appcare weekly'])
    assert all(r.day == 1 for r in runs['appcare monthly']) and len({r.month for r in runs['appcare monthly']}) == 5
    assert [(r.month, r.day) for r in runs['appcare quarterly'][:4]] == [(1, 1), (4, 1), (7, 1), (10, 1)]


def test_ansible_lint_passes_on_awx():
    assert os.path.isdir(os.path.join(COLLECTIONS_ROOT, 'ansible_collections', 'awx', 'awx')), \
        'awx.awx is not in collections/: run scripts/awx-collection.sh (make setup does)'
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT)
    proc = subprocess.run([os.path.join(BIN, 'ansible-lint'), '-q', 'awx/'], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------------------------
# The job templates, launched as AWX launches them

SANDBOX = ImmutableSandboxedEnvironment(undefined=StrictUndefined)


def inject(kind, inputs, private_data_dir):
    """What the controller does with a credential: fill in the inputs' defaults, write the file injectors' files and
    render every extra_vars template (recursively, in a sandbox) with the inputs and tower.filename."""
    values = {f['id']: f.get('default', '') for f in kind['inputs']['fields']}
    values.update(inputs)
    filenames = {}
    for key, source in kind['injectors'].get('file', {}).items():
        name = key.split('.', 1)[1]
        path = os.path.join(str(private_data_dir), 'cred_%s_%s' % (re.sub(r'\W', '_', kind['name']), name))
        with open(path, 'w') as handle:
            handle.write(SANDBOX.from_string(source).render(**values))
        filenames[name] = path
    namespace = dict(values, tower={'filename': filenames})

    def build(node):
        if isinstance(node, dict):
            return {key: build(value) for key, value in node.items()}
        if isinstance(node, list):
            return [build(value) for value in node]
        return SANDBOX.from_string(node).render(**namespace)

    return build(kind['injectors'].get('extra_vars', {}))


def survey_answers(template):
    return {q['variable']: q['default'] for q in template['survey_spec']['spec']}


def launch(template, inventory, private_data_dir, extravars, cmdline=None):
    import ansible_runner
    reports = os.path.join(str(private_data_dir), 'reports')
    env = {'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS_ROOT, 'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH': 'false',
           'ANSIBLE_CONFIG': os.path.join(REPO_ROOT, 'ansible.cfg'), 'ANSIBLE_NOCOLOR': '1',
           'PATH': BIN + os.pathsep + os.environ.get('PATH', '')}
    # The template's own extra variables, then the survey's answers, then the credentials' (the controller's order);
    # the report directory stands for the persistent volume awx/README.md describes.
    variables = dict(template.get('extra_vars', {}), appcare_report_dir=reports)
    variables.update(survey_answers(template))
    variables.update(extravars)
    runner = ansible_runner.run(private_data_dir=str(private_data_dir), project_dir=REPO_ROOT,
                                playbook=template['playbook'], inventory=inventory, extravars=variables,
                                envvars=env, cmdline=cmdline, quiet=True, timeout=300)
    return runner, reports


def one_host_inventory(tmp_path, dbname):
    path = tmp_path / 'hosts.json'
    host = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable, 'appcare_db_name': dbname}
    path.write_text(json.dumps({'all': {'children': {'postgres_targets': {'hosts': {'awx-target': host}}}}}))
    return str(path)


def pg_credential(config, server, private_data_dir):
    kind = by_name(config['controller_credential_types'])['appcare PostgreSQL target']
    return inject(kind, {'host': '127.0.0.1', 'port': str(server.port), 'username': 'postgres',
                         'password': SUPERUSER_PASSWORD, 'ssl_mode': 'disable'}, private_data_dir)


def test_the_daily_template_runs_as_awx_runs_it(config, target, tmp_path):
    template = by_name(config['controller_templates'])['appcare daily']
    data_dir = tmp_path / 'job'
    data_dir.mkdir()
    injected = pg_credential(config, target.server, data_dir)
    assert injected['appcare_db_ca_cert'] == '' and injected['appcare_db_port'] == str(target.server.port)
    runner, reports = launch(template, one_host_inventory(tmp_path, target.dbname), data_dir, injected)
    stdout = runner.stdout.read()
    assert runner.status == 'successful' and runner.rc == 0, stdout[-3000:]
    with open(os.path.join(reports, 'latest.json')) as handle:
        report = json.load(handle)
    assert report['tier'] == 'daily'
    [host] = report['targets']
    assert host['name'] == 'awx-target' and host['status'] == 'ok', host
    assert {c['name'] for c in host['checks']} >= {'database_connection', 'cache_hit_ratio'}
    # The credential's password reached no report and no job output.
    assert SUPERUSER_PASSWORD not in open(os.path.join(reports, 'latest.json')).read()
    assert SUPERUSER_PASSWORD not in stdout
    assert any(e.get('event') == 'playbook_on_stats' for e in runner.events)


def test_the_survey_fail_gate_turns_the_job_red(config, tmp_path):
    """The survey's default gate (critical) reaches the report callback: a target whose server does not answer is
    critical, so the job ends failed (exit code 2) - after its report is written."""
    template = by_name(config['controller_templates'])['appcare daily']
    assert survey_answers(template)['appcare_report_fail_on'] == 'critical'
    kind = by_name(config['controller_credential_types'])['appcare PostgreSQL target']
    injected = inject(kind, {'host': '127.0.0.1', 'port': '1', 'username': 'postgres', 'password': 'x',
                             'ssl_mode': 'disable'}, tmp_path)
    runner, reports = launch(template, one_host_inventory(tmp_path, 'postgres'), tmp_path,
                             dict(injected, appcare_db_connect_timeout=2))
    stdout = runner.stdout.read()
    assert runner.status == 'failed' and runner.rc == 2, stdout[-3000:]
    assert 'fail_on=critical' in stdout
    with open(os.path.join(reports, 'latest.json')) as handle:
        assert json.load(handle)['targets'][0]['status'] == 'critical'


def test_a_ca_certificate_is_injected_as_a_file(config, tmp_path):
    kind = by_name(config['controller_credential_types'])['appcare PostgreSQL target']
    pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
    injected = inject(kind, {'host': 'db', 'username': 'u', 'password': 'p', 'ca_cert': pem}, tmp_path)
    assert injected['appcare_db_ssl_mode'] == 'verify-full'
    with open(injected['appcare_db_ca_cert']) as handle:
        assert handle.read() == pem


@pytest.mark.parametrize('name', ['appcare weekly', 'appcare monthly', 'appcare quarterly', 'appcare setup roles'])
def test_the_other_templates_launch(config, tmp_path, name):
    """The controller's launch up to the start of the play: inventory, extra variables of every credential the
    template has, playbook, roles and collection resolve (--syntax-check)."""
    template = by_name(config['controller_templates'])[name]
    types = by_name(config['controller_credential_types'])
    credentials = by_name(config['controller_credentials'])
    extravars = {}
    for credential in (credentials[n] for n in template['credentials']):
        if credential['credential_type'] in types:
            inputs = {k: 'example' for k in credential['inputs']}
            extravars.update(inject(types[credential['credential_type']], inputs, tmp_path))
    runner, unused = launch(template, one_host_inventory(tmp_path, 'postgres'), tmp_path, extravars,
                            cmdline='--syntax-check')
    stdout = runner.stdout.read()
    assert runner.status == 'successful' and runner.rc == 0, stdout[-3000:]
    assert 'playbook: %s' % template['playbook'] in stdout


def test_the_alert_channels_credential_is_what_notify_accepts(config, tmp_path):
    """The channels and rules the credential injects pass notify's argument spec and validation (a string port and
    a comma-separated recipient list become what the module needs); with no findings nothing is sent."""
    kind = by_name(config['controller_credential_types'])['appcare alert channels']
    injected = inject(kind, {'slack_url': 'https://hooks.slack.com/services/T/B/x', 'webhook_url': 'https://h.example.org/a',
                             'webhook_secret': 's3cret', 'smtp_host': 'smtp.example.org', 'smtp_username': 'ops',
                             'smtp_password': 'pw', 'mail_sender': 'ops@example.org',
                             'mail_recipients': 'a@example.org,b@example.org'}, tmp_path)
    result = run_module('notify', {'title': 'appcare daily', 'findings': [], 'channels': injected['report_channels'],
                                   'rules': injected['report_rules']})
    assert not result.failed, result
