-- The kinds recorded since 2026-12-01 (objects.MORE_KINDS), as (kind, name, definition) like objects.sql:
-- what a restore that loses them changes with every row, column and constraint still in place. Storage
-- and options of relations (fillfactor, a view's security_invoker or check option, replica identity, the
-- index CLUSTER uses, a typed table's type, per-column statistics targets, storage and options), a
-- partitioned table's key, rules and the state of rules and triggers other than enabled, column
-- privileges, default privileges, large objects (which exist, and their privileges: their content is
-- not compared, see objects.compare), aggregates, operators, casts, composite and range types, extended
-- statistics, text search configurations, event triggers, and the owner of each object (publications:
-- publications.sql)
-- (compared only where the restore gave objects their owners). Objects of extensions and the system
-- schemas are left out.
WITH user_ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_|toast_temp_)'
), own_rel AS (
    SELECT c.oid, c.relkind, c.relowner, c.reloptions, c.relreplident, c.reloftype, c.reltoastrelid,
           quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
), own_proc AS (
    SELECT p.*, quote_ident(n.nspname) || '.' || quote_ident(p.proname)
                || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS name
    FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
    -- not an extension's, nor one the server made with a type (a range's constructors, owned by the bootstrap
    -- superuser whoever owns the type, and given EXECUTE by no default privilege a dump could carry)
    WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                      AND d.deptype IN ('e', 'i'))
), own_type AS (  -- made by CREATE TYPE or CREATE DOMAIN: no array, table row type or range's multirange
    SELECT t.oid, t.typtype, t.typowner, t.typrelid, quote_ident(n.nspname) || '.' || quote_ident(t.typname) AS name
    FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
    WHERE (t.typtype IN ('d', 'e', 'r') OR t.typtype = 'b' AND t.typcategory <> 'A'
           OR t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
), relation_options AS (
    SELECT r.name, concat_ws('; ',
           'options ' || nullif(array_to_string(ARRAY(SELECT o FROM unnest(r.reloptions) o ORDER BY o), ', '), ''),
           CASE WHEN r.relkind IN ('r', 'p') THEN
               CASE r.relreplident WHEN 'f' THEN 'replica identity full' WHEN 'n' THEN 'replica identity nothing'
                   WHEN 'i' THEN 'replica identity using ' || (SELECT quote_ident(ic.relname) FROM pg_index i
                       JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = r.oid AND i.indisreplident) END END,
           'cluster on ' || (SELECT quote_ident(ic.relname) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                             WHERE i.indrelid = r.oid AND i.indisclustered),
           'of type ' || nullif(r.reloftype, 0)::regtype::text,
           (SELECT string_agg(quote_ident(a.attname) || concat_ws(' ', '',
                       'statistics ' || nullif(a.attstattarget::int, -1),
                       CASE WHEN a.attstorage <> t.typstorage THEN 'storage ' || a.attstorage::text END,
                       'options ' || nullif(array_to_string(ARRAY(SELECT o FROM unnest(a.attoptions) o ORDER BY o), ', '), ''),
                       'compression ' || nullif(a.attcompression::text, '')),
                       ', ' ORDER BY a.attname)  -- by name: pg_dump may put an inheritance child's columns in another order
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
              AND (a.attstattarget::int <> -1 OR a.attstorage <> t.typstorage OR a.attoptions IS NOT NULL
                   OR a.attcompression <> '')),
           'toast options ' || nullif(array_to_string(ARRAY(SELECT o FROM pg_class tc, unnest(tc.reloptions) o
                                                            WHERE tc.oid = r.reltoastrelid ORDER BY o), ', '), '')
           ) AS definition
    FROM own_rel r
)
SELECT 'relation options' AS kind, o.name, o.definition FROM relation_options o WHERE o.definition <> ''
UNION ALL
SELECT 'sequence owned by', r.name, quote_ident(tn.nspname) || '.' || quote_ident(t.relname) || '.' || quote_ident(a.attname)
FROM own_rel r
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = r.oid AND d.deptype = 'a'
                AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0
JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
WHERE r.relkind = 'S'
UNION ALL
SELECT 'partition key', r.name, pg_get_partkeydef(r.oid) FROM own_rel r WHERE r.relkind = 'p'
UNION ALL
SELECT 'rule', r.name || '.' || quote_ident(w.rulename),
       pg_get_ruledef(w.oid, true) || CASE w.ev_enabled WHEN 'O' THEN '' WHEN 'D' THEN ' (disabled)'
           WHEN 'R' THEN ' (enabled replica)' ELSE ' (enabled always)' END
FROM own_rel r JOIN pg_rewrite w ON w.ev_class = r.oid
WHERE w.rulename <> '_RETURN'
UNION ALL
SELECT 'trigger state', r.name || '.' || quote_ident(t.tgname),
       CASE t.tgenabled WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'enabled replica' ELSE 'enabled always' END
FROM own_rel r JOIN pg_trigger t ON t.tgrelid = r.oid
WHERE NOT t.tgisinternal AND t.tgenabled <> 'O'
UNION ALL
SELECT 'column privileges', r.name || '.' || quote_ident(a.attname),
       (SELECT string_agg(item, ', ' ORDER BY item) FROM (
            SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END || ':' || x.privilege_type
                   || CASE WHEN x.is_grantable THEN ' with grant option' ELSE '' END AS item
            FROM aclexplode(a.attacl) x) g)
FROM own_rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE a.attacl IS NOT NULL
UNION ALL
SELECT 'default privileges',
       pg_get_userbyid(d.defaclrole) || coalesce(' in ' || quote_ident(n.nspname), '') || ' on '
       || CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'
              WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' ELSE 'large objects' END,
       (SELECT coalesce(string_agg(item, ', ' ORDER BY item), 'none') FROM (
            SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END || ':' || x.privilege_type
                   || CASE WHEN x.is_grantable THEN ' with grant option' ELSE '' END AS item
            FROM aclexplode(d.defaclacl) x WHERE x.grantee <> d.defaclrole) g)
FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
UNION ALL
-- large objects by the privileges they give (none but their owner's: ''), each group as its count and the
-- SHA-256 of its OIDs: a manifest stays small whatever their number (a row each made 13 MB of 200,000)
SELECT 'large object', 'privileges ' || coalesce(nullif(g.privileges, ''), 'none'),
       count(*) || ' large object(s), OIDs sha256 '
       || encode(sha256(convert_to(string_agg(g.oid::text, ',' ORDER BY g.oid), 'UTF8')), 'hex')
FROM (SELECT l.oid,
             (SELECT coalesce(string_agg(item, ', ' ORDER BY item), '') FROM (
                 SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END || ':' || x.privilege_type
                        || CASE WHEN x.is_grantable THEN ' with grant option' ELSE '' END AS item
                 FROM aclexplode(coalesce(l.lomacl, acldefault('L', l.lomowner))) x WHERE x.grantee <> l.lomowner) i)
                 AS privileges
      FROM pg_largeobject_metadata l) g
GROUP BY g.privileges
UNION ALL
SELECT 'aggregate', p.name,
       concat_ws(' ', 'kind ' || g.aggkind::text, 'transition ' || g.aggtransfn::regprocedure::text,
                 'state ' || g.aggtranstype::regtype::text, 'initially ' || quote_literal(g.agginitval),
                 'final ' || nullif(g.aggfinalfn, 0)::regprocedure::text, CASE WHEN g.aggfinalextra THEN 'extra' END,
                 'combine ' || nullif(g.aggcombinefn, 0)::regprocedure::text,
                 'sort ' || nullif(g.aggsortop, 0)::regoperator::text,
                 'moving ' || nullif(g.aggmtransfn, 0)::regprocedure::text)
FROM own_proc p JOIN pg_aggregate g ON g.aggfnoid = p.oid
UNION ALL
SELECT 'operator', quote_ident(n.nspname) || '.' || o.oprname || '(' || coalesce(o.oprleft::regtype::text, 'NONE') || ', '
                   || coalesce(o.oprright::regtype::text, 'NONE') || ')',
       concat_ws(' ', 'function ' || o.oprcode::regprocedure::text, 'returns ' || o.oprresult::regtype::text,
                 'commutator ' || nullif(o.oprcom, 0)::regoperator::text,
                 'negator ' || nullif(o.oprnegate, 0)::regoperator::text,
                 'restrict ' || nullif(o.oprrest, 0)::regprocedure::text, 'join ' || nullif(o.oprjoin, 0)::regprocedure::text,
                 CASE WHEN o.oprcanhash THEN 'hashes' END, CASE WHEN o.oprcanmerge THEN 'merges' END)
FROM pg_operator o JOIN user_ns n ON n.oid = o.oprnamespace
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_operator'::regclass AND d.objid = o.oid AND d.deptype = 'e')
UNION ALL
SELECT 'cast', format_type(c.castsource, NULL) || ' as ' || format_type(c.casttarget, NULL),
       concat_ws(' ', CASE c.castmethod WHEN 'f' THEN 'with function ' || c.castfunc::regprocedure::text
                                        WHEN 'i' THEN 'with inout' ELSE 'without function' END,
                 CASE c.castcontext WHEN 'i' THEN 'implicit' WHEN 'a' THEN 'as assignment' ELSE 'explicit' END)
FROM pg_cast c
WHERE c.oid >= 16384
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_cast'::regclass AND d.objid = c.oid AND d.deptype = 'e')
UNION ALL
SELECT 'type', t.name,
       CASE t.typtype
           WHEN 'c' THEN 'composite (' || (SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
                                               || CASE WHEN a.attcollation <> 0 AND a.attcollation <> at.typcollation
                                                       THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END,
                                               ', ' ORDER BY a.attnum)
                                           FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid
                                           WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) || ')'
           WHEN 'r' THEN (SELECT concat_ws(' ', 'range of ' || format_type(g.rngsubtype, NULL),
                                           'collate ' || nullif(g.rngcollation, 0)::regcollation::text,
                                           'opclass ' || quote_ident(oc.opcname),
                                           'canonical ' || nullif(g.rngcanonical, 0)::regprocedure::text,
                                           'difference ' || nullif(g.rngsubdiff, 0)::regprocedure::text)
                          FROM pg_range g JOIN pg_opclass oc ON oc.oid = g.rngsubopc WHERE g.rngtypid = t.oid)
       END
FROM own_type t WHERE t.typtype IN ('c', 'r')
UNION ALL
SELECT 'statistics', quote_ident(n.nspname) || '.' || quote_ident(s.stxname),
       pg_get_statisticsobjdef(s.oid) || coalesce(' statistics ' || nullif(s.stxstattarget::int, -1), '')
FROM pg_statistic_ext s JOIN user_ns n ON n.oid = s.stxnamespace
UNION ALL
SELECT 'text search configuration', quote_ident(n.nspname) || '.' || quote_ident(c.cfgname),
       concat_ws(' ', 'parser ' || (SELECT quote_ident(pn.nspname) || '.' || quote_ident(p.prsname) FROM pg_ts_parser p
                                    JOIN pg_namespace pn ON pn.oid = p.prsnamespace WHERE p.oid = c.cfgparser),
                 'mapping ' || (SELECT string_agg(m.maptokentype::text || ':' || m.mapdict::regdictionary::text, ', '
                                                  ORDER BY m.maptokentype, m.mapseqno)
                                FROM pg_ts_config_map m WHERE m.mapcfg = c.oid))
FROM pg_ts_config c JOIN user_ns n ON n.oid = c.cfgnamespace
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_ts_config'::regclass AND d.objid = c.oid AND d.deptype = 'e')
UNION ALL
SELECT 'event trigger', quote_ident(e.evtname),
       concat_ws(' ', 'on ' || e.evtevent, 'runs ' || e.evtfoid::regprocedure::text,
                 'when tag in (' || array_to_string(e.evttags, ', ') || ')',
                 CASE e.evtenabled WHEN 'O' THEN NULL WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'enabled replica' ELSE 'enabled always' END)
FROM pg_event_trigger e
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_event_trigger'::regclass AND d.objid = e.oid AND d.deptype = 'e')
UNION ALL
SELECT 'owner', 'schema ' || quote_ident(n.nspname), pg_get_userbyid(s.nspowner)
FROM user_ns n JOIN pg_namespace s ON s.oid = n.oid
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
UNION ALL
SELECT 'owner', 'relation ' || r.name, pg_get_userbyid(r.relowner) FROM own_rel r
WHERE NOT (r.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                       AND d.objid = r.oid AND d.deptype IN ('a', 'i')))  -- a serial's sequence goes with its table
UNION ALL
SELECT 'owner', 'routine ' || p.name, pg_get_userbyid(p.proowner) FROM own_proc p
UNION ALL
SELECT 'owner', 'type ' || t.name, pg_get_userbyid(t.typowner) FROM own_type t
UNION ALL
SELECT 'owner', 'large objects of ' || pg_get_userbyid(l.lomowner),
       count(*) || ' large object(s), OIDs sha256 ' || encode(sha256(convert_to(string_agg(l.oid::text, ',' ORDER BY l.oid), 'UTF8')), 'hex')
