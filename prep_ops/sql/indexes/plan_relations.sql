-- The relations a plan reads (EXPLAIN names them without their schema): the one the search path finds,
-- else the only table of that name in a user schema; with its schema and columns.
WITH named AS (
    SELECT r.name,
           coalesce(to_regclass(quote_ident(r.name)),
                    (SELECT min(c.oid)::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relname = r.name AND c.relkind IN ('r', 'p', 'm')
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                     HAVING count(*) = 1)) AS relation
    FROM unnest(%(names)s::text[]) AS r(name)
)
SELECT named.name, n.nspname AS schema_name,
       ARRAY(SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
FROM named
JOIN pg_class c ON c.oid = named.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
