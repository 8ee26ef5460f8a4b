-- Applied migrations with the checksums of their up and down files recorded when each was applied
-- (NULL if unknown).
SELECT v.version, v.applied_at, v.description, f.sha256, f.down_sha256
FROM schema_version v
LEFT JOIN prep_ops_migrations f USING (version)
ORDER BY v.version
