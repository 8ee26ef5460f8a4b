-- Keep the checking session itself from hanging or lingering: it must never become the incident.
SELECT set_config('application_name', 'prep-ops health', false),
       set_config('statement_timeout', %(statement_timeout)s, false),
       set_config('lock_timeout', %(lock_timeout)s, false)
