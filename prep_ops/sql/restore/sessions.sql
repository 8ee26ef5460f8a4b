-- The other sessions connected to database %(name)s: ended with pg_terminate_backend when %(end)s.
SELECT pid, usename, application_name, CASE WHEN %(end)s THEN pg_terminate_backend(pid) END AS ended
FROM pg_stat_activity
WHERE datname = %(name)s AND pid <> pg_backend_pid()
