-- Waitlisted and dropped enrollments per instrument, with the share of each.
SELECT s.instrument,
       count(*) AS enrollments,
       count(*) FILTER (WHERE e.status = 'waitlisted') AS waitlisted,
       count(*) FILTER (WHERE e.status = 'dropped') AS dropped,
       round(100.0 * count(*) FILTER (WHERE e.status = 'waitlisted') / count(*), 1) AS waitlisted_pct,
       round(100.0 * count(*) FILTER (WHERE e.status = 'dropped') / count(*), 1) AS dropped_pct
FROM enrollments e
JOIN students s ON s.id = e.student_id
WHERE (%(term)s::text IS NULL OR e.term = %(term)s)
  AND (%(instrument)s::text IS NULL OR s.instrument = %(instrument)s)
GROUP BY s.instrument
ORDER BY dropped_pct DESC, s.instrument
