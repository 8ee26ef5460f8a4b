-- The size of this database on disk, in bytes.
SELECT current_database() AS database_name, pg_database_size(current_database()) AS bytes
