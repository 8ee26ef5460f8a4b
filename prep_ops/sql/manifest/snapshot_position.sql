-- The first statement of a backup's REPEATABLE READ transaction: the snapshot is taken as it starts,
-- then, in this order, it is exported for pg_dump and described for the manifest (verify --chain):
-- the WAL insert position right after it (NULL on a standby: no WAL of its own), the time, and the
-- snapshot's transactions (xmin:xmax:in-progress, pg_current_snapshot is this transaction's own).
SELECT pg_export_snapshot() AS exported,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END AS lsn,
       clock_timestamp() AS taken,
       pg_current_snapshot()::text AS xids
