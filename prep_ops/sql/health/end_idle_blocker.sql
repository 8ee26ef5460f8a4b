-- End one session that sits idle in an open transaction while others wait for its locks, and wait
-- up to 5 s for it to be gone. Nothing happens when it is no longer idle in a transaction here, has
-- sat idle there less than the given minimum (an application between two statements), or no longer
-- blocks any session of this database (it committed and began another transaction, or the pid now
-- belongs to another session): what was listed a moment ago is checked again as it ends.
SELECT pg_terminate_backend(b.pid, 5000)
FROM pg_stat_activity b
WHERE b.pid = %(pid)s
  AND b.datname = current_database()
  AND b.state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND b.state_change <= now() - make_interval(secs => %(min_idle)s)
  AND EXISTS (SELECT 1 FROM pg_stat_activity w
              WHERE w.datname = current_database() AND w.wait_event_type = 'Lock'
                AND b.pid = ANY (pg_blocking_pids(w.pid)))
