-- Default privileges that objects the owner creates in the schemas will get, per schema and role of the set.
SELECT n.nspname AS schema, CASE d.defaclobjtype WHEN 'r' THEN 'table' ELSE 'sequence' END AS kind,
       g.rolname AS role, a.privilege_type AS privilege
FROM pg_default_acl d
JOIN pg_namespace n ON n.oid = d.defaclnamespace
CROSS JOIN LATERAL aclexplode(d.defaclacl) a
JOIN pg_roles g ON g.oid = a.grantee
WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = %(owner)s)
  AND n.nspname = ANY(%(schemas)s)
  AND d.defaclobjtype IN ('r', 'S')
  AND g.rolname = ANY(%(names)s)
