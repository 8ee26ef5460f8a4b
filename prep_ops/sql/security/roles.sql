-- Every role except the built-in pg_* ones, with its powerful attributes. The bootstrap superuser
-- (the one initdb made) has oid 10.
SELECT rolname AS name, oid = 10 AS bootstrap, rolsuper AS superuser, rolcreaterole AS createrole,
       rolcreatedb AS createdb, rolreplication AS replication, rolbypassrls AS bypassrls, rolcanlogin AS login
FROM pg_roles
WHERE rolname !~ '^pg_'
ORDER BY rolname
