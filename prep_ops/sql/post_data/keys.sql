-- The primary keys and UNIQUE constraints of %(tables)s (regclass texts) that a bulk load may drop and
-- add back after the data, as pg_restore does: those on which no foreign key leans but the ones in
-- %(foreign_keys)s (oids: set aside as well, and added back after them), and whose definition
-- (pg_get_constraintdef) says all there is about them and their index (named after them): no comment on
-- either, nothing depending on them but their own index (and trigger, when deferrable), no trigger of
-- theirs disabled, no tablespace, CLUSTER mark, replica identity, statistics target or security label on
-- the index, not cloned from a partitioned parent; on plain tables of a role the current one may act as.
-- In creation order. Read with an empty search_path (see indexes.sql).
SELECT n.nspname AS schema, t.relname AS table, k.conname AS name, pg_get_constraintdef(k.oid) AS definition
FROM pg_constraint k
JOIN pg_class t ON t.oid = k.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_index i ON i.indexrelid = k.conindid
JOIN pg_class c ON c.oid = k.conindid
WHERE k.contype IN ('p', 'u')
  AND k.conrelid = ANY (SELECT to_regclass(name) FROM unnest(%(tables)s::text[]) AS name)
  AND k.conparentid = 0 AND t.relkind = 'r'
  AND i.indisvalid AND NOT i.indisclustered AND NOT i.indisreplident
  AND c.reltablespace = 0
  AND pg_has_role(t.relowner, 'MEMBER')
  AND obj_description(k.oid, 'pg_constraint') IS NULL AND obj_description(c.oid, 'pg_class') IS NULL
  AND NOT EXISTS (SELECT FROM pg_constraint f
                  WHERE f.conindid = k.conindid AND f.oid <> k.oid AND f.oid <> ALL (%(foreign_keys)s::oid[]))
  AND NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgconstraint = k.oid AND g.tgenabled <> 'O')
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.refclassid = 'pg_constraint'::regclass AND d.refobjid = k.oid AND d.deptype <> 'i')
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid
                    AND NOT (d.classid = 'pg_constraint'::regclass AND d.objid = ANY (%(foreign_keys)s::oid[])))
  AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND coalesce(a.attstattarget, -1) >= 0)
  AND NOT EXISTS (SELECT FROM pg_seclabel s WHERE s.classoid = 'pg_class'::regclass AND s.objoid = c.oid)
ORDER BY k.oid
