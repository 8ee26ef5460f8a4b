-- The server-side ceiling for `prep_ops.seed`: the same tables, constraints and row counts,
-- filled by INSERT ... SELECT ... FROM generate_series on the server, with no client in the way.
-- Values have the shapes seed.py loads (same columns, types, FKs, CHECKs); random() stands in
-- for its distributions. Run statement by statement (split on ";" at a line end), in one
-- transaction, with the parameters benchmarks/seed.py binds:
--   students, teachers, enrollments, payments (row counts), first, last, domains,
--   instruments, levels, terms, statuses, methods (text[] vocabularies of prep_ops.sample).
-- Enrollments and payments are spread over the students in id order, as seed.py loads them:
-- every student gets count / students rows, the first count mod students one more; an
-- enrollment's terms are distinct, so (student_id, course_id, term) stays unique.

INSERT INTO users (id, username, email, role, created_at, full_name)
SELECT i,
       lower(first) || '.' || lower(last) || '.' || i,
       lower(first) || '.' || lower(last) || '.' || i || '@' || domain,
       CASE WHEN i <= 2 THEN 'admin' WHEN i <= 2 + %(teachers)s::int THEN 'teacher' ELSE 'student' END,
       timestamp '2019-01-01 08:00' + floor(random() * 2800) * interval '1 day' + floor(random() * 43200) * interval '1 second',
       first || ' ' || last
FROM (SELECT i,
             (%(first)s::text[])[1 + floor(random() * array_length(%(first)s::text[], 1))::int] AS first,
             (%(last)s::text[])[1 + floor(random() * array_length(%(last)s::text[], 1))::int] AS last,
             (%(domains)s::text[])[1 + floor(random() * array_length(%(domains)s::text[], 1))::int] AS domain
      FROM generate_series(1, 2 + %(teachers)s::int + %(students)s::int) AS i) AS u;

INSERT INTO teachers (id, user_id, specialization, availability)
SELECT i,
       2 + i,
       (%(instruments)s::text[])[1 + floor(random() * array_length(%(instruments)s::text[], 1))::int],
       json_build_object('weekly_hours', hours,
                         'slots', json_build_array(json_build_object('day', 'mon', 'start', '13:00', 'end', (13 + hours / 2) || ':00'),
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

INSERT INTO students (id, user_id, level, instrument, start_date, date_of_birth, guardian, audition_recording)
SELECT i,
       2 + %(teachers)s::int + i,
       (%(levels)s::text[])[1 + floor(random() * 4)::int],
       (%(instruments)s::text[])[1 + floor(random() * array_length(%(instruments)s::text[], 1))::int],
       date '2019-01-01' + floor(random() * 2800)::int,
       date '2021-09-01' - floor(random() * 6000)::int,
       jsonb_build_object('name', first || ' ' || last,
                          'phone', '505-' || (200 + floor(random() * 800)::int) || '-' || lpad(floor(random() * 10000)::int::text, 4, '0'),
                          'email', lower(first) || '.' || lower(last) || '@' || domain),
       CASE WHEN random() < 0.1
            THEN decode(md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex') END
FROM (SELECT i,
             (%(first)s::text[])[1 + floor(random() * array_length(%(first)s::text[], 1))::int] AS first,
             (%(last)s::text[])[1 + floor(random() * array_length(%(last)s::text[], 1))::int] AS last,
             (%(domains)s::text[])[1 + floor(random() * array_length(%(domains)s::text[], 1))::int] AS domain
      FROM generate_series(1, %(students)s::int) AS i) AS s;

INSERT INTO enrollments (student_id, course_id, term, status, enrolled_at)
SELECT s,
       1 + floor(random() * 4 * %(teachers)s::int)::int,
       (%(terms)s::text[])[1 + r],
       (%(statuses)s::text[])[1 + floor(random() * array_length(%(statuses)s::text[], 1))::int],
       timestamp '2024-06-01 08:00' + floor(random() * 800) * interval '1 day' + floor(random() * 43200) * interval '1 second'
FROM generate_series(1, %(students)s::int) AS s,
     LATERAL generate_series(0, %(enrollments)s::int / %(students)s::int - 1
                                + (s <= mod(%(enrollments)s::int, %(students)s::int))::int) AS r;

INSERT INTO tuition_payments (student_id, term, amount, method, paid_at)
SELECT s,
       (%(terms)s::text[])[1 + mod(r, array_length(%(terms)s::text[], 1))],
       round((210 + random() * 570)::numeric, 2),
       (%(methods)s::text[])[1 + floor(random() * array_length(%(methods)s::text[], 1))::int],
       timestamp '2024-06-01 08:00' + floor(random() * 800) * interval '1 day' + floor(random() * 43200) * interval '1 second'
FROM generate_series(1, %(students)s::int) AS s,
     LATERAL generate_series(0, %(payments)s::int / %(students)s::int - 1
                                + (s <= mod(%(payments)s::int, %(students)s::int))::int) AS r;

SELECT setval(pg_get_serial_sequence('users', 'id'), 2 + %(teachers)s::int + %(students)s::int);

SELECT setval(pg_get_serial_sequence('teachers', 'id'), %(teachers)s::int);

SELECT setval(pg_get_serial_sequence('courses', 'id'), 4 * %(teachers)s::int);

SELECT setval(pg_get_serial_sequence('students', 'id'), %(students)s::int);
