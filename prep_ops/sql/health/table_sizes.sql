-- Tables by size on disk (bytes), largest first, with the planner's row estimate.
-- Measuring a relation takes a share lock on it, its indexes and its TOAST table, which would
-- queue behind an ACCESS EXCLUSIVE lock (VACUUM FULL, REINDEX, LOCK TABLE, some ALTER TABLE):
-- such tables get the planner's page estimate instead, so the health check never waits on them.
WITH exclusive AS (
    SELECT DISTINCT relation AS oid
    FROM pg_locks
    WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock'
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
), tables AS (
    SELECT c.oid, n.nspname AS schema_name, c.relname AS table_name, c.relpages, c.reltuples,
           (c.oid IN (SELECT oid FROM exclusive)
            OR c.reltoastrelid IN (SELECT oid FROM exclusive)
            OR EXISTS (SELECT 1 FROM pg_index i
                       WHERE i.indrelid = c.oid AND i.indexrelid IN (SELECT oid FROM exclusive))) AS locked
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'm', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%%'
      AND n.nspname NOT LIKE 'pg_temp%%'
), sized AS (
    SELECT schema_name, table_name, reltuples, locked,
           CASE WHEN locked THEN relpages::bigint * current_setting('block_size')::bigint
                ELSE pg_total_relation_size(oid) END AS total_bytes,
           CASE WHEN locked THEN relpages::bigint * current_setting('block_size')::bigint
                ELSE pg_relation_size(oid) END AS table_bytes,
           CASE WHEN locked THEN NULL ELSE pg_indexes_size(oid) END AS index_bytes
    FROM tables
)
SELECT schema_name, table_name, total_bytes, table_bytes, index_bytes,
       CASE WHEN reltuples < 0 THEN NULL ELSE reltuples::bigint END AS estimated_rows,
       locked AS estimated_size
FROM sized
ORDER BY total_bytes DESC NULLS LAST, schema_name, table_name
LIMIT %(limit)s
