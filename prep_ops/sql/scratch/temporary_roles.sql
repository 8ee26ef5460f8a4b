-- Roles prep-ops made for one run (their comment starts with %(marker)s and names the run), with that
-- comment.
SELECT r.rolname, shobj_description(r.oid, 'pg_authid') AS comment
FROM pg_roles r
WHERE starts_with(coalesce(shobj_description(r.oid, 'pg_authid'), ''), %(marker)s)
ORDER BY 1
