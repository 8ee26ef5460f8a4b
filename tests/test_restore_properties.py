"""A restore swaps in a new database: the restored target must keep what the target had outside its
contents (settings, role-in-database settings, connection limit, ALLOW_CONNECTIONS, comment), exactly as
pg_db_role_setting, pg_database and pg_shdescription held them, and a failed restore must leave them alone."""

import os
import secrets
import threading
import time
import uuid
from pathlib import Path

import pytest
from psycopg import sql

from prep_ops import backup, database_properties, db, restore
from prep_ops import scratch as scratches
from prep_ops.errors import BackupError, TargetError

from conftest import _create, _drop, rehash, table_checksum

COMMENT = 'Term 2025\'s enrollment: "live" — don\'t drop'
MARKER = "prep-ops: {} as it was before a restore"


def _properties(server, name: str) -> dict:
    """What the catalogs hold for database `name` outside it, read here without prep_ops."""
    with db.connect(server) as conn:
        oid, limit, allow, comment = conn.execute(
            "SELECT oid, datconnlimit, datallowconn, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname = %s", (name,)).fetchone()
        settings = conn.execute("SELECT coalesce(nullif(setrole, 0)::regrole::text, 'the database'), setconfig "
                                "FROM pg_db_role_setting WHERE setdatabase = %s ORDER BY 1", (oid,)).fetchall()
    return {"oid": oid, "connection limit": limit, "allow connections": allow, "comment": comment,
            "settings": dict(settings)}


def _alter(server, *statements) -> None:
    with db.connect(server, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _drop_all(server, prefix: str, role: str | None = None) -> None:
    """Drop the databases named `prefix`… (the target, what restores replaced), then `role`."""
    with db.connect(server, autocommit=True) as conn:
        for name, in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s) "
                                  "OR starts_with(datname, 'prep_ops_restore_')", (prefix,)).fetchall():
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        if role:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def full(seeded, tmp_path):
    return backup.backup(seeded, "full", "custom", directory=tmp_path / "full")


@pytest.fixture
def configured(full, server):
    """A target holding a restore of `seeded`, with database settings (a search_path list with a quoted
    schema, statement_timeout), a role's settings in it (search_path given as ONE string: one schema of that
    whole name, and public left out, which would keep prep-ops from reading schema_version if the database
    had it), a connection limit and a comment; yields it and the role. Dropped after, with what restores
    replaced."""
    target, role = _create(server), f"prep_ops_test_Clerk {uuid.uuid4().hex[:6]}"
    restore.restore_into(full.path, target, full.manifest)
    name, clerk = sql.Identifier(target.database), sql.Identifier(role)
    _alter(server, sql.SQL("CREATE ROLE {} NOLOGIN").format(clerk),
           sql.SQL("ALTER DATABASE {} SET search_path = '$user', \"Odd Schema\", public").format(name),
           sql.SQL("ALTER DATABASE {} SET statement_timeout = '5s'").format(name),
           sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = '\"Odd Schema\", public'").format(clerk, name),
           sql.SQL("ALTER ROLE {} IN DATABASE {} SET work_mem = '8MB'").format(clerk, name),
           sql.SQL("ALTER DATABASE {} CONNECTION LIMIT 7").format(name),
           sql.SQL("COMMENT ON DATABASE {} IS {}").format(name, sql.Literal(COMMENT)))
    yield target, role
    _drop_all(server, target.database, role)


def test_restore_gives_the_restored_target_the_targets_settings_connection_limit_and_comment(
        configured, full, server, tmp_path):
    target, role = configured
    before = _properties(server, target.database)
    quoted = sql.Identifier(role).as_string(None)
    assert before["settings"] == {  # as the server stores them: the list's elements quoted, the one string's too
        "the database": ['search_path="$user", "Odd Schema", public', "statement_timeout=5s"],
        quoted: ['search_path="""Odd Schema"", public"', "work_mem=8MB"]}
    assert (before["connection limit"], before["comment"]) == (7, COMMENT)
    with db.connect(target) as conn:
        seen = conn.execute("SELECT current_setting('search_path'), current_setting('statement_timeout')").fetchone()

    done = restore.restore(full.path, target, confirm=True, safety_dir=tmp_path / "safety")

    after = _properties(server, target.database)
    assert after["oid"] != before["oid"]  # the restored database, not the old one renamed back
    assert {**after, "oid": None} == {**before, "oid": None}
    with db.connect(target) as conn:  # a new session on the restored target sees what one on the old saw
        assert conn.execute("SELECT current_setting('search_path'), current_setting('statement_timeout')"
                            ).fetchone() == seen == ('"$user", "Odd Schema", public', "5s")
    kept = _properties(server, done["replaced"])
    assert kept["oid"] == before["oid"]
    assert {**kept, "comment": None} == {**before, "comment": None}  # the replaced one keeps its own settings
    assert kept["comment"] == MARKER.format(target.database) + "; its own comment was: " + COMMENT


