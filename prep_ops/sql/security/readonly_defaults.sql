-- Roles that own tables in the public schema (or the current user when there are none), and
-- whether tables they create later will be readable by the read-only role (default privileges).
WITH owners AS (
    SELECT DISTINCT c.relowner AS owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
    UNION
    SELECT oid FROM pg_roles WHERE rolname = current_user
      AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p'))
)
SELECT pg_get_userbyid(o.owner) AS owner,
       EXISTS (SELECT 1 FROM pg_default_acl d
               CROSS JOIN LATERAL aclexplode(d.defaclacl) a
               WHERE d.defaclrole = o.owner AND d.defaclobjtype = 'r'
                 AND d.defaclnamespace IN (0, 'public'::regnamespace)
                 AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
                 AND a.privilege_type = 'SELECT') AS covered
FROM owners o
ORDER BY 1
