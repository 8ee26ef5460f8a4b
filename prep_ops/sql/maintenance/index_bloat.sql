-- Estimated bloat of each btree index of every user schema, from statistics only: no index is read.
-- The index's entries (its table's live rows as the server counts them now; the index's reltuples
-- when the counters were reset) at the average width of their keys (pg_stats of the
-- table's columns, or of the index itself for expression keys, plus index tuple header, null
-- bitmap, MAXALIGN padding and line pointer) fill a number of leaf pages at the index's fillfactor
-- (btree default 90); with the metapage and one level of internal pages that is what a fresh build
-- needs, and the pages the index has now beyond it are counted as wasted. Deduplication (PostgreSQL
-- 13+) can make an index smaller than this estimate; negative bloat is reported as none.
WITH constants AS (
    SELECT current_setting('block_size')::int AS block_size,
           24 AS page_header,         -- PageHeaderData
           16 AS btree_special,       -- BTPageOpaqueData, at the end of every page
           8 AS index_tuple_header,   -- IndexTupleData
           8 AS null_bitmap,          -- IndexAttributeBitMapData, padded: when some key is null
           4 AS line_pointer,         -- ItemIdData, one per tuple
           8 AS max_align,            -- MAXALIGN of 64-bit servers
           70 AS internal_fillfactor  -- BTREE_NONLEAF_FILLFACTOR
),
btree AS (
    SELECT ci.oid, ci.relname AS index_name, ct.relname AS table_name, n.nspname, i.indrelid, i.indkey,
           (pg_relation_size(ci.oid) / current_setting('block_size')::int)::bigint AS relpages,
           CASE WHEN coalesce(st.n_live_tup, 0) + coalesce(st.n_dead_tup, 0) > 0 THEN st.n_live_tup::float8
                ELSE ci.reltuples END AS reltuples,
           coalesce((SELECT substring(option FROM '^fillfactor=(\d+)$')::int
                     FROM unnest(ci.reloptions) AS option
                     WHERE option LIKE 'fillfactor=%'), 90) AS fillfactor
    FROM pg_index i
    JOIN pg_class ci ON ci.oid = i.indexrelid
    JOIN pg_class ct ON ct.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = ct.relnamespace
    JOIN pg_am am ON am.oid = ci.relam
    LEFT JOIN pg_stat_all_tables st ON st.relid = ct.oid
    WHERE ci.relkind = 'i' AND am.amname = 'btree'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = ct.oid AND d.deptype = 'e')
),
keys AS (
    -- a key on a column has the column's statistics; a key on an expression has the index's own
    SELECT b.oid, s.null_frac, s.avg_width
    FROM btree b
    CROSS JOIN LATERAL unnest(b.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
    LEFT JOIN pg_attribute ta ON ta.attrelid = b.indrelid AND ta.attnum = k.attnum
    LEFT JOIN pg_attribute ia ON ia.attrelid = b.oid AND ia.attnum = k.position
    LEFT JOIN pg_stats s ON s.schemaname = b.nspname AND NOT s.inherited
        AND s.tablename = CASE WHEN k.attnum = 0 THEN b.index_name ELSE b.table_name END
        AND s.attname = CASE WHEN k.attnum = 0 THEN ia.attname ELSE ta.attname END
),
widths AS (
    SELECT oid,
           count(*) AS columns,
           count(avg_width) AS columns_with_stats,
           coalesce(sum((1 - null_frac) * avg_width), 0) AS data_width,
           coalesce(bool_or(null_frac > 0), false) AS has_nulls
    FROM keys
    GROUP BY oid
),
sized AS (
    SELECT b.index_name, b.table_name, b.nspname, b.relpages, b.reltuples, b.fillfactor, w.columns, w.columns_with_stats,
           k.block_size, k.internal_fillfactor,
           k.block_size - k.page_header - k.btree_special AS page_space,
           k.max_align * ceil((k.index_tuple_header + CASE WHEN w.has_nulls THEN k.null_bitmap ELSE 0 END
                               + w.data_width) / k.max_align::numeric)
           + k.line_pointer AS tuple_bytes
    FROM btree b
    CROSS JOIN constants k
    JOIN widths w ON w.oid = b.oid
),
leaves AS (
    SELECT *,
           CASE WHEN reltuples < 0 OR (reltuples > 0 AND columns_with_stats < columns) THEN NULL
                ELSE ceil(reltuples / greatest(floor(page_space * fillfactor / 100.0 / tuple_bytes), 1))::bigint
           END AS leaf_pages
    FROM sized
),
estimated AS (
    SELECT *,
           1 + leaf_pages
           + CASE WHEN leaf_pages > 1
                  THEN ceil(leaf_pages / greatest(floor(page_space * internal_fillfactor / 100.0 / tuple_bytes), 1))::bigint
                  ELSE 0 END AS expected_pages
    FROM leaves
)
SELECT 'index' AS kind,
       CASE WHEN nspname = 'public' THEN table_name ELSE nspname || '.' || table_name END AS table_name,
       index_name,
       relpages::bigint * block_size AS bytes,
       (greatest(relpages - expected_pages, 0) * block_size)::bigint AS estimated_wasted_bytes,
       CASE WHEN expected_pages IS NULL THEN NULL
            WHEN relpages = 0 THEN 0.0
            ELSE round(100.0 * greatest(relpages - expected_pages, 0) / relpages, 1)::float8
       END AS estimated_bloat_pct,
       NULL::bigint AS dead_rows,
       NULL::bigint AS live_rows,
       CASE WHEN expected_pages IS NULL THEN 'no statistics: run ANALYZE' ELSE 'estimate' END AS note,
       nspname AS schema_name,
       table_name AS relname
FROM estimated
ORDER BY nspname <> 'public', nspname, table_name, index_name
