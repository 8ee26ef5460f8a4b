DROP TABLE courses;
DROP TABLE teachers;
DROP TABLE students;
DROP TABLE users;
DROP TABLE schema_version;
