-- Parameter values for the query catalogue that exist in this database: a busy course and
-- teacher of the current term, a student with payments, and a student's e-mail.
SELECT
    (SELECT email FROM users WHERE role = 'student' ORDER BY id LIMIT 1) AS email,
    (SELECT course_id FROM enrollments WHERE term = %(term)s GROUP BY course_id ORDER BY count(*) DESC, course_id LIMIT 1) AS course_id,
    (SELECT c.teacher_id FROM enrollments e JOIN courses c ON c.id = e.course_id WHERE e.term = %(term)s
     GROUP BY c.teacher_id ORDER BY count(*) DESC, c.teacher_id LIMIT 1) AS teacher_id,
    (SELECT student_id FROM tuition_payments ORDER BY student_id LIMIT 1) AS student_id
