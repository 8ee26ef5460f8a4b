-- Applied migrations with the checksums of their up and down files recorded when each was applied
-- (NULL if unknown).
SELECT v.version, v.applied_at, v.description, f.sha256, f.down_sha256
FROM public.schema_version v
LEFT JOIN public.prep_ops_migrations f USING (version)
ORDER BY v.version
