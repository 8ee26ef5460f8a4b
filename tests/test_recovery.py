"""Damage assessment against a real backup, row differences, and putting rows back."""

from contextlib import contextmanager

import pytest
from psycopg import sql

from prep_ops import backup, db, migrate, seed
from prep_ops.incident import recovery
from prep_ops.errors import ConfirmationRequired, ParameterError, RecoveryError

from conftest import _create, _drop, table_checksum, judge_as_elsewhere


@pytest.fixture
def damaged(server, tmp_path):
    """A seeded scratch database, its full backup, and then the damage; dropped afterwards."""
    target = _create(server)
    with db.connect(target, autocommit=True) as conn:
        migrate.apply(conn)
        seed.seed(conn, students=300, seed=11)
    before = {t: table_checksum(target, t) for t in ("enrollments", "tuition_payments", "users")}
    taken = backup.backup(target, "full", "custom", directory=tmp_path)
    with db.connect(target) as conn:
        conn.execute("DELETE FROM enrollments WHERE id % 5 = 0")
        conn.execute("UPDATE tuition_payments SET amount = 1.00, method = 'cash' WHERE id % 3 = 0")
        conn.commit()
    with db.connect(target, autocommit=True) as conn:
        yield target, taken, before, conn
    _drop(server, target)


@contextmanager
def _twins(server, shape: str):
    """Two new databases made alike by `shape`, as (an autocommit connection to the live one, one to its copy,
    the source of a repair); both dropped afterwards."""
    live, source = _create(server), _create(server)
    try:
        for target in (live, source):
            with db.connect(target, autocommit=True) as conn:
                conn.execute(shape)
        with db.connect(live, autocommit=True) as conn, db.connect(source, autocommit=True) as copy:
            yield conn, copy
    finally:
        _drop(server, live)
        _drop(server, source)


def _copy(found: recovery.Damage):
    return db.connect(found.copy, autocommit=True)


def test_assessment_names_the_damaged_tables_only(damaged):
    _, taken, _, conn = damaged
    found = recovery.assess(conn, taken.manifest)
    states = dict(zip(found["table"], found["state"]))
    assert states["public.enrollments"] == states["public.tuition_payments"] == "damaged"
    assert states["public.users"] == states["public.students"] == "intact"
    assert recovery.damaged_tables(found) == ["public.enrollments", "public.tuition_payments"]


def test_row_differences_count_missing_and_changed_rows(damaged):
    _, taken, _, conn = damaged
    found = recovery.investigate(conn, taken)
    try:
        rows = found.differences.set_index("table")
        deleted = taken.manifest["tables"]["public.enrollments"]["rows"] - recovery.assess(conn, taken.manifest).set_index("table").loc["public.enrollments", "rows_now"]
        assert rows.loc["public.enrollments", "missing"] == deleted > 0
        assert rows.loc["public.enrollments", "changed"] == 0
        assert rows.loc["public.tuition_payments", "changed"] > 0 and rows.loc["public.tuition_payments", "missing"] == 0
        assert rows.loc["public.enrollments", "missing_keys"].startswith("5, 10")
        assert any("public.enrollments" in line and "missing" in line for line in found.lines())
    finally:
        found.drop()


def test_repair_puts_every_row_back_and_keeps_rows_added_since(damaged):
    target, taken, before, conn = damaged
    # real work after the backup: must survive the repair
    conn.execute("INSERT INTO enrollments (student_id, course_id, term, status) "
                 "SELECT student_id, course_id, '2027-spring', 'enrolled' FROM enrollments ORDER BY id LIMIT 1")
    found = recovery.investigate(conn, taken)
    try:
        with _copy(found) as copy:
            counts = recovery.repair_rows(conn, copy, found.damaged).set_index("table")
            after = recovery.row_differences(conn, copy, found.damaged).set_index("table")
        assert counts.loc["public.enrollments", "inserted"] == found.differences.set_index("table").loc["public.enrollments", "missing"]
        assert counts.loc["public.tuition_payments", "updated"] == found.differences.set_index("table").loc["public.tuition_payments", "changed"]
        assert table_checksum(target, "tuition_payments") == before["tuition_payments"]
        assert after[["missing", "changed"]].sum().sum() == 0
        assert after.loc["public.enrollments", "added"] == 1
    finally:
        found.drop()


