-- The indexes of the guide's "Query Optimization" section, and the one-to-one links
-- user <-> student and user <-> teacher made unique.
-- idx_users_email and idx_users_username repeat the UNIQUE constraints of migration 1;
-- they are the guide's, kept as written (the index advice of the query-plan runbook reports them).
CREATE INDEX idx_users_email ON users(email);
CREATE INDEX idx_students_level_instrument ON students(level, instrument);
CREATE UNIQUE INDEX idx_users_username ON users(username);

ALTER TABLE students ADD CONSTRAINT students_user_id_key UNIQUE (user_id);
ALTER TABLE teachers ADD CONSTRAINT teachers_user_id_key UNIQUE (user_id);
