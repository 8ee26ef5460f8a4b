-- Of the roles named, those that are one run's temporary role (their comment starts with the marker):
-- NOLOGIN roles without privileges, which the restore's own role may be made a member of. Never a
-- superuser, never a role of the server's own (a predefined pg_* role included).
SELECT r.rolname
FROM pg_roles r
WHERE r.rolname = ANY (%(names)s::text[])
  AND NOT r.rolsuper
  AND starts_with(coalesce(shobj_description(r.oid, 'pg_authid'), ''), %(marker)s)
ORDER BY 1
