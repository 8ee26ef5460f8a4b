-- The drill's work after the last dump: a registration day adds enrollments to the current term,
-- every third of them waitlisted (the later damage deletes those, and every seventh by id).
INSERT INTO enrollments (student_id, course_id, term, status)
SELECT s.id, c.id, t.term, CASE WHEN (s.id + c.id) % 3 = 0 THEN 'waitlisted' ELSE 'enrolled' END
FROM (SELECT max(term) AS term FROM enrollments) AS t,
     (SELECT id FROM students ORDER BY id DESC LIMIT 40) AS s,
     (SELECT id FROM courses ORDER BY id LIMIT 3) AS c
ON CONFLICT (student_id, course_id, term) DO NOTHING
