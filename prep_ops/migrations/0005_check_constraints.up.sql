-- Validation the guide asks for ("Constraints", "Validation"): roles, levels, statuses,
-- e-mail format and positive amounts.
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('student', 'teacher', 'admin', 'staff'));
ALTER TABLE users ADD CONSTRAINT users_email_format_check
    CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$');
ALTER TABLE students ADD CONSTRAINT students_level_check
    CHECK (level IN ('beginner', 'intermediate', 'advanced', 'pre-college'));
ALTER TABLE courses ADD CONSTRAINT courses_level_check
    CHECK (level IN ('beginner', 'intermediate', 'advanced', 'pre-college'));
ALTER TABLE enrollments ADD CONSTRAINT enrollments_status_check
    CHECK (status IN ('enrolled', 'waitlisted', 'dropped', 'completed'));
ALTER TABLE tuition_payments ADD CONSTRAINT tuition_payments_amount_check
    CHECK (amount > 0);
ALTER TABLE tuition_payments ADD CONSTRAINT tuition_payments_method_check
    CHECK (method IN ('card', 'check', 'cash', 'transfer', 'scholarship'));
