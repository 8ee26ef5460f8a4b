-- Personal values that the masked views show unchanged: every count must be 0.
SELECT 'users.email' AS column_name, count(*) AS unmasked
FROM masked.users m JOIN public.users u ON u.id = m.id WHERE m.email = u.email
UNION ALL
SELECT 'users.username', count(*) FROM masked.users m JOIN public.users u ON u.id = m.id WHERE m.username = u.username
UNION ALL
SELECT 'users.full_name', count(*) FROM masked.users m JOIN public.users u ON u.id = m.id WHERE m.full_name = u.full_name
UNION ALL
SELECT 'students.guardian.name', count(*) FROM masked.students m JOIN public.students s ON s.id = m.id
WHERE m.guardian ->> 'name' = s.guardian ->> 'name'
UNION ALL
SELECT 'students.guardian.phone', count(*) FROM masked.students m JOIN public.students s ON s.id = m.id
WHERE m.guardian ->> 'phone' = s.guardian ->> 'phone'
UNION ALL
SELECT 'students.guardian.email', count(*) FROM masked.students m JOIN public.students s ON s.id = m.id
WHERE m.guardian ->> 'email' = s.guardian ->> 'email'
