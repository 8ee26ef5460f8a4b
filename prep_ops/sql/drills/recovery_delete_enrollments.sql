-- The drill's first damage: a cleanup script with a wrong WHERE clause deletes the current term's
-- waitlisted and dropped enrollments and every seventh enrolled one.
DELETE FROM enrollments
WHERE term = (SELECT max(term) FROM enrollments)
  AND (status IN ('waitlisted', 'dropped') OR id % 7 = 0)
