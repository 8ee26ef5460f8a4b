-- The columns of one table or view, in column order (no row: there is no such relation). Read by
-- name from the catalog, which any role may read, even without USAGE on the schema.
SELECT a.attname
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = %(name)s
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
