ALTER TABLE students DROP COLUMN audition_recording;
ALTER TABLE students DROP COLUMN guardian;
ALTER TABLE students DROP COLUMN date_of_birth;
ALTER TABLE users DROP COLUMN full_name;
DROP TABLE tuition_payments;
