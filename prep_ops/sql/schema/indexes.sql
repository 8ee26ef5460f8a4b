-- Indexes of the public schema with their definitions and sizes.
SELECT i.tablename AS table_name, i.indexname AS index_name, i.indexdef AS definition,
       pg_size_pretty(pg_relation_size(format('%I.%I', i.schemaname, i.indexname)::regclass)) AS size
FROM pg_indexes i
WHERE i.schemaname = 'public'
ORDER BY i.tablename, i.indexname
