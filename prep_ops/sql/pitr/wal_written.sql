-- Where this server's WAL ends now: the insert position on a primary, the replayed position on a
-- standby (NULL there before replay began). A location past it was never written by this server.
SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END::text
