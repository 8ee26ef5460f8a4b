-- The runner's own record of the files it applied (like Flyway's history table), beside the
-- guide's schema_version table, so that an edited migration file can be noticed.
CREATE TABLE IF NOT EXISTS prep_ops_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
