-- What amcheck can check: every table, materialized view and valid B-tree index with storage,
-- in every schema (pg_catalog included), or only the tables named in %(tables)s and their indexes.
-- TOAST relations are checked through their table (check_toast); other sessions' temporary
-- tables cannot be read; partitioned parents have no storage (their partitions are listed).
-- Named as a person reads them, whatever this session's search_path: public's and the catalogs' by name,
-- any other schema's with it (quoted where needed); checked by oid.
SELECT c.oid AS relation_oid,
       CASE WHEN n.nspname IN ('public', 'pg_catalog') THEN quote_ident(c.relname)
            ELSE quote_ident(n.nspname) || '.' || quote_ident(c.relname) END AS relation,
       CASE WHEN c.relkind = 'i' THEN 'index' ELSE 'table' END AS kind,
       CASE WHEN tn.nspname IN ('public', 'pg_catalog') THEN quote_ident(t.relname)
            ELSE quote_ident(tn.nspname) || '.' || quote_ident(t.relname) END AS table_name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_class t ON t.oid = coalesce(i.indrelid, c.oid)
LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
LEFT JOIN pg_am am ON am.oid = c.relam
WHERE n.nspname <> 'pg_toast'
  AND c.relpersistence <> 't'
  AND (c.relkind IN ('r', 'm')
       OR (c.relkind = 'i' AND am.amname = 'btree' AND i.indisvalid AND i.indisready))
  AND (%(tables)s::oid[] IS NULL OR t.oid = ANY (%(tables)s::oid[]))
ORDER BY n.nspname = 'pg_catalog', table_name, c.relkind = 'i', relation
