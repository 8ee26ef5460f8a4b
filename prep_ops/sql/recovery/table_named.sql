-- The schema and name of the table a manifest labels `schema.table` (prep_ops/labels.py: a part holding a
-- dot or a double quote is quoted, so a label fits one table; more than one row only for a label of a
-- manifest written before labels were quoted, which fits several tables).
SELECT n.nspname, c.relname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (CASE WHEN n.nspname ~ '[."]' THEN '"' || replace(n.nspname, '"', '""') || '"' ELSE n.nspname END || '.' ||
       CASE WHEN c.relname ~ '[."]' THEN '"' || replace(c.relname, '"', '""') || '"' ELSE c.relname END = %(table)s
       -- a manifest of before: the names joined by a dot as they are (a.b.c may fit "a.b".c and a."b.c")
       OR (strpos(%(table)s, '"') = 0 AND n.nspname || '.' || c.relname = %(table)s))
  AND c.relkind IN ('r', 'p')
