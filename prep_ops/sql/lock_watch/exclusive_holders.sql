-- The relations of this database on which another session (or a prepared transaction: no pid) holds an
-- ACCESS EXCLUSIVE lock (VACUUM FULL, REINDEX, LOCK TABLE, most ALTER TABLE), each with its holder: pid,
-- application, user, state and since when its transaction is open (PostgreSQL records no lock's start).
-- Also the sessions still waiting for one (not granted): an ALTER TABLE queued behind a long transaction
-- makes every later read of its table queue behind it, so a read gives up with no lock granted to
-- anyone; `behind` is whom such a request waits for (pg_blocking_pids). Granted ones first.
-- pg_locks, pg_class and pg_stat_activity only: it never waits on the lock it reports. Another session's
-- temporary tables are left out (no dump or checksum reads them).
SELECT format('%I.%I', n.nspname, c.relname) AS relation, l.pid, a.application_name, a.usename AS user_name,
       a.state, a.xact_start, extract(epoch FROM now() - a.xact_start)::float8 AS xact_seconds,
       l.granted, CASE WHEN NOT l.granted THEN array_remove(pg_blocking_pids(l.pid), pg_backend_pid()) END AS behind
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.pid IS DISTINCT FROM pg_backend_pid()
  AND c.relpersistence <> 't'
ORDER BY NOT l.granted, a.xact_start NULLS FIRST, l.pid, relation
