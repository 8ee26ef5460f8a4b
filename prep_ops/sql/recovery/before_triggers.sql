-- The row-level BEFORE INSERT or UPDATE triggers that fire on a normal session's writes (enabled, or
-- enabled ALWAYS) of the table named by schema and table and of every partition under it: the
-- triggers a repair holds off, so the rows it writes are the copy's as they were (a trigger stamping
-- a modification time or recomputing a column would rewrite them). `owned` says whether the session's
-- role may alter the table (it owns it, through membership, or is a superuser).
SELECT n.nspname AS schema, c.relname AS table, t.tgname AS trigger, t.tgenabled::text AS enabled,
       pg_has_role(c.relowner, 'USAGE') AS owned
FROM pg_class named
JOIN pg_namespace named_schema ON named_schema.oid = named.relnamespace
CROSS JOIN LATERAL (  -- a table that is not partitioned has no tree: itself alone
    SELECT relid, level FROM pg_partition_tree(named.oid) UNION SELECT named.oid, 0
) AS tree
JOIN pg_class c ON c.oid = tree.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_trigger t ON t.tgrelid = c.oid
WHERE named_schema.nspname = %(schema)s AND named.relname = %(table)s
  AND NOT t.tgisinternal
  AND t.tgenabled IN ('O', 'A')
  AND t.tgtype::int & 1 = 1          -- FOR EACH ROW
  AND t.tgtype::int & 2 = 2          -- BEFORE
  AND t.tgtype::int & (4 | 16) <> 0  -- INSERT or UPDATE
ORDER BY tree.level, n.nspname, c.relname, t.tgname
