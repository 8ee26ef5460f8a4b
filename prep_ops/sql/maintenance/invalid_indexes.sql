-- The INVALID indexes of the tables %(tables)s (regclass text; NULL: every user table), of the partitions
-- below them and of their TOAST tables, each named with its table (a TOAST index with the table it
-- belongs to). `reindex_leftover`: what a killed or failed REINDEX CONCURRENTLY left, its new copy
-- <index>_ccnew[N] or the old index it could not drop, <index>_ccold[N], that no other session holds a
-- lock on (a REINDEX CONCURRENTLY running now holds one on both until it ends): never used, still
-- maintained on every write, and rebuilt as a duplicate by a plain REINDEX. An index of a partitioned
-- parent (relkind I) is invalid until every partition has one: not listed.
SELECT n.nspname AS schema_name, c.relname AS index_name, coalesce(owner.oid, t.oid)::regclass::text AS table_name,
       c.relname ~ '_cc(new|old)[0-9]*$' AND NOT EXISTS (
           SELECT FROM pg_locks l
           WHERE l.locktype = 'relation' AND l.relation = c.oid AND l.pid <> pg_backend_pid()
             AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
       ) AS reindex_leftover
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class t ON t.oid = i.indrelid
LEFT JOIN pg_class owner ON t.relkind = 't' AND owner.reltoastrelid = t.oid
WHERE NOT i.indisvalid AND c.relkind = 'i'
  AND coalesce(owner.relnamespace, t.relnamespace) NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  AND (%(tables)s::text[] IS NULL
       OR coalesce(owner.oid, t.oid) IN (SELECT p.name::regclass FROM unnest(%(tables)s::text[]) AS p(name)
                                         UNION  -- a table that is no partition or parent has no tree
                                         SELECT tree.relid FROM unnest(%(tables)s::text[]) AS p(name)
                                         CROSS JOIN LATERAL pg_partition_tree(p.name::regclass) tree))
ORDER BY 3, 2
