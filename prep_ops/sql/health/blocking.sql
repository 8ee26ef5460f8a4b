-- Who blocks whom in this database: one row per waiting session and session it waits for.
-- pg_blocking_pids is only asked about sessions waiting on a lock (it is not free).
-- A blocker with pid 0 is a prepared transaction: it has no row in pg_stat_activity.
SELECT w.pid AS blocked_pid, w.usename AS blocked_user, w.application_name AS blocked_application,
       extract(epoch FROM now() - coalesce(l.wait_start, w.query_start))::float8 AS wait_seconds,
       left(w.query, %(width)s) AS blocked_query,
       blocker.pid AS blocking_pid, b.usename AS blocking_user, b.state AS blocking_state,
       extract(epoch FROM now() - b.xact_start)::float8 AS blocking_xact_seconds,
       extract(epoch FROM now() - b.state_change)::float8 AS blocking_idle_seconds,
       left(b.query, %(width)s) AS blocking_query
FROM pg_stat_activity w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker(pid)
LEFT JOIN pg_stat_activity b ON b.pid = blocker.pid
LEFT JOIN LATERAL (SELECT min(waitstart) AS wait_start FROM pg_locks
                   WHERE pid = w.pid AND NOT granted) l ON true
WHERE w.datname = current_database()
  AND w.wait_event_type = 'Lock'
  AND w.pid <> pg_backend_pid()
ORDER BY wait_seconds DESC, blocked_pid, blocking_pid
