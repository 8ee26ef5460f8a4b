-- Of the indexes (schema, name) in %(schemas)s and %(names)s, those a killed CREATE INDEX CONCURRENTLY
-- left: INVALID, and no build of them in progress now (a build still running is invalid too, until it
-- ends; it is left alone).
SELECT n.nspname AS schema_name, c.relname AS index_name
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid
  AND (n.nspname, c.relname) IN (SELECT * FROM unnest(%(schemas)s::text[], %(names)s::text[]))
  AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)
ORDER BY 1, 2
