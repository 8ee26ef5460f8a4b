-- The database %(name)s as CREATE DATABASE needs it again: owner, encoding, default tablespace, and the
-- whole row, whose locale columns differ between versions (datlocprovider from 15, daticulocale 15-16,
-- datlocale 17+).
SELECT pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding,
       (SELECT t.spcname FROM pg_tablespace t WHERE t.oid = d.dattablespace) AS tablespace, to_jsonb(d) AS row
FROM pg_database d
WHERE d.datname = %(name)s
