-- The archiver's counters, with the age of the newest archived segment by the server's own clock.
SELECT archived_count, last_archived_wal, last_archived_time,
       extract(epoch FROM now() - last_archived_time)::float8 AS last_archived_age_seconds,
       failed_count, last_failed_wal, last_failed_time
  FROM pg_stat_archiver