def test_a_failed_restore_leaves_the_targets_settings_connection_limit_and_comment_as_they_were(
        configured, full, server, tmp_path):
    target, _ = configured
    before, rows = _properties(server, target.database), table_checksum(target, "students")
    full.path.write_bytes(full.path.read_bytes()[: full.path.stat().st_size // 2])
    rehash(full.path)  # the manifest agrees with the cut file: pg_restore finds it out half way
    with pytest.raises(BackupError, match=rf"{target.database} is unchanged \(safety backup: "):
        restore.restore(full.path, target, confirm=True, safety_dir=tmp_path / "safety")
    assert _properties(server, target.database) == before
    assert table_checksum(target, "students") == rows
    assert scratches.existing(server, "prep_ops_restore_") == []


def _wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _restore_while_a_dba_runs(server, full, target, tmp_path, *statements) -> dict:
    """restore.restore of `full` into `target` while, in another thread, a DBA runs `statements` once the
    new database is made (while it loads); what the restore returned. The DBA's failure fails the test."""
    failed = []

    def dba():
        try:
            _wait_for(lambda: scratches.existing(server, "prep_ops_restore_"), seconds=60)
            _alter(server, *statements)
        except BaseException as exc:  # seen by the test's thread
            failed.append(exc)

    changing = threading.Thread(target=dba)
    changing.start()
    try:
        done = restore.restore(full.path, target, confirm=True, safety_dir=tmp_path / "safety")
    finally:
        changing.join()
    assert not failed
    return done


def test_the_target_closed_and_reset_while_the_restore_loads_is_restored_closed_and_reset(
        configured, full, server, tmp_path):
    """Read at the swap, not at the start: a DBA closes the target (ALLOW_CONNECTIONS false), lowers its
    connection limit and changes a setting once the new database is made, while it loads (a second at
    least: pg_restore, then every table checked); the restored target gets what the DBA committed, and
    prep-ops, past its own connections to the target, is not locked out by it."""
    target, _ = configured
    name = sql.Identifier(target.database)
    done = _restore_while_a_dba_runs(server, full, target, tmp_path,
                                     sql.SQL("ALTER DATABASE {} SET statement_timeout = '9s'").format(name),
                                     sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false CONNECTION LIMIT 2").format(name))
    after, kept = _properties(server, target.database), _properties(server, done["replaced"])
    assert (after["allow connections"], after["connection limit"]) == (False, 2)
    assert (kept["allow connections"], kept["connection limit"]) == (False, 2)
    assert after["settings"] == kept["settings"] and after["settings"]["the database"] == [
        'search_path="$user", "Odd Schema", public', "statement_timeout=9s"]
    with pytest.raises(TargetError, match="not currently accepting connections"):
        db.connect(target).close()


def test_a_closed_database_with_a_connection_limit_is_carried_closed_with_that_limit(scratch, server):
    copy = _create(server)
    try:
        _alter(server, sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false CONNECTION LIMIT 0").format(
            sql.Identifier(scratch.database)))
        with db.connect(server) as conn:
            database_properties.carry(conn, database_properties.read(conn, scratch.database), copy.database)
            conn.commit()
        carried = _properties(server, copy.database)
        assert (carried["allow connections"], carried["connection limit"]) == (False, 0)
    finally:
        _drop(server, copy)


def test_the_next_restore_drops_a_replaced_database_that_kept_its_own_comment(configured, full, server, tmp_path):
    target, _ = configured
    first = restore.restore(full.path, target, confirm=True, safety_dir=tmp_path / "safety")
    assert _properties(server, first["replaced"])["comment"].endswith("; its own comment was: " + COMMENT)
    again = restore.restore(full.path, target, confirm=True, safety_dir=tmp_path / "safety")
    assert first["replaced"] in again["removed"] and first["replaced"] not in scratches.existing(server, target.database)
    assert _properties(server, target.database)["comment"] == COMMENT


def test_a_target_renamed_back_from_what_a_restore_replaced_is_restored_with_its_own_comment(
        configured, full, server, tmp_path):
    """The quickest way back from a restore is renaming the replaced database back; it carries prep-ops'
    marker then, and the next restore gives the target the comment kept after the marker, not the marker."""
    target, _ = configured
    first = restore.restore(full.path, target, confirm=True, safety_dir=tmp_path / "safety")
    unwanted = f"{target.database}_unwanted"
    _alter(server, sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(target.database), sql.Identifier(unwanted)),
           sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(first["replaced"]), sql.Identifier(target.database)))
    marked = MARKER.format(target.database) + "; its own comment was: " + COMMENT
    assert _properties(server, target.database)["comment"] == marked
    again = restore.restore(full.path, target, confirm=True, safety_dir=tmp_path / "safety")
    assert _properties(server, target.database)["comment"] == COMMENT
    assert _properties(server, again["replaced"])["comment"] == marked  # not a marker inside a marker