def test_a_failing_repair_changes_no_table(damaged):
    target, taken, _, conn = damaged
    found = recovery.investigate(conn, taken)
    try:
        # a constraint the backup's rows now break: the repair must roll back whole
        conn.execute("ALTER TABLE tuition_payments ADD CONSTRAINT no_cash CHECK (method <> 'cash') NOT VALID")
        conn.execute("ALTER TABLE enrollments ADD CONSTRAINT tiny CHECK (id < 0) NOT VALID")
        payments = table_checksum(target, "tuition_payments")
        with _copy(found) as copy:
            with pytest.raises(recovery.RecoveryError, match="no table was changed"):
                recovery.repair_rows(conn, copy, found.damaged)
            assert table_checksum(target, "tuition_payments") == payments
            assert recovery.row_differences(conn, copy, ["public.enrollments"])["missing"].iloc[0] > 0
    finally:
        found.drop()


def test_no_backup_is_one_clear_error(migrated, owner, tmp_path):
    from prep_ops.errors import NoBackups  # the one type for "no backups", from recovery as from verify

    with pytest.raises(NoBackups, match=f"no full backup of {migrated.database}"):
        recovery.latest_backup(owner, tmp_path)


def test_latest_backup_is_the_newest_full_one(damaged, tmp_path):
    target, taken, _, conn = damaged
    backup.backup(target, "schema", "plain", directory=tmp_path)
    assert recovery.latest_backup(conn, tmp_path).path == taken.path


def test_repair_outside_a_scratch_database_needs_confirm(damaged, monkeypatch):
    _, taken, _, conn = damaged
    found = recovery.investigate(conn, taken)
    judge_as_elsewhere(monkeypatch)  # as on a server someone named by a URL
    try:
        with _copy(found) as copy:
            with pytest.raises(ConfirmationRequired, match="repairing rows from a backup"):
                recovery.repair_rows(conn, copy, found.damaged)
            assert recovery.damaged_tables(recovery.assess(conn, taken.manifest)) == found.damaged
            assert len(recovery.repair_rows(conn, copy, found.damaged, confirm=True)) == 2
    finally:
        found.drop()


def test_scope_is_checked():
    assert recovery.check_scope("rows") == "rows"
    with pytest.raises(ParameterError, match="scope must be one of rows, database"):
        recovery.check_scope("everything")


def test_assessment_uses_the_manifests_own_checksum_method(damaged):
    _, taken, _, conn = damaged
    # an older backup's manifest: checksums of the row text, no method named
    old = {k: v for k, v in taken.manifest.items() if k != "checksum_method"}
    old["tables"] = backup.table_checksums(conn, "row-text")
    found = recovery.assess(conn, old)
    assert set(found["state"]) == {"intact"}


def test_repair_refuses_a_trigger_owned_by_another_role(damaged):
    """Putting rows back runs the tables' triggers as the repairing (super)user: another role's trigger
    is refused, by name, before anything is written, and the role never becomes superuser."""
    import uuid

    from psycopg import sql

    from prep_ops.errors import ForeignTriggerError

    _, taken, _, conn = damaged
    name = f"t{uuid.uuid4().hex[:8]}_dba"
    role = sql.Identifier(name)
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER").format(role))
    conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(role))
    conn.execute(sql.SQL("GRANT TRIGGER ON tuition_payments TO {}").format(role))
    found = recovery.investigate(conn, taken)
    try:
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(role))
            conn.execute(sql.SQL("CREATE FUNCTION public.escalate() RETURNS trigger LANGUAGE plpgsql AS {}").format(
                sql.Literal(f"BEGIN EXECUTE format('ALTER ROLE %I SUPERUSER', {sql.Literal(name).as_string(None)}); "
                            "RETURN NULL; END")))
            conn.execute("CREATE TRIGGER escalate BEFORE INSERT OR UPDATE ON tuition_payments "
                         "FOR EACH STATEMENT EXECUTE FUNCTION public.escalate()")
        before = recovery.assess(conn, taken.manifest)
        with _copy(found) as copy, pytest.raises(ForeignTriggerError, match=f'"escalate" on "public"."tuition_payments".*{name}'):
            recovery.repair_rows(conn, copy, found.damaged, confirm=True)
        assert not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (name,)).fetchone()[0]
        assert recovery.assess(conn, taken.manifest).equals(before)  # nothing written
    finally:
        found.drop()
        conn.execute("DROP FUNCTION IF EXISTS public.escalate() CASCADE")
        conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        conn.execute(sql.SQL("DROP ROLE {}").format(role))


