-- The privileges granted directly on this database, its schemas and the tables, views and sequences
-- in them (one place for every reader: roles.plan, the security audit's PUBLIC findings, a breached
-- role's holdings). One row per object, grantee and privilege, with its grantor; an object without
-- such grants once, with NULL role, privilege and grantor. role is the grantee's name, or PUBLIC.
-- Filters, each NULL for all: %(schema)s limits the schemas (the database row stays), %(names)s the
-- grantees ('PUBLIC' included). %(every_database)s adds the server's other databases, %(system_schemas)s
-- pg_catalog, information_schema and the toast and temporary schemas (a grant there is held all the
-- same), %(defaults)s reads a never-changed ACL as the built-in default it stands for (the owner's
-- privileges, PUBLIC's CONNECT and TEMPORARY on a database) instead of no grant. from_extension marks
-- the relations an extension made (pg_stat_statements' views), which it grants itself.
WITH objects AS (
    SELECT 'database' AS kind, NULL::text AS schema, datname::text AS name,
           CASE WHEN %(defaults)s THEN coalesce(datacl, acldefault('d', datdba)) ELSE datacl END AS acl,
           false AS from_extension
    FROM pg_database WHERE %(every_database)s OR datname = current_database()
    UNION ALL
    SELECT 'schema', NULL, nspname::text,
           CASE WHEN %(defaults)s THEN coalesce(nspacl, acldefault('n', nspowner)) ELSE nspacl END, false
    FROM pg_namespace
    WHERE (%(schema)s::text IS NULL OR nspname = %(schema)s)
      AND (%(system_schemas)s OR (nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_)'))
    UNION ALL
    SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, n.nspname::text, c.relname::text,
           CASE WHEN %(defaults)s
                THEN coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
                ELSE c.relacl END,
           EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s)
      AND (%(system_schemas)s OR (n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'))
), grants AS (
    SELECT o.kind, o.schema, o.name, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE g.rolname::text END AS role,
           a.privilege_type AS privilege, gr.rolname::text AS grantor
    FROM objects o
    CROSS JOIN LATERAL aclexplode(o.acl) a  -- a NULL ACL (defaults off): no direct grant
    LEFT JOIN pg_roles g ON g.oid = a.grantee
    LEFT JOIN pg_roles gr ON gr.oid = a.grantor
    WHERE %(names)s::text[] IS NULL OR (CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE g.rolname::text END) = ANY(%(names)s)
)
SELECT o.kind, o.schema, o.name, g.role, g.privilege, g.grantor, o.from_extension
FROM objects o
LEFT JOIN grants g ON g.kind = o.kind AND g.schema IS NOT DISTINCT FROM o.schema AND g.name = o.name
ORDER BY o.kind, o.schema NULLS FIRST, o.name, g.role, g.privilege
