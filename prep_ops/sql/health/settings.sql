-- Keep the checking transaction from hanging or lingering: it must never become the incident.
-- Local to the transaction (is_local true): the caller's connection is left as it was.
SELECT set_config('application_name', 'prep-ops health', true),
       set_config('statement_timeout', %(statement_timeout)s, true),
       set_config('lock_timeout', %(lock_timeout)s, true)
