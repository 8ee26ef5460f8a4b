-- Enrollments per term and status.
SELECT e.term, e.status, count(*) AS enrollments
FROM enrollments e
JOIN students s ON s.id = e.student_id
WHERE (%(term)s::text IS NULL OR e.term = %(term)s)
  AND (%(instrument)s::text IS NULL OR s.instrument = %(instrument)s)
GROUP BY e.term, e.status
ORDER BY e.term, e.status
