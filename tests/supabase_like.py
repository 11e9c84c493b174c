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
