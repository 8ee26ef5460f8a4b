-- The guide's query: every user with the student role, with their student record.
SELECT *
FROM users u
JOIN students s ON u.id = s.user_id
WHERE u.role = %(role)s
