-- The privileges on database %(name)s that pg_dump leaves out, one row each: grantee (NULL: PUBLIC),
-- privilege and whether it may be granted on; PostgreSQL's defaults (PUBLIC's CONNECT and TEMPORARY)
-- where they were never changed. The owner's own are left out: it holds them as the owner.
SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee,
       a.privilege_type, a.is_grantable
FROM pg_database d
CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) AS a
WHERE d.datname = %(name)s AND a.grantee <> d.datdba
ORDER BY 1 NULLS FIRST, 2
