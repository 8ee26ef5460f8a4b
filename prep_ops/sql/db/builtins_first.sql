-- pg_catalog first on the session's search_path where the database's or role's setting names another
-- schema before it (db._builtins_first). Written so that it needs nothing from the path it fixes: every
-- function and operator is qualified. Changes nothing where pg_catalog already comes first.
SELECT pg_catalog.set_config('search_path',
                             'pg_catalog, ' OPERATOR(pg_catalog.||) pg_catalog.current_setting('search_path'),
                             false)
WHERE (pg_catalog.current_schemas(true))[1] OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.name
