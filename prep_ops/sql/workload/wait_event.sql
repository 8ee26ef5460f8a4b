-- What a session waits for (NULL when it runs or is gone).
SELECT wait_event_type FROM pg_stat_activity WHERE pid = %(pid)s
