-- Back to 0006's audit.log_change(): to_jsonb() of every row, whatever casts to json exist.
CREATE OR REPLACE FUNCTION audit.log_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key_columns text[] := CASE WHEN TG_NARGS > 0 THEN TG_ARGV[0]::text[] ELSE '{}' END;
    left_out text[] := CASE WHEN TG_NARGS > 1 THEN TG_ARGV[1]::text[] ELSE '{}' END;
    old_row jsonb;
    new_row jsonb;
    changed text[];
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN old_row := to_jsonb(OLD); END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN new_row := to_jsonb(NEW); END IF;
        IF TG_OP = 'UPDATE' THEN
            SELECT array_agg(n.key ORDER BY n.key) INTO changed
            FROM jsonb_each(new_row) n
            WHERE n.value IS DISTINCT FROM old_row -> n.key;
        END IF;
    END IF;
    INSERT INTO audit.log (acting_role, schema_name, table_name, operation, row_key, old_values, new_values, changed_columns)
    VALUES (coalesce(nullif(current_setting('role'), 'none'), session_user), TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP,
            (SELECT jsonb_object_agg(k, coalesce(new_row, old_row) -> k) FROM unnest(key_columns) AS k
             WHERE coalesce(new_row, old_row) IS NOT NULL),
            old_row - left_out, new_row - left_out, changed);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION audit.log_change() IS NULL;
