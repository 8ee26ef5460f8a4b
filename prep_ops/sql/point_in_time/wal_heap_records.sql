-- The heap records (insert, update, delete) of the given relations in this database between a WAL
-- location and another (flushed), one row per record and block: the block and offset of the tuple it wrote or removed
-- (from the record's description), its transaction and where it starts. pg_walinspect, PostgreSQL 16+.
SELECT start_lsn::text AS start_lsn, xid::text::bigint AS xid, relfilenode::bigint AS relfilenode,
       relblocknumber::bigint AS block, split_part(record_type, '+', 1) AS kind,
       coalesce(substring(description FROM 'new_off: ([0-9]+)'),
                substring(description FROM '(?:^|[^_])off: ([0-9]+)'))::int AS off
FROM pg_get_wal_block_info(%(start)s::pg_lsn, %(end)s::pg_lsn, false)
WHERE resource_manager = 'Heap'
  AND block_id = 0
  AND relforknumber = 0
  AND reldatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND relfilenode = ANY(%(nodes)s::oid[])
  AND split_part(record_type, '+', 1) IN ('INSERT', 'UPDATE', 'HOT_UPDATE', 'DELETE')
ORDER BY start_lsn
