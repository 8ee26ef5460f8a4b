-- the cluster's identity: system identifier, current timeline, and its bootstrap superuser (role OID 10)
SELECT s.system_identifier,
       c.timeline_id,
       (SELECT rolname FROM pg_roles WHERE oid = 10) AS superuser
FROM pg_control_system() AS s, pg_control_checkpoint() AS c
