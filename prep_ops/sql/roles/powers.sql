-- What the current role may do to roles: itself and each role named that exists, with the attributes
-- that decide it, and whether the current role holds ADMIN OPTION on that role (a superuser always does).
SELECT rolname AS name, rolname = current_user AS me, rolsuper AS superuser, rolcreaterole AS createrole,
       rolcreatedb AS createdb, rolreplication AS replication, rolbypassrls AS bypassrls,
       pg_has_role(current_user, oid, 'MEMBER WITH ADMIN OPTION') AS admin
FROM pg_roles
WHERE rolname = ANY(%(names)s) OR rolname = current_user
