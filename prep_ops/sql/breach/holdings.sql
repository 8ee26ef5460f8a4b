-- What one role holds itself beyond its direct grants on databases, schemas, tables, views and
-- sequences (those come from security/grants.sql, the one read of them; breach.holdings adds them):
-- role attributes beyond LOGIN, memberships, privileges on columns and routines, default privileges
-- granted to it, and the objects it owns. One row per object and privilege, in the columns of
-- breach.holdings. What it gets through PUBLIC is left out: no REVOKE aimed at one role takes that away.
WITH suspect AS (
    SELECT oid, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls
    FROM pg_roles WHERE rolname = %(role)s
), held AS (
    SELECT 'attribute' AS kind, NULL::text AS schema, NULL::text AS object, NULL::text AS detail,
           v.attribute AS privilege, NULL::text AS grantor
    FROM suspect s
    CROSS JOIN LATERAL (VALUES ('SUPERUSER', s.rolsuper), ('CREATEROLE', s.rolcreaterole), ('CREATEDB', s.rolcreatedb),
                               ('REPLICATION', s.rolreplication), ('BYPASSRLS', s.rolbypassrls)) AS v(attribute, held)
    WHERE v.held
    UNION ALL
    SELECT 'member of', NULL, g.rolname::text, NULL,
           CASE WHEN m.admin_option THEN 'MEMBER WITH ADMIN OPTION' ELSE 'MEMBER' END, gr.rolname::text
    FROM suspect s
    JOIN pg_auth_members m ON m.member = s.oid
    JOIN pg_roles g ON g.oid = m.roleid
    LEFT JOIN pg_roles gr ON gr.oid = m.grantor
    UNION ALL
    SELECT 'column', n.nspname::text, c.relname::text, t.attname::text, a.privilege_type, gr.rolname::text
    FROM suspect s
    CROSS JOIN pg_attribute t
    JOIN pg_class c ON c.oid = t.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL aclexplode(t.attacl) a
    LEFT JOIN pg_roles gr ON gr.oid = a.grantor
    WHERE a.grantee = s.oid AND NOT t.attisdropped
    UNION ALL
    SELECT 'routine', n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid), a.privilege_type,
           gr.rolname::text
    FROM suspect s
    CROSS JOIN pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    CROSS JOIN LATERAL aclexplode(p.proacl) a
    LEFT JOIN pg_roles gr ON gr.oid = a.grantor
    WHERE a.grantee = s.oid
    UNION ALL
    -- object: the role whose new objects get the privilege; schema NULL: in every schema
    SELECT 'default privileges', n.nspname::text, o.rolname::text,
           CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS'
                                WHEN 'T' THEN 'TYPES' ELSE 'SCHEMAS' END,
           a.privilege_type, NULL
    FROM suspect s
    CROSS JOIN pg_default_acl d
    JOIN pg_roles o ON o.oid = d.defaclrole
    LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
    CROSS JOIN LATERAL aclexplode(d.defaclacl) a
    WHERE a.grantee = s.oid
    UNION ALL
    SELECT 'owns', n.nspname::text, c.relname::text,
           CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END,
           'OWNER', NULL
    FROM suspect s
    JOIN pg_class c ON c.relowner = s.oid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    SELECT 'owns', n.nspname::text, p.proname::text, 'routine', 'OWNER', NULL
    FROM suspect s
    JOIN pg_proc p ON p.proowner = s.oid
    JOIN pg_namespace n ON n.oid = p.pronamespace
    UNION ALL
    SELECT 'owns', NULL, n.nspname::text, 'schema', 'OWNER', NULL
    FROM suspect s
    JOIN pg_namespace n ON n.nspowner = s.oid
    UNION ALL
    SELECT 'owns', NULL, d.datname::text, 'database', 'OWNER', NULL
    FROM suspect s
    JOIN pg_database d ON d.datdba = s.oid
)
SELECT kind, schema, object, detail, privilege, grantor
FROM held
