-- Every table of every user schema: not pg_catalog, information_schema, TOAST or temporary schemas,
-- and not tables an extension owns. Partitioned parents (kind 'p', no storage of their own) and
-- partitions (with their parent) are both listed; materialized views too (kind 'm').
SELECT n.nspname AS schema_name,
       c.relname AS table_name,
       c.oid AS table_oid,
       c.relkind AS kind,
       c.relispartition AS is_partition,
       (SELECT p.inhparent::regclass::text FROM pg_inherits p WHERE p.inhrelid = c.oid LIMIT 1) AS parent
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname = 'public' DESC, n.nspname, c.relname