def test_an_inheritance_parent_is_repaired_with_its_own_rows_never_its_childrens(server):
    """SELECT from an inheritance parent reads its children's rows too, and a parent's primary key does not
    reach them: a child's deleted row would have been found missing from the parent as well, and put back
    into it as a duplicate. Rows are hashed and copied from the table ONLY."""
    shape = ("CREATE TABLE animal (id int PRIMARY KEY, name text)",
             "CREATE TABLE cat (whiskers int) INHERITS (animal)", "ALTER TABLE cat ADD PRIMARY KEY (id)",
             "INSERT INTO animal VALUES (1, 'ant'), (2, 'bee'), (3, 'cow')",
             "INSERT INTO cat VALUES (10, 'tom', 12), (11, 'kit', 9), (12, 'sam', 7)")
    with _twins(server, "; ".join(shape)) as (conn, copy):
        conn.execute("DELETE FROM cat WHERE id = 11")
        conn.execute("UPDATE ONLY animal SET name = 'bat' WHERE id = 2")
        found = recovery.row_differences(conn, copy, ["public.animal", "public.cat"]).set_index("table")
        assert found.loc["public.animal", ["missing", "changed"]].tolist() == [0, 1]
        assert found.loc["public.cat", ["missing", "changed"]].tolist() == [1, 0]
        counts = recovery.repair_rows(conn, copy, ["public.animal", "public.cat"], confirm=True).set_index("table")
        assert counts.loc["public.animal", ["inserted", "updated"]].tolist() == [0, 1]
        assert counts.loc["public.cat", ["inserted", "updated"]].tolist() == [1, 0]
        assert conn.execute("SELECT count(*) FROM ONLY animal").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM animal").fetchone()[0] == 6


def test_a_table_in_a_schema_whose_name_holds_a_dot_is_repaired_and_an_ambiguous_label_refused(server):
    """A manifest labels tables `schema.table`; cut at the first dot, "dotted.schema".t read as dotted."schema.t"
    (no such table, or another one). A part holding a dot is quoted in the label now (`"dotted.schema".t`), so
    each label names one table; the label of an older manifest (the names joined as they are) is matched
    against the catalog, and refused where it fits two tables."""
    shape = ('CREATE SCHEMA "dotted.schema"; CREATE TABLE "dotted.schema".t (id int PRIMARY KEY, v text); '
             "INSERT INTO \"dotted.schema\".t VALUES (1, 'a'), (2, 'b')")
    with _twins(server, shape) as (conn, copy):
        conn.execute('DELETE FROM "dotted.schema".t WHERE id = 2')
        found = recovery.row_differences(conn, copy, ['"dotted.schema".t']).set_index("table")
        assert found.loc['"dotted.schema".t', "missing"] == 1
        assert recovery.row_differences(conn, copy, ["dotted.schema.t"])["missing"].sum() == 1  # an older manifest's
        counts = recovery.repair_rows(conn, copy, ['"dotted.schema".t'], confirm=True).set_index("table")
        assert counts.loc['"dotted.schema".t', "inserted"] == 1
        assert conn.execute('SELECT count(*) FROM "dotted.schema".t').fetchone()[0] == 2
        conn.execute('CREATE SCHEMA dotted; CREATE TABLE dotted."schema.t" (id int PRIMARY KEY)')
        with pytest.raises(recovery.RecoveryError, match=r"dotted.schema.t names 2 tables"):
            recovery.row_differences(conn, copy, ["dotted.schema.t"])
        assert recovery.key_columns(conn, 'dotted."schema.t"') == ["id"]  # each new label names one table


