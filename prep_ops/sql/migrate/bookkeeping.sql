-- The runner's own record of the files it applied (like Flyway's history table), beside the
-- guide's schema_version table, so that an edited migration file, up or down, can be noticed.
-- down_sha256 came later: ADD COLUMN IF NOT EXISTS upgrades the table of an older prep-ops.
CREATE TABLE IF NOT EXISTS public.prep_ops_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE public.prep_ops_migrations ADD COLUMN IF NOT EXISTS down_sha256 TEXT
