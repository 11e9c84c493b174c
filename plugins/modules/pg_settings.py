#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pg_settings
short_description: Set PostgreSQL server settings with ALTER SYSTEM, reload, and say which need a restart
version_added: 0.1.0
description:
  - Sets each of O(settings) with C(ALTER SYSTEM SET) (written to C(postgresql.auto.conf) in the data directory)
    when the value the server would run with differs, then reloads the configuration (C(pg_reload_conf())) so
    the settings a reload applies (context C(sighup), C(superuser), C(user), C(backend) ...) take effect, and waits
    until they have.
  - "What the server would run with is the last entry of the setting in its configuration files
    (C(pg_file_settings)), else its running value. Values are compared as PostgreSQL reads them: C(on), C(true) and
    C(yes) are one boolean; C(60), C(60s) and C(1min) are one C(archive_timeout); enums ignore case; strings must
    match exactly. A setting written earlier that still waits for a restart counts as set: a second run reports
    no change."
  - Never restarts the server. Settings of context C(postmaster) (C(archive_mode), C(shared_buffers),
    C(shared_preload_libraries) ...) take effect only at the next start; RV(restart_required) and
    RV(pending_restart) say so, from C(pg_settings) (C(pending_restart)) and from comparing each running value
    with the one asked for, so it stays true until the server has been restarted.
  - C(ALTER SYSTEM) needs a superuser, or on PostgreSQL 15+ a role granted C(ALTER SYSTEM) on the parameter;
    C(pg_file_settings) is readable by superusers only - without it the module compares with the running values
    and says so in RV(notes).
  - A list setting (C(shared_preload_libraries), C(search_path)) is written as one quoted value; give such
    settings in the server's configuration file instead.
author:
  - appcare maintainers (@appcare)
extends_documentation_fragment:
  - appcare.maintenance.connection
attributes:
  check_mode:
    support: full
    description: Reports what would be written (RV(queries)) and what would then need a restart, and changes
      nothing.
  diff_mode:
    support: none
    description: RV(changes) lists each setting's value before and after.
options:
  settings:
    description:
      - Setting names and the values to give them, as PostgreSQL accepts them in C(postgresql.conf) (C(on),
        C(60s), C(16MB), a string such as an C(archive_command)).
    type: dict
    required: true
  reload:
    description:
      - Reload the configuration after writing a change. Off, the settings a reload applies wait for the next
        reload or restart (said in RV(notes)).
    type: bool
    default: true
seealso:
  - name: ALTER SYSTEM
    description: PostgreSQL's documentation of the statement.
    link: https://www.postgresql.org/docs/current/sql-altersystem.html
'''

EXAMPLES = r'''
- name: Archive WAL with pgBackRest (archive_mode needs a restart)
  appcare.maintenance.pg_settings:
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
    settings:
      archive_mode: "on"
      archive_command: pgbackrest --stanza=main archive-push %p
      archive_timeout: 60
  register: archiving

- name: Say when a restart is still needed
  ansible.builtin.debug:
    msg: "restart PostgreSQL to apply {{ archiving.pending_restart | join(', ') }}"
  when: archiving.restart_required
'''

RETURN = r'''
changes:
  description: The settings written, with the value the server would have run with before and the one written.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "archive_mode", "before": "off", "after": "on", "context": "postmaster"}]
queries:
  description: The statements run (or, in check mode, that would run).
  returned: always
  type: list
  elements: str
  sample: ["ALTER SYSTEM SET \"archive_mode\" = 'on'", "SELECT pg_reload_conf()"]
reloaded:
  description: Whether the configuration was reloaded.
  returned: always
  type: bool
restart_required:
  description: Whether a restart is needed to apply a setting (RV(pending_restart) is not empty).
  returned: always
  type: bool
pending_restart:
  description: Settings waiting for a restart - those of O(settings) the server applies at start only whose running
    value differs, and every setting C(pg_settings) marks C(pending_restart) (also ones changed by others).
  returned: always
  type: list
  elements: str
  sample: ["archive_mode"]
settings:
  description: The running values of O(settings) after the call, as C(pg_settings) shows them.
  returned: always
  type: dict
  sample: {"archive_mode": {"setting": "off", "unit": null, "context": "postmaster", "pending_restart": true},
           "archive_timeout": {"setting": "60", "unit": "s", "context": "sighup", "pending_restart": false}}
notes:
  description: What the module could not do or compare as asked (an unreadable C(pg_file_settings), a reload that
    had not taken effect in 10 seconds, O(reload) off).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appcare.maintenance.plugins.module_utils.postgres import (
    HANDLED_ERRORS,
    Session,
    connect_kwargs,
    connection_argument_spec,
    failure_message,
)
from ansible_collections.appcare.maintenance.plugins.module_utils.server_settings import (
    apply_settings,
    validate_settings,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        settings=dict(type='dict', required=True),
        reload=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        connect_kwargs(params, 'validation only')
        validate_settings(params['settings'])
        with Session(params, 'appcare.maintenance.pg_settings', read_only=False) as session:
            result = apply_settings(session, params['settings'], check_mode=module.check_mode,
                                    reload=params['reload'])
    except HANDLED_ERRORS as exc:
        module.fail_json(msg=failure_message('setting the server settings', exc))
    module.exit_json(changed=bool(result['changes']), **result)


if __name__ == '__main__':
    main()
