-- Every index of the public schema with what decides whether two indexes do the same job:
-- key columns (or expressions), operator classes, predicate, uniqueness; plus validity and use.
SELECT t.relname AS table_name,
       i.relname AS index_name,
       am.amname AS method,
       ix.indisunique AS is_unique,
       ix.indisprimary AS is_primary,
       ix.indisvalid AS is_valid,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid) AS backs_constraint,
       ARRAY(SELECT coalesce(a.attname, pg_get_indexdef(ix.indexrelid, k.n, true))
             FROM generate_subscripts(ix.indkey, 1) AS k(n)
             LEFT JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = ix.indkey[k.n] AND ix.indkey[k.n] <> 0
             WHERE k.n < ix.indnkeyatts
             ORDER BY k.n) AS columns,
       ARRAY(SELECT oc.opcname FROM generate_subscripts(ix.indclass, 1) AS k(n)
             JOIN pg_opclass oc ON oc.oid = ix.indclass[k.n] ORDER BY k.n) AS opclasses,
       pg_get_expr(ix.indpred, ix.indrelid) AS predicate,
       coalesce(s.idx_scan, 0) AS scans,
       pg_relation_size(ix.indexrelid) AS size_bytes,
       pg_get_indexdef(ix.indexrelid) AS definition
FROM pg_index ix
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_class t ON t.oid = ix.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = i.relam
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = ix.indexrelid
WHERE n.nspname = 'public'
ORDER BY t.relname, i.relname
