-- A small application database modelled on the IMS system of the first operations guide:
-- applicants submit applications, which move through states and carry documents.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

CREATE TABLE applicants (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE applications (
    id            serial PRIMARY KEY,
    applicant_id  bigint NOT NULL REFERENCES applicants (id),
    programme     text NOT NULL,
    state         text NOT NULL CHECK (state IN ('draft', 'submitted', 'under_review', 'approved', 'rejected', 'withdrawn')),
    submitted_at  timestamptz,
    decided_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_applications_state ON applications (state);
CREATE INDEX idx_applications_applicant ON applications (applicant_id);

CREATE TABLE documents (
    id              bigserial PRIMARY KEY,
    application_id  integer NOT NULL REFERENCES applications (id),
    kind            text NOT NULL,
    storage_path    text NOT NULL,
    size_bytes      integer NOT NULL,
    uploaded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_documents_application ON documents (application_id);

INSERT INTO applicants (email, full_name, country, created_at)
SELECT format('applicant%s@example.org', g),
       (ARRAY['Amina', 'Bruno', 'Chen', 'Dara', 'Elif', 'Farid', 'Grace', 'Hugo'])[1 + g % 8] || ' ' ||
       (ARRAY['Okafor', 'Silva', 'Wang', 'Kaur', 'Yilmaz', 'Haddad', 'Mensah', 'Laurent'])[1 + (g / 8) % 8],
       (ARRAY['NG', 'BR', 'CN', 'IN', 'TR', 'LB', 'GH', 'FR'])[1 + g % 8],
       now() - (g % 400) * interval '1 day'
  FROM generate_series(1, 5000) AS g;

INSERT INTO applications (applicant_id, programme, state, submitted_at, decided_at, updated_at)
SELECT 1 + (g % 5000),
       (ARRAY['MSc Data Science', 'MBA', 'BSc Nursing', 'PhD Physics', 'MA Design'])[1 + g % 5],
       s.state,
       CASE WHEN s.state <> 'draft' THEN now() - (g % 300) * interval '1 day' END,
       CASE WHEN s.state IN ('approved', 'rejected') THEN now() - (g % 200) * interval '1 day' END,
       now() - (g % 100) * interval '1 hour'
  FROM generate_series(1, 12000) AS g,
       LATERAL (SELECT (ARRAY['draft', 'submitted', 'submitted', 'under_review', 'under_review', 'approved',
                              'rejected', 'withdrawn'])[1 + (g * 7) % 8] AS state) AS s;

INSERT INTO documents (application_id, kind, storage_path, size_bytes, uploaded_at)
SELECT 1 + (g % 12000),
       (ARRAY['transcript', 'passport', 'cv', 'reference', 'statement'])[1 + g % 5],
       format('applications/%s/%s.pdf', 1 + (g % 12000), md5(g::text)),
       20000 + (g * 7919) % 4000000,
       now() - (g % 300) * interval '1 day'
  FROM generate_series(1, 30000) AS g;

ANALYZE;

-- A monitoring role as the guides recommend for daily checks: no superuser, only pg_monitor.
CREATE ROLE ims_monitor LOGIN PASSWORD 'demo-monitor-password' IN ROLE pg_monitor;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO ims_monitor;
-- A backup role: reads everything, changes nothing.
CREATE ROLE ims_backup LOGIN PASSWORD 'demo-backup-password' IN ROLE pg_read_all_data;
-- A maintenance role for the monthly and quarterly tiers: VACUUM/REINDEX (pg_maintain, PostgreSQL 17+), reading
-- everything for the test restore, and CREATEDB for the scratch database the restore goes into.
CREATE ROLE ims_maintenance LOGIN CREATEDB PASSWORD 'demo-maintenance-password'
  IN ROLE pg_maintain, pg_read_all_data, pg_monitor;

-- Typical application traffic, so pg_stat_statements and the statistics have something to show.
SELECT state, count(*) FROM applications GROUP BY state;
SELECT a.full_name, count(d.id) FROM applicants a JOIN applications p ON p.applicant_id = a.id
  LEFT JOIN documents d ON d.application_id = p.id WHERE a.country = 'GH' GROUP BY a.full_name;
SELECT count(*) FROM documents WHERE kind = 'passport';