def _template(server, name: str) -> bool:
    with db.connect(server) as conn:
        return conn.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)).fetchone()[0]


def test_a_template_target_is_restored_as_a_template_and_the_copy_it_replaced_stops_being_one(
        configured, full, server, tmp_path):
    """IS_TEMPLATE is the target's, like its settings: the restored target is a template again, and the
    replaced copy is not (the next restore must be able to drop it: a template cannot be dropped)."""
    target, _ = configured
    _alter(server, sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(target.database)))
    try:
        first = restore.restore(full.path, target, confirm=True, safety_dir=tmp_path / "safety")
        assert _template(server, target.database) and not _template(server, first["replaced"])
        again = restore.restore(full.path, target, confirm=True, safety_dir=tmp_path / "safety")
        assert first["replaced"] in again["removed"] and _template(server, target.database)
    finally:
        _alter(server, sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(target.database)))


def _tablespace(server, tmp_name: str) -> str:
    """A new tablespace in a folder beside the server's data directory, owned as that directory is (skips
    where this test cannot make one: not a superuser, or a server on another machine)."""
    with db.connect(server) as conn:
        if not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
            pytest.skip("making a tablespace takes a superuser")
        data = Path(conn.execute("SHOW data_directory").fetchone()[0])
    if not data.is_dir() or os.geteuid() not in (0, data.stat().st_uid):
        pytest.skip("the server's data directory is not on this machine, or not ours to write beside")
    folder = data.parent / tmp_name
    folder.mkdir()
    os.chown(folder, data.stat().st_uid, data.stat().st_gid)
    _alter(server, sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(sql.Identifier(tmp_name), sql.Literal(str(folder))))
    return tmp_name


def test_a_target_in_a_tablespace_of_its_own_is_restored_into_that_tablespace(full, server, tmp_path):
    """The restored target goes where the target was (a disk of its own), not into pg_default's."""
    name = f"prep_ops_test_space_{uuid.uuid4().hex[:6]}"
    space = _tablespace(server, name)
    target = _create(server)
    try:
        _alter(server, sql.SQL("ALTER DATABASE {} SET TABLESPACE {}").format(sql.Identifier(target.database),
                                                                            sql.Identifier(space)))
        restore.restore_into(full.path, target, full.manifest)
        restore.restore(full.path, target, confirm=True, safety_dir=tmp_path / "safety")
        with db.connect(target) as conn:
            assert conn.execute("SELECT t.spcname FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace "
                                "WHERE d.datname = current_database()").fetchone()[0] == space
            assert conn.execute("SELECT count(*) FROM students").fetchone()[0] > 0
    finally:
        _drop_all(server, target.database)
        _alter(server, sql.SQL("DROP TABLESPACE {}").format(sql.Identifier(space)))


def test_restore_without_a_comment_or_settings_leaves_none_and_marks_the_replaced_one_as_before(full, server, tmp_path):
    target = _create(server)
    try:
        restore.restore_into(full.path, target, full.manifest)
        done = restore.restore(full.path, target, confirm=True, safety_dir=tmp_path / "safety")
        after = _properties(server, target.database)
        assert (after["comment"], after["settings"], after["connection limit"], after["allow connections"]) == (
            None, {}, -1, True)
        assert _properties(server, done["replaced"])["comment"] == MARKER.format(target.database)
    finally:
        _drop_all(server, target.database)


