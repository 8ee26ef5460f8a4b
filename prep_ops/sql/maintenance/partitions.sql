-- Every partition below the partitioned tables %(parents)s (regclass text), at any depth, labelled as
-- table_status labels tables: the name alone in public, else schema.name.
SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END AS table_name
FROM unnest(%(parents)s::text[]) AS p(parent)
CROSS JOIN LATERAL pg_partition_tree(p.parent::regclass) t
JOIN pg_class c ON c.oid = t.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE t.relid <> p.parent::regclass
ORDER BY 1
