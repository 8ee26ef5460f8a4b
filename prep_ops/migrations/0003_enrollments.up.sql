-- Students and courses, many-to-many, per term, with a status.
-- Deliberately no index on enrollments(course_id): the course roster needs one, and the
-- query-plan runbook must find it missing. The UNIQUE index leads with student_id.
CREATE TABLE enrollments (
    id SERIAL PRIMARY KEY,
    student_id INTEGER NOT NULL REFERENCES students(id),
    course_id INTEGER NOT NULL REFERENCES courses(id),
    term VARCHAR(20) NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'enrolled',
    enrolled_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT enrollments_student_course_term_key UNIQUE (student_id, course_id, term)
);
