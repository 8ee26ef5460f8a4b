-- Buffer cache hits and disk reads of this database's tables and their indexes (8 kB blocks),
-- counted since the statistics were last reset. Statistics views only: no table is read.
SELECT schemaname AS schema_name, relname AS table_name,
       heap_blks_hit AS table_hits, heap_blks_read AS table_reads,
       coalesce(idx_blks_hit, 0) AS index_hits, coalesce(idx_blks_read, 0) AS index_reads
FROM pg_statio_user_tables
ORDER BY heap_blks_hit + heap_blks_read + coalesce(idx_blks_hit + idx_blks_read, 0) DESC, schemaname, relname
