-- The roles of the set that exist, with the attributes a role set manages.
SELECT rolname AS name, rolsuper AS superuser, rolinherit AS inherit, rolcreaterole AS createrole,
       rolcreatedb AS createdb, rolcanlogin AS login, rolreplication AS replication, rolbypassrls AS bypassrls
FROM pg_roles
WHERE rolname = ANY(%(names)s)
