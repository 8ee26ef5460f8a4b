-- Since when index usage has been counted in this database: the latest of its statistics reset, the
-- server's start (counts before it may be lost) and, where this role may read the data directory,
-- the database's creation (the mtime of its PG_VERSION file, written by CREATE DATABASE).
SELECT greatest(d.stats_reset, pg_postmaster_start_time(), %(created)s::timestamptz) AS since,
       now() - greatest(d.stats_reset, pg_postmaster_start_time(), %(created)s::timestamptz) AS collected
FROM pg_stat_database d
WHERE d.datname = current_database()
