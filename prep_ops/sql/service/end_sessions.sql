-- End every session of a role (not this one), waiting up to 5 s for each to be gone.
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) AS ended
FROM pg_stat_activity
WHERE usename = {role} AND pid <> pg_backend_pid()
