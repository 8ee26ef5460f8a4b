-- Whether the table named by schema and table is partitioned (its rows are its partitions', each
-- a table the manifest names of its own).
SELECT c.relkind = 'p'
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = %(table)s
