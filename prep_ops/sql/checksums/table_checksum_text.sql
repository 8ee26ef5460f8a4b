-- Row count and content checksum of one table by the "row-text" method (backups made before
-- manifests named their method): the sum of a 64-bit hash of every row's text form. ROW(t.*), not t:
-- a bare t is a column where the table has one of that name; the row's text is the same either way.
SELECT count(*) AS row_count, coalesce(sum(hashtextextended(ROW(t.*)::text, 0)::numeric), 0)::text AS checksum
FROM {table} AS t
