-- The WAL segment the server writes into now (NULL on a standby, which writes none of its own).
SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END
