-- Measured space of one table with pgstattuple_approx: it reads every page the visibility map does
-- not mark all-visible (so every dead row is seen) and takes the free space of the others from the
-- free space map. Wasted: dead rows plus free space.
SELECT s.table_len AS bytes,
       (s.dead_tuple_len + s.approx_free_space)::bigint AS wasted_bytes,
       s.dead_tuple_count::bigint AS dead_rows
FROM {function}(%(relation)s::regclass) s
