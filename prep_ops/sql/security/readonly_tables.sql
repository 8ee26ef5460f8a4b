-- Tables of the public schema the read-only role cannot read, and their owners.
SELECT c.relname AS name, pg_get_userbyid(c.relowner) AS owner
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT has_table_privilege(%(role)s, c.oid, 'SELECT')
ORDER BY c.relname
