-- Foreign keys between user tables: (referencing table, referenced table), as schema.table.
SELECT cn.nspname || '.' || c.relname AS child, pn.nspname || '.' || p.relname AS parent
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = con.confrelid
JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE con.contype = 'f'
