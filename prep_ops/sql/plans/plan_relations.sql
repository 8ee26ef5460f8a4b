-- The relations a plan reads, each matched to exactly one table: EXPLAIN (VERBOSE) names each scan's
-- schema ("Schema") beside its relation ("Relation Name"), and that pair is the table, wherever the
-- search path points. A plan that names no schema (made without VERBOSE) is matched only when one user
-- schema holds a table of that name; else the table is unknown (schema_name NULL) and `schemas` lists
-- every user schema holding one: the plan does not say which the query read. The search path of this
-- session is never asked: it need not be the query's.
-- With each: its columns (of every table of that name when unknown), size estimate, changes since the
-- last analyze, and its name for ANALYZE (schema-qualified, quoted where needed).
WITH wanted AS (
    SELECT DISTINCT w.plan_schema, w.name
    FROM unnest(%(schemas)s::text[], %(names)s::text[]) AS w(plan_schema, name)
), matched AS (
    SELECT wanted.plan_schema, wanted.name, alike.schemas, alike.oids,
           CASE WHEN wanted.plan_schema IS NOT NULL
                THEN (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.relname = wanted.name
                        -- VERBOSE names this session's temporary schema pg_temp, whatever its pg_temp_N
                        AND (n.nspname = wanted.plan_schema OR wanted.plan_schema = 'pg_temp' AND n.oid = pg_my_temp_schema()))
                WHEN cardinality(alike.oids) = 1 THEN alike.oids[1] END AS relation
    FROM wanted
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(n.nspname::text ORDER BY n.nspname), '{}') AS schemas,
               coalesce(array_agg(c.oid ORDER BY n.nspname), '{}') AS oids
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname = wanted.name AND c.relkind IN ('r', 'p', 'm')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
    ) AS alike
)
SELECT m.plan_schema, m.name AS relation, n.nspname::text AS schema_name,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       m.schemas,
       ARRAY(SELECT DISTINCT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = ANY (CASE WHEN c.oid IS NULL THEN m.oids ELSE ARRAY[c.oid] END)
               AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       greatest(c.reltuples, 0)::bigint AS estimated_rows,
       s.n_live_tup, s.n_mod_since_analyze, greatest(s.last_analyze, s.last_autoanalyze) AS last_analyzed
FROM matched m
LEFT JOIN pg_class c ON c.oid = m.relation
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
ORDER BY m.name, m.plan_schema
