-- Lock one row against writers (the lock holder's open transaction).
SELECT id FROM {table} WHERE id = %(key)s FOR UPDATE
