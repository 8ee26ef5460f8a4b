-- Who can do what on which object, from the catalogs: every role except the built-in pg_* ones
-- (or only those named) plus PUBLIC, against this database, its schemas and the tables, views and
-- sequences in them. One row per role, object and privilege the role holds, with how it holds it:
-- superuser, owner (or member of the owner), granted (directly), PUBLIC, or member of <role>.
-- Relations that belong to an extension (pg_stat_statements' views, granted to PUBLIC by the
-- extension itself) are left out: they come and go with the extension, not with the database's grants.
WITH roles AS (
    SELECT oid, rolname::text AS name, rolsuper AS superuser
    FROM pg_roles
    WHERE rolname !~ '^pg_' AND (%(roles)s::text[] IS NULL OR rolname = ANY(%(roles)s))
    UNION ALL
    SELECT 0, 'PUBLIC', false
    WHERE %(roles)s::text[] IS NULL OR 'PUBLIC' = ANY(%(roles)s)
), objects AS (
    SELECT 'database' AS kind, NULL::text AS schema, datname::text AS name, oid, datdba AS owner,
           coalesce(datacl, acldefault('d', datdba)) AS acl
    FROM pg_database WHERE datname = current_database()
    UNION ALL
    SELECT 'schema', NULL, nspname::text, oid, nspowner, coalesce(nspacl, acldefault('n', nspowner))
    FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_)'
    UNION ALL
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                          WHEN 'f' THEN 'foreign table' ELSE 'table' END,
           n.nspname::text, c.relname::text, c.oid, c.relowner,
           coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
), privileges AS (
    SELECT 'database' AS kind, unnest(ARRAY['CONNECT', 'CREATE', 'TEMPORARY']) AS privilege
    UNION ALL SELECT 'schema', unnest(ARRAY['USAGE', 'CREATE'])
    UNION ALL SELECT 'sequence', unnest(ARRAY['USAGE', 'SELECT', 'UPDATE'])
    UNION ALL SELECT k, unnest(%(table_privileges)s::text[])
    FROM unnest(ARRAY['table', 'view', 'materialized view', 'foreign table']) AS k
), held AS (
    SELECT r.oid AS role_oid, r.name AS role, r.superuser, o.kind, o.schema, o.name AS object, o.owner, o.acl, p.privilege
    FROM roles r
    CROSS JOIN objects o
    JOIN privileges p ON p.kind = o.kind
    WHERE CASE
        WHEN r.oid = 0 THEN EXISTS (SELECT 1 FROM aclexplode(o.acl) a WHERE a.grantee = 0 AND a.privilege_type = p.privilege)
        WHEN o.kind = 'database' THEN has_database_privilege(r.oid, o.oid, p.privilege)
        WHEN o.kind = 'schema' THEN has_schema_privilege(r.oid, o.oid, p.privilege)
        WHEN o.kind = 'sequence' THEN has_sequence_privilege(r.oid, o.oid, p.privilege)
        ELSE has_table_privilege(r.oid, o.oid, p.privilege)
    END
)
SELECT h.role, h.kind, h.schema, h.object, h.privilege,
       CASE
           WHEN h.superuser THEN 'superuser'
           WHEN h.role_oid <> 0 AND pg_has_role(h.role_oid, h.owner, 'USAGE') THEN 'owner'
           WHEN EXISTS (SELECT 1 FROM aclexplode(h.acl) a WHERE a.grantee = h.role_oid AND a.privilege_type = h.privilege)
               THEN CASE WHEN h.role_oid = 0 THEN 'PUBLIC' ELSE 'granted' END
           WHEN EXISTS (SELECT 1 FROM aclexplode(h.acl) a WHERE a.grantee = 0 AND a.privilege_type = h.privilege)
               THEN 'PUBLIC'
           ELSE 'member of ' || coalesce((
               SELECT string_agg(DISTINCT g.rolname, ', ')
               FROM aclexplode(h.acl) a JOIN pg_roles g ON g.oid = a.grantee
               WHERE a.privilege_type = h.privilege AND a.grantee <> h.role_oid
                 AND pg_has_role(h.role_oid, a.grantee, 'USAGE')), 'owner')
       END AS via
FROM held h
ORDER BY h.role, h.kind, h.schema NULLS FIRST, h.object, h.privilege