def test_tables_of_one_name_in_two_schemas_are_repaired_together(server):
    """app.orders and "Odd Schema".orders both damaged: both staged as prep_ops_repair_orders, and the repair
    failed with 'relation "prep_ops_repair_orders" already exists' (so did two long names sharing 47 characters)."""
    long = "o" * 60
    shape = ('CREATE SCHEMA app; CREATE SCHEMA "Odd Schema"; '
             "CREATE TABLE app.orders (id int PRIMARY KEY, v text); CREATE TABLE \"Odd Schema\".orders (id int PRIMARY KEY, w int); "
             f"CREATE TABLE app.{long}a (id int PRIMARY KEY); CREATE TABLE app.{long}b (id int PRIMARY KEY); "
             "INSERT INTO app.orders SELECT g, 'o' || g FROM generate_series(1, 20) g; "
             "INSERT INTO \"Odd Schema\".orders SELECT g, g FROM generate_series(1, 20) g; "
             f"INSERT INTO app.{long}a VALUES (1), (2); INSERT INTO app.{long}b VALUES (1), (2)")
    tables = ["app.orders", "Odd Schema.orders", f"app.{long}a", f"app.{long}b"]
    with _twins(server, shape) as (conn, copy):
        conn.execute(f'DELETE FROM app.orders WHERE id < 4; DELETE FROM "Odd Schema".orders WHERE id > 18; '
                     f"DELETE FROM app.{long}a WHERE id = 1; DELETE FROM app.{long}b WHERE id = 2")
        counts = recovery.repair_rows(conn, copy, tables, confirm=True).set_index("table")
        assert counts["inserted"].to_dict() == {"app.orders": 3, "Odd Schema.orders": 2, f"app.{long}a": 1, f"app.{long}b": 1}
        assert recovery.row_differences(conn, copy, tables)[["missing", "changed"]].sum().sum() == 0


def test_repair_leaves_undamaged_rows_alone_when_a_before_insert_trigger_rewrites_them(server):
    """pagila's film: a BEFORE INSERT OR UPDATE trigger recomputes `fulltext`, a BEFORE UPDATE one stamps
    `last_update`. The upsert compared each live row with EXCLUDED, the row after the BEFORE INSERT trigger,
    so every row looked changed: one damaged film, and all of them were rewritten (stamped now)."""
    shape = ("CREATE TABLE film (id int PRIMARY KEY, title text, words text, last_update timestamptz NOT NULL); "
             "CREATE FUNCTION words() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN NEW.words = upper(NEW.title); RETURN NEW; END $$; "
             "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN NEW.last_update = clock_timestamp(); RETURN NEW; END $$; "
             "INSERT INTO film SELECT g, 'film ' || g, 'as loaded', '2022-01-01' FROM generate_series(1, 20) g; "
             "CREATE TRIGGER words BEFORE INSERT OR UPDATE ON film FOR EACH ROW EXECUTE FUNCTION words(); "
             "CREATE TRIGGER stamp BEFORE UPDATE ON film FOR EACH ROW EXECUTE FUNCTION stamp()")
    with _twins(server, shape) as (conn, copy):
        conn.execute("UPDATE film SET title = 'damaged' WHERE id = 7")
        counts = recovery.repair_rows(conn, copy, ["public.film"], confirm=True).set_index("table")
        assert counts.loc["public.film", ["inserted", "updated"]].tolist() == [0, 1]
        untouched = conn.execute("SELECT count(*) FROM film WHERE id <> 7 AND last_update = '2022-01-01' "
                                 "AND words = 'as loaded'").fetchone()[0]
        assert untouched == 19
        assert conn.execute("SELECT title FROM film WHERE id = 7").fetchone()[0] == "film 7"


