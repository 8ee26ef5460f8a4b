-- The masking schemas: masking_private (the salt, made once here, and the masking functions) and
-- the empty schema `masked`, which masking.apply() fills with one view per table of the school.
-- Pseudonyms are salted SHA-256: stable within this database, but not reversible by hashing guesses,
-- since the salt sits in masking_private, which analysts cannot read. The functions' bodies name
-- nothing in masking_private: they are inlined with the analyst's privileges.
CREATE SCHEMA masking_private;
REVOKE ALL ON SCHEMA masking_private FROM PUBLIC;
CREATE TABLE masking_private.salt (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    value text NOT NULL
);
REVOKE ALL ON masking_private.salt FROM PUBLIC;
INSERT INTO masking_private.salt (value)
VALUES (encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex'));

CREATE FUNCTION masking_private.pseudonym(value text, salt text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT left(encode(sha256(convert_to(salt || ':' || value, 'UTF8')), 'hex'), 12) $$;

CREATE FUNCTION masking_private.email(value text, salt text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT left(encode(sha256(convert_to(salt || ':' || lower(split_part(value, '@', 1)), 'UTF8')), 'hex'), 12)
              || '@' || split_part(value, '@', 2) $$;

CREATE FUNCTION masking_private.initials(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT string_agg(left(word, 1) || '.', ' ') FROM regexp_split_to_table(btrim(value), '\s+') AS word WHERE word <> '' $$;

CREATE FUNCTION masking_private.phone(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT left(value, 4) || regexp_replace(substr(value, 5), '[0-9]', 'X', 'g') $$;

CREATE SCHEMA masked;
REVOKE ALL ON SCHEMA masked FROM PUBLIC;
