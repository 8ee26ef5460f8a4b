-- Applied migrations of a database whose bookkeeping an older prep-ops made (no down checksums yet).
SELECT v.version, v.applied_at, v.description, f.sha256, NULL::text AS down_sha256
FROM public.schema_version v
LEFT JOIN public.prep_ops_migrations f USING (version)
ORDER BY v.version
