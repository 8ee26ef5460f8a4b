-- Whether public.schema_version has the columns of prep-ops' migrations (version, description), so a
-- table of that name another tool made is not read as ours.
SELECT count(*) = 2
FROM pg_catalog.pg_attribute
WHERE attrelid = 'public.schema_version'::regclass AND attname IN ('version', 'description') AND NOT attisdropped
