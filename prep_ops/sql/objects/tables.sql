-- The user tables of every schema that pg_dump dumps (not the system ones), as schema and name: plain
-- tables and partitions, and with %(parents)s their partitioned parents too. A parent holds no rows of
-- its own (its rows are its partitions'), so what counts rows leaves it out, or would count them twice.
SELECT n.nspname AS schema_name, c.relname AS table_name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (c.relkind = 'r' OR c.relkind = 'p' AND %(parents)s)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 1, 2