FROM pg_largeobject_metadata l GROUP BY l.lomowner
UNION ALL
SELECT 'owner', 'operator ' || quote_ident(n.nspname) || '.' || o.oprname || '(' || coalesce(o.oprleft::regtype::text, 'NONE')
                || ', ' || coalesce(o.oprright::regtype::text, 'NONE') || ')', pg_get_userbyid(o.oprowner)
FROM pg_operator o JOIN user_ns n ON n.oid = o.oprnamespace
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_operator'::regclass AND d.objid = o.oid AND d.deptype = 'e')
UNION ALL
SELECT 'owner', 'text search configuration ' || quote_ident(n.nspname) || '.' || quote_ident(c.cfgname),
       pg_get_userbyid(c.cfgowner)
FROM pg_ts_config c JOIN user_ns n ON n.oid = c.cfgnamespace
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_ts_config'::regclass AND d.objid = c.oid AND d.deptype = 'e')
UNION ALL
SELECT 'owner', 'event trigger ' || quote_ident(e.evtname), pg_get_userbyid(e.evtowner) FROM pg_event_trigger e
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_event_trigger'::regclass AND d.objid = e.oid AND d.deptype = 'e')
UNION ALL
SELECT 'routine made with a type', quote_ident(n.nspname) || '.' || quote_ident(p.proname)
                                   || '(' || pg_get_function_identity_arguments(p.oid) || ')', ''
FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
WHERE EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'i'
              AND d.refclassid = 'pg_type'::regclass)
