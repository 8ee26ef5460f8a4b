-- The stored password hashes of the roles of the set (pg_authid: superusers only).
SELECT rolname AS name, rolpassword AS verifier
FROM pg_authid
WHERE rolname = ANY(%(names)s)
