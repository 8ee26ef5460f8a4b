-- The CHECK constraints of this session's probe table, as the server deparses them.
SELECT pg_get_constraintdef(con.oid)
FROM pg_constraint con
WHERE con.conrelid = %(probe)s AND con.contype = 'c'
