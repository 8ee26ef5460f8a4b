-- Sessions this role may count but not look into: another role's session, to a role without
-- pg_read_all_stats (or superuser), has its type, state, statement, times and waits empty in
-- pg_stat_activity. Counted on the server (those with a database: other roles' client sessions,
-- and any autovacuum or parallel workers among them) and in this database.
SELECT count(*) FILTER (WHERE datid IS NOT NULL) AS on_server,
       count(*) FILTER (WHERE datname = current_database()) AS here
FROM pg_stat_activity
WHERE backend_type IS NULL
