-- A course's roster for a term: who is enrolled, waitlisted or dropped.
SELECT u.full_name, s.instrument, s.level, e.status, e.enrolled_at
FROM enrollments e
JOIN students s ON s.id = e.student_id
JOIN users u ON u.id = s.user_id
WHERE e.course_id = %(course_id)s AND e.term = %(term)s
ORDER BY e.status, u.full_name
