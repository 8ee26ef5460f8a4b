-- Row count and content checksum of one table by the "column-hash-v1" method: each row hashes to
-- the XOR of its columns' 64-bit hashes ({row_hash}), and the checksum is their sum over the rows.
-- sum(bigint) adds in 128 bits and returns numeric: no overflow, no numeric cast per row. One scan,
-- in parallel where the planner chooses it.
SELECT count(*) AS row_count, coalesce(sum({row_hash}), 0)::text AS checksum
FROM {table} AS t
