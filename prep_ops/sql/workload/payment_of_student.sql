-- The first payment of a student: the row the drill's lock holder keeps locked.
SELECT min(id) FROM tuition_payments WHERE student_id = %(student_id)s
