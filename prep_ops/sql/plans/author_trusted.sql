-- This connection's role, and whether a statement written by the named role may be planned here: it is
-- this role, or a superuser (a role that no longer exists is neither).
SELECT current_user::text,
       coalesce(%(author)s = current_user::text
                OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = %(author)s), false)
