-- When index usage statistics of this database started counting.
SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()
