-- What this database holds that a restore over it would throw away, beyond user tables (read by
-- objects.tables): any other user relation (view, materialized view, sequence, foreign table,
-- composite type), routine, domain, enum or range type, schema besides public, foreign-data wrapper,
-- foreign server (with its user mappings), publication or event trigger, an extension's own objects
-- aside; and, apart, whether it holds large objects (data no table shows).
SELECT EXISTS (SELECT 1 FROM pg_namespace n
               WHERE n.nspname NOT IN ('public', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                                   AND d.objid = n.oid AND d.deptype = 'e'))
    OR EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('v', 'm', 'S', 'f', 'c')
                 AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                   AND d.objid = c.oid AND d.deptype = 'e'))
    OR EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                   AND d.objid = p.oid AND d.deptype = 'e'))
    OR EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
               WHERE t.typtype IN ('d', 'e', 'r')
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                                   AND d.objid = t.oid AND d.deptype = 'e'))
    OR EXISTS (SELECT 1 FROM pg_foreign_data_wrapper w
               WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_foreign_data_wrapper'::regclass
                                   AND d.objid = w.oid AND d.deptype = 'e'))
    OR EXISTS (SELECT 1 FROM pg_foreign_server)
    OR EXISTS (SELECT 1 FROM pg_publication)
    OR EXISTS (SELECT 1 FROM pg_event_trigger e
               WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_event_trigger'::regclass
                                   AND d.objid = e.oid AND d.deptype = 'e')) AS other_objects,
       EXISTS (SELECT 1 FROM pg_largeobject_metadata) AS large_objects
