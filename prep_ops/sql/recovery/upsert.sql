-- Put the backup's rows (staged in a temporary table) back: insert the missing ones, update the
-- ones whose content changed, leave equal rows and rows added since the backup alone. Counts the
-- rows inserted (xmax = 0) and updated.
WITH written AS (
    INSERT INTO {table} AS live ({columns})
    OVERRIDING SYSTEM VALUE
    SELECT {columns} FROM {staged}
    ON CONFLICT ({keys}) DO UPDATE SET {assignments}
    WHERE ROW(live.*)::text IS DISTINCT FROM ROW(EXCLUDED.*)::text  -- the rows, even beside a column named live
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
