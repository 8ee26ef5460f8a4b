-- What amcheck can check: every table, materialized view and valid B-tree index with storage,
-- in every schema (pg_catalog included), or only the tables named in %(tables)s and their indexes.
-- TOAST relations are checked through their table (check_toast); other sessions' temporary
-- tables cannot be read; partitioned parents have no storage (their partitions are listed).
SELECT c.oid::regclass::text AS relation,
       CASE WHEN c.relkind = 'i' THEN 'index' ELSE 'table' END AS kind,
       t.oid::regclass::text AS table_name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_class t ON t.oid = coalesce(i.indrelid, c.oid)
LEFT JOIN pg_am am ON am.oid = c.relam
WHERE n.nspname <> 'pg_toast'
  AND c.relpersistence <> 't'
  AND (c.relkind IN ('r', 'm')
       OR (c.relkind = 'i' AND am.amname = 'btree' AND i.indisvalid AND i.indisready))
  AND (%(tables)s::oid[] IS NULL OR t.oid = ANY (%(tables)s::oid[]))
ORDER BY n.nspname = 'pg_catalog', t.oid::regclass::text, c.relkind = 'i', c.oid::regclass::text
