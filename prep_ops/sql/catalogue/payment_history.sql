-- A student's payment history, newest first.
SELECT p.term, p.amount, p.method, p.paid_at
FROM tuition_payments p
WHERE p.student_id = %(student_id)s
ORDER BY p.paid_at DESC
