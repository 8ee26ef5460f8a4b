-- The audit log's schema: the append-only table audit.log and the trigger function that fills it
-- (pgaudit's idea, for row changes). audit_log.enable() puts the triggers on the tables it watches.
-- The function runs as its owner (SECURITY DEFINER, with a fixed search_path), so the roles whose
-- changes it records need no privilege on the log at all: they cannot read, change or delete it.
CREATE SCHEMA audit;
REVOKE ALL ON SCHEMA audit FROM PUBLIC;

CREATE TABLE audit.log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    transaction_id bigint NOT NULL DEFAULT txid_current(),
    login_role text NOT NULL DEFAULT session_user,          -- who logged in
    acting_role text NOT NULL,                             -- whose privileges the change used (SET ROLE)
    client_addr inet DEFAULT inet_client_addr(),           -- NULL over a Unix socket
    application_name text DEFAULT current_setting('application_name'),
    schema_name text NOT NULL,
    table_name text NOT NULL,
    operation text NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')),
    row_key jsonb,                                         -- primary key of the row; NULL for TRUNCATE
    old_values jsonb,                                      -- the row before (UPDATE, DELETE)
    new_values jsonb,                                      -- the row after (INSERT, UPDATE)
    changed_columns text[]                                 -- UPDATE: columns whose value changed
);
REVOKE ALL ON audit.log FROM PUBLIC;
CREATE INDEX log_table_at_idx ON audit.log (schema_name, table_name, at);

-- Trigger arguments: the primary-key columns and the columns left out of old/new values (binary
-- data), each as a text[] literal. Left-out columns still show in changed_columns.
CREATE FUNCTION audit.log_change() RETURNS trigger
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
REVOKE ALL ON FUNCTION audit.log_change() FROM PUBLIC;

-- Append-only: no UPDATE, DELETE or TRUNCATE of the log, whoever asks (short of a superuser
-- dropping this trigger or setting session_replication_role, which the server log records).
CREATE FUNCTION audit.refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'audit.log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE ALL ON FUNCTION audit.refuse_change() FROM PUBLIC;

CREATE TRIGGER log_append_only BEFORE UPDATE OR DELETE ON audit.log
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER log_no_truncate BEFORE TRUNCATE ON audit.log
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
