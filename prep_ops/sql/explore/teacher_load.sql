-- Per teacher in one term: weekly hours offered (availability JSON) against enrolled students,
-- at one 30-minute lesson a week each.
SELECT t.id AS teacher_id, u.full_name AS teacher, t.specialization AS instrument,
       (t.availability ->> 'weekly_hours')::int AS weekly_hours,
       count(e.id) AS enrolled,
       round(count(e.id) * 0.5 / nullif((t.availability ->> 'weekly_hours')::int, 0), 2) AS load_ratio
FROM teachers t
JOIN users u ON u.id = t.user_id
LEFT JOIN courses c ON c.teacher_id = t.id
LEFT JOIN enrollments e ON e.course_id = c.id AND e.status = 'enrolled' AND e.term = %(term)s
WHERE (%(instrument)s::text IS NULL OR t.specialization = %(instrument)s)
GROUP BY t.id, u.full_name, t.specialization, t.availability ->> 'weekly_hours'
ORDER BY load_ratio DESC NULLS LAST, t.id