def test_the_repair_never_runs_a_key_types_owners_equality_operator(server):
    """The repair took rows the live table holds unchanged out of its staging table by comparing keys with
    `=`, resolved under the session's search_path: for a key of a role's enum, that role's own
    `= (mood, mood)` in a schema on the path is an exact match and beat pg_catalog's `= (anyenum, anyenum)`,
    so its function ran as whoever repaired (a superuser). Keys are compared by their text now."""
    import secrets

    author = f"prep_ops_test_author_{secrets.token_hex(3)}"
    live, source = _create(server), _create(server)
    try:
        for target in (live, source):
            with db.connect(target, autocommit=True) as conn:
                if target is live:
                    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(author)))
                conn.execute(sql.SQL("CREATE SCHEMA app AUTHORIZATION {}").format(sql.Identifier(author)))
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(author)))
                conn.execute("CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy')")
                conn.execute(sql.SQL("""CREATE FUNCTION app.same(app.mood, app.mood) RETURNS boolean
                    LANGUAGE plpgsql IMMUTABLE AS $f$
                    BEGIN
                        IF current_user <> {} THEN
                            PERFORM pg_advisory_lock(484848);  -- a mark that outlives the repair's transaction
                        END IF;
                        RETURN $1::text = $2::text;
                    END $f$""").format(sql.Literal(author)))
                conn.execute("CREATE OPERATOR app.= (LEFTARG = app.mood, RIGHTARG = app.mood, FUNCTION = app.same)")
                conn.execute("RESET ROLE")
                conn.execute("CREATE TABLE public.feelings (m app.mood PRIMARY KEY, note text)")
                conn.execute("INSERT INTO public.feelings VALUES ('sad', 'a'), ('ok', 'b'), ('happy', 'c')")
                conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = app, public").format(
                    sql.Identifier(target.database)))
        with db.connect(live, autocommit=True) as conn, db.connect(source, autocommit=True) as copy:
            # the test's own statements name pg_catalog's operator: the mark is the repair's alone
            conn.execute("UPDATE public.feelings SET note = 'damaged' WHERE m OPERATOR(pg_catalog.=) 'ok'")
            counts = recovery.repair_rows(conn, copy, ["public.feelings"], confirm=True).set_index("table")
            marked = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 484848"
                                  ).fetchone()[0]
            assert marked == 0
            assert counts.loc["public.feelings", ["inserted", "updated"]].tolist() == [0, 1]
            assert conn.execute("SELECT note FROM public.feelings WHERE m OPERATOR(pg_catalog.=) 'ok'"
                                ).fetchone()[0] == "b"
    finally:
        _drop(server, live)
        _drop(server, source)
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(author)))


def _triggers(conn, table: str) -> dict[str, str]:
    return dict(conn.execute("SELECT tgname, tgenabled::text FROM pg_trigger WHERE tgrelid = %s::regclass "
                             "AND NOT tgisinternal", (table,)).fetchall())


