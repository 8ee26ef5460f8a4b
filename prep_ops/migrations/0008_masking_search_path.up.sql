-- Masking functions that resist a hijacked search_path.
-- Every call inside names pg_catalog, and each function runs with search_path = pg_catalog, pg_temp.
-- Before this, a caller who could create objects in a schema on their own search_path (PUBLIC may
-- CREATE in public up to PostgreSQL 14) could put a sha256() or left() of their own first and be
-- handed the salt. A function with a SET clause is no
-- longer inlined: the masked views call it once per row, which costs little at the school's size.
-- Same bodies, same results: pseudonyms do not change.
CREATE OR REPLACE FUNCTION masking_private.pseudonym(value text, salt text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
          salt OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) value, 'UTF8')), 'hex'), 12) $$;

CREATE OR REPLACE FUNCTION masking_private.email(value text, salt text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
          salt OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) pg_catalog.lower(pg_catalog.split_part(value, '@', 1)),
          'UTF8')), 'hex'), 12)
          OPERATOR(pg_catalog.||) '@' OPERATOR(pg_catalog.||) pg_catalog.split_part(value, '@', 2) $$;

CREATE OR REPLACE FUNCTION masking_private.initials(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.string_agg(pg_catalog.left(word, 1) OPERATOR(pg_catalog.||) '.', ' ')
      FROM pg_catalog.regexp_split_to_table(pg_catalog.btrim(value), '\s+') AS word
      WHERE word OPERATOR(pg_catalog.<>) '' $$;

CREATE OR REPLACE FUNCTION masking_private.phone(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.left(value, 4)
          OPERATOR(pg_catalog.||) pg_catalog.regexp_replace(pg_catalog.substr(value, 5), '[0-9]', 'X', 'g') $$;
