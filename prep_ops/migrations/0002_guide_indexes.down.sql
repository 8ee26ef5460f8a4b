ALTER TABLE teachers DROP CONSTRAINT teachers_user_id_key;
ALTER TABLE students DROP CONSTRAINT students_user_id_key;
DROP INDEX idx_users_username;
DROP INDEX idx_students_level_instrument;
DROP INDEX idx_users_email;
