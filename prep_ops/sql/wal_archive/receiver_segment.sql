-- The WAL segment holding the last byte each receiver streaming under prep-ops' application_name flushed
-- (flush_lsn - 1: at a segment boundary, the completed segment before it; wal_stream.streaming_problem
-- looks for it, or its .partial, in the archive folder). NULL where the flush position is unreadable (a
-- role without pg_read_all_stats), not reported yet, or on a standby (no pg_walfile_name there).
SELECT CASE WHEN pg_is_in_recovery() OR flush_lsn IS NULL OR flush_lsn = '0/0' THEN NULL
            ELSE pg_walfile_name(flush_lsn - 1) END
  FROM pg_stat_replication
 WHERE application_name = %(application)s AND state = 'streaming'
