-- Back to the functions of 0007_masking as they were: unqualified calls, the caller's search_path.
CREATE OR REPLACE FUNCTION masking_private.pseudonym(value text, salt text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT left(encode(sha256(convert_to(salt || ':' || value, 'UTF8')), 'hex'), 12) $$;

CREATE OR REPLACE FUNCTION masking_private.email(value text, salt text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT left(encode(sha256(convert_to(salt || ':' || lower(split_part(value, '@', 1)), 'UTF8')), 'hex'), 12)
              || '@' || split_part(value, '@', 2) $$;

CREATE OR REPLACE FUNCTION masking_private.initials(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT string_agg(left(word, 1) || '.', ' ') FROM regexp_split_to_table(btrim(value), '\s+') AS word WHERE word <> '' $$;

CREATE OR REPLACE FUNCTION masking_private.phone(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT left(value, 4) || regexp_replace(substr(value, 5), '[0-9]', 'X', 'g') $$;
