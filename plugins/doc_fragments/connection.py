# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - If not set, the C(PGHOST) environment variable is used; without either, libpq's default
        Unix socket is used.
    type: str
  login_port:
    description:
      - TCP port of the server (also the suffix of the Unix socket file).
      - Falls back to the C(PGPORT) environment variable.
    type: int
    default: 5432
  login_user:
    description:
      - Role to log in as. A role with C(pg_monitor) is enough for the read-only modules.
      - Falls back to the C(PGUSER) environment variable.
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user). Never logged or returned.
      - Falls back to the C(PGPASSWORD) environment variable; libpq also reads C(~/.pgpass).
    type: str
  login_db:
    description:
      - Database to connect to.
      - Falls back to the C(PGDATABASE) environment variable.
    type: str
    default: postgres
  login_unix_socket:
    description:
      - Directory of the server's Unix socket. Takes precedence over O(login_host).
    type: path
  ssl_mode:
    description:
      - libpq C(sslmode) of the connection. Use V(verify-full) with O(ca_cert) against servers
        reached over untrusted networks (Supabase, managed services).
      - Falls back to the C(PGSSLMODE) environment variable.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File with the certificate authorities that signed the server's certificate (libpq C(sslrootcert)).
      - Falls back to the C(PGSSLROOTCERT) environment variable.
    type: path
    aliases: [ssl_rootcert]
  connect_timeout:
    description:
      - Seconds to wait for the connection to be established (at least 1).
      - Falls back to the C(PGCONNECT_TIMEOUT) environment variable.
    type: int
    default: 10
  statement_timeout:
    description:
      - Upper bound in seconds for every statement the module runs, set on its own session only
        (never in C(postgresql.conf)). V(0) means no limit.
    type: int
    default: 60
notes:
  - Every call opens one session and sets C(application_name) to C(appcare.maintenance.<module>), so its
    queries are easy to recognise in C(pg_stat_activity) and excluded from the module's own findings.
  - The options can be set once for all database modules of the collection with
    C(module_defaults) and the action group C(group/appcare.maintenance.postgresql).
requirements:
  - psycopg2 (or psycopg2-binary) on the managed host
'''
