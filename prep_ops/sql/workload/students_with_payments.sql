-- Students who have payments, in random order: the parameters of the load's payment_history calls.
SELECT student_id
FROM (SELECT DISTINCT student_id FROM tuition_payments) AS paying
ORDER BY random()
LIMIT %(limit)s
