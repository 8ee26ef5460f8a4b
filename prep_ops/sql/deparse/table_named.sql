-- The schema and name of the table a report names `schema.table` (as objects/constraints.sql writes it).
SELECT n.nspname, c.relname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname || '.' || c.relname = %(table)s AND c.relkind IN ('r', 'p')
