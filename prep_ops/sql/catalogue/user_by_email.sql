-- Log-in and support: one user by e-mail address.
SELECT u.id, u.username, u.full_name, u.role
FROM users u
WHERE u.email = %(email)s
