-- Take the staged rows the live table already holds as the backup has them out of the repair: compared
-- as staged, before the table's BEFORE triggers see them (EXCLUDED in the upsert is the row after them:
-- a trigger that recomputes a column made every row look changed, and each was rewritten).
DELETE FROM {staged} AS staged
USING {table} AS live
WHERE ({live_keys}) = ({staged_keys})
  AND ROW({live_columns})::text IS NOT DISTINCT FROM ROW({staged_columns})::text
