-- Data-checksum state of the cluster and the checksum failures the server has seen in this database.
SELECT current_setting('data_checksums') AS data_checksums,
       d.checksum_failures,
       d.checksum_last_failure
FROM pg_stat_database d
WHERE d.datname = current_database()
