-- Put the backup's rows (staged in a temporary table, rows the live table holds as they are already
-- taken out: unchanged.sql) back: insert the missing ones, update the changed ones; rows added since
-- the backup are left alone. Counts the rows inserted (xmax = 0) and updated.
WITH written AS (
    INSERT INTO {table} ({columns})
    OVERRIDING SYSTEM VALUE
    SELECT {columns} FROM {staged}
    ON CONFLICT ({keys}) DO UPDATE SET {assignments}
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
