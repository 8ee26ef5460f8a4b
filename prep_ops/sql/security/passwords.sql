-- Roles that can log in and how their password is stored (pg_authid: superusers only). The hash
-- itself never leaves the server: only its kind.
SELECT rolname AS name,
       CASE WHEN rolpassword IS NULL THEN 'none'
            WHEN rolpassword LIKE 'SCRAM-SHA-256$%%' THEN 'scram-sha-256'
            WHEN rolpassword ~ '^md5[0-9a-f]{32}$' THEN 'md5'
            ELSE 'plain text' END AS stored_as,
       rolvaliduntil AS valid_until
FROM pg_authid
WHERE rolcanlogin
ORDER BY rolname
