-- The server-side ceiling for `prep_ops.seed`, part 2: the students with ids first_id..last_id,
-- their users, enrollments and payments (run once for all students, or once per chunk as seed.py
-- loads them). Bound parameters besides those of ceiling_staff.sql: first_id, last_id,
-- enrollments and payments (row counts for all students), terms, statuses, methods (text[]).
-- Enrollments and payments go to the students in id order, as seed.py loads them: each student
-- gets count / students rows, the first (count mod students) one more; a student's enrollments
-- are in distinct terms, so (student_id, course_id, term) stays unique.

INSERT INTO users (id, username, email, role, created_at, full_name)
SELECT i,
       lower(first_name) || '.' || lower(last_name) || '.' || i,
       lower(first_name) || '.' || lower(last_name) || '.' || i || '@' || domain,
       'student',
       timestamp '2019-01-01 08:00' + floor(random() * 2800) * interval '1 day' + floor(random() * 43200) * interval '1 second',
       first_name || ' ' || last_name
FROM (SELECT i,
             (%(first_names)s::text[])[1 + floor(random() * cardinality(%(first_names)s::text[]))::int] AS first_name,
             (%(last_names)s::text[])[1 + floor(random() * cardinality(%(last_names)s::text[]))::int] AS last_name,
             (%(domains)s::text[])[1 + floor(random() * cardinality(%(domains)s::text[]))::int] AS domain
      FROM generate_series(2 + %(teachers)s::int + %(first_id)s::int, 2 + %(teachers)s::int + %(last_id)s::int) AS i) AS u;

INSERT INTO students (id, user_id, level, instrument, start_date, date_of_birth, guardian, audition_recording)
SELECT i,
       2 + %(teachers)s::int + i,
       (%(levels)s::text[])[1 + floor(random() * cardinality(%(levels)s::text[]))::int],
       (%(instruments)s::text[])[1 + floor(random() * cardinality(%(instruments)s::text[]))::int],
       date '2019-01-01' + floor(random() * 2800)::int,
       date '2021-09-01' - floor(random() * 6000)::int,
       jsonb_build_object('name', first_name || ' ' || last_name,
                          'phone', '505-' || (200 + floor(random() * 800)::int) || '-' || lpad(floor(random() * 10000)::int::text, 4, '0'),
                          'email', lower(first_name) || '.' || lower(last_name) || '@' || domain),
       CASE WHEN random() < 0.1
            THEN decode(md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex') END
FROM (SELECT i,
             (%(first_names)s::text[])[1 + floor(random() * cardinality(%(first_names)s::text[]))::int] AS first_name,
             (%(last_names)s::text[])[1 + floor(random() * cardinality(%(last_names)s::text[]))::int] AS last_name,
             (%(domains)s::text[])[1 + floor(random() * cardinality(%(domains)s::text[]))::int] AS domain
      FROM generate_series(%(first_id)s::int, %(last_id)s::int) AS i) AS s;

INSERT INTO enrollments (student_id, course_id, term, status, enrolled_at)
SELECT s,
       1 + floor(random() * 4 * %(teachers)s::int)::int,
       (%(terms)s::text[])[1 + r],
       (%(statuses)s::text[])[1 + floor(random() * cardinality(%(statuses)s::text[]))::int],
       timestamp '2024-06-01 08:00' + floor(random() * 800) * interval '1 day' + floor(random() * 43200) * interval '1 second'
FROM generate_series(%(first_id)s::int, %(last_id)s::int) AS s,
     LATERAL generate_series(0, %(enrollments)s::int / %(students)s::int - 1
                                + (s <= mod(%(enrollments)s::int, %(students)s::int))::int) AS r;

INSERT INTO tuition_payments (student_id, term, amount, method, paid_at)
SELECT s,
       (%(terms)s::text[])[1 + mod(r, cardinality(%(terms)s::text[]))],
       round((210 + random() * 570)::numeric, 2),
       (%(methods)s::text[])[1 + floor(random() * cardinality(%(methods)s::text[]))::int],
       timestamp '2024-06-01 08:00' + floor(random() * 800) * interval '1 day' + floor(random() * 43200) * interval '1 second'
FROM generate_series(%(first_id)s::int, %(last_id)s::int) AS s,
     LATERAL generate_series(0, %(payments)s::int / %(students)s::int - 1
                                + (s <= mod(%(payments)s::int, %(students)s::int))::int) AS r;
