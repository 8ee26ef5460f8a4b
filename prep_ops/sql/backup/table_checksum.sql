-- Row count and an order-independent content checksum of one table: the sum of a 64-bit hash of
-- every row's text form. No sort, one sequential scan: cheap next to a count(*).
SELECT count(*) AS row_count, coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text AS checksum
FROM {table} AS t
