-- Tuition payments (DECIMAL amounts), personal details for students and users,
-- guardian contacts as JSONB and audition recordings as BYTEA.
CREATE TABLE tuition_payments (
    id SERIAL PRIMARY KEY,
    student_id INTEGER NOT NULL REFERENCES students(id),
    term VARCHAR(20) NOT NULL,
    amount DECIMAL(10, 2) NOT NULL,
    method VARCHAR(20) NOT NULL,
    paid_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_tuition_payments_student_id ON tuition_payments(student_id);

ALTER TABLE users ADD COLUMN full_name VARCHAR(100);
ALTER TABLE students ADD COLUMN date_of_birth DATE;
ALTER TABLE students ADD COLUMN guardian JSONB;
ALTER TABLE students ADD COLUMN audition_recording BYTEA;
