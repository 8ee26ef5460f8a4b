-- Constraints and indexes of the user tables, by name, with their definitions. NOT NULL
-- constraints (pg_constraint rows since PostgreSQL 18) are left out: the columns carry them.
SELECT CASE WHEN n.nspname ~ '[."]' THEN '"' || replace(n.nspname, '"', '""') || '"' ELSE n.nspname END || '.' || CASE WHEN c.relname ~ '[."]' THEN '"' || replace(c.relname, '"', '""') || '"' ELSE c.relname END AS table_name, 'constraint' AS kind, con.conname AS name,
       pg_get_constraintdef(con.oid) AS definition
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND con.contype <> 'n'
UNION ALL
SELECT CASE WHEN i.schemaname ~ '[."]' THEN '"' || replace(i.schemaname, '"', '""') || '"' ELSE i.schemaname END || '.' || CASE WHEN i.tablename ~ '[."]' THEN '"' || replace(i.tablename, '"', '""') || '"' ELSE i.tablename END, 'index', i.indexname, i.indexdef
FROM pg_indexes i
WHERE i.schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 3
