-- Transaction-ID age of every database (transactions since it was last frozen), oldest first.
SELECT datname AS database_name, age(datfrozenxid)::bigint AS xid_age,
       current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age
FROM pg_database
ORDER BY xid_age DESC, datname
