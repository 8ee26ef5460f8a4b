-- Publications as (kind, name, definition), like more_kinds.sql: what they publish, of which tables (with a
-- row filter and column list, where set) and schemas, and their owners. PostgreSQL 15 and later (row filters,
-- column lists and schemas came in 15): objects.snapshot reads it there only.
SELECT 'publication' AS kind, quote_ident(p.pubname) AS name,
       concat_ws(' ', CASE WHEN p.puballtables THEN 'for all tables' END,
                 'publishes ' || concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END, CASE WHEN p.pubupdate THEN 'update' END,
                                           CASE WHEN p.pubdelete THEN 'delete' END, CASE WHEN p.pubtruncate THEN 'truncate' END),
                 CASE WHEN p.pubviaroot THEN 'via root' END,
                 'tables ' || (SELECT string_agg(quote_ident(pn.nspname) || '.' || quote_ident(pc.relname)
                                                 || coalesce(' (' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attname)
                                                                      FROM pg_attribute a WHERE a.attrelid = pc.oid
                                                                        AND a.attnum = ANY (pr.prattrs::int2[])) || ')', '')
                                                 || coalesce(' where ' || pg_get_expr(pr.prqual, pr.prrelid), ''),
                                                 ', ' ORDER BY pn.nspname, pc.relname)
                               FROM pg_publication_rel pr JOIN pg_class pc ON pc.oid = pr.prrelid
                               JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE pr.prpubid = p.oid),
                 'tables in schemas ' || (SELECT string_agg(quote_ident(sn.nspname), ', ' ORDER BY sn.nspname)
                                          FROM pg_publication_namespace ps JOIN pg_namespace sn ON sn.oid = ps.pnnspid
                                          WHERE ps.pnpubid = p.oid)) AS definition
FROM pg_publication p
UNION ALL
SELECT 'owner', 'publication ' || quote_ident(p.pubname), pg_get_userbyid(p.pubowner) FROM pg_publication p
