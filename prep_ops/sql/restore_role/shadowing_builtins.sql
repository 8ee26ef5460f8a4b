-- Functions (aggregates, procedures) and operators of the restored database in a schema of the comparison's
-- search_path (the schemas given), named as one of pg_catalog's and owned by a role that is not a superuser: the
-- dump's. A query of the comparison's that names the built-in could resolve to it (an exact match of the
-- argument types where pg_catalog has none, `name NOT LIKE unknown` finding an !~~ (name, name)) and run it
-- as the verifier, a superuser. Run under search_path pg_catalog (nothing of the dump's resolves here), with
-- every operator qualified all the same.
SELECT pg_catalog.format('%%s %%s', CASE p.prokind WHEN 'a' THEN 'aggregate' WHEN 'p' THEN 'procedure'
                                    ELSE 'function' END, p.oid::pg_catalog.regprocedure)
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) p.proowner
WHERE n.nspname OPERATOR(pg_catalog.=) ANY (%(schemas)s::pg_catalog.name[]) AND NOT r.rolsuper
  AND EXISTS (SELECT FROM pg_catalog.pg_proc b
              WHERE b.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
                AND b.proname OPERATOR(pg_catalog.=) p.proname)
UNION ALL
SELECT pg_catalog.format('operator %%s', o.oid::pg_catalog.regoperator)
FROM pg_catalog.pg_operator o
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) o.oprnamespace
JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) o.oprowner
WHERE n.nspname OPERATOR(pg_catalog.=) ANY (%(schemas)s::pg_catalog.name[]) AND NOT r.rolsuper
  AND EXISTS (SELECT FROM pg_catalog.pg_operator b
              WHERE b.oprnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
                AND b.oprname OPERATOR(pg_catalog.=) o.oprname)
ORDER BY 1
