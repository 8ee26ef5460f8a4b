-- What database %(name)s has outside its contents, which CREATE DATABASE does not copy and pg_dump
-- without --create leaves out: its comment, connection limit, whether it allows connections, whether it
-- is a template, and its settings as the server stores them (pg_db_role_setting: 'name=value' each, in
-- the order set), per role:
-- [NULL, ...] for ALTER DATABASE ... SET (setrole 0), [role, ...] for ALTER ROLE role IN DATABASE ... SET.
SELECT shobj_description(d.oid, 'pg_database') AS comment, d.datconnlimit, d.datallowconn, d.datistemplate,
       coalesce((SELECT jsonb_agg(jsonb_build_array(CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END,
                                                    s.setconfig) ORDER BY s.setrole)
                 FROM pg_db_role_setting s
                 WHERE s.setdatabase = d.oid), '[]') AS settings
FROM pg_database d
WHERE d.datname = %(name)s
