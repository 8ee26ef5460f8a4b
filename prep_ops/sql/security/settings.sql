-- The settings the audit judges; a setting this session may not read is missing from the result.
SELECT name, setting
FROM pg_settings
WHERE name IN ('ssl', 'password_encryption', 'data_checksums', 'listen_addresses', 'unix_socket_directories',
               'unix_socket_permissions', 'port')
