-- Which roles the roles of the set are members of.
SELECT m.rolname AS member, r.rolname AS role
FROM pg_auth_members a
JOIN pg_roles r ON r.oid = a.roleid
JOIN pg_roles m ON m.oid = a.member
WHERE m.rolname = ANY(%(names)s)
