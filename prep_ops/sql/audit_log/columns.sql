-- A table's primary-key columns and its binary (bytea) columns, which the log leaves out.
SELECT a.attname AS name,
       coalesce(a.attnum = ANY(i.indkey), false) AS in_key,
       a.atttypid = 'bytea'::regtype AS binary
FROM pg_attribute a
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
