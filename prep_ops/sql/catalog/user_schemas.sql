-- The schemas that hold the database's own objects, public first: not pg_catalog, information_schema,
-- the TOAST or temporary schemas, not a schema an extension made, and not those named in %(excluded)s
-- (prep-ops' own: the audit log and the masked views, which grant their own way). With %(grantable)s, only
-- those the connecting role may grant in: public (as always), a schema whose owner it is or is a member of,
-- or every one for a superuser.
SELECT n.nspname AS name
FROM pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
  AND NOT n.nspname = ANY(%(excluded)s::text[])
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
  AND (NOT %(grantable)s OR n.nspname = 'public' OR pg_has_role(n.nspowner, 'USAGE')
       OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))
ORDER BY n.nspname = 'public' DESC, n.nspname
