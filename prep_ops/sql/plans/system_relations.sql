-- Names of the relations in the system schemas: a statement whose plan reads only these is a tool's
-- catalog read (prep-ops' own, a driver's, a monitor's), not the database's workload.
SELECT c.relname::text FROM pg_class c
WHERE c.relnamespace IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
