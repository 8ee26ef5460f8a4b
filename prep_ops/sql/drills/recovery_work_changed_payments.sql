-- The drill's work after the last dump: a late fee of US$ 25 added to some card payments (the later
-- damage overwrites them: only the point-in-time copy holds the amounts with the fee).
UPDATE tuition_payments SET amount = amount + 25.00 WHERE method = 'card' AND id % 10 = 3
