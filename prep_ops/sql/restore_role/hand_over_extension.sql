-- The extension just created by the cluster's superuser becomes the restore role's, so that the dump's
-- COMMENT ON EXTENSION (its owner's right) passes. A catalog update, done only in a throwaway database of
-- the private verification cluster, in which nothing of the dump's exists yet.
UPDATE pg_catalog.pg_extension
SET extowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %(role)s)
WHERE extname = %(extension)s
