-- Statistics of the tables a plan reads (EXPLAIN names them without their schema: the one the search
-- path finds, else the only table of that name in a user schema, as indexes/plan_relations.sql finds
-- them): size estimate, changes since the last analyze, and the name to give ANALYZE (regclass text:
-- schema-qualified and quoted where needed).
WITH named AS (
    SELECT r.name,
           coalesce(to_regclass(quote_ident(r.name)),
                    (SELECT min(c.oid)::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relname = r.name AND c.relkind IN ('r', 'p', 'm')
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                     HAVING count(*) = 1)) AS relation
    FROM unnest(%(relations)s::text[]) AS r(name)
)
SELECT named.name AS relation, c.oid::regclass::text AS qualified, greatest(c.reltuples, 0)::bigint AS estimated_rows,
       s.n_live_tup, s.n_mod_since_analyze, greatest(s.last_analyze, s.last_autoanalyze) AS last_analyzed
FROM named
JOIN pg_class c ON c.oid = named.relation
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
