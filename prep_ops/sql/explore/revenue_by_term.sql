-- Tuition received per term and payment method (US$).
SELECT p.term, p.method, sum(p.amount) AS amount, count(*) AS payments
FROM tuition_payments p
JOIN students s ON s.id = p.student_id
WHERE (%(term)s::text IS NULL OR p.term = %(term)s)
  AND (%(instrument)s::text IS NULL OR s.instrument = %(instrument)s)
GROUP BY p.term, p.method
ORDER BY p.term, p.method
