# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared connection options: what reaches libpq, and what never does."""

from __future__ import annotations

import pytest

from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError
from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    connect_kwargs,
    connection_argument_spec,
    describe_connect_error,
)


def params(**overrides):
    base = dict(login_host='db.internal', login_port=5432, login_user='monitor', login_password='s3cret',
                login_db='ims', login_unix_socket=None, ssl_mode='verify-full', ca_cert='/etc/ca.pem',
                connect_timeout=5, statement_timeout=30)
    base.update(overrides)
    return base


def test_session_settings_travel_in_the_startup_packet():
    kwargs = connect_kwargs(params(), 'appcare.maintenance.x', lock_timeout=2.5, read_only=True)
    assert kwargs['options'] == ('-c statement_timeout=30000 -c default_transaction_read_only=on '
                                 '-c lock_timeout=2500')
    assert kwargs['application_name'] == 'appcare.maintenance.x'
    assert kwargs['sslrootcert'] == '/etc/ca.pem' and kwargs['sslmode'] == 'verify-full'
    assert kwargs['host'] == 'db.internal'


def test_unix_socket_wins_over_host_and_no_empty_password():
    kwargs = connect_kwargs(params(login_unix_socket='/run/postgresql', login_password=None), 'a')
    assert kwargs['host'] == '/run/postgresql'
    assert 'password' not in kwargs


@pytest.mark.parametrize('overrides, fragment', [
    ({'connect_timeout': 0}, 'connect_timeout must be at least 1'),
    ({'statement_timeout': -1}, 'statement_timeout must be 0'),
])
def test_bad_timeouts(overrides, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        connect_kwargs(params(**overrides), 'a')


def test_password_is_no_log_and_env_fallbacks_exist():
    spec = connection_argument_spec()
    assert spec['login_password']['no_log'] is True
    envs = {name: opt['fallback'][1][0] for name, opt in spec.items() if 'fallback' in opt}
    assert envs == {'login_host': 'PGHOST', 'login_port': 'PGPORT', 'login_user': 'PGUSER',
                    'login_password': 'PGPASSWORD', 'login_db': 'PGDATABASE', 'ssl_mode': 'PGSSLMODE',
                    'ca_cert': 'PGSSLROOTCERT', 'connect_timeout': 'PGCONNECT_TIMEOUT'}


def test_connect_error_names_target_user_database_and_cause():
    exc = Exception('connection to server at "10.0.0.5", port 6543 failed: FATAL:  password authentication '
                    'failed for user "monitor"\n')
    msg = describe_connect_error(params(login_host='10.0.0.5', login_port=6543), exc)
    assert msg == ('cannot connect to 10.0.0.5:6543 as monitor (database ims): FATAL: password authentication '
                   'failed for user "monitor"')
