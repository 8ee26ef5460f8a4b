-- What identifies a database: the cluster's system identifier (when readable) and the name.
SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       current_database() AS database, inet_server_addr()::text AS address, inet_server_port() AS port
