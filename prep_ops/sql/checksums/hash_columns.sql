-- The columns of every user table in order, with how the column-hash method hashes each:
--   'function': by its type's extended hash function (that of the default hash operator class; text's
--               for a type binary-coercible to text, such as varchar), called directly;
--   'record':   the same function, through hash_record_extended(ROW(column)), where it does not take
--               the column's type in SQL (PostgreSQL 15 hashes boolean with hashcharextended("char"));
--   'text':     the column's text form, for types not in the list given (json, arrays, enums, ...).
-- not_null: declared NOT NULL (what column-hash-v1 went by); valid_not_null: and no NULL can be there,
-- which on PostgreSQL 18 a NOT VALID not-null constraint does not promise (column-hash-v2 goes by it).
-- collatable: the type takes a collation (text-like, or the text form).
-- inherits: the table is an inheritance child (INHERITS, not a partition): pg_dump makes it again with the
-- inherited columns first, so its column order is not the source's.
SELECT n.nspname AS schema_name, c.relname AS table_name, a.attname AS column_name,
       CASE WHEN fn.proname IS NULL THEN 'text' WHEN fn.direct THEN 'function' ELSE 'record' END AS hashing,
       a.attnotnull AS not_null,
       fn.nspname AS function_schema, fn.proname AS function_name,
       a.attnotnull AND NOT EXISTS (
           SELECT 1 FROM pg_constraint nn
           WHERE nn.conrelid = c.oid AND nn.contype = 'n' AND NOT nn.convalidated AND nn.conkey = ARRAY[a.attnum]
       ) AS valid_not_null,
       ty.typcollation <> 0 AS collatable,
       NOT c.relispartition AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) AS inherits
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type ty ON ty.oid = a.atttypid
LEFT JOIN LATERAL (
    SELECT pn.nspname, pr.proname, pr.proargtypes[0] = oc.opcintype AS direct
    FROM pg_opclass oc
    JOIN pg_am am ON am.oid = oc.opcmethod AND am.amname = 'hash'
    JOIN pg_amproc ap ON ap.amprocfamily = oc.opcfamily AND ap.amprocnum = 2
                     AND ap.amproclefttype = oc.opcintype AND ap.amprocrighttype = oc.opcintype
    JOIN pg_proc pr ON pr.oid = ap.amproc
    JOIN pg_namespace pn ON pn.oid = pr.pronamespace
    WHERE oc.opcdefault AND a.atttypid = ANY (%(types)s::regtype[])
      AND (oc.opcintype = a.atttypid
           OR oc.opcintype = 'text'::regtype AND EXISTS (
               SELECT 1 FROM pg_cast k
               WHERE k.castsource = a.atttypid AND k.casttarget = 'text'::regtype
                 AND k.castmethod = 'b' AND k.castcontext = 'i'))
    ORDER BY oc.opcintype = a.atttypid DESC
    LIMIT 1
) fn ON true
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 1, 2, a.attnum
