-- Tables whose changes are logged: those with the row trigger calling audit.log_change(), with
-- the trigger's arguments (key columns, left-out columns), NUL-terminated, as bytea. A partitioned
-- table's partitions carry clones of its trigger (tgparentid set): the parent alone is the one logged.
SELECT n.nspname AS schema, c.relname AS name,
       t.tgargs AS arguments
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE t.tgname = 'audit_log_row' AND t.tgfoid = 'audit.log_change()'::regprocedure AND t.tgparentid = 0
ORDER BY 1, 2
