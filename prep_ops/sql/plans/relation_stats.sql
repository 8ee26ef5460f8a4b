-- Statistics of the tables a plan reads: size estimate, changes since the last analyze.
SELECT c.relname AS relation, greatest(c.reltuples, 0)::bigint AS estimated_rows,
       s.n_live_tup, s.n_mod_since_analyze, greatest(s.last_analyze, s.last_autoanalyze) AS last_analyzed
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE n.nspname = 'public' AND c.relname = ANY(%(relations)s)
