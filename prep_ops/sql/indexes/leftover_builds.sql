-- Every INVALID index of the database, whoever made it or owns it (every schema but the system ones; not
-- the index of a partitioned parent, invalid until each partition has one), and whether a build of it
-- runs now:
--   'in progress'        a CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY builds it: the progress view
--                        names it, or the building session holds a lock on it (REINDEX CONCURRENTLY's new
--                        index is not the one its progress names);
--   'maybe in progress'  a build this role may not look into holds a lock on its table: the progress view
--                        shows which relation and index a session builds only to superusers, roles with the
--                        privileges of that session's role, and pg_read_all_stats; to anyone else the
--                        session's row has no relid and no index_relid, while pg_locks, which every role
--                        reads, still shows what that session holds locked;
--   'leftover'           no build of it runs: what a killed or failed build left.
-- With the session, its role and phase for a build; and whether this role may drop the index (DROP INDEX
-- needs the privileges of its owner).
WITH builds AS (
    SELECT p.pid, p.relid, p.index_relid, p.command, p.phase, a.usename::text AS built_by
    FROM pg_stat_progress_create_index p
    LEFT JOIN pg_stat_activity a ON a.pid = p.pid
    WHERE p.datid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
), holding AS (
    SELECT b.*, l.relation
    FROM builds b
    JOIN pg_locks l ON l.pid = b.pid AND l.locktype = 'relation' AND l.granted
)
SELECT n.nspname::text AS schema_name, t.relname::text AS table_name, c.relname::text AS index_name,
       CASE WHEN build.pid IS NULL THEN 'leftover' WHEN build.seen THEN 'in progress'
            ELSE 'maybe in progress' END AS state,
       build.pid, build.built_by, build.command, build.phase,
       pg_get_userbyid(c.relowner)::text AS owner, pg_has_role(c.relowner, 'USAGE') AS may_drop,
       pg_get_indexdef(c.oid) AS definition
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT b.pid, b.built_by, b.command, b.phase, true AS seen FROM builds b WHERE b.index_relid = i.indexrelid
    UNION ALL
    SELECT h.pid, h.built_by, h.command, h.phase, true FROM holding h WHERE h.relation = i.indexrelid
    UNION ALL
    SELECT h.pid, h.built_by, NULL, NULL, false FROM holding h WHERE h.relid IS NULL AND h.relation = i.indrelid
    ORDER BY seen DESC, pid
    LIMIT 1
) build ON true
WHERE NOT i.indisvalid AND c.relkind = 'i'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
ORDER BY 1, 3
