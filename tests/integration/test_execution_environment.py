# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment: `ansible-builder create` writes the build context of execution-environment.yml (no
container runtime needed) and that context holds the collection, its Python requirements and its system packages;
the collection's own meta/execution-environment.yml gives any EE that includes it the same dependencies; bindep.txt
selects the right packages on dpkg and rpm platforms."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml
from bindep.depends import Depends  # installed with ansible-builder (requirements-dev.txt)

from modrunner import REPO_ROOT

BIN = os.path.dirname(sys.executable)
TARBALL = '.build/ee/appcare-maintenance.tar.gz'


def requirement_lines(path):
    with open(path) as handle:
        return [line.split('#')[0].strip() for line in handle if line.split('#')[0].strip()]


def bindep_names(text, profiles):
    return {rule[0] for rule in Depends(text).active_rules(profiles)}


@pytest.fixture(scope='module')
def context(tmp_path_factory):
    """The build context, made as `make ee` makes it: the collection tarball, then ansible-builder create - from a
    copy of the files execution-environment.yml names, so the test writes nothing into the checkout."""
    root = tmp_path_factory.mktemp('ee')
    src = root / 'src'
    for name in ('execution-environment.yml', 'requirements.txt', 'bindep.txt'):
        (src / os.path.dirname(name)).mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(REPO_ROOT, name), src / name)
    built = root / 'built'
    proc = subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(built),
                           REPO_ROOT], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (src / TARBALL).parent.mkdir(parents=True)
    shutil.copy(next(built.glob('appcare-maintenance-*.tar.gz')), src / TARBALL)
    ctx = root / 'context'
    proc = subprocess.run([os.path.join(BIN, 'ansible-builder'), 'create', '--file', 'execution-environment.yml',
                           '--context', str(ctx)], capture_output=True, text=True, cwd=str(src), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ctx


def containerfile(ctx):
    for name in ('Containerfile', 'Dockerfile'):
        if (ctx / name).exists():
            return (ctx / name).read_text()
    raise AssertionError('no Containerfile in %s' % sorted(os.listdir(ctx)))


def test_the_definition_is_ansible_builder_3():
    with open(os.path.join(REPO_ROOT, 'execution-environment.yml')) as handle:
        definition = yaml.safe_load(handle)
    assert definition['version'] == 3
    assert definition['dependencies']['python'] == 'requirements.txt'
    assert definition['dependencies']['system'] == 'bindep.txt'
    with open(os.path.join(REPO_ROOT, 'meta', 'execution-environment.yml')) as handle:
        meta = yaml.safe_load(handle)
    assert meta['dependencies'] == {'python': 'requirements.txt', 'system': 'bindep.txt'}


def test_the_context_holds_the_python_requirements(context):
    written = requirement_lines(context / '_build' / 'requirements.txt')
    wanted = requirement_lines(os.path.join(REPO_ROOT, 'requirements.txt'))
    assert wanted and set(wanted) <= set(written), written
    assert any(line.startswith('psycopg2') for line in written)


def test_the_context_holds_the_system_packages(context):
    text = (context / '_build' / 'bindep.txt').read_text()
    rpm = bindep_names(text, ['platform:rpm', 'platform:redhat', 'platform:centos'])
    epel = bindep_names(text, ['platform:rpm', 'platform:redhat', 'platform:centos', 'epel']) - rpm
    compile_only = bindep_names(text, ['platform:rpm', 'platform:redhat', 'compile']) - rpm
    assert {'libpq', 'nodejs', 'npm', 'gnupg2'} <= rpm, rpm
    assert epel == {'pgbackrest', 'chromium'}, epel
    assert {'libpq-devel', 'gcc', 'python3-devel'} <= compile_only, compile_only
    dpkg = bindep_names(text, ['platform:dpkg', 'platform:debian'])
    assert {'postgresql-client', 'libpq5', 'pgbackrest', 'chromium', 'npm', 'gnupg'} <= dpkg, dpkg
    assert not dpkg & {'gcc', 'libpq-dev', 'libpq-devel', 'gnupg2'}, dpkg


def test_the_image_gets_a_pgdg_client_of_the_chosen_major_version(context):
    text = containerfile(context)
    assert 'FROM $EE_BASE_IMAGE' in text and 'quay.io/centos/centos:stream9' in text
    assert re.search(r'^ARG PG_MAJOR=\d+$', text, re.M)
    assert 'pgdg-redhat-repo-latest.noarch.rpm' in text and 'postgresql${PG_MAJOR}' in text
    assert 'ENV PATH=/usr/pgsql-${PG_MAJOR}/bin:$PATH' in text
    # ansible-builder's own script installs the bindep packages; EPEL must be set up before it runs.
    assert text.index('epel-release') < text.index('/output/scripts/install-from-bindep')


def test_the_context_holds_the_collection(context):
    with open(context / '_build' / 'requirements.yml') as handle:
        galaxy = yaml.safe_load(handle)
    assert galaxy['collections'] == [{'name': '/build/collections/appcare-maintenance.tar.gz', 'type': 'file'}]
    tarball = context / '_build' / 'collections' / 'appcare-maintenance.tar.gz'
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
        manifest = json.load(archive.extractfile('MANIFEST.json'))
    assert manifest['collection_info']['namespace'] == 'appcare' and manifest['collection_info']['name'] == 'maintenance'
    assert {'meta/execution-environment.yml', 'bindep.txt', 'requirements.txt', 'playbooks/daily.yml'} <= names


def test_an_ee_that_includes_the_collection_gets_its_dependencies(context, tmp_path):
    """ansible-builder's introspection (what it runs on every collection an EE installs) reads
    meta/execution-environment.yml of the collection as it is installed from the tarball."""
    dest = tmp_path / 'ansible_collections' / 'appcare' / 'maintenance'
    dest.mkdir(parents=True)
    with tarfile.open(context / '_build' / 'collections' / 'appcare-maintenance.tar.gz') as archive:
        archive.extractall(dest, filter='data')
    proc = subprocess.run([sys.executable, str(context / '_build' / 'scripts' / 'introspect.py'), 'introspect',
                           str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = yaml.safe_load(proc.stdout)
    python = {line.split('#')[0].strip() for line in found['python']}
    assert set(requirement_lines(os.path.join(REPO_ROOT, 'requirements.txt'))) <= python, found['python']
    system = {line.split('#')[0].strip() for line in found['system']}
    assert {'pgbackrest [platform:rpm epel]', 'chromium [platform:rpm epel]', 'gnupg2 [platform:rpm]'} <= system
