-- The relations a plan reads (EXPLAIN names them without their schema): the one the search path finds,
-- else the only table of that name in a user schema; with its schema and columns, and every user schema
-- holding a table of that name (more than one: the plan does not say which the query read; then the
-- columns are those of every such table, and the schema may be unknown).
WITH named AS (
    SELECT r.name,
           coalesce(to_regclass(quote_ident(r.name)),
                    (SELECT min(c.oid)::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relname = r.name AND c.relkind IN ('r', 'p', 'm')
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                     HAVING count(*) = 1)) AS relation
    FROM unnest(%(names)s::text[]) AS r(name)
), alike AS (
    SELECT named.name, array_agg(n.nspname ORDER BY n.nspname) AS schemas, array_agg(c.oid) AS oids
    FROM named
    JOIN pg_class c ON c.relname = named.name AND c.relkind IN ('r', 'p', 'm')
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
    GROUP BY named.name
)
SELECT named.name, n.nspname AS schema_name,
       ARRAY(SELECT DISTINCT a.attname FROM pg_attribute a
             WHERE a.attrelid = ANY (CASE WHEN named.relation IS NULL THEN alike.oids ELSE ARRAY[named.relation::oid] END)
               AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       coalesce(alike.schemas, '{}') AS schemas
FROM named
LEFT JOIN alike ON alike.name = named.name
LEFT JOIN pg_class c ON c.oid = named.relation
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE named.relation IS NOT NULL OR alike.name IS NOT NULL
