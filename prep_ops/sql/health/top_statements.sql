-- The statements of this database that took the most time in total (ms), from pg_stat_statements, and
-- the role that ran each ('' for one that no longer exists).
-- The view and the total and mean time columns are filled in as identifiers: the columns were renamed
-- in 13.
SELECT left(s.query, %(width)s) AS query, s.calls, s.{total}::float8 AS total_ms,
       s.{mean}::float8 AS mean_ms, s.rows,
       (100.0 * s.{total} / nullif(sum(s.{total}) OVER (), 0))::float8 AS share_pct,
       coalesce(r.rolname::text, '') AS author
FROM {view} s
JOIN pg_database d ON d.oid = s.dbid
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE d.datname = current_database()
ORDER BY s.{total} DESC
LIMIT %(limit)s
