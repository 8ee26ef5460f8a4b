-- The session holding the advisory lock (%(key)s, hashtext(%(name)s)) another restore into that database
-- takes for its whole run, if any: pid, who, since when (its session's start), and its application_name.
SELECT a.pid, a.usename, a.backend_start, a.application_name
FROM pg_catalog.pg_locks AS l
JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                                              WHERE datname = pg_catalog.current_database())
  AND l.classid = %(key)s::oid AND l.objid = pg_catalog.hashtext(%(name)s)::oid AND l.objsubid = 2
LIMIT 1
