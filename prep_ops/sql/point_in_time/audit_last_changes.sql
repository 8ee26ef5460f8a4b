-- The last logged change of each row of the given tables since a moment: the change that left the row
-- as it is now (or removed it), with when, in which transaction, and how.
SELECT DISTINCT ON (schema_name, table_name, row_key)
       CASE WHEN schema_name ~ '[."]' THEN '"' || replace(schema_name, '"', '""') || '"' ELSE schema_name END || '.' || CASE WHEN table_name ~ '[."]' THEN '"' || replace(table_name, '"', '""') || '"' ELSE table_name END AS table_name, row_key, at, transaction_id, operation
FROM audit.log
WHERE at >= %(since)s
  AND row_key IS NOT NULL
  AND CASE WHEN schema_name ~ '[."]' THEN '"' || replace(schema_name, '"', '""') || '"' ELSE schema_name END || '.' || CASE WHEN table_name ~ '[."]' THEN '"' || replace(table_name, '"', '""') || '"' ELSE table_name END = ANY(%(tables)s)
ORDER BY schema_name, table_name, row_key, id DESC
