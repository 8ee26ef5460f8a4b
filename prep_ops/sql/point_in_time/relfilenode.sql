-- The file node of one table, named by schema and name (any characters: nothing is parsed).
SELECT pg_relation_filenode(c.oid)::bigint
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = %(table)s
