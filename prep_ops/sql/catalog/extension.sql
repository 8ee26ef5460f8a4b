-- An extension installed in this database: the schema it lives in and its version (no row: not installed).
SELECT n.nspname, e.extversion
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = %(name)s
