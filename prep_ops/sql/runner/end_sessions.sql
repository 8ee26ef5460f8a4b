-- End the sessions of one runbook run whose worker died: its kernel and the client programs it ran name
-- the run's tag in their application_name (db.tagged). The wait field: ", <ms>" where the server can wait for
-- each session to be gone (PostgreSQL 14+), else nothing. One row per session: whether it ended.
SELECT pg_catalog.pg_terminate_backend(pid{wait}) AS ended
FROM pg_catalog.pg_stat_activity
WHERE application_name LIKE %(tag)s AND pid <> pg_catalog.pg_backend_pid()
