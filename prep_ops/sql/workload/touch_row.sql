-- A writer's update of one row, changing nothing (it is rolled back): it waits for the row lock.
UPDATE {table} SET id = id WHERE id = %(key)s
