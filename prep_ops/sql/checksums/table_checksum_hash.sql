-- Row count and content checksum of one table by a column-hash method (v3, or v2/v1 for older
-- manifests; the table is read ONLY for v3): each row hashes to a 64-bit value built from its
-- columns' hashes (checksums.row_hash / row_hash_v1), and the checksum is their sum over the rows.
-- sum(bigint) adds in 128 bits and returns numeric: no overflow, no numeric cast per row. One scan,
-- in parallel where the planner chooses it.
-- No placeholder in these comments: a name with a line break, filled in here, would end the comment,
-- and the rest of the name would run as SQL.
SELECT count(*) AS row_count, coalesce(sum({row_hash}), 0)::text AS checksum
FROM {table} AS t
