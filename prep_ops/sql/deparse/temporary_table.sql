-- The oid of this session's temporary table of that name (the probe a CHECK definition is put on).
SELECT c.oid
FROM pg_class c
WHERE c.relnamespace = pg_my_temp_schema() AND c.relname = %(name)s
