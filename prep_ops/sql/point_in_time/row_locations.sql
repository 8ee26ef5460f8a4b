-- The primary key and the physical place (block, offset: the ctid) of every row of one table.
SELECT {keys}, (ctid::text::point)[0]::bigint AS block, (ctid::text::point)[1]::int AS off
FROM {table}
