-- Where pg_stat_statements is installed in this database (no row: not installed), and the
-- columns its view has: total_exec_time from version 1.8 (PostgreSQL 13), total_time before.
SELECT n.nspname AS schema_name, e.extversion AS version,
       array(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = to_regclass(quote_ident(n.nspname) || '.pg_stat_statements')
               AND a.attnum > 0 AND NOT a.attisdropped) AS columns
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
