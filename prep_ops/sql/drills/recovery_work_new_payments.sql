-- The drill's work after the last dump: new tuition payments of the current term, half by card
-- (the later damage overwrites every card payment's amount).
INSERT INTO tuition_payments (student_id, term, amount, method)
SELECT s.id, t.term, 180.00 + s.id % 40, CASE WHEN s.id % 2 = 0 THEN 'card' ELSE 'transfer' END
FROM (SELECT max(term) AS term FROM tuition_payments) AS t,
     (SELECT id FROM students ORDER BY id LIMIT 30) AS s
