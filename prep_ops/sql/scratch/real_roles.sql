-- The roles that are not one run's temporary role (their comment does not start with %(marker)s), read in
-- one statement, so in one snapshot: a role another run makes meanwhile is either not seen at all or
-- seen with its marker, never taken for a real one.
SELECT r.rolname
FROM pg_roles r
WHERE NOT starts_with(coalesce(shobj_description(r.oid, 'pg_authid'), ''), %(marker)s)
ORDER BY 1
