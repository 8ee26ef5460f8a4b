-- Take the staged rows the live table already holds as the backup has them out of the repair: compared
-- as staged, before the table's BEFORE triggers see them (EXCLUDED in the upsert is the row after them:
-- a trigger that recomputes a column made every row look changed, and each was rewritten). Keys are
-- compared by their text (the types' output functions), like the rows: `=` on a key of a role's type
-- would take that role's own operator where one on the search_path matches exactly, and run its function
-- as whoever repairs. A row equal as a whole has equal keys, so no unchanged row is missed.
DELETE FROM {staged} AS staged
USING {table} AS live
WHERE ROW({live_keys})::text = ROW({staged_keys})::text
  AND ROW({live_columns})::text IS NOT DISTINCT FROM ROW({staged_columns})::text