def test_a_setting_prep_ops_may_not_make_stops_the_restore_before_the_load(full, server, tmp_path):
    """Restoring as the target's owner, not a superuser: a superuser's setting on the target
    (log_min_duration_statement) cannot be made on the new database, which is found out before the load,
    not after it at the swap; the target keeps it, and the new database is dropped."""
    owner, password = f"prep_ops_test_owner_{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(12)
    target = server.with_database(f"prep_ops_test_{uuid.uuid4().hex[:10]}")
    name = sql.Identifier(target.database)
    _alter(server, sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(sql.Identifier(owner), sql.Literal(password)),
           sql.SQL("CREATE DATABASE {} OWNER {}").format(name, sql.Identifier(owner)),
           sql.SQL("ALTER DATABASE {} SET log_min_duration_statement = 250").format(name))
    try:
        before = _properties(server, target.database)
        with pytest.raises(BackupError, match=rf"{target.database}'s settings cannot be given to the restored database: "
                                              r"permission denied to set parameter \"log_min_duration_statement\"; "
                                              rf"{target.database} is unchanged"):
            restore.restore(full.path, target.with_user(owner, password), safety_dir=tmp_path / "safety")
        assert _properties(server, target.database) == before
        assert scratches.existing(server, "prep_ops_restore_") == []
    finally:
        _drop_all(server, target.database, owner)


@pytest.mark.parametrize("given, stored", [  # after ALTER DATABASE x SET; each must come back as stored
    ("search_path = '\"Odd Schema\", public'", 'search_path="""Odd Schema"", public"'),  # one schema
    ("search_path = '$user', \"Odd Schema\", public", 'search_path="$user", "Odd Schema", public'),
    ("search_path = ''", 'search_path=""'),
    ("search_path = 'a\"b', '" + "x" * 70 + "'", 'search_path="a""b", ' + "x" * 70),  # no cut at 63 bytes
    ("temp_tablespaces = 'Fast Disk', pg_default", 'temp_tablespaces="Fast Disk", pg_default'),
    ("statement_timeout = 5000", "statement_timeout=5000"),
    ("DateStyle = 'ISO, DMY'", "DateStyle=ISO, DMY"),
    ("TIME ZONE 'America/Denver'", "TimeZone=America/Denver"),
    ("prep_ops.note = 'a, \"b\" = c'", 'prep_ops.note=a, "b" = c')])
def test_a_setting_reads_back_in_pg_db_role_setting_as_the_source_stored_it(scratch, server, given, stored):
    """What pg_db_role_setting holds is flattened text; given back naively a list would become one element
    (or one cut at 63 bytes): carried, the stored entry reads back the same, for a role in the database too."""
    role, copy = f"prep_ops_test_Role {uuid.uuid4().hex[:6]}", _create(server)
    source = sql.Identifier(scratch.database)
    _alter(server, sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)),
           sql.SQL("ALTER DATABASE {} SET {}").format(source, sql.SQL(given)),
           sql.SQL("ALTER ROLE {} IN DATABASE {} SET {}").format(sql.Identifier(role), source, sql.SQL(given)))
    try:
        settings = _properties(server, scratch.database)["settings"]
        assert settings == {"the database": [stored], sql.Identifier(role).as_string(None): [stored]}
        with db.connect(server) as conn:
            database_properties.carry(conn, database_properties.read(conn, scratch.database), copy.database)
            conn.commit()
        assert _properties(server, copy.database)["settings"] == settings
    finally:
        _drop(server, copy)
        _alter(server, sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))  # its settings go with it


@pytest.mark.parametrize("text, elements", [
    ('"$user", "Odd Schema", public', ["$user", "Odd Schema", "public"]),
    ('"""Odd Schema"", public"', ['"Odd Schema", public']),
    ('""', [""]), (" a ,b ", ["a", "b"]),
    ("", None), ("a,", None), ("a b", None), ('"never closed', None)])
def test_a_stored_list_splits_into_the_elements_the_server_quoted(text, elements):
    assert database_properties.split_list(text) == elements


def _may(server, privilege: str, database: str, role: str) -> bool:
    with db.connect(server) as conn:
        return conn.execute("SELECT has_database_privilege(%s, %s, %s)", (role, database, privilege)).fetchone()[0]


def test_a_target_closed_to_public_while_the_restore_loads_is_restored_closed_to_public(
        configured, full, server, tmp_path):
    """Who may connect is read at the swap too, like ALLOW_CONNECTIONS: a DBA who revokes CONNECT from
    PUBLIC (and gives it to one role) and takes CREATE back from that role while the new database loads
    must not get the restored target back open to every role of the server, nor that role's CREATE, with
    the privileges copied when the new database was made."""
    target, role = configured
    name = sql.Identifier(target.database)
    _alter(server, sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(name, sql.Identifier(role)))
    done = _restore_while_a_dba_runs(server, full, target, tmp_path,
                                     sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name),
                                     sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(name, sql.Identifier(role)),
                                     sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(name, sql.Identifier(role)))
    for database in (done["replaced"], target.database):  # the DBA's change, made before the swap, holds on both
        assert not _may(server, "CONNECT", database, "public")
        assert _may(server, "CONNECT", database, role) and not _may(server, "CREATE", database, role)


