-- The server log this session may read: the file the logging collector writes to (NULL when the
-- collector is off) or the one given, its size, the cut-off time of the window in the log's own time
-- zone and timestamp format (so log lines compare as text), and the prefix each line starts with.
SELECT coalesce(pg_current_logfile(), %(fallback)s) AS path,
       (pg_stat_file(coalesce(pg_current_logfile(), %(fallback)s), true)).size AS bytes,
       to_char((now() - make_interval(secs => %(window_seconds)s)) AT TIME ZONE current_setting('log_timezone'),
               'YYYY-MM-DD HH24:MI:SS') AS since,
       current_setting('log_line_prefix') AS prefix
