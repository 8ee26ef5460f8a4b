-- What one role did to the logged tables, oldest first: the entries it made logged in as itself or
-- acting as it (SET ROLE); with a NULL role, everyone's. Only entries after %(after)s (a log id,
-- e.g. the log's position when the role was locked out), and of those the latest %(limit)s.
SELECT id, at, login_role, acting_role, operation, schema_name, table_name, row_key, changed_columns,
       old_values, new_values, client_addr::text AS client_addr, application_name, transaction_id
FROM (
    SELECT *
    FROM audit.log
    WHERE (%(role)s::text IS NULL OR login_role = %(role)s OR acting_role = %(role)s)
      AND id > %(after)s
    ORDER BY id DESC
    LIMIT %(limit)s
) latest
ORDER BY id
