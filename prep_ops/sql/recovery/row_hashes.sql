-- The primary key and a 64-bit hash of the whole row's text, for every row of one table. ROW(t.*),
-- not t: a bare t is a column where the table has one of that name. ONLY: an inheritance parent's own
-- rows, not its children's (each child is a table of its own, with its own key).
SELECT {keys}, hashtextextended(ROW(t.*)::text, 0) AS row_hash
FROM ONLY {table} AS t
