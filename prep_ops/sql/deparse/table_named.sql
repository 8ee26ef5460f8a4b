-- The schema, name and owner of the table a report names `schema.table` (as objects/constraints.sql
-- writes it).
SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) AS owner
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE CASE WHEN n.nspname ~ '[."]' THEN '"' || replace(n.nspname, '"', '""') || '"' ELSE n.nspname END || '.' || CASE WHEN c.relname ~ '[."]' THEN '"' || replace(c.relname, '"', '""') || '"' ELSE c.relname END = %(table)s AND c.relkind IN ('r', 'p')
