-- A user row made, changed and removed in one transaction, so the audit log records an INSERT, an
-- UPDATE and a DELETE with their old and new values while the table ends as it began.
WITH made AS (
    INSERT INTO users (username, email, role, full_name)
    VALUES (%(username)s::text, %(username)s::text || '@probe.invalid', 'staff', 'Audit Probe')
    RETURNING id
)
SELECT id FROM made
