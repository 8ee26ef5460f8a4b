-- The schema and name of each table a manifest names `schema.table` (the two joined by a dot, which
-- either may hold): more than one row when the label fits several tables.
SELECT n.nspname, c.relname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname || '.' || c.relname = %(table)s AND c.relkind IN ('r', 'p')
