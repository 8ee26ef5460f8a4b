-- prep-ops' own schemas in this database, known by what prep-ops put there, not by their names alone
-- (a database may have an `audit` or `masked` schema of its own): `audit` holding the audit log's
-- table and trigger function (migration 0006, or audit_log.install); `masking_private` holding the
-- salt and the pseudonym function, and `masked` beside it (both from migration 0007). Read from the
-- catalogs, so a role without USAGE on those schemas gets the same answer.
SELECT own.name
FROM (VALUES ('audit', 'audit', 'log', 'log_change'),
             ('masking_private', 'masking_private', 'salt', 'pseudonym'),
             ('masked', 'masking_private', 'salt', 'pseudonym')) AS own(name, holder, table_name, function_name)
WHERE own.name = ANY(%(names)s::text[])
  AND EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = own.name)
  AND EXISTS (SELECT 1 FROM pg_namespace n
              JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = own.table_name AND c.relkind = 'r'
              JOIN pg_proc p ON p.pronamespace = n.oid AND p.proname = own.function_name
              WHERE n.nspname = own.holder)
ORDER BY array_position(%(names)s::text[], own.name)
