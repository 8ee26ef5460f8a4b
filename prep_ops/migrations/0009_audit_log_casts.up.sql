-- The audit log never runs a table owner's cast with its own rights.
-- audit.log_change() runs as its owner (SECURITY DEFINER: a superuser where the migrations ran as one),
-- and to_jsonb() of a row calls a column type's cast to json where one exists that is not built in. The
-- owner of a type (an enum, a range) may declare any function of theirs that cast, and writing to a table
-- with a column of it ran that function with the log owner's rights. Where a cast to json exists whose
-- function a role other than a superuser owns, rows are now recorded by their text form instead
-- ({"row": "(1,happy)"}: the type's output functions, which only a superuser can write), and row_key
-- stays empty.
CREATE OR REPLACE FUNCTION audit.log_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key_columns text[] := CASE WHEN TG_NARGS > 0 THEN TG_ARGV[0]::text[] ELSE '{}' END;
    left_out text[] := CASE WHEN TG_NARGS > 1 THEN TG_ARGV[1]::text[] ELSE '{}' END;
    old_row jsonb;
    new_row jsonb;
    changed text[];
    as_text boolean;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        as_text := EXISTS (SELECT FROM pg_catalog.pg_cast c
                           JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc
                           JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
                           WHERE c.casttarget = 'pg_catalog.json'::pg_catalog.regtype AND NOT r.rolsuper);
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            old_row := CASE WHEN as_text THEN jsonb_build_object('row', format('%s', OLD)) ELSE to_jsonb(OLD) END;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            new_row := CASE WHEN as_text THEN jsonb_build_object('row', format('%s', NEW)) ELSE to_jsonb(NEW) END;
        END IF;
        IF TG_OP = 'UPDATE' THEN
            SELECT array_agg(n.key ORDER BY n.key) INTO changed
            FROM jsonb_each(new_row) n
            WHERE n.value IS DISTINCT FROM old_row -> n.key;
        END IF;
    END IF;
    INSERT INTO audit.log (acting_role, schema_name, table_name, operation, row_key, old_values, new_values, changed_columns)
    VALUES (coalesce(nullif(current_setting('role'), 'none'), session_user), TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP,
            (SELECT jsonb_object_agg(k, coalesce(new_row, old_row) -> k) FROM unnest(key_columns) AS k
             WHERE coalesce(new_row, old_row) IS NOT NULL AND NOT as_text),
            old_row - left_out, new_row - left_out, changed);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION audit.log_change() IS 'prep-ops audit log: rows by their text form where a role other than a superuser has a cast to json (migration 0009)';
