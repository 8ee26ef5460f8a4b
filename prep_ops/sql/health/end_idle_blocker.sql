-- End one session that sits idle in an open transaction while others wait for its locks, and wait
-- up to 5 s for it to be gone. Nothing happens when it is no longer idle in a transaction here
-- (it committed, or the pid now belongs to another session).
SELECT pg_terminate_backend(pid, 5000)
FROM pg_stat_activity
WHERE pid = %(pid)s
  AND datname = current_database()
  AND state IN ('idle in transaction', 'idle in transaction (aborted)')
