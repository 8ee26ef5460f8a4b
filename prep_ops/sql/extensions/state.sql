-- An extension in this database: the schema it is installed in (NULL: not installed), and whether
-- this server offers it to install.
SELECT n.nspname AS schema,
       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = %(name)s) AS available
FROM (SELECT 1) one
LEFT JOIN pg_extension e ON e.extname = %(name)s
LEFT JOIN pg_namespace n ON n.oid = e.extnamespace
