-- Enrollment counts by instrument and level for a term.
SELECT s.instrument, s.level, count(*) AS enrollments
FROM enrollments e
JOIN students s ON s.id = e.student_id
WHERE e.term = %(term)s
GROUP BY s.instrument, s.level
ORDER BY s.instrument, s.level
