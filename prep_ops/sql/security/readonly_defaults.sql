-- Per schema of %(schemas)s, the roles that own tables there (or the current user where there are
-- none), and whether tables they create there later will be readable by the read-only role (default
-- privileges for that schema or for every schema).
WITH schemas AS (
    SELECT oid, nspname FROM pg_namespace WHERE nspname = ANY(%(schemas)s)
), owners AS (
    SELECT DISTINCT s.oid AS schema_oid, s.nspname, c.relowner AS owner
    FROM schemas s JOIN pg_class c ON c.relnamespace = s.oid
    WHERE c.relkind IN ('r', 'p')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    UNION
    SELECT s.oid, s.nspname, r.oid
    FROM schemas s, pg_roles r
    WHERE r.rolname = current_user
      AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = s.oid AND c.relkind IN ('r', 'p'))
)
SELECT o.nspname AS schema, pg_get_userbyid(o.owner) AS owner,
       EXISTS (SELECT 1 FROM pg_default_acl d
               CROSS JOIN LATERAL aclexplode(d.defaclacl) a
               WHERE d.defaclrole = o.owner AND d.defaclobjtype = 'r'
                 AND d.defaclnamespace IN (0, o.schema_oid)
                 AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
                 AND a.privilege_type = 'SELECT') AS covered
FROM owners o
ORDER BY o.nspname = 'public' DESC, o.nspname, 2
