ALTER TABLE tuition_payments DROP CONSTRAINT tuition_payments_method_check;
ALTER TABLE tuition_payments DROP CONSTRAINT tuition_payments_amount_check;
ALTER TABLE enrollments DROP CONSTRAINT enrollments_status_check;
ALTER TABLE courses DROP CONSTRAINT courses_level_check;
ALTER TABLE students DROP CONSTRAINT students_level_check;
ALTER TABLE users DROP CONSTRAINT users_email_format_check;
ALTER TABLE users DROP CONSTRAINT users_role_check;
