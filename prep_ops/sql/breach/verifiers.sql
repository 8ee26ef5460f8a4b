-- The stored password hashes of the named roles, or of every login role when none are named
-- (pg_authid: superusers only). Read only to test them against common passwords; never shown.
SELECT rolname AS role, rolcanlogin AS login, rolpassword AS verifier
FROM pg_authid
WHERE CASE WHEN %(names)s::text[] IS NULL THEN rolcanlogin ELSE rolname = ANY(%(names)s) END
ORDER BY rolname
