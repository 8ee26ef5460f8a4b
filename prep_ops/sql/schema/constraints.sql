-- Constraints of the public schema's tables: primary, foreign, unique and check.
SELECT rel.relname AS table_name,
       con.conname AS constraint_name,
       CASE con.contype WHEN 'p' THEN 'primary key' WHEN 'f' THEN 'foreign key'
                        WHEN 'u' THEN 'unique' WHEN 'c' THEN 'check' ELSE con.contype::text END AS kind,
       pg_get_constraintdef(con.oid) AS definition
FROM pg_constraint con
JOIN pg_class rel ON rel.oid = con.conrelid
JOIN pg_namespace n ON n.oid = rel.relnamespace
WHERE n.nspname = 'public' AND con.contype IN ('p', 'f', 'u', 'c')
ORDER BY rel.relname, con.contype, con.conname
