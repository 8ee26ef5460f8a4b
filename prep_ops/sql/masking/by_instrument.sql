-- Students per instrument and level, from the masked views: what an analyst can still work out.
SELECT s.instrument, s.level, count(DISTINCT s.id) AS students, round(avg(extract(year FROM current_date) - s.birth_year), 1) AS mean_age
FROM masked.students s
JOIN masked.enrollments e ON e.student_id = s.id AND e.status IN ('enrolled', 'completed')
GROUP BY s.instrument, s.level
ORDER BY s.instrument, s.level
