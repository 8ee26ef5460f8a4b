-- Applied migrations of a database whose schema_version was filled by something other than prep-ops.
SELECT version, applied_at, description, NULL::text AS sha256, NULL::text AS down_sha256
FROM public.schema_version
ORDER BY version
