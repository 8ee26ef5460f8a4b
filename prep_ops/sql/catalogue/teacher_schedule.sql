-- A teacher's courses for a term with the number of students enrolled in each.
SELECT c.id, c.name, c.level, count(e.id) FILTER (WHERE e.status = 'enrolled') AS enrolled
FROM courses c
LEFT JOIN enrollments e ON e.course_id = c.id AND e.term = %(term)s
WHERE c.teacher_id = %(teacher_id)s
GROUP BY c.id, c.name, c.level
ORDER BY c.level, c.name
