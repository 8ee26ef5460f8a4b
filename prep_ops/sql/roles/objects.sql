-- This database, the schema, and every table, view and sequence in it, with the privileges
-- granted on each directly to a role of the set (a NULL ACL is the built-in default, which
-- grants them nothing). One row per object and privilege; objects without such grants once,
-- with NULL role and privilege.
WITH objects AS (
    SELECT 'database' AS kind, datname::text AS name, datacl AS acl
    FROM pg_database WHERE datname = current_database()
    UNION ALL
    SELECT 'schema', nspname::text, nspacl FROM pg_namespace WHERE nspname = %(schema)s
    UNION ALL
    SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, c.relname::text, c.relacl
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
), grants AS (
    SELECT o.kind, o.name, g.rolname::text AS role, a.privilege_type AS privilege
    FROM objects o
    CROSS JOIN LATERAL aclexplode(o.acl) a
    JOIN pg_roles g ON g.oid = a.grantee
    WHERE g.rolname = ANY(%(names)s)
)
SELECT o.kind, o.name, g.role, g.privilege
FROM objects o
LEFT JOIN grants g ON g.kind = o.kind AND g.name = o.name
ORDER BY o.kind, o.name, g.role, g.privilege
