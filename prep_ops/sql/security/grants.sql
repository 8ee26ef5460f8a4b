-- The privileges granted directly on this database, its schemas and the tables, views and sequences
-- in them (one place for every reader: roles.plan, the security audit's PUBLIC findings). One row
-- per object, grantee and privilege; an object without such grants once, with NULL role and privilege.
-- role is the grantee's name, or PUBLIC. Filters, each NULL for all: %(schema)s limits the schemas
-- (the database row stays), %(names)s the grantees ('PUBLIC' included). from_extension marks the
-- relations an extension made (pg_stat_statements' views), which it grants itself.
WITH objects AS (
    SELECT 'database' AS kind, NULL::text AS schema, datname::text AS name, datacl AS acl, false AS from_extension
    FROM pg_database WHERE datname = current_database()
    UNION ALL
    SELECT 'schema', NULL, nspname::text, nspacl, false
    FROM pg_namespace
    WHERE (%(schema)s::text IS NULL OR nspname = %(schema)s)
      AND nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_)'
    UNION ALL
    SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, n.nspname::text, c.relname::text, c.relacl,
           EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s)
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
), grants AS (
    SELECT o.kind, o.schema, o.name, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE g.rolname::text END AS role,
           a.privilege_type AS privilege
    FROM objects o
    CROSS JOIN LATERAL aclexplode(o.acl) a  -- a NULL ACL is the built-in default: no direct grant
    LEFT JOIN pg_roles g ON g.oid = a.grantee
    WHERE %(names)s::text[] IS NULL OR (CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE g.rolname::text END) = ANY(%(names)s)
)
SELECT o.kind, o.schema, o.name, g.role, g.privilege, o.from_extension
FROM objects o
LEFT JOIN grants g ON g.kind = o.kind AND g.schema IS NOT DISTINCT FROM o.schema AND g.name = o.name
ORDER BY o.kind, o.schema NULLS FIRST, o.name, g.role, g.privilege
