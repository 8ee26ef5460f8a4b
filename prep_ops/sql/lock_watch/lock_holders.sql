-- After a DDL statement gave up waiting for a lock (lock_timeout): the sessions holding a lock on a table of
-- this database in a transaction begun before the change started (%(since)s), or whose transaction start
-- this role may not see (pg_stat_activity hides it without pg_read_all_stats), with the tables: the
-- likely reason (a long transaction, a query reading the table). The change's own wait is over, so
-- PostgreSQL can no longer say exactly whom it waited for (pg_blocking_pids); these are the candidates,
-- at most 5 sessions, oldest transaction first. Columns as lock_watch.Holder's, a row per table.
WITH held AS (
    SELECT DISTINCT l.pid, n.nspname, c.relname
    FROM pg_locks l
    JOIN pg_class c ON c.oid = l.relation
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE l.locktype = 'relation' AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.pid <> pg_backend_pid()
      AND c.relkind IN ('r', 'p', 'm', 'v', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
), sessions AS (
    SELECT a.pid, a.application_name, a.usename, a.state, a.xact_start
    FROM pg_stat_activity a
    WHERE a.pid IN (SELECT pid FROM held) AND (a.xact_start < %(since)s OR a.xact_start IS NULL)
    ORDER BY a.xact_start NULLS LAST, a.pid
    LIMIT 5
)
SELECT format('%%I.%%I', h.nspname, h.relname) AS relation, s.pid, s.application_name, s.usename AS user_name,
       s.state, s.xact_start, extract(epoch FROM now() - s.xact_start)::float8 AS xact_seconds,
       true AS granted, NULL::int[] AS behind
FROM sessions s
JOIN held h ON h.pid = s.pid
ORDER BY s.xact_start NULLS LAST, s.pid, h.nspname, h.relname
