-- The size on disk of each table given by schema and name (its heap and TOAST, without indexes): the
-- order in which each_table hands tables out, largest first.
SELECT s, t, pg_table_size(format('%%I.%%I', s, t)::regclass)
FROM unnest(%s::text[], %s::text[]) AS x(s, t)
