-- Whether public.schema_version has the columns of prep-ops' migrations (an integer version, a
-- description), so a table of that name another tool made is not read as ours: an old Flyway's has a
-- version and a description too, but its versions are text such as '1.1'.
SELECT count(*) = 2
FROM pg_catalog.pg_attribute
WHERE attrelid = 'public.schema_version'::regclass AND NOT attisdropped
  AND (attname = 'version' AND atttypid IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)
       OR attname = 'description')
