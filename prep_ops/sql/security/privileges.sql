-- Who can do what on which object, from the catalogs: every role except the built-in pg_* ones
-- (or only those named) plus PUBLIC, against this database, its schemas and the tables, views and
-- sequences in them. One row per role, object and privilege the role holds, with how it holds it:
-- superuser, owner (or member of the owner), granted (directly), PUBLIC, or member of <role>.
-- Relations that belong to an extension (pg_stat_statements' views, granted to PUBLIC by the
-- extension itself) are left out: they come and go with the extension, not with the database's grants.
-- How a privilege is held comes from %(grants)s: the direct grants (kind, schema, name, role, privilege)
-- that security/grants.sql reads, the one read of the ACLs, never-changed ACLs as their defaults.
WITH roles AS (
    SELECT oid, rolname::text AS name, rolsuper AS superuser
    FROM pg_roles
    WHERE rolname !~ '^pg_' AND (%(roles)s::text[] IS NULL OR rolname = ANY(%(roles)s))
    UNION ALL
    SELECT 0, 'PUBLIC', false
    WHERE %(roles)s::text[] IS NULL OR 'PUBLIC' = ANY(%(roles)s)
), objects AS (
    SELECT 'database' AS kind, NULL::text AS schema, datname::text AS name, oid, datdba AS owner
    FROM pg_database WHERE datname = current_database()
    UNION ALL
    SELECT 'schema', NULL, nspname::text, oid, nspowner
    FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_)'
    UNION ALL
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                          WHEN 'f' THEN 'foreign table' ELSE 'table' END,
           n.nspname::text, c.relname::text, c.oid, c.relowner
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
), direct AS (  -- per object of `objects`, who holds which privilege by a grant (PUBLIC's grantee oid: 0)
    SELECT o.oid AS object_oid, o.kind, CASE WHEN g.role = 'PUBLIC' THEN 0 ELSE r.oid END AS grantee,
           g.role AS grantee_name, g.privilege
    FROM jsonb_to_recordset(%(grants)s::jsonb) AS g(kind text, schema text, name text, role text, privilege text)
    JOIN objects o ON g.kind = CASE WHEN o.kind IN ('database', 'schema', 'sequence') THEN o.kind ELSE 'table' END
                  AND g.schema IS NOT DISTINCT FROM o.schema AND g.name = o.name
    LEFT JOIN pg_roles r ON r.rolname = g.role AND g.role <> 'PUBLIC'
), privileges AS (
    SELECT 'database' AS kind, unnest(ARRAY['CONNECT', 'CREATE', 'TEMPORARY']) AS privilege
    UNION ALL SELECT 'schema', unnest(ARRAY['USAGE', 'CREATE'])
    UNION ALL SELECT 'sequence', unnest(ARRAY['USAGE', 'SELECT', 'UPDATE'])
    UNION ALL SELECT k, unnest(%(table_privileges)s::text[])
    FROM unnest(ARRAY['table', 'view', 'materialized view', 'foreign table']) AS k
), held AS (
    SELECT r.oid AS role_oid, r.name AS role, r.superuser, o.kind, o.schema, o.name AS object, o.oid AS object_oid,
           o.owner, p.privilege
    FROM roles r
    CROSS JOIN objects o
    JOIN privileges p ON p.kind = o.kind
    WHERE CASE
        WHEN r.oid = 0 THEN EXISTS (SELECT 1 FROM direct d
                                    WHERE d.object_oid = o.oid AND d.kind = o.kind AND d.grantee = 0 AND d.privilege = p.privilege)
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
           WHEN EXISTS (SELECT 1 FROM direct d WHERE d.object_oid = h.object_oid AND d.kind = h.kind
                                                 AND d.grantee = h.role_oid AND d.privilege = h.privilege)
               THEN CASE WHEN h.role_oid = 0 THEN 'PUBLIC' ELSE 'granted' END
           WHEN EXISTS (SELECT 1 FROM direct d WHERE d.object_oid = h.object_oid AND d.kind = h.kind
                                                 AND d.grantee = 0 AND d.privilege = h.privilege)
               THEN 'PUBLIC'
           ELSE 'member of ' || coalesce((
               SELECT string_agg(DISTINCT d.grantee_name, ', ')
               FROM direct d
               WHERE d.object_oid = h.object_oid AND d.kind = h.kind AND d.privilege = h.privilege
                 AND d.grantee <> 0 AND d.grantee <> h.role_oid
                 AND pg_has_role(h.role_oid, d.grantee, 'USAGE')), 'owner')
       END AS via
FROM held h
ORDER BY h.role, h.kind, h.schema NULLS FIRST, h.object, h.privilege
