-- Code that runs with the writer's privileges when the given tables are written, owned by a role that
-- is neither a superuser nor %(trusted)s: the functions of enabled triggers (and their WHEN clauses),
-- column defaults, CHECK constraints and index expressions. %(tables)s (regclass texts) NULL means
-- every table of the database. Tables that reference a written table by foreign key, and partitions of
-- it, are written too (TRUNCATE ... CASCADE, ON DELETE actions, routing of rows), so they count.
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
), code(rel, kind, name, fn) AS (
    SELECT t.tgrelid, 'trigger', t.tgname::text, d.refobjid
    FROM pg_trigger t JOIN pg_depend d ON d.classid = 'pg_trigger'::regclass AND d.objid = t.oid
    WHERE t.tgenabled <> 'D' AND NOT t.tgisinternal AND d.refclassid = 'pg_proc'::regclass
    UNION
    SELECT a.adrelid, 'default', att.attname::text, d.refobjid
    FROM pg_attrdef a JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = a.oid
    JOIN pg_attribute att ON att.attrelid = a.adrelid AND att.attnum = a.adnum
    WHERE d.refclassid = 'pg_proc'::regclass
    UNION
    SELECT con.conrelid, 'check constraint', con.conname::text, d.refobjid
    FROM pg_constraint con JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = con.oid
    WHERE con.contype = 'c' AND d.refclassid = 'pg_proc'::regclass
    UNION
    SELECT i.indrelid, 'index', ic.relname::text, d.refobjid
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
    WHERE d.refclassid = 'pg_proc'::regclass
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
