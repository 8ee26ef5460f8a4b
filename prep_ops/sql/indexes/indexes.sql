-- Every index of every user schema (not the system schemas, not on tables an extension owns) with
-- what decides whether two indexes do the same job: key columns (or expressions), operator classes,
-- predicate, uniqueness; plus validity, use, age (the OID: a lower one was made earlier) and how it
-- sits in a partition tree. An index on a partitioned parent (relkind 'I') has no storage and no
-- statistics of its own: its scans and size are those of its partitions' indexes; an index of a
-- partition that is attached to its parent's index has `parent_index` set (the two are one).
SELECT n.nspname AS schema_name,
       t.relname AS table_name,
       i.relname AS index_name,
       ix.indexrelid::bigint AS index_oid,
       i.relkind = 'I' AS is_partitioned,
       (SELECT p.inhparent::regclass::text FROM pg_inherits p WHERE p.inhrelid = ix.indexrelid LIMIT 1) AS parent_index,
       am.amname AS method,
       ix.indisunique AS is_unique,
       ix.indisprimary AS is_primary,
       ix.indisvalid AS is_valid,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid
               AND c.contype IN ('p', 'u', 'x') AND c.conrelid = ix.indrelid) AS backs_constraint,
       ARRAY(SELECT coalesce(a.attname, pg_get_indexdef(ix.indexrelid, k.n, true))
             FROM generate_subscripts(ix.indkey, 1) AS k(n)
             LEFT JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = ix.indkey[k.n] AND ix.indkey[k.n] <> 0
             WHERE k.n < ix.indnkeyatts
             ORDER BY k.n) AS columns,
       ARRAY(SELECT oc.opcname FROM generate_subscripts(ix.indclass, 1) AS k(n)
             JOIN pg_opclass oc ON oc.oid = ix.indclass[k.n] ORDER BY k.n) AS opclasses,
       pg_get_expr(ix.indpred, ix.indrelid) AS predicate,
       CASE WHEN i.relkind = 'I'
            THEN (SELECT coalesce(sum(s2.idx_scan), 0) FROM pg_partition_tree(ix.indexrelid) pt
                  JOIN pg_stat_user_indexes s2 ON s2.indexrelid = pt.relid)
            ELSE coalesce(s.idx_scan, 0) END::bigint AS scans,
       CASE WHEN i.relkind = 'I'
            THEN (SELECT coalesce(sum(pg_relation_size(pt.relid)), 0) FROM pg_partition_tree(ix.indexrelid) pt)
            ELSE pg_relation_size(ix.indexrelid) END::bigint AS size_bytes,
       pg_get_indexdef(ix.indexrelid) AS definition
FROM pg_index ix
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_class t ON t.oid = ix.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = i.relam
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = ix.indexrelid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = t.oid AND d.deptype = 'e')
ORDER BY n.nspname, t.relname, i.relname
