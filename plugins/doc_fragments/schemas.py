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
      - V(supabase) makes what a restore into a new Supabase project needs, as Supabase's CLI recipe does (roles,
        the application's schema, and data that includes C(auth) and C(storage)). The application dump
        (C(database.dump)) leaves out the schemas Supabase manages, as C(supabase db dump) does for a schema dump -
        the same list that is the default of O(exclude_schemas) in the other database modules
        (M(appcare.maintenance.pg_health_info) and the rest) - C(information_schema), C(pg_*), C(_analytics),
        C(_realtime), C(_supavisor), C(auth), C(etl), C(extensions), C(pgbouncer), C(realtime), C(storage),
        C(supabase_functions), C(supabase_migrations), C(cron), C(dbdev), C(graphql), C(graphql_public), C(net),
        C(pgmq), C(pgsodium), C(pgsodium_masks), C(pgtle), C(repack), C(tiger), C(tiger_data), C(timescaledb_*),
        C(_timescaledb_*), C(topology), C(vault).
      - The users and the files' rows are not left behind - a second archive, the platform part
        (C(platform.dump)), holds the schema and data of C(auth) and C(storage) (users, identities, sessions,
        buckets, object rows), taken from the same snapshot as the application dump. Only the rows the platform
        writes itself in a new project are left out (C(auth.schema_migrations), C(storage.migrations), and the
        vector bucket tables C(storage.buckets_vectors) and C(storage.vector_indexes)), as the CLI's data dump does.
        Supabase's own backups are no replacement - they are deleted with the project, and do not hold the files
        stored through the Storage API (see the notes).
      - With O(appcare.maintenance.pg_backup#module:globals), the roles go into C(roles.sql)
        (C(pg_dumpall --roles-only)) instead of C(globals.sql), with the statements on the roles Supabase creates
        in every project commented out, as the CLI's C(--role-only) dump does; on Supabase password hashes cannot be
        read, so set O(appcare.maintenance.pg_backup#module:no_role_passwords) and set the passwords of custom login
        roles again after a restore.
      - Data of the other schemas Supabase manages (C(supabase_functions), C(cron), C(pgmq), C(net)), which the CLI's
        data dump also carries, is not backed up.
      - V(none) dumps every schema not excluded otherwise.
    type: str
    choices: [none, supabase]
    default: none
notes:
  - The Supabase schema list is the Supabase CLI's own list of internal schemas, C(InternalSchemas) in
    C(pkg/migration/dump.go) of U(https://github.com/supabase/cli); the data left out of the platform part follows
    C(excludedSchemas) there and the C(--exclude-table) list of C(pkg/migration/scripts/dump_data.sh), the roles
    script C(reservedRoles), C(allowedConfigs) and C(pkg/migration/scripts/dump_role.sh).
  - Supabase's recipe, "Backup and restore using the CLI"
    (U(https://supabase.com/docs/guides/platform/migrating-within-supabase/backup-restore)), dumps roles, schema and
    data (auth and storage included) separately and restores the data with C(SET session_replication_role = replica);
    C(playbooks/supabase_restore.yml) restores a backup of this preset the same way into a new project.
  - Supabase's "Database Backups" (U(https://supabase.com/docs/guides/platform/backups)) - once a project is deleted
    all its data is removed, backups included; database backups do not include objects stored via the Storage API;
    passwords of custom roles are not stored in daily backups.
'''
