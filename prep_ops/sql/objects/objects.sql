-- Every object a dump carries beyond the tables' columns, constraints, indexes and rows, as
-- (kind, name, definition) deparsed by this server. Objects that belong to an extension (created by
-- CREATE EXTENSION, not by the dump) and the system schemas are left out. Privileges are listed as
-- grantee:privilege without the owner's own (a restore with --no-owner changes the owner).
-- Row-level security (enabled, forced), its policies, domains with their constraints, unlogged
-- tables and classic inheritance are listed too: a restore that loses one changes who sees what,
-- or what a table accepts, with every row and column still in place.
WITH user_ns AS (
    SELECT oid, nspname, nspacl, nspowner FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_|toast_temp_)'
), own_rel AS (
    SELECT c.oid, c.relkind, c.relacl, c.relowner, c.relispopulated, c.relpartbound, c.relpersistence,
           c.relrowsecurity, c.relforcerowsecurity,
           quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
    WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
)
SELECT 'schema' AS kind, quote_ident(n.nspname) AS name,
       (SELECT coalesce(string_agg(item, ', ' ORDER BY item), '') FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN ' with grant option' ELSE '' END AS item FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a WHERE a.grantee <> n.nspowner) g) AS definition
FROM user_ns n
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
UNION ALL
SELECT 'extension', e.extname, e.extversion FROM pg_extension e WHERE e.extname <> 'plpgsql'
UNION ALL
SELECT 'view', r.name, pg_get_viewdef(r.oid, true) FROM own_rel r WHERE r.relkind = 'v'
UNION ALL
SELECT 'materialized view', r.name, pg_get_viewdef(r.oid, true) FROM own_rel r WHERE r.relkind = 'm'
UNION ALL
SELECT 'materialized view populated', r.name, r.relispopulated::text FROM own_rel r WHERE r.relkind = 'm'
UNION ALL
SELECT 'partition bound', r.name, pg_get_expr(r.relpartbound, r.oid) FROM own_rel r WHERE r.relpartbound IS NOT NULL
UNION ALL
SELECT 'privileges', r.name,
       (SELECT coalesce(string_agg(item, ', ' ORDER BY item), '') FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN ' with grant option' ELSE '' END AS item FROM aclexplode(coalesce(r.relacl, acldefault('r', r.relowner))) a WHERE a.grantee <> r.relowner) g)
FROM own_rel r WHERE r.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
UNION ALL
SELECT 'column default', r.name || '.' || quote_ident(a.attname), pg_get_expr(d.adbin, d.adrelid)
FROM own_rel r JOIN pg_attrdef d ON d.adrelid = r.oid
JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
UNION ALL
SELECT 'column', r.name || '.' || quote_ident(a.attname),
       concat_ws(' ', CASE a.attidentity WHEN 'a' THEN 'identity always' WHEN 'd' THEN 'identity by default' END,
                 CASE a.attgenerated WHEN 's' THEN 'generated stored' WHEN 'v' THEN 'generated virtual' END,
                 CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                      THEN 'collate ' || a.attcollation::regcollation::text END)
FROM own_rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE r.relkind IN ('r', 'p', 'f') AND (a.attidentity <> '' OR a.attgenerated <> '' OR
      (a.attcollation <> 0 AND a.attcollation <> t.typcollation))
UNION ALL
SELECT 'trigger', r.name || '.' || quote_ident(t.tgname), pg_get_triggerdef(t.oid, true)
FROM own_rel r JOIN pg_trigger t ON t.tgrelid = r.oid
WHERE NOT t.tgisinternal
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
       quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       pg_get_functiondef(p.oid) || E'\n-- privileges: ' || (SELECT coalesce(string_agg(item, ', ' ORDER BY item), '') FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN ' with grant option' ELSE '' END AS item FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE a.grantee <> p.proowner) g)
FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p')
  -- not an extension's, nor one the server made with a type (a range's constructors: made by CREATE TYPE,
  -- owned by the bootstrap superuser, given EXECUTE by no default privilege a dump could carry; see MADE_WITH_A_TYPE)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
UNION ALL
SELECT 'enum', quote_ident(n.nspname) || '.' || quote_ident(t.typname), string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
GROUP BY t.oid, n.nspname
UNION ALL
SELECT 'comment', r.name, obj_description(r.oid, 'pg_class') FROM own_rel r
WHERE obj_description(r.oid, 'pg_class') IS NOT NULL
UNION ALL
SELECT 'comment', r.name || '.' || quote_ident(a.attname), col_description(r.oid, a.attnum)
FROM own_rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE col_description(r.oid, a.attnum) IS NOT NULL
UNION ALL
SELECT 'row security', r.name,
       concat_ws(', ', CASE WHEN r.relrowsecurity THEN 'enabled' END, CASE WHEN r.relforcerowsecurity THEN 'forced' END)
FROM own_rel r WHERE r.relrowsecurity OR r.relforcerowsecurity
UNION ALL
SELECT 'policy', r.name || '.' || quote_ident(p.polname),
       concat_ws(' ', CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                 'for ' || CASE p.polcmd WHEN 'r' THEN 'select' WHEN 'a' THEN 'insert' WHEN 'w' THEN 'update'
                                         WHEN 'd' THEN 'delete' ELSE 'all' END,
                 'to ' || (SELECT string_agg(x.role, ', ' ORDER BY x.role)  -- by name: a restore may list them otherwise
                           FROM (SELECT CASE WHEN g = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g) END AS role
                                 FROM unnest(p.polroles) g) x),
                 'using (' || pg_get_expr(p.polqual, p.polrelid) || ')',
                 'with check (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')')
FROM own_rel r JOIN pg_policy p ON p.polrelid = r.oid
UNION ALL
SELECT 'domain', quote_ident(n.nspname) || '.' || quote_ident(t.typname),
       concat_ws(' ', format_type(t.typbasetype, t.typtypmod),
                 CASE WHEN t.typcollation <> 0 AND t.typcollation <> b.typcollation
                      THEN 'collate ' || t.typcollation::regcollation::text END,
                 CASE WHEN t.typnotnull THEN 'not null' END,
                 'default ' || t.typdefault,
                 (SELECT string_agg(quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid), ', ' ORDER BY k.conname)
                  FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype <> 'n'))
FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace JOIN pg_type b ON b.oid = t.typbasetype
WHERE t.typtype = 'd'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
UNION ALL
SELECT 'unlogged table', r.name, 'unlogged' FROM own_rel r WHERE r.relpersistence = 'u' AND r.relkind IN ('r', 'p')
UNION ALL
SELECT 'inheritance', r.name,
       (SELECT string_agg(quote_ident(pn.nspname) || '.' || quote_ident(pc.relname), ', ' ORDER BY i.inhseqno)
        FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE i.inhrelid = r.oid)
FROM own_rel r
WHERE r.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = r.oid)
