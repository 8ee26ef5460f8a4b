-- The state of every sequence of the dump: what the next nextval() will give depends on all of it.
SELECT 'sequence' AS kind, quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename) AS name,
       format('start %s increment %s min %s max %s cycle %s last_value %s', s.start_value, s.increment_by,
              s.min_value, s.max_value, s.cycle, coalesce(s.last_value::text, 'none (nextval not yet called)'))
           AS definition
FROM pg_sequences s
JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
