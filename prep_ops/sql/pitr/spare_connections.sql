-- How many more connections the connecting role may open on this server now: the server's free slots
-- (less those reserved for superusers, and on 16+ for roles with pg_use_reserved_connections) and,
-- under a CONNECTION LIMIT, the role's own; least() ignores the NULL of a role without a limit.
SELECT least(
         current_setting('max_connections')::int
           - current_setting('superuser_reserved_connections')::int
           - coalesce(current_setting('reserved_connections', true)::int, 0)
           - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
         CASE WHEN r.rolconnlimit >= 0
              THEN r.rolconnlimit - (SELECT count(*) FROM pg_stat_activity
                                     WHERE usename = r.rolname AND backend_type = 'client backend') END)
FROM pg_roles AS r
WHERE r.rolname = current_user
