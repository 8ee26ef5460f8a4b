-- Students enrolled or completed, by instrument and level, for one term or all (NULL).
SELECT s.instrument, s.level, count(DISTINCT e.student_id) AS students
FROM enrollments e
JOIN students s ON s.id = e.student_id
WHERE e.status IN ('enrolled', 'completed')
  AND (%(term)s::text IS NULL OR e.term = %(term)s)
  AND (%(instrument)s::text IS NULL OR s.instrument = %(instrument)s)
GROUP BY s.instrument, s.level
ORDER BY s.instrument, s.level