def test_a_repair_puts_rows_back_as_they_were_under_a_trigger_stamping_last_update(server):
    """pagila's film: a BEFORE UPDATE trigger stamps `last_update = now()`, a BEFORE INSERT OR UPDATE one
    recomputes a column. The repaired row was written through them, so it was stamped and recomputed and
    still differed from the copy: runbook 10's 'zero rows lost' failed and told the DBA to pick another
    recover_to. The repair holds the table's BEFORE triggers off (as pg_restore --disable-triggers does)
    and puts each back as it was, ALWAYS included; AFTER triggers still fire."""
    shape = ("CREATE TABLE film (id int PRIMARY KEY, title text, words text, last_update timestamptz NOT NULL); "
             "CREATE TABLE after_log (id int); "
             "CREATE FUNCTION words() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN NEW.words = upper(NEW.title); RETURN NEW; END $$; "
             "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN NEW.last_update = clock_timestamp(); RETURN NEW; END $$; "
             "CREATE FUNCTION logged() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN INSERT INTO after_log VALUES (NEW.id); RETURN NULL; END $$; "
             "INSERT INTO film SELECT g, 'film ' || g, 'as loaded', '2022-01-01' FROM generate_series(1, 20) g; "
             "CREATE TRIGGER words BEFORE INSERT OR UPDATE ON film FOR EACH ROW EXECUTE FUNCTION words(); "
             "CREATE TRIGGER stamp BEFORE UPDATE ON film FOR EACH ROW EXECUTE FUNCTION stamp(); "
             "ALTER TABLE film ENABLE ALWAYS TRIGGER stamp; "
             "CREATE TRIGGER logged AFTER INSERT OR UPDATE ON film FOR EACH ROW EXECUTE FUNCTION logged()")
    with _twins(server, shape) as (conn, copy):
        before = _triggers(conn, "film")
        conn.execute("UPDATE film SET title = 'damaged' WHERE id = 7")
        conn.execute("DELETE FROM film WHERE id = 8")
        conn.execute("DELETE FROM after_log")
        counts = recovery.repair_rows(conn, copy, ["public.film"], confirm=True).set_index("table")
        assert counts.loc["public.film", ["inserted", "updated"]].tolist() == [1, 1]
        assert counts.loc["public.film", "triggers_held_off"] == "stamp, words"
        assert counts.loc["public.film", "triggers_fired"] == ""
        rows = "SELECT id, title, words, last_update FROM film WHERE id IN (7, 8) ORDER BY id"
        assert conn.execute(rows).fetchall() == copy.execute(rows).fetchall()
        assert recovery.row_differences(conn, copy, ["public.film"])[["missing", "changed"]].sum().sum() == 0
        assert _triggers(conn, "film") == before == {"words": "O", "stamp": "A", "logged": "O"}
        assert sorted(r[0] for r in conn.execute("SELECT id FROM after_log")) == [7, 8]  # AFTER fired
        conn.execute("UPDATE film SET title = 'later' WHERE id = 9")  # and the triggers fire again after
        assert conn.execute("SELECT words, last_update > '2022-01-01' FROM film WHERE id = 9").fetchone() == ("LATER", True)


def test_a_repair_of_a_partitioned_table_holds_off_its_partitions_before_triggers(server):
    """The rows of a partitioned table are its partitions', each repaired as a table of its own, whose BEFORE
    triggers (cloned from the parent's, or their own) fire there: those are held off too, and put back. The
    parent itself is refused: FROM ONLY it is no rows, so its repair did nothing and said it was done."""
    shape = ("CREATE TABLE m (id int, at date NOT NULL, note text, stamped timestamptz, PRIMARY KEY (id, at)) "
             "PARTITION BY RANGE (at); "
             "CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01'); "
             "CREATE TABLE m_2025 PARTITION OF m FOR VALUES FROM ('2025-01-01') TO ('2026-01-01'); "
             "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN NEW.stamped = clock_timestamp(); RETURN NEW; END $$; "
             "INSERT INTO m SELECT g, date '2024-06-01' + g * 30, 'as loaded', '2022-01-01' FROM generate_series(1, 12) g; "
             "CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON m FOR EACH ROW EXECUTE FUNCTION stamp(); "
             "CREATE TRIGGER own BEFORE UPDATE ON m_2025 FOR EACH ROW EXECUTE FUNCTION stamp()")
    with _twins(server, shape) as (conn, copy):
        conn.execute("UPDATE m SET note = 'damaged' WHERE id IN (2, 10)")
        with pytest.raises(RecoveryError, match="public.m is partitioned: its rows are in its partitions"):
            recovery.repair_rows(conn, copy, ["public.m"], confirm=True)  # ONLY m: no rows, nothing done
        leaves = ["public.m_2024", "public.m_2025"]  # as the manifest names them, and runbook 10 repairs them
        counts = recovery.repair_rows(conn, copy, leaves, confirm=True).set_index("table")
        assert counts["updated"].tolist() == [1, 1]
        assert counts["triggers_held_off"].tolist() == ["stamp", "own, stamp"]
        rows = "SELECT * FROM m ORDER BY id"
        assert conn.execute(rows).fetchall() == copy.execute(rows).fetchall()
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'O'").fetchone()[0] == 0


