-- Tables whose changes are logged: those with the row trigger calling audit.log_change(), with
-- the trigger's arguments (key columns, left-out columns), NUL-terminated, as bytea.
SELECT n.nspname AS schema, c.relname AS name,
       t.tgargs AS arguments
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE t.tgname = 'audit_log_row' AND t.tgfoid = 'audit.log_change()'::regprocedure
ORDER BY 1, 2
