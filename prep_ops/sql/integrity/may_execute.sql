-- Whether the connected role may execute some function of the given schema and name, whatever its
-- arguments (amcheck's functions: a non-superuser needs EXECUTE granted on them).
SELECT coalesce(bool_or(has_function_privilege(p.oid, 'EXECUTE')), false)
FROM pg_proc p
WHERE p.proname = %(name)s AND p.pronamespace = %(schema)s::regnamespace