def test_a_repair_by_a_role_that_cannot_alter_the_table_says_which_before_triggers_fired(server):
    """A role that may write the table but does not own it cannot hold the triggers off: they fire, as
    before, and the repair's report names them (the reason the rows may still differ)."""
    import uuid

    name = f"t{uuid.uuid4().hex[:8]}_writer"
    shape = ("CREATE TABLE film (id int PRIMARY KEY, title text, last_update timestamptz NOT NULL); "
             "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN NEW.last_update = clock_timestamp(); RETURN NEW; END $$; "
             "INSERT INTO film SELECT g, 'film ' || g, '2022-01-01' FROM generate_series(1, 5) g; "
             "CREATE TRIGGER stamp BEFORE UPDATE ON film FOR EACH ROW EXECUTE FUNCTION stamp()")
    try:
        with _twins(server, shape) as (conn, copy):  # its databases (and the role's grant there) dropped first
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
            conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON film TO {}").format(sql.Identifier(name)))
            conn.execute("UPDATE film SET title = 'damaged' WHERE id = 3")
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(name)))
            counts = recovery.repair_rows(conn, copy, ["public.film"], confirm=True).set_index("table")
            conn.execute("RESET ROLE")
            assert counts.loc["public.film", ["updated", "triggers_held_off", "triggers_fired"]].tolist() == [1, "", "stamp"]
            assert conn.execute("SELECT title, last_update > '2022-01-01' FROM film WHERE id = 3").fetchone() == ("film 3", True)
            assert _triggers(conn, "film") == {"stamp": "O"}
    finally:
        with db.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_an_event_trigger_refusing_alter_table_no_longer_stops_the_repair_and_the_report_says_why(server):
    """A DDL freeze (an event trigger raising on ALTER TABLE, as production servers often have) refused the
    repair's ALTER TABLE … DISABLE TRIGGER, and the whole repair failed, 'DDL is frozen in production',
    where before the hold-off it put the rows back: a DBA could repair nothing. The trigger now fires, as
    one the role may not alter, and the report says why it was not held off."""
    shape = ("CREATE TABLE film (id int PRIMARY KEY, title text, last_update timestamptz NOT NULL); "
             "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN NEW.last_update = clock_timestamp(); RETURN NEW; END $$; "
             "INSERT INTO film SELECT g, 'film ' || g, '2022-01-01' FROM generate_series(1, 5) g; "
             "CREATE TRIGGER stamp BEFORE UPDATE ON film FOR EACH ROW EXECUTE FUNCTION stamp(); "
             "CREATE FUNCTION frozen() RETURNS event_trigger LANGUAGE plpgsql AS "
             "$$ BEGIN RAISE EXCEPTION 'DDL is frozen in production'; END $$")
    with _twins(server, shape) as (conn, copy):
        conn.execute("CREATE EVENT TRIGGER frozen ON ddl_command_start WHEN TAG IN ('ALTER TABLE') "
                     "EXECUTE FUNCTION frozen()")  # in the live database only: dropped with it
        conn.execute("UPDATE film SET title = 'damaged' WHERE id = 3")
        counts = recovery.repair_rows(conn, copy, ["public.film"], confirm=True).set_index("table")
        assert counts.loc["public.film", ["updated", "triggers_held_off"]].tolist() == [1, ""]
        assert counts.loc["public.film", "triggers_fired"] == \
            "stamp (holding it off was refused: DDL is frozen in production)"
        assert conn.execute("SELECT title, last_update > '2022-01-01' FROM film WHERE id = 3").fetchone() == ("film 3", True)
        assert _triggers(conn, "film") == {"stamp": "O"}
