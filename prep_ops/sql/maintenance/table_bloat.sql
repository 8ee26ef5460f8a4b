-- Estimated bloat of each table (and materialized view) of every user schema, from statistics only:
-- no table is read. The live rows the server counts now (pg_stat_user_tables.n_live_tup; reltuples
-- when the counters were reset) at their average width (pg_stats.avg_width and null_frac per column,
-- plus tuple header, null bitmap, MAXALIGN padding and line pointer) fill a number of pages at the
-- table's fillfactor; the pages the table has now beyond those are counted as wasted. Not relpages
-- and reltuples: they date from the last VACUUM or ANALYZE and miss every row that died since.
-- Padding between columns and TOAST storage are left out: an estimate, not a measurement.
WITH constants AS (
    SELECT current_setting('block_size')::int AS block_size,
           24 AS page_header,   -- PageHeaderData
           23 AS tuple_header,  -- HeapTupleHeaderData
           4 AS line_pointer,   -- ItemIdData, one per tuple
           8 AS max_align       -- MAXALIGN of 64-bit servers
),
heap AS (
    SELECT c.oid, n.nspname, c.relname,
           (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint AS relpages,
           CASE WHEN coalesce(st.n_live_tup, 0) + coalesce(st.n_dead_tup, 0) > 0 THEN st.n_live_tup::float8
                ELSE c.reltuples END AS reltuples,
           st.n_dead_tup AS dead_rows,
           coalesce((SELECT substring(option FROM '^fillfactor=(\d+)$')::int
                     FROM unnest(c.reloptions) AS option
                     WHERE option LIKE 'fillfactor=%'), 100) AS fillfactor
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_all_tables st ON st.relid = c.oid
    WHERE c.relkind IN ('r', 'm')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
),
widths AS (
    SELECT h.oid,
           count(*) AS columns,
           count(s.avg_width) AS columns_with_stats,
           coalesce(sum((1 - s.null_frac) * s.avg_width), 0) AS data_width,
           coalesce(bool_or(s.null_frac > 0), false) AS has_nulls
    FROM heap h
    JOIN pg_attribute a ON a.attrelid = h.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_stats s ON s.schemaname = h.nspname AND s.tablename = h.relname
                        AND s.attname = a.attname AND NOT s.inherited
    GROUP BY h.oid
),
sized AS (
    SELECT h.nspname, h.relname, h.dead_rows, h.relpages, h.reltuples, h.fillfactor, k.block_size, k.page_header,
           coalesce(w.columns, 0) AS columns, coalesce(w.columns_with_stats, 0) AS columns_with_stats,
           -- header (with the null bitmap when some column has nulls) and data, each padded to MAXALIGN
           k.max_align * ceil((k.tuple_header + CASE WHEN w.has_nulls THEN ceil(w.columns / 8.0) ELSE 0 END)
                              / k.max_align::numeric)
           + k.max_align * ceil(coalesce(w.data_width, 0) / k.max_align::numeric)
           + k.line_pointer AS tuple_bytes
    FROM heap h
    CROSS JOIN constants k
    LEFT JOIN widths w ON w.oid = h.oid
),
estimated AS (
    SELECT nspname, relname, dead_rows, reltuples, relpages, block_size,
           CASE WHEN reltuples < 0 OR (reltuples > 0 AND columns_with_stats < columns) THEN NULL
                ELSE ceil(reltuples / greatest(floor((block_size * fillfactor / 100.0 - page_header) / tuple_bytes), 1))::bigint
           END AS expected_pages
    FROM sized
)
SELECT 'table' AS kind,
       CASE WHEN nspname = 'public' THEN relname ELSE nspname || '.' || relname END AS table_name,
       NULL::name AS index_name,
       relpages::bigint * block_size AS bytes,
       (greatest(relpages - expected_pages, 0) * block_size)::bigint AS estimated_wasted_bytes,
       CASE WHEN expected_pages IS NULL THEN NULL
            WHEN relpages = 0 THEN 0.0
            ELSE round(100.0 * greatest(relpages - expected_pages, 0) / relpages, 1)::float8
       END AS estimated_bloat_pct,
       dead_rows,
       greatest(reltuples, 0)::bigint AS live_rows,
       CASE WHEN expected_pages IS NULL THEN 'no statistics: run ANALYZE' ELSE 'estimate' END AS note,
       nspname AS schema_name,
       relname
FROM estimated
ORDER BY nspname <> 'public', nspname, relname
