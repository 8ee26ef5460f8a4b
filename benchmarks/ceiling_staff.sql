-- The server-side ceiling for `prep_ops.seed`, part 1: admins, teachers and their courses
-- (the students follow in ceiling_students.sql). INSERT ... SELECT ... FROM generate_series into
-- the same tables with the same constraints, values of the shapes seed.py loads, random() for
-- its distributions. benchmarks/seed.py runs it statement by statement (they end with ";" at a
-- line end), binding: students, teachers (counts) and the vocabularies of prep_ops.sample
-- first_names, last_names, domains, instruments, levels (text[]).

INSERT INTO users (id, username, email, role, created_at, full_name)
SELECT i,
       lower(first_name) || '.' || lower(last_name) || '.' || i,
       lower(first_name) || '.' || lower(last_name) || '.' || i || '@' || domain,
       CASE WHEN i <= 2 THEN 'admin' ELSE 'teacher' END,
       timestamp '2019-01-01 08:00' + floor(random() * 365) * interval '1 day' + floor(random() * 43200) * interval '1 second',
       first_name || ' ' || last_name
FROM (SELECT i,
             (%(first_names)s::text[])[1 + floor(random() * cardinality(%(first_names)s::text[]))::int] AS first_name,
             (%(last_names)s::text[])[1 + floor(random() * cardinality(%(last_names)s::text[]))::int] AS last_name,
             (%(domains)s::text[])[1 + floor(random() * cardinality(%(domains)s::text[]))::int] AS domain
      FROM generate_series(1, 2 + %(teachers)s::int) AS i) AS staff;

INSERT INTO teachers (id, user_id, specialization, availability)
SELECT i,
       2 + i,
       (%(instruments)s::text[])[1 + floor(random() * cardinality(%(instruments)s::text[]))::int],
       json_build_object('weekly_hours', hours,
                         'slots', json_build_array(
                             json_build_object('day', 'mon', 'start', '13:00', 'end', (13 + hours / 2) || ':00'),
                             json_build_object('day', 'thu', 'start', '14:00', 'end', (14 + hours - hours / 2) || ':00')))
FROM (SELECT i, 4 + floor(random() * 5)::int AS hours FROM generate_series(1, %(teachers)s::int) AS i) AS t;

INSERT INTO courses (id, name, description, level, teacher_id)
SELECT c.id,
       initcap(t.specialization) || ' ' || initcap(c.level) || ' (' || split_part(u.full_name, ' ', 2) || ' studio)',
       'Weekly ' || c.level || ' ' || t.specialization || ' lessons and studio class',
       c.level,
       t.id
FROM (SELECT i AS id, 1 + (i - 1) / 4 AS teacher_id, (%(levels)s::text[])[1 + mod(i - 1, 4)] AS level
      FROM generate_series(1, 4 * %(teachers)s::int) AS i) AS c
JOIN teachers AS t ON t.id = c.teacher_id
JOIN users AS u ON u.id = t.user_id;

-- the sequences where seed.py leaves them: after the last id
SELECT setval(pg_get_serial_sequence('users', 'id'), 2 + %(teachers)s::int + %(students)s::int);

SELECT setval(pg_get_serial_sequence('teachers', 'id'), %(teachers)s::int);

SELECT setval(pg_get_serial_sequence('courses', 'id'), 4 * %(teachers)s::int);

SELECT setval(pg_get_serial_sequence('students', 'id'), %(students)s::int);
