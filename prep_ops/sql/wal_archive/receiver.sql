-- The WAL receiver prep-ops streams with (its application_name): what the server sent it, what it flushed,
-- and how far behind the server's own flushed WAL it is (bytes, and the server's measured flush lag).
-- The LSN and lag columns are NULL for a role without pg_read_all_stats; the lag is NULL on a standby.
SELECT pid, state, sent_lsn::text, flush_lsn::text,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_flush_lsn(), flush_lsn)::float8 END AS lag_bytes,
       extract(epoch FROM flush_lag)::float8 AS flush_lag_seconds,
       extract(epoch FROM now() - reply_time)::float8 AS reply_age_seconds
  FROM pg_stat_replication
 WHERE application_name = %(application)s
 ORDER BY backend_start DESC
 LIMIT 1
