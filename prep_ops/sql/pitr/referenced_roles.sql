-- The roles the current database's objects are owned by, granted to or named in (policies, default
-- privileges): pg_shdepend, by name. The bootstrap superuser and built-in roles are never recorded there.
SELECT DISTINCT r.rolname::text
FROM pg_shdepend d
JOIN pg_roles r ON r.oid = d.refobjid
WHERE d.refclassid = 'pg_authid'::regclass
  AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY 1
