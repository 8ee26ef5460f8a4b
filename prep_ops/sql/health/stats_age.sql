-- Since when this database's statistics have been collecting: their last reset (NULL: never reset),
-- the server's start (statistics begin empty after it), the snapshot's time, and whether this session
-- may look up when the database was created (pg_stat_file: superuser, or EXECUTE granted).
SELECT d.stats_reset, pg_postmaster_start_time() AS server_start, now() AS now,
       has_function_privilege('pg_stat_file(text, boolean)', 'EXECUTE') AS may_stat_files
FROM pg_stat_database d
WHERE d.datname = current_database()
