-- After a DDL statement gave up waiting for a lock (lock_timeout): the tables of this database on which
-- another session holds a lock in a transaction begun before the change started (%(since)s), with the
-- session: the likely reason (a long transaction, a query reading the table). The change's own wait is
-- over, so PostgreSQL can no longer say exactly whom it waited for (pg_blocking_pids); these are the
-- candidates, oldest transaction first. Columns as lock_watch.Holder's.
SELECT DISTINCT ON (a.xact_start, l.pid, c.oid)
       format('%%I.%%I', n.nspname, c.relname) AS relation, l.pid, a.application_name, a.usename AS user_name,
       a.state, a.xact_start, extract(epoch FROM now() - a.xact_start)::float8 AS xact_seconds,
       l.granted, NULL::int[] AS behind
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.pid <> pg_backend_pid()
  AND c.relkind IN ('r', 'p', 'm', 'v', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
  AND a.xact_start < %(since)s
ORDER BY a.xact_start, l.pid, c.oid
LIMIT 10
