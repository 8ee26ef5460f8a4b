-- Foreign keys between user tables: (referencing table, referenced table), as schema.table.
SELECT CASE WHEN cn.nspname ~ '[."]' THEN '"' || replace(cn.nspname, '"', '""') || '"' ELSE cn.nspname END || '.' || CASE WHEN c.relname ~ '[."]' THEN '"' || replace(c.relname, '"', '""') || '"' ELSE c.relname END AS child, CASE WHEN pn.nspname ~ '[."]' THEN '"' || replace(pn.nspname, '"', '""') || '"' ELSE pn.nspname END || '.' || CASE WHEN p.relname ~ '[."]' THEN '"' || replace(p.relname, '"', '""') || '"' ELSE p.relname END AS parent
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = con.confrelid
JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE con.contype = 'f'
