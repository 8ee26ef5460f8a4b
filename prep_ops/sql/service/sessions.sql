-- The sessions a role has open on the server, oldest first (any database).
SELECT pid, datname AS database, state, backend_start, xact_start,
       left(query, 120) AS query, application_name, client_addr::text AS client_addr
FROM pg_stat_activity
WHERE usename = %(role)s AND pid <> pg_backend_pid()
ORDER BY backend_start
