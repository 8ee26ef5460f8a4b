-- The first column of a table (any user may read the catalog), for a harmless UPDATE probe.
SELECT a.attname
FROM pg_attribute a
WHERE a.attrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = %(schema)s AND c.relname = %(table)s)
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
LIMIT 1
