-- The pg_hba.conf rules the server uses (superusers only), in order.
SELECT line_number, type, database, user_name, address, netmask, auth_method, error
FROM pg_hba_file_rules
ORDER BY line_number
