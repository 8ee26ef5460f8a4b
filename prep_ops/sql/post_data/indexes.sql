-- The indexes of %(tables)s (regclass texts) that a bulk load may drop and build again after the data,
-- as pg_restore does: those backing no constraint and leaned on by nothing (no foreign key), whose
-- definition (pg_get_indexdef) says all there is about them: no comment, tablespace, CLUSTER mark,
-- replica identity, statistics target or security label, no member of an extension or of a partition
-- tree. Only valid ones, on plain tables of a role the current one may act as. In creation order. Read
-- with an empty search_path, so that every name in a definition is qualified with its schema.
SELECT n.nspname AS schema, t.relname AS table, c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indrelid = ANY (SELECT to_regclass(name) FROM unnest(%(tables)s::text[]) AS name)
  AND c.relkind = 'i' AND t.relkind = 'r'
  AND i.indisvalid AND i.indisready AND i.indislive
  AND NOT i.indisclustered AND NOT i.indisreplident
  AND c.reltablespace = 0
  AND pg_has_role(t.relowner, 'MEMBER')
  AND obj_description(c.oid, 'pg_class') IS NULL
  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = c.oid)
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype NOT IN ('a', 'n'))
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid)
  AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND coalesce(a.attstattarget, -1) >= 0)
  AND NOT EXISTS (SELECT FROM pg_seclabel s WHERE s.classoid = 'pg_class'::regclass AND s.objoid = c.oid)
ORDER BY c.oid
