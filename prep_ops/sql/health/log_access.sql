-- Whether this session may find and read the server log: superusers may, others need EXECUTE
-- on these functions. Asked first, so that a refusal does not itself add an error to the log.
SELECT has_function_privilege('pg_current_logfile()', 'EXECUTE')
   AND has_function_privilege('pg_stat_file(text, boolean)', 'EXECUTE')
   AND has_function_privilege('pg_read_binary_file(text, bigint, bigint, boolean)', 'EXECUTE') AS allowed
