-- Measured space of one B-tree index with pgstatindex (reads the whole index). Wasted: empty and
-- deleted pages, and the room leaf pages lack below the index's fillfactor (90 by default).
WITH s AS (SELECT * FROM {function}(%(relation)s::regclass)),
fill AS (
    SELECT coalesce((SELECT substring(o FROM '^fillfactor=(\d+)$')::float8
                     FROM pg_class c, unnest(c.reloptions) o
                     WHERE c.oid = %(relation)s::regclass AND o LIKE 'fillfactor=%%'), 90) AS fillfactor
)
SELECT s.index_size AS bytes,
       ((s.empty_pages + s.deleted_pages) * current_setting('block_size')::bigint
        + CASE WHEN s.leaf_pages = 0 OR s.avg_leaf_density = 'NaN' THEN 0
               ELSE greatest(0, s.leaf_pages * current_setting('block_size')::bigint
                                * (1 - s.avg_leaf_density / fill.fillfactor)) END)::bigint AS wasted_bytes,
       NULL::bigint AS dead_rows
FROM s, fill
