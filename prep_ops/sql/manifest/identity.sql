-- What identifies a database: the cluster's system identifier (when readable), the name and OID, and
-- where the server listens (NULL over a Unix socket).
SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       current_database() AS database,
       (SELECT oid FROM pg_database WHERE datname = current_database())::bigint AS database_oid,
       inet_server_addr()::text AS address, inet_server_port() AS port
