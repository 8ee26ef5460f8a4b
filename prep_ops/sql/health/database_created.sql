-- When this database was created: CREATE DATABASE writes PG_VERSION in its folder once (NULL when the
-- database lives in another tablespace, whose folder is elsewhere).
SELECT (pg_stat_file('base/' || d.oid || '/PG_VERSION', true)).modification AS created
FROM pg_database d
WHERE d.datname = current_database()
