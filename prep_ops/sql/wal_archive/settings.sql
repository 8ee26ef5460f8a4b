-- The settings archiving depends on, as the server runs them (pending_restart: changed, not yet in effect).
-- pg_settings leaves out archive_command, archive_library and config_file for a role without
-- pg_read_all_settings (or superuser): a missing row is "unknown", never "not set".
SELECT name, setting, pending_restart
  FROM pg_settings
 WHERE name IN ('archive_mode', 'archive_command', 'archive_library', 'archive_timeout', 'config_file')
