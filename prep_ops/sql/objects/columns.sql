-- Columns of the user tables with their types, in column order.
SELECT CASE WHEN n.nspname ~ '[."]' THEN '"' || replace(n.nspname, '"', '""') || '"' ELSE n.nspname END || '.' || CASE WHEN c.relname ~ '[."]' THEN '"' || replace(c.relname, '"', '""') || '"' ELSE c.relname END AS table_name, a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS data_type, a.attnotnull AS not_null
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1, a.attnum
