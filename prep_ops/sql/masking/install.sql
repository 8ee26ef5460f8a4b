-- Masked views for analysts (PostgreSQL Anonymizer's idea, in plain SQL): schema `masked` holds one
-- view per table of the school, with the same rows and keys, so enrollment figures come out the
-- same, but the people are not in it:
--   e-mail      pseudonym of the local part @ the real domain   mateo.tsosie.1@yahoo.com -> 3f9c0a1b2d4e@yahoo.com
--   username    user- and a pseudonym                            mateo.tsosie.1 -> user-7a1e...
--   names       initials                                         Mateo Tsosie -> M. T.
--   born        the year only                                    2015-08-25 -> 2015
--   guardian    initials, area code of the phone, pseudonymous e-mail
--   recording   whether there is one, never the bytes
-- Pseudonyms are salted SHA-256: stable within this database (the same person, the same pseudonym,
-- so joins and counts of distinct people still work). The schemas, the salt and the functions come
-- from migration 0007_masking. Views run with their owner's privileges, so analysts need SELECT on
-- the views only, never on the tables.
-- Names in the views resolve in pg_catalog only (and the schemas they name): nothing a role created in
-- a schema on the installer's search_path can stand in for a function or an operator (SET LOCAL: for
-- this transaction).
SET LOCAL search_path = pg_catalog, pg_temp;

CREATE OR REPLACE VIEW masked.users AS
SELECT u.id,
       'user-' || masking_private.pseudonym(u.username, s.value) AS username,
       masking_private.email(u.email, s.value) AS email,
       u.role,
       masking_private.initials(u.full_name) AS full_name,
       date_trunc('month', u.created_at)::date AS created_month
FROM public.users u CROSS JOIN masking_private.salt s;

CREATE OR REPLACE VIEW masked.students AS
SELECT st.id, st.user_id, st.level, st.instrument, st.start_date,
       extract(year FROM st.date_of_birth)::integer AS birth_year,
       CASE WHEN st.guardian IS NOT NULL THEN jsonb_build_object(
           'name', masking_private.initials(st.guardian ->> 'name'),
           'phone', masking_private.phone(st.guardian ->> 'phone'),
           'email', masking_private.email(st.guardian ->> 'email', s.value)) END AS guardian,
       st.audition_recording IS NOT NULL AS has_audition_recording
FROM public.students st CROSS JOIN masking_private.salt s;

-- Not personal: teaching specialisation and availability, the course catalogue, enrollments and
-- payments (amounts per student number, no names).
CREATE OR REPLACE VIEW masked.teachers AS
SELECT id, user_id, specialization, availability FROM public.teachers;

CREATE OR REPLACE VIEW masked.courses AS
SELECT id, name, description, level, teacher_id FROM public.courses;

CREATE OR REPLACE VIEW masked.enrollments AS
SELECT id, student_id, course_id, term, status, enrolled_at FROM public.enrollments;

CREATE OR REPLACE VIEW masked.tuition_payments AS
SELECT id, student_id, term, amount, method, paid_at::date AS paid_on FROM public.tuition_payments;
