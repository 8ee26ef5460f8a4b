-- The primary key and a 64-bit hash of the whole row's text, for every row of one table.
SELECT {keys}, hashtextextended(t::text, 0) AS row_hash
FROM {table} AS t
