-- Client sessions in this database except the one asking, with how long each has been in its
-- state, in its statement and in its transaction (seconds), longest transaction first.
SELECT pid, usename AS user_name, application_name, client_addr::text AS client, state,
       wait_event_type, wait_event,
       extract(epoch FROM now() - state_change)::float8 AS state_seconds,
       extract(epoch FROM now() - query_start)::float8 AS query_seconds,
       extract(epoch FROM now() - xact_start)::float8 AS xact_seconds,
       left(query, %(width)s) AS query
FROM pg_stat_activity
WHERE datname = current_database()
  AND backend_type = 'client backend'
  AND pid <> pg_backend_pid()
ORDER BY xact_start NULLS LAST, pid
