-- The latest entries of the audit log, newest first, optionally for one table.
SELECT id, at, login_role, acting_role, operation, schema_name, table_name, row_key,
       old_values, new_values, changed_columns, transaction_id, client_addr, application_name
FROM audit.log
WHERE (%(table)s::text IS NULL OR table_name = %(table)s)
ORDER BY id DESC
LIMIT %(limit)s
