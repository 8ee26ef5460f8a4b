-- Client sessions on the whole server, by state, against max_connections.
SELECT count(*) AS used,
       current_setting('max_connections')::int AS max_connections,
       count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state = 'idle') AS idle,
       count(*) FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')) AS idle_in_transaction
FROM pg_stat_activity
WHERE backend_type = 'client backend'
