-- The entries a probe change left: the probe user's INSERT, UPDATE and DELETE, oldest first.
SELECT id, at, login_role, acting_role, operation, table_name, row_key, old_values, new_values, changed_columns, transaction_id
FROM audit.log
WHERE schema_name = 'public' AND table_name = 'users'
  AND coalesce(new_values, old_values) ->> 'username' = %(username)s
ORDER BY id
