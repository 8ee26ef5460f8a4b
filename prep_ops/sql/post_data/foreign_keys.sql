-- The foreign keys of %(tables)s (regclass texts) that a bulk load may drop and add back after the
-- data, as pg_restore does: those whose definition (pg_get_constraintdef) says all there is, i.e. no
-- comment, no trigger of theirs disabled, nothing depending on them but their own triggers, not cloned
-- from a partitioned parent; between plain tables whose owners the current role may act as. In creation
-- order. Read with an empty search_path, so that the referenced table is named with its schema.
SELECT k.oid, n.nspname AS schema, t.relname AS table, k.conname AS name, pg_get_constraintdef(k.oid) AS definition
FROM pg_constraint k
JOIN pg_class t ON t.oid = k.conrelid
JOIN pg_class r ON r.oid = k.confrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE k.contype = 'f'
  AND k.conrelid = ANY (SELECT to_regclass(name) FROM unnest(%(tables)s::text[]) AS name)
  AND k.conparentid = 0 AND t.relkind = 'r' AND r.relkind = 'r'
  AND pg_has_role(t.relowner, 'MEMBER') AND pg_has_role(r.relowner, 'MEMBER')
  AND obj_description(k.oid, 'pg_constraint') IS NULL
  AND NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgconstraint = k.oid AND g.tgenabled <> 'O')
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.refclassid = 'pg_constraint'::regclass AND d.refobjid = k.oid AND d.deptype <> 'i')
ORDER BY k.oid
