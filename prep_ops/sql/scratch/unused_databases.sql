-- Databases whose names start with %(prefix)s that no session is connected to, with their comment
-- (prep-ops writes what each is for there), oldest name first.
SELECT d.datname, coalesce(shobj_description(d.oid, 'pg_database'), '') AS comment
FROM pg_database d
WHERE starts_with(d.datname, %(prefix)s)
  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)
ORDER BY 1
