import uuid

from psycopg import sql

from prep_ops import catalog, db

HOSTILE = 'we"ird. name; --'  # quotes, a dot, a semicolon: only an identifier, never SQL


def test_database_exists(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        assert catalog.database_exists(conn, scratch.database)
        assert not catalog.database_exists(conn, scratch.database + "_not_there")


def test_columns_in_order_and_none_for_a_missing_relation(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(HOSTILE)))
        conn.execute(sql.SQL("CREATE TABLE {} (b int, {} text, a int)").format(
            sql.Identifier(HOSTILE, HOSTILE), sql.Identifier(HOSTILE)))
        conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN a").format(sql.Identifier(HOSTILE, HOSTILE)))
        assert catalog.columns(conn, HOSTILE, HOSTILE) == ["b", HOSTILE]  # a dropped column is gone
        assert catalog.columns(conn, HOSTILE) == []  # not in public
        assert catalog.columns(conn, "missing", HOSTILE) == []
        assert catalog.relation_exists(conn, HOSTILE, HOSTILE) and catalog.schema_exists(conn, HOSTILE)


def test_columns_are_read_without_usage_on_the_schema(scratch):
    """A role that may not use a schema still learns a table's columns (try_access probes as such a role)."""
    role = f"prep_ops_test_{uuid.uuid4().hex[:8]}"
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA closed")
        conn.execute("CREATE TABLE closed.t (id int, name text)")
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                assert catalog.columns(conn, "t", "closed") == ["id", "name"]
        finally:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_extension_installed_and_available(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        schema, version = catalog.extension(conn, "plpgsql")
        assert schema == "pg_catalog" and version == conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'plpgsql'").fetchone()[0]
        assert catalog.extension(conn, "prep_ops_no_such_extension") is None
        assert catalog.extension_available(conn, "plpgsql")
        assert not catalog.extension_available(conn, "prep_ops_no_such_extension")


def test_function_name_exists_follows_to_regproc(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(HOSTILE)))
        conn.execute(sql.SQL("CREATE FUNCTION {}() RETURNS int LANGUAGE sql AS 'SELECT 1'").format(
            sql.Identifier(HOSTILE, "one")))
        assert catalog.function_name_exists(conn, "one", HOSTILE)
        assert not catalog.function_name_exists(conn, "two", HOSTILE)
        assert not catalog.function_name_exists(conn, "abs", "pg_catalog")  # several overloads: not one function
        assert catalog.function_exists(conn, sql.Identifier(HOSTILE, "one").as_string(None) + "()")


def test_code_reached_through_an_operator_or_a_domain_counts_as_code_a_write_runs(scratch):
    """A CHECK constraint that calls a role's function through an operator of theirs, and a column of a
    domain whose CHECK calls one, run that code with the writer's privileges as much as a trigger does;
    the guard before seed, restore, maintenance and the recovery's repair saw only direct calls."""
    role = f"prep_ops_test_{uuid.uuid4().hex[:8]}"
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE SCHEMA app AUTHORIZATION {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute("CREATE FUNCTION app.same(int, int) RETURNS boolean LANGUAGE sql AS 'SELECT $1 = $2'")
        conn.execute("CREATE OPERATOR app.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = app.same)")
        conn.execute("CREATE TABLE app.t (a int CHECK (a OPERATOR(app.===) 1))")
        conn.execute("CREATE FUNCTION app.ok(int) RETURNS boolean LANGUAGE sql AS 'SELECT $1 > 0'")
        conn.execute("CREATE DOMAIN app.positive AS int CHECK (app.ok(VALUE))")
        conn.execute("CREATE DOMAIN app.small AS app.positive CHECK (VALUE < 10)")  # a domain over that domain
        conn.execute("CREATE TABLE app.u (b app.small)")
        conn.execute("CREATE TABLE app.v (c app.positive[])")  # an array of one
        conn.execute("RESET ROLE")
        try:
            found = catalog.foreign_triggers(conn, [("app", "t"), ("app", "u"), ("app", "v")])
        finally:
            conn.execute("DROP SCHEMA app CASCADE")
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    seen = {(f["table"], f["kind"], f["function_name"], f["owner"]) for f in found}
    assert ("t", "check constraint", "same", role) in seen, found
    assert ("u", "domain check", "ok", role) in seen, found
    assert ("v", "domain check", "ok", role) in seen, found


def test_a_domains_default_calling_a_roles_function_counts_as_code_a_write_runs(scratch):
    """A column of a domain whose DEFAULT calls a role's function (and that has no default of its own) runs
    it with the writer's privileges whenever a write leaves the column out (COPY or INSERT naming the other
    columns): as much the writer's as a column default, which the guard counts."""
    role = f"prep_ops_test_{uuid.uuid4().hex[:8]}"
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE SCHEMA app AUTHORIZATION {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute("CREATE FUNCTION app.stamp() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("CREATE DOMAIN app.stamped AS int DEFAULT app.stamp()")
        conn.execute("CREATE DOMAIN app.restamped AS app.stamped CHECK (VALUE > 0)")  # inherits that default
        conn.execute("CREATE TABLE app.w (a int, s app.stamped, r app.restamped)")
        conn.execute("RESET ROLE")
        try:
            found = catalog.foreign_triggers(conn, [("app", "w")])
        finally:
            conn.execute("DROP SCHEMA app CASCADE")
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    seen = {(f["table"], f["kind"], f["name"], f["function_name"], f["owner"]) for f in found}
    assert ("w", "domain default", "stamped (column s)", "stamp", role) in seen, found
    assert ("w", "domain default", "stamped (column r)", "stamp", role) in seen, found
