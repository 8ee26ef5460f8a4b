-- Tables, views and foreign tables of the schemas %(schemas)s the read-only role cannot read, and their
-- owners (an extension's own relations left out: the extension grants those itself).
SELECT n.nspname AS schema, c.relname AS name, pg_get_userbyid(c.relowner) AS owner
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT has_table_privilege(%(role)s, c.oid, 'SELECT')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname = 'public' DESC, n.nspname, c.relname
