# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Supabase-like database for tests: the API roles, schemas ``auth``, ``storage`` and ``extensions`` with the
tables and functions the checks read, and the default grants of a Supabase project.

The shapes follow Supabase's public migrations: ``auth.uid()``, ``auth.role()``, ``auth.email()`` and ``auth.jwt()``
read the request's JWT claims from ``request.jwt.claim(s)`` settings as in supabase/auth
(``migrations/20221208132122_backfill_email_last_sign_in_at.up.sql`` and the earlier ``auth`` function
migrations); ``auth.users``, ``auth.identities`` and ``auth.audit_log_entries`` carry the columns the checks use;
``storage.buckets`` (with ``public``) and ``storage.objects`` (RLS on) as supabase/storage's
``migrations/tenant/0002-storage-schema.sql`` creates them. Only what the tests need: not a full replica.
"""

from __future__ import annotations

API_ROLES = ('anon', 'authenticated', 'service_role', 'authenticator')

_ROLE_OPTIONS = (('anon', 'NOLOGIN'), ('authenticated', 'NOLOGIN'), ('service_role', 'NOLOGIN BYPASSRLS'),
                 ('authenticator', "LOGIN NOINHERIT PASSWORD 'authenticator-pw'"))

_CLAIM = ("coalesce(nullif(current_setting('request.jwt.claim.%s', true), ''), "
          "(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> '%s'))")

_STATEMENTS = (
    'GRANT anon, authenticated, service_role TO authenticator',
    'CREATE SCHEMA IF NOT EXISTS extensions',
    'CREATE SCHEMA auth',
    'CREATE TABLE auth.users (instance_id uuid, id uuid PRIMARY KEY, aud varchar(255), role varchar(255), '
    'email varchar(255), encrypted_password varchar(255), email_confirmed_at timestamptz, '
    'last_sign_in_at timestamptz, raw_app_meta_data jsonb, raw_user_meta_data jsonb, created_at timestamptz, '
    'updated_at timestamptz)',
    'CREATE TABLE auth.identities (provider_id text NOT NULL, user_id uuid NOT NULL REFERENCES auth.users ON DELETE '
    'CASCADE, identity_data jsonb NOT NULL, provider text NOT NULL, last_sign_in_at timestamptz, '
    'created_at timestamptz, updated_at timestamptz, id uuid PRIMARY KEY DEFAULT gen_random_uuid())',
    "CREATE TABLE auth.audit_log_entries (instance_id uuid, id uuid NOT NULL PRIMARY KEY, payload json, "
    "created_at timestamptz, ip_address varchar(64) NOT NULL DEFAULT '')",
    "CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT (%s)::uuid $$" % (_CLAIM % ('sub', 'sub')),
    "CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$ SELECT %s $$" % (_CLAIM % ('role', 'role')),
    "CREATE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $$ SELECT %s $$" % (_CLAIM % ('email', 'email')),
    "CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$ SELECT coalesce(nullif("
    "current_setting('request.jwt.claim', true), ''), nullif(current_setting('request.jwt.claims', true), ''))::jsonb $$",
    'GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role',
    'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA auth TO anon, authenticated, service_role',
    'CREATE SCHEMA storage',
    'CREATE TABLE storage.buckets (id text PRIMARY KEY, name text NOT NULL, owner uuid, public boolean DEFAULT false, '
    'created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now())',
    'CREATE TABLE storage.objects (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), bucket_id text REFERENCES '
    'storage.buckets, name text, owner uuid, metadata jsonb, created_at timestamptz DEFAULT now(), '
    'updated_at timestamptz DEFAULT now(), last_accessed_at timestamptz DEFAULT now())',
    'ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY',
    'GRANT USAGE ON SCHEMA storage TO anon, authenticated, service_role',
    'GRANT ALL ON storage.buckets, storage.objects TO anon, authenticated, service_role',
    'GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role',
    'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role',
    'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role',
    'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role',
)


def supabase_like(db):
    """Make the database of ``db`` (anything with ``sql(statement, args=None)``) look like a Supabase project.
    The roles are cluster-wide and created only when missing, so several databases of one server can use it."""
    for role, options in _ROLE_OPTIONS:
        db.sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
               "CREATE ROLE %s %s; END IF; END $$" % (role, role, options))
    for statement in _STATEMENTS:
        db.sql(statement)


def drop_api_roles(server):
    """Drop the API roles from the cluster of ``server`` (after the databases that use them are gone)."""
    for role in reversed(API_ROLES):
        server.execute("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                       "EXECUTE 'DROP ROLE %s'; END IF; END $$" % (role, role))


def pgmq_like(db, queue, readers=('anon', 'authenticated', 'service_role')):
    """A pgmq queue as Supabase Queues sets one up (the shapes of pgmq's ``pgmq.create`` and Supabase's
    ``pgmq_public`` wrappers, reduced to what the tests need): the queue table ``pgmq.q_<queue>``, its archive
    ``pgmq.a_<queue>``, schema ``pgmq_public`` with ``send``, and the grants "expose Queues via PostgREST" gives
    ``readers``. Row-level security stays off, as on a queue created without it."""
    db.sql('CREATE SCHEMA IF NOT EXISTS pgmq')
    db.sql('CREATE SCHEMA IF NOT EXISTS pgmq_public')
    for prefix, extra in (('q', ''), ('a', ', archived_at timestamptz NOT NULL DEFAULT now()')):
        db.sql('CREATE TABLE pgmq.%s_%s (msg_id bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY, read_ct int NOT NULL '
               'DEFAULT 0, enqueued_at timestamptz NOT NULL DEFAULT now(), vt timestamptz NOT NULL DEFAULT now(), '
               'message jsonb%s)' % (prefix, queue, extra))
    db.sql("CREATE OR REPLACE FUNCTION pgmq_public.send(queue_name text, message jsonb, sleep_seconds int DEFAULT 0) "
           "RETURNS SETOF bigint LANGUAGE plpgsql SET search_path = '' AS $$ BEGIN RETURN QUERY EXECUTE "
           "format('INSERT INTO pgmq.%I (vt, message) VALUES (now() + make_interval(secs => $2), $1) RETURNING msg_id', "
           "'q_' || queue_name) USING message, sleep_seconds; END $$")
    roles = ', '.join(readers)
    db.sql('GRANT USAGE ON SCHEMA pgmq, pgmq_public TO %s' % roles)
    db.sql('GRANT SELECT, INSERT, UPDATE, DELETE ON pgmq.q_%s, pgmq.a_%s TO %s' % (queue, queue, roles))
    db.sql('GRANT EXECUTE ON FUNCTION pgmq_public.send(text, jsonb, int) TO %s' % roles)


# What a new Supabase project has in auth and storage beyond ``supabase_like``: the migration-history tables with the
# rows the services write when they start (supabase/auth migrations/00_init_auth_schema.up.sql creates
# auth.schema_migrations; supabase/storage migrations/tenant/0002-storage-schema.sql creates storage.migrations), the
# generated columns (identities.email: supabase/auth migrations/20221215195800_add_identities_email_column.up.sql;
# objects.path_tokens: supabase/storage migrations/tenant/0003-pathtoken-column.sql) and Storage's update trigger
# (supabase/storage migrations/tenant/0011-add-trigger-to-auto-update-updated_at-column.sql).
_PLATFORM_STATEMENTS = (
    'CREATE TABLE auth.schema_migrations (version varchar(255) NOT NULL PRIMARY KEY)',
    "INSERT INTO auth.schema_migrations SELECT to_char(timestamp '2021-07-10' + g * interval '1 day', "
    "'YYYYMMDDHH24MISS') FROM generate_series(0, 60) g",
    'CREATE TABLE storage.migrations (id integer PRIMARY KEY, name varchar(100) UNIQUE NOT NULL, hash varchar(40) '
    'NOT NULL, executed_at timestamp DEFAULT current_timestamp)',
    "INSERT INTO storage.migrations (id, name, hash) SELECT g, 'migration-' || g, md5(g::text) "
    "FROM generate_series(0, 40) g",
    "ALTER TABLE auth.identities ADD COLUMN email text GENERATED ALWAYS AS (lower(identity_data->>'email')) STORED",
    "ALTER TABLE storage.objects ADD COLUMN path_tokens text[] GENERATED ALWAYS AS (string_to_array(name, '/')) STORED",
    'CREATE FUNCTION storage.update_updated_at_column() RETURNS trigger LANGUAGE plpgsql AS '
    '$$ BEGIN NEW.updated_at = now(); RETURN NEW; END $$',
    'CREATE TRIGGER update_objects_updated_at BEFORE UPDATE ON storage.objects FOR EACH ROW '
    'EXECUTE PROCEDURE storage.update_updated_at_column()',
)


def supabase_platform_tables(db):
    """Add to a ``supabase_like`` database what a new Supabase project also has in auth and storage (see above)."""
    for statement in _PLATFORM_STATEMENTS:
        db.sql(statement)


# An application as Supabase's guides build one: profiles keyed by the auth user (created by a trigger on auth.users,
# as in Supabase's user-management guide), and documents that point at a user and a storage object.
_APP_STATEMENTS = (
    'CREATE TABLE public.profiles (id uuid PRIMARY KEY REFERENCES auth.users ON DELETE CASCADE, full_name text)',
    'CREATE FUNCTION public.handle_new_user() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = '
    "'' AS $$ BEGIN INSERT INTO public.profiles (id, full_name) VALUES (NEW.id, NEW.raw_user_meta_data->>'full_name'); "
    'RETURN NEW; END $$',
    'CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users FOR EACH ROW EXECUTE PROCEDURE '
    'public.handle_new_user()',
    'CREATE TABLE public.documents (id bigserial PRIMARY KEY, owner uuid NOT NULL REFERENCES auth.users, '
    'object_id uuid REFERENCES storage.objects, title text)',
    'ALTER TABLE public.documents ENABLE ROW LEVEL SECURITY',
    'CREATE POLICY documents_owner ON public.documents FOR SELECT TO authenticated USING (owner = auth.uid())',
    "CREATE POLICY objects_owner ON storage.objects FOR SELECT TO authenticated USING (owner = auth.uid())",
)


def seed_auth_and_storage(db, users=25, objects_per_user=2):
    """Users (with bcrypt-shaped password hashes), their email identities, two buckets, object rows and the
    application rows that point at them, in a ``supabase_like`` + ``supabase_platform_tables`` database.
    Returns {table: rows} of what was made."""
    for statement in _APP_STATEMENTS:
        db.sql(statement)
    db.sql("INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at, "
           "raw_app_meta_data, raw_user_meta_data, created_at, updated_at) "
           "SELECT '00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated', "
           "'user' || g || '@example.org', '$2a$10$' || substr(md5(random()::text) || md5(random()::text), 1, 53), "
           "now(), '{\"provider\": \"email\"}', jsonb_build_object('full_name', 'User ' || g), now(), now() "
           "FROM generate_series(1, %s) g", (users,))
    db.sql("INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at) "
           "SELECT id::text, id, jsonb_build_object('sub', id::text, 'email', email), 'email', now(), now() "
           "FROM auth.users")
    db.sql("INSERT INTO storage.buckets (id, name, public) VALUES ('avatars', 'avatars', true), "
           "('documents', 'documents', false)")
    db.sql("INSERT INTO storage.objects (bucket_id, name, owner, metadata) "
           "SELECT CASE WHEN g = 1 THEN 'avatars' ELSE 'documents' END, u.id || '/file-' || g || '.pdf', u.id, "
           "jsonb_build_object('size', 1000 + g, 'mimetype', 'application/pdf') "
           "FROM auth.users u, generate_series(1, %s) g", (objects_per_user,))
    db.sql("INSERT INTO public.documents (owner, object_id, title) "
           "SELECT owner, id, 'Document ' || name FROM storage.objects WHERE bucket_id = 'documents'")
    return {table: db.sql('SELECT count(*) FROM %s' % table)[0][0]
            for table in ('auth.users', 'auth.identities', 'storage.buckets', 'storage.objects', 'public.profiles',
                          'public.documents')}