def test_a_setting_that_does_not_read_back_is_named_without_any_settings_value(scratch, server):
    """carry's error line went to the CLI and the logs with every setting's value in it: a custom setting
    may hold a secret. It names the variables that differ, not their values."""
    copy = _create(server)
    try:
        given = database_properties.Properties(None, -1, True, False, {None: [
            "app.api_key=hunter2-secret", "search_path=a,b"]})  # stored as 'a, b': not as given
        with db.connect(server) as conn, pytest.raises(BackupError) as raised:
            database_properties.carry(conn, given, copy.database)
        assert str(raised.value) == f"the settings of the database in {copy.database} did not read back as they were set: search_path"
        assert "hunter2" not in str(raised.value)
    finally:
        _drop(server, copy)


def test_a_restore_by_an_owner_who_may_not_create_databases_names_its_safety_backup(full, server, tmp_path):
    """The database's owner without CREATEDB: the safety backup was taken, then creating the new database
    beside the target failed outside the restore's guard, and the one line said "database error: permission
    denied to create database", neither that the target is unchanged nor where the safety backup is."""
    owner, password = f"prep_ops_test_owner_{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(12)
    target = server.with_database(f"prep_ops_test_{uuid.uuid4().hex[:10]}")
    _alter(server, sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD {}").format(sql.Identifier(owner), sql.Literal(password)),
           sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(target.database), sql.Identifier(owner)))
    try:
        with db.connect(target.with_user(owner, password), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (1)")
        with pytest.raises(BackupError, match=rf"permission denied to create database; {target.database} is unchanged "
                                              r"\(safety backup: ") as raised:
            restore.restore(full.path, target.with_user(owner, password), confirm=True, safety_dir=tmp_path / "safety")
        safety = str(raised.value).split("safety backup: ")[1].split(")")[0]
        assert Path(safety).is_file() and Path(safety).parent == tmp_path / "safety"
        assert table_checksum(target, "kept") and scratches.existing(server, "prep_ops_restore_") == []
    finally:
        _drop_all(server, target.database, owner)


def test_a_restore_by_a_role_that_is_no_superuser_compares_what_it_could_give_and_swaps(server, tmp_path):
    """A role with CREATEDB, no superuser, restores without owners (--no-owner): every object becomes its own,
    and what was granted to it becomes an owner's privilege. The full restore's comparison of objects (since
    2026-12-01) refused the swap over it ("privileges public.orders"), and over a range type's constructors (the
    bootstrap superuser's, with EXECUTE revoked by default); neither is a difference the restore could avoid."""
    ops, password = f"prep_ops_test_ops_{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(12)
    reader = f"prep_ops_test_reader_{uuid.uuid4().hex[:6]}"
    source = server.with_database(f"prep_ops_test_{uuid.uuid4().hex[:10]}")
    target = server.with_database(f"{source.database}_t")
    _alter(server, sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(sql.Identifier(ops), sql.Literal(password)),
           sql.SQL("CREATE ROLE {}").format(sql.Identifier(reader)),
           sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(source.database), sql.Identifier(ops)),
           sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(target.database), sql.Identifier(ops)))
    try:
        as_ops = source.with_user(ops, password)
        with db.connect(as_ops, autocommit=True) as conn:
            conn.execute("ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC")
            conn.execute("CREATE TYPE span AS RANGE (subtype = int4); "
                         "CREATE TABLE orders (id int PRIMARY KEY, s span); INSERT INTO orders VALUES (1, '[1,2)')")
            conn.execute(sql.SQL("GRANT SELECT ON orders TO {}").format(sql.Identifier(reader)))
        with db.connect(source, autocommit=True) as conn:  # a large object of the superuser's, granted to ops
            oid = conn.execute("SELECT lo_from_bytea(0, 'x')").fetchone()[0]
            conn.execute(sql.SQL("GRANT SELECT ON LARGE OBJECT {} TO {}").format(sql.Literal(oid), sql.Identifier(ops)))
        made = backup.backup(as_ops, "full", "custom", directory=tmp_path / "backups")
        done = restore.restore(made.path, target.with_user(ops, password), confirm=True, safety_dir=tmp_path / "safety")
        assert done["kind"] == "full"
        with db.connect(target) as conn:
            assert conn.execute("SELECT id FROM orders").fetchall() == [(1,)]
            assert conn.execute("SELECT has_table_privilege(%s, 'orders', 'SELECT')", (reader,)).fetchone()[0]
    finally:
        _drop_all(server, source.database)
        _drop_all(server, target.database, ops)
        _alter(server, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(reader)))
