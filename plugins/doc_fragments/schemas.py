# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # O(exclude_schemas) of the modules that judge or maintain objects (plugins/module_utils/schemas.py). The
    # default is SUPABASE_SCHEMAS there, in its order (a unit test compares them).
    DOCUMENTATION = r'''
options:
  exclude_schemas:
    description:
      - Schemas whose objects the module leaves alone - it neither judges nor maintains them. Names, or
        patterns as in C(pg_dump --exclude-schema) - C(*) stands for any characters, C(?) for one - matched
        case-sensitively against the schemas of the database.
      - PostgreSQL's own schemas (C(information_schema) and every C(pg_*) schema - catalogs, TOAST,
        temporary schemas) are always left out.
      - The default is the list of schemas Supabase manages (see the notes); they belong to the platform and
        its extensions, so what is found there is not the application's to fix. On a self-hosted server set
        V([]) to cover every schema.
    type: list
    elements: str
    default: [information_schema, 'pg_*', _analytics, _realtime, _supavisor, auth, etl, extensions, pgbouncer,
              realtime, storage, supabase_functions, supabase_migrations, cron, dbdev, graphql, graphql_public, net,
              pgmq, pgsodium, pgsodium_masks, pgtle, repack, tiger, tiger_data, 'timescaledb_*', '_timescaledb_*',
              topology, vault]
notes:
  - The Supabase schema list (the default of O(exclude_schemas) in the modules that have one, and
    O(appcare.maintenance.pg_backup#module:preset=supabase)) is the Supabase CLI's own list of internal
    schemas, C(InternalSchemas) in C(pkg/migration/dump.go) of U(https://github.com/supabase/cli) - the
    schemas C(supabase db dump) leaves out because the platform or one of its extensions owns them.
'''

    # O(preset) of pg_backup: the same list, used only when asked for (a backup leaves nothing out by default).
    SUPABASE_PRESET = r'''
options:
  preset:
    description:
      - V(supabase) leaves out the schemas Supabase manages, as the Supabase CLI's C(supabase db dump) does
        for a schema dump. It is the same list that is the default of O(exclude_schemas) in the other database
        modules (M(appcare.maintenance.pg_health_info) and the rest) - C(information_schema), C(pg_*), C(_analytics),
        C(_realtime), C(_supavisor), C(auth), C(etl), C(extensions), C(pgbouncer), C(realtime), C(storage),
        C(supabase_functions), C(supabase_migrations), C(cron), C(dbdev), C(graphql), C(graphql_public), C(net),
        C(pgmq), C(pgsodium), C(pgsodium_masks), C(pgtle), C(repack), C(tiger), C(tiger_data), C(timescaledb_*),
        C(_timescaledb_*), C(topology), C(vault). The platform recreates those schemas, so the rows of
        C(auth.users) and C(storage.objects) are not in such a backup; Supabase's own platform backups hold them.
      - V(none) dumps every schema not excluded otherwise.
    type: str
    choices: [none, supabase]
    default: none
notes:
  - The Supabase schema list is the Supabase CLI's own list of internal schemas, C(InternalSchemas) in
    C(pkg/migration/dump.go) of U(https://github.com/supabase/cli).
'''
