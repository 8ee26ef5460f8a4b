-- Code that runs with the writer's privileges when the given tables are written, owned by a role that
-- is neither a superuser nor %(trusted)s: the functions of enabled triggers (and their WHEN clauses),
-- column defaults, CHECK constraints and index expressions, called directly or through an operator, and
-- the CHECK constraints and DEFAULTs of the domains (and the domains under them) the tables' columns are of.
-- %(tables)s (regclass texts) NULL means every table of the database. Tables that reference a written
-- table by foreign key, and partitions of it, are written too (TRUNCATE ... CASCADE, ON DELETE actions,
-- routing of rows), so they count.
WITH RECURSIVE edges(parent, child) AS (
    SELECT confrelid, conrelid FROM pg_constraint WHERE contype = 'f'
    UNION
    SELECT inhparent, inhrelid FROM pg_inherits
), written(rel) AS (
    SELECT c.oid
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
      AND (%(tables)s::text[] IS NULL OR c.oid = ANY (SELECT to_regclass(t) FROM unnest(%(tables)s::text[]) t))
    UNION
    SELECT e.child FROM edges e JOIN written w ON e.parent = w.rel
), domains(rel, column_name, domain) AS (
    SELECT att.attrelid, att.attname::text, dom.oid  -- a column of a domain, or an array of one
    FROM pg_attribute att JOIN written w ON w.rel = att.attrelid
    JOIN pg_type ty ON ty.oid = att.atttypid
    JOIN pg_type dom ON dom.typtype = 'd' AND dom.oid IN (ty.oid, ty.typelem)
    WHERE att.attnum > 0 AND NOT att.attisdropped
    UNION
    SELECT d.rel, d.column_name, ty.typbasetype
    FROM domains d JOIN pg_type ty ON ty.oid = d.domain
    JOIN pg_type base ON base.oid = ty.typbasetype AND base.typtype = 'd'
), uses(rel, kind, name, class, obj) AS (
    SELECT t.tgrelid, 'trigger', t.tgname::text, d.refclassid, d.refobjid
    FROM pg_trigger t JOIN pg_depend d ON d.classid = 'pg_trigger'::regclass AND d.objid = t.oid
    WHERE t.tgenabled <> 'D' AND NOT t.tgisinternal
    UNION
    SELECT a.adrelid, 'default', att.attname::text, d.refclassid, d.refobjid
    FROM pg_attrdef a JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = a.oid
    JOIN pg_attribute att ON att.attrelid = a.adrelid AND att.attnum = a.adnum
    UNION
    SELECT con.conrelid, 'check constraint', con.conname::text, d.refclassid, d.refobjid
    FROM pg_constraint con JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = con.oid
    WHERE con.contype = 'c'
    UNION
    SELECT i.indrelid, 'index', ic.relname::text, d.refclassid, d.refobjid
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
    UNION
    SELECT dm.rel, 'domain check', con.conname::text || ' (column ' || dm.column_name || ')', d.refclassid, d.refobjid
    FROM domains dm JOIN pg_constraint con ON con.contypid = dm.domain AND con.contype = 'c'
    JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = con.oid
    UNION  -- a domain's DEFAULT: run for a column a write leaves out (the domain depends on what it calls)
    SELECT dm.rel, 'domain default', ty.typname::text || ' (column ' || dm.column_name || ')', d.refclassid, d.refobjid
    FROM domains dm JOIN pg_type ty ON ty.oid = dm.domain
    JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.objid = dm.domain
    WHERE ty.typdefaultbin IS NOT NULL
), code(rel, kind, name, fn) AS (
    -- a function used, or the function behind an operator used
    SELECT u.rel, u.kind, u.name, CASE WHEN u.class = 'pg_proc'::regclass THEN u.obj ELSE o.oprcode::oid END
    FROM uses u LEFT JOIN pg_operator o ON u.class = 'pg_operator'::regclass AND o.oid = u.obj
    WHERE u.class = 'pg_proc'::regclass OR o.oid IS NOT NULL
)
SELECT tn.nspname AS schema, tc.relname AS table, code.kind, code.name,
       pn.nspname AS function_schema, p.proname AS function_name,
       pg_get_function_identity_arguments(p.oid) AS function_arguments, o.rolname AS owner
FROM code
JOIN written w ON w.rel = code.rel
JOIN pg_class tc ON tc.oid = code.rel JOIN pg_namespace tn ON tn.oid = tc.relnamespace
JOIN pg_proc p ON p.oid = code.fn JOIN pg_namespace pn ON pn.oid = p.pronamespace
JOIN pg_roles o ON o.oid = p.proowner
WHERE NOT o.rolsuper AND o.rolname IS DISTINCT FROM %(trusted)s
ORDER BY 1, 2, 3, 4, 5, 6
