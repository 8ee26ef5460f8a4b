"""Content checksums: the same on every server version, changed by any change of content, blind to
physical row order; and backups whose manifests carry an older method still verify."""

import json
import os
import secrets
import signal
import threading
import time

import psycopg
import pytest
from psycopg import sql

from prep_ops import backup, checksums, db, labels, verify

from conftest import _create, _drop
from prep_ops.errors import PrepOpsError

EVERY_TYPE = """
CREATE TABLE public.every_type (
    i2 smallint, i4 integer NOT NULL, i8 bigint, num numeric(10,2), r real, d double precision, b boolean,
    gone integer, t text, vc varchar(20), c char(5), nm name, dt date, tm time, ttz timetz, ts timestamp,
    tstz timestamptz, iv interval, by bytea, jb jsonb, u uuid, o oid, ip inet, mac macaddr, js json, arr integer[]);
ALTER TABLE public.every_type DROP COLUMN gone;
INSERT INTO public.every_type VALUES
    (1, 2, 3, 4.50, 1.5, 0.1, true, 'text', 'vc', 'c', 'nm', '2024-05-01', '12:34:56', '12:34:56+02',
     '2024-05-01 12:34:56.789', '2024-05-01 12:34:56+02', '1 day 02:03:04', '\\x00ff', '{"b": 1, "a": [1, 2]}',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 42, '192.168.0.1/24', '08:00:2b:01:02:03', '{"b": 1, "a": [1, 2]}', '{1,2,NULL}'),
    (-1, -2, -3, -4.05, -1.5, -1e300, false, 'Zoë 🎻', '', '', '', '1900-01-01', '00:00', '00:00-05',
     '1900-01-01 00:00', '1900-01-01 00:00+00', '-1 mon', '\\x', '[]', '00000000-0000-0000-0000-000000000000', 0,
     '::1', '00:00:00:00:00:00', '[]', '{}'),
    (NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL);
-- every column NOT NULL: column-hash-v2 chains them all, through each path (PostgreSQL 15 hashes
-- boolean, date, timestamptz and bytea by hash_record_extended, 18 by their own functions)
CREATE TABLE public.every_type_not_null (LIKE public.every_type);
INSERT INTO public.every_type_not_null SELECT * FROM public.every_type WHERE i2 IS NOT NULL;
ALTER TABLE public.every_type_not_null ALTER i2 SET NOT NULL, ALTER i8 SET NOT NULL, ALTER num SET NOT NULL,
    ALTER r SET NOT NULL, ALTER d SET NOT NULL, ALTER b SET NOT NULL, ALTER t SET NOT NULL, ALTER vc SET NOT NULL,
    ALTER c SET NOT NULL, ALTER nm SET NOT NULL, ALTER dt SET NOT NULL, ALTER tm SET NOT NULL,
    ALTER ttz SET NOT NULL, ALTER ts SET NOT NULL, ALTER tstz SET NOT NULL, ALTER iv SET NOT NULL,
    ALTER by SET NOT NULL, ALTER jb SET NOT NULL, ALTER u SET NOT NULL, ALTER o SET NOT NULL, ALTER ip SET NOT NULL,
    ALTER mac SET NOT NULL, ALTER js SET NOT NULL, ALTER arr SET NOT NULL;
"""
# the checksums of EVERY_TYPE by each method, the same on every server (PostgreSQL 15.18 and 18.6)
EVERY_TYPE_CHECKSUMS = {
    checksums.COLUMN_HASH: {"public.every_type": {"rows": 3, "checksum": "-5289923893192890278"},
                            "public.every_type_not_null": {"rows": 2, "checksum": "5977838418999340717"}},
    checksums.COLUMN_HASH_V3: {"public.every_type": {"rows": 3, "checksum": "-3643424189517326399"},
                               "public.every_type_not_null": {"rows": 2, "checksum": "6673269470044965351"}},
    checksums.COLUMN_HASH_V1: {"public.every_type": {"rows": 3, "checksum": "-3643424189517326399"},
                               "public.every_type_not_null": {"rows": 2, "checksum": "-7853382496239166041"}},
}


@pytest.mark.parametrize("method", [checksums.COLUMN_HASH, checksums.COLUMN_HASH_V3, checksums.COLUMN_HASH_V1])
def test_column_hash_checksum_is_the_same_on_every_server_version_and_setting(scratch, method):
    want = EVERY_TYPE_CHECKSUMS[method]
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(EVERY_TYPE)
        assert checksums.table_checksums(conn, method) == want
        conn.execute("SET TimeZone = 'America/New_York'")
        conn.execute("SET DateStyle = 'SQL, DMY'")
        conn.execute("SET extra_float_digits = 0")
        assert checksums.table_checksums(conn, method) == want
        assert checksums.table_checksums(conn, method, target=scratch, jobs=2) == want  # as backup and verify do
    with db.connect(scratch) as conn:  # in the caller's transaction, whose settings stay as they were
        conn.execute("SET LOCAL TimeZone = 'Asia/Kolkata'")
        assert checksums.table_checksums(conn, method) == want
        assert conn.execute("SHOW TimeZone").fetchone()[0] == "Asia/Kolkata"
        assert conn.execute("SHOW DateStyle").fetchone()[0] != "ISO, YMD"


def test_an_inheritance_child_whose_columns_a_restore_reorders_has_the_same_checksum(scratch, server, tmp_path):
    """pg_dump makes an inheritance child again with its parent's columns first: a column the parent gained
    after the child was made came back in another place, the column hash (by position) differed, and a good
    restore was refused ("public.c: content checksum"). v4 hashes such a child's columns by name."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE TABLE p (id int, a text); CREATE TABLE c (b text) INHERITS (p); "
                     "ALTER TABLE p ADD COLUMN z int; INSERT INTO c VALUES (1, 'a', 'b', 2), (3, 'c', NULL, 4)")
        order = [r[0] for r in conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'c'::regclass "
                                            "AND attnum > 0 ORDER BY attnum")]
        assert order == ["id", "a", "b", "z"]
    made = backup.backup(scratch, "full", "custom", directory=tmp_path)
    copy = _create(server)
    try:
        from prep_ops import restore

        restore.restore_into(made.path, copy, made.manifest)
        with db.connect(copy, autocommit=True) as conn:
            assert [r[0] for r in conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'c'::regclass "
                                               "AND attnum > 0 ORDER BY attnum")] == ["id", "a", "z", "b"]
            assert checksums.table_checksums(conn)["public.c"] == made.manifest["tables"]["public.c"]
        assert verify.verify(made.path, server=server).ok
    finally:
        _drop(server, copy)


def test_checksums_never_count_only_the_rows_a_row_level_security_policy_shows(scratch, server):
    """A table's owner under FORCE ROW LEVEL SECURITY sees the rows its policy lets through: a restore by that
    owner compared 1 of 2 rows with the manifest and refused a good restore as differing. The checksums read
    every row or say why they cannot, as pg_dump does."""
    import secrets as _secrets

    owner, password = f"prep_ops_test_rls_{_secrets.token_hex(3)}", _secrets.token_urlsafe(12)
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(owner), sql.Literal(password)))
    try:
        with db.connect(scratch, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE TABLE t (dept text); INSERT INTO t VALUES ('a'), ('b'); "
                                 "ALTER TABLE t OWNER TO {}; ALTER TABLE t ENABLE ROW LEVEL SECURITY; "
                                 "ALTER TABLE t FORCE ROW LEVEL SECURITY; "
                                 "CREATE POLICY only_a ON t USING (dept = 'a')").format(sql.Identifier(owner)))
            assert checksums.table_checksums(conn)["public.t"]["rows"] == 2  # a superuser: every row
        with db.connect(scratch.with_user(owner, password), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1  # what the owner sees
            with pytest.raises(PrepOpsError, match="row-level security would hide some from this role: query would "
                                                   "be affected by row-level security policy for table .*NO FORCE ROW "
                                                   "LEVEL SECURITY.*; or run it as a superuser or a role with BYPASSRLS"):
                checksums.table_checksums(conn)
    finally:
        with db.connect(scratch, autocommit=True) as conn:
            conn.execute("DROP TABLE t")
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(owner)))


ROWS = [("x", "y", "c", 1), ("p", "q", None, None), ("u", "v", "", 3)]


@pytest.mark.parametrize("column, one, other", [
    ("iv interval", "1 mon", "30 days"),  # date '2024-01-31' + each: 2024-02-29 and 2024-03-01
    ("iv interval", "1 day", "24:00:00"),  # across a daylight-saving change, timestamptz + each differs
    ("f double precision", "0", "-0"),  # 1/f: Infinity and -Infinity
    ("r real", "0", "-0"),
])
def test_values_their_type_holds_equal_that_are_not_the_same_give_different_checksums(scratch, column, one, other):
    """Seen: a dump whose '1 mon' became '30 days' verified PASS, the checksum being their type's hash,
    which follows the type's equality. v4 hashes these types in their exact text form."""
    sums = []
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE odd (id int PRIMARY KEY, {})").format(sql.SQL(column)))
        for value in (one, other):
            conn.execute("TRUNCATE odd")
            conn.execute("INSERT INTO odd VALUES (1, %s)", (value,))
            sums.append({m: checksums.table_checksums(conn, m)["public.odd"] for m in (checksums.COLUMN_HASH,
                                                                                      checksums.COLUMN_HASH_V3)})
    assert sums[0][checksums.COLUMN_HASH] != sums[1][checksums.COLUMN_HASH]
    assert sums[0][checksums.COLUMN_HASH_V3] == sums[1][checksums.COLUMN_HASH_V3]  # what v3 could not tell apart


def _checksum(target, rows, method) -> str:
    """The checksum of table `pair` holding `rows`, inserted in that order (its physical order)."""
    with db.connect(target, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS pair")
        conn.execute("CREATE TABLE pair (a text NOT NULL, b text NOT NULL, c text, n integer)")
        with conn.cursor().copy("COPY pair FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return checksums.table_checksums(conn, method)["public.pair"]["checksum"]


@pytest.fixture(params=[checksums.COLUMN_HASH, checksums.COLUMN_HASH_V1])
def pair(request, scratch):
    """(the checksum of table `pair` holding `rows` by the method, that of ROWS, the method)."""
    def checksum(rows):
        return _checksum(scratch, rows, request.param)
    return checksum, checksum(ROWS), request.param


def test_checksum_ignores_the_physical_order_of_rows(pair, scratch):
    checksum, same, method = pair
    assert checksum(list(reversed(ROWS))) == same
    assert checksum([ROWS[1], ROWS[2], ROWS[0]]) == same
    with db.connect(scratch, autocommit=True) as conn:  # an UPDATE moves a row to the end of the heap
        conn.execute("UPDATE pair SET a = a WHERE a = 'x'")
        assert conn.execute("SELECT a FROM pair ORDER BY ctid DESC LIMIT 1").fetchone()[0] == "x"
        assert checksums.table_checksums(conn, method)["public.pair"]["checksum"] == same


def test_checksum_changes_with_one_value(pair):
    checksum, same, _ = pair
    for changed in ([("x", "y", "c", 2), *ROWS[1:]], [("x", "Y", "c", 1), *ROWS[1:]],
                    [ROWS[0], ("p", "q", "z", None), ROWS[2]], [ROWS[0], ("p", "q", None, 0), ROWS[2]]):
        assert checksum(changed) != same, changed


def test_checksum_changes_between_null_and_empty_string(pair):
    checksum, same, _ = pair
    assert checksum([ROWS[0], ("p", "q", "", None), ROWS[2]]) != same  # NULL to ''
    assert checksum([*ROWS[:2], ("u", "v", None, 3)]) != same  # '' to NULL


def test_checksum_changes_with_values_swapped_between_columns(pair):
    checksum, same, _ = pair
    assert checksum([("y", "x", "c", 1), *ROWS[1:]]) != same  # two NOT NULL columns (chained in v2)
    assert checksum([("x", "c", "y", 1), *ROWS[1:]]) != same  # a NOT NULL and a nullable one
    assert checksum([("x", "q", "c", 1), ("p", "y", None, None), ROWS[2]]) != same  # between rows


def test_checksum_changes_with_a_duplicated_row(pair):
    checksum, same, _ = pair
    assert checksum([*ROWS, ROWS[1]]) != same
    assert checksum([*ROWS, ROWS[1], ROWS[1]]) != same


def test_v2_checksum_changes_with_case_in_a_case_insensitive_column(scratch):
    """v1 hashed under the column's collation, where 'Cello' equals 'cello'; v2 hashes the bytes."""
    with db.connect(scratch, autocommit=True) as conn:
        try:
            conn.execute("CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false)")
        except psycopg.Error as exc:
            pytest.skip(f"no ICU collation on this server: {exc}")
        conn.execute("CREATE TABLE t (name text COLLATE nocase NOT NULL, other text COLLATE nocase)")
        conn.execute("INSERT INTO t VALUES ('cello', 'viola')")
        before = {m: checksums.table_checksums(conn, m)["public.t"] for m in (checksums.COLUMN_HASH, checksums.COLUMN_HASH_V1)}
        conn.execute("UPDATE t SET name = 'Cello', other = 'Viola'")
        assert checksums.table_checksums(conn, checksums.COLUMN_HASH)["public.t"] != before[checksums.COLUMN_HASH]
        assert checksums.table_checksums(conn, checksums.COLUMN_HASH_V1)["public.t"] == before[checksums.COLUMN_HASH_V1]


def test_v2_counts_a_null_under_a_not_valid_not_null_constraint(scratch):
    """PostgreSQL 18 allows NOT NULL ... NOT VALID over existing NULLs: v2 must not chain that column
    (a NULL would make the whole row's hash NULL and the sum skip the row)."""
    with db.connect(scratch, autocommit=True) as conn:
        if db.server_version(conn) < 18:
            pytest.skip("NOT VALID not-null constraints came with PostgreSQL 18")
        conn.execute("CREATE TABLE t (id integer NOT NULL, note text)")
        conn.execute("INSERT INTO t VALUES (1, NULL), (2, NULL)")
        conn.execute("ALTER TABLE t ADD CONSTRAINT note_nn NOT NULL note NOT VALID")
        assert checksums.table_checksums(conn, checksums.COLUMN_HASH_V1)["public.t"]["checksum"] == "0"  # v1's blind spot
        both = checksums.table_checksums(conn)["public.t"]
        conn.execute("DELETE FROM t WHERE id = 2")
        one = checksums.table_checksums(conn)["public.t"]
        assert "0" not in (both["checksum"], one["checksum"]) and one["checksum"] != both["checksum"]


def test_a_column_hash_v1_manifest_is_verified_with_v1(seeded, tmp_path):
    """Backups taken before v2 carry column-hash-v1 checksums: verify computes v1 for them."""
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    assert made.manifest["checksum_method"] == checksums.COLUMN_HASH
    with db.connect(seeded) as conn:
        v1_sums = checksums.table_checksums(conn, checksums.COLUMN_HASH_V1)
    differing = {t for t, sums in v1_sums.items() if sums != made.manifest["tables"][t]}
    assert "public.students" in differing  # v1 and v2 differ where a table has two NOT NULL columns
    path = backup.manifest_path(made.path)

    def rewrite(**fields):
        manifest = json.loads(path.read_text())
        path.write_text(json.dumps({**manifest, **fields}))

    rewrite(checksum_method=checksums.COLUMN_HASH_V1, tables=v1_sums)
    result = verify.verify(made.path)
    assert result.ok, result.failures.to_string()
    assert set(result.report.loc[result.report["check"] == "content checksum", "object"]) == set(v1_sums)

    rewrite(tables=made.manifest["tables"])  # v2 sums labelled v1: caught
    failed = verify.verify(made.path).failures
    assert set(failed["check"]) == {"content checksum"} and set(failed["object"]) == differing


# Several connections (checksums.each_table): backup and verify pass the database, and the tables are
# summed on one connection per CPU, each importing the snapshot of the caller's transaction.
SMALL = [f"small_{i}" for i in range(6)]


@pytest.fixture
def tables(scratch):
    """A table that keeps the first connection busy (handed out first: the largest) while another
    connects and takes the small ones; and a writer, to change them beside the caller's transaction."""
    with db.connect(scratch, autocommit=True) as writer:
        writer.execute("CREATE TABLE big AS SELECT g AS id, jsonb_build_object('n', g, 's', md5(g::text)) AS doc "
                       "FROM generate_series(1, 300000) AS g")
        for name in SMALL:
            writer.execute(sql.SQL("CREATE TABLE {} (id integer NOT NULL, note text)").format(sql.Identifier(name)))
            writer.execute(sql.SQL("INSERT INTO {} SELECT g, g::text FROM generate_series(1, 100) AS g")
                           .format(sql.Identifier(name)))
        writer.execute("VACUUM ANALYZE")
        yield writer


@pytest.fixture
def helpers(monkeypatch):
    """The checksum queries each connection that checksums opened ran (a list per connection)."""
    summed: list[list] = []

    def connect(target, **kwargs):
        conn = db.connect(target, **kwargs)
        mine: list = []
        summed.append(mine)

        class Recording(psycopg.Cursor):
            def execute(self, query, *args, **kwargs):
                if isinstance(query, sql.Composable) and "sum(" in query.as_string(None):
                    mine.append(query)
                return super().execute(query, *args, **kwargs)

        conn.cursor_factory = Recording
        return conn

    monkeypatch.setattr(checksums, "connect", connect)
    return summed


def test_checksums_on_several_connections_equal_those_on_one(scratch, tables, helpers):
    with db.connect(scratch, autocommit=True) as conn:
        for method in checksums.METHODS:
            one = checksums.table_checksums(conn, method)
            assert checksums.table_checksums(conn, method, target=scratch, jobs=3) == one
            assert set(one) == {"public.big", *(f"public.{t}" for t in SMALL)}
    # the column-hash methods on 3 connections (the caller's and 2 more); row-text on the caller's only
    assert len(helpers) == 2 * (len(checksums.METHODS) - 1)


def test_row_text_sums_never_depend_on_which_connection_summed_a_table(scratch, tables, helpers):
    """row-text hashes each row's text form, which the session's DateStyle, TimeZone and the like shape: a
    connection of its own would not share the caller's, so row-text stays on the caller's connection."""
    tables.execute("CREATE TABLE dated AS SELECT g AS id, date '2026-11-30' + g AS day, "
                   "timestamptz '2026-11-30 12:00+00' + g * interval '1 hour' AS at FROM generate_series(1, 50) AS g")
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("SET DateStyle = 'SQL, DMY'")
        conn.execute("SET TimeZone = 'Pacific/Chatham'")
        one = checksums.table_checksums(conn, checksums.ROW_TEXT)
        assert checksums.table_checksums(conn, checksums.ROW_TEXT, target=scratch, jobs=2) == one
    assert helpers == []


def test_other_connections_read_the_callers_snapshot(scratch, tables, helpers):
    """Rows committed after the caller's snapshot are in no table's checksum, whichever connection summed it."""
    for _ in range(3):  # until another connection has summed a small table (it connects while big is summed)
        helpers.clear()
        with db.connect(scratch, autocommit=True) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            before = checksums.table_checksums(conn)  # one connection: the snapshot's own sums
            for name in SMALL:
                tables.execute(sql.SQL("UPDATE {} SET note = 'changed' WHERE id = 1").format(sql.Identifier(name)))
            assert checksums.table_checksums(conn, target=scratch, jobs=2) == before
            conn.rollback()
            after = checksums.table_checksums(conn, target=scratch, jobs=2)
        assert {t for t in after if after[t] != before[t]} == {f"public.{t}" for t in SMALL}  # the change shows
        if helpers and helpers[0]:
            break
    assert helpers and helpers[0], "no other connection summed a table in 3 tries"


def test_a_transaction_that_has_written_sums_on_its_own_connection(scratch, tables, helpers):
    """An imported snapshot does not see the exporting transaction's own changes: those are summed by it."""
    with db.connect(scratch) as conn:
        conn.execute(sql.SQL("INSERT INTO {} VALUES (101, 'new')").format(sql.Identifier(SMALL[0])))
        sums = checksums.table_checksums(conn, target=scratch, jobs=2)
        assert all(sums[f"public.{t}"]["rows"] == (101 if t == SMALL[0] else 100) for t in SMALL)
        conn.rollback()
    assert helpers == []


def test_no_connection_to_spare_leaves_every_table_to_the_first(scratch, tables, helpers):
    """A role at its connection limit (or a server at max_connections): the caller's connection sums them all."""
    role, password = f"ck_limited_{secrets.token_hex(4)}", secrets.token_hex(12)
    tables.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT 1").format(
        sql.Identifier(role), sql.Literal(password)))
    try:
        tables.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
        limited = scratch.with_user(role, password)
        with db.connect(limited, autocommit=True) as conn:
            one = checksums.table_checksums(conn)
            assert checksums.table_checksums(conn, target=limited, jobs=2) == one
        assert helpers == []  # none could connect
    finally:
        tables.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        tables.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_another_database_cannot_lend_its_connections(scratch, server, tables):
    """A snapshot belongs to its database: `target` naming another one is refused, not summed there."""
    with db.connect(scratch, autocommit=True) as conn:
        with pytest.raises(PrepOpsError, match="in the snapshot of the checksums' connection"):
            checksums.table_checksums(conn, target=server, jobs=2)


def _checksum_sessions(server) -> list[tuple]:
    """(pid, state, wait_event_type) of every session the checksums opened beside the caller's, server-wide."""
    with db.connect(server, autocommit=True) as admin:
        return admin.execute("SELECT pid, state, wait_event_type FROM pg_stat_activity WHERE application_name = %s",
                             (db.tagged(checksums.HELPER_NAME),)).fetchall()


@pytest.fixture
def locked_when_helping(scratch, tables, monkeypatch):
    """Once the checksums' first other connection is open, another session takes ACCESS EXCLUSIVE locks on the
    small tables (the ones that connection is handed: the caller sums `big` first) in an open transaction, as a
    VACUUM FULL or an ALTER TABLE would, for at most 10 s: a query of that connection then runs (waits) on the
    server until it is cancelled. Yields the holder's connection."""
    holder = db.connect(scratch)
    connect, locked = checksums.connect, []

    def locking_connect(target, **kwargs):
        if not locked:
            locked.append(True)
            holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.SQL(", ").join(sql.Identifier(name) for name in SMALL)))
        return connect(target, **kwargs)

    def release() -> None:  # a bound: a helper that is not cancelled waits no longer than this
        with db.connect(scratch, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (holder.info.backend_pid,))

    monkeypatch.setattr(checksums, "connect", locking_connect)
    timer = threading.Timer(10, release)
    timer.start()
    yield holder
    timer.cancel()
    holder.close()


def _interrupt_when(condition, seconds: float = 10):
    """A thread that sends this process SIGINT (Ctrl-C) once `condition()` holds (looked at every 0.05 s, for
    at most `seconds`; never when it does not hold): the KeyboardInterrupt lands in the main thread, wherever
    it waits."""
    def watch():
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_mid_checksum_cancels_every_helper_connections_query_and_closes_it(scratch, server, locked_when_helping):
    """Ctrl-C (or SIGTERM, which the CLI takes as Ctrl-C) while the tables are summed on several connections:
    the caller's query was cancelled (psycopg does that), but each other connection's query ran on (here:
    waited on another session's lock) and the interrupted command waited for it, then left it running on the
    server. Each is cancelled and its connection closed before the KeyboardInterrupt goes on."""
    armed = threading.Event()  # a SIGINT outside the checksums (too late) is ignored, never ends the test session

    def interrupted(signum, frame):
        if armed.is_set():
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)  # a background job's pytest ignores SIGINT: its own here
    try:
        def helper_waits() -> bool:
            return any(wait == "Lock" for _, _, wait in _checksum_sessions(server))

        with db.connect(scratch, autocommit=True) as conn:
            started = time.monotonic()
            watcher = _interrupt_when(helper_waits)
            armed.set()
            try:
                with pytest.raises(KeyboardInterrupt):
                    checksums.table_checksums(conn, target=scratch, jobs=2)
            finally:
                armed.clear()
            took = time.monotonic() - started
            watcher.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert took < 8, f"the interrupted checksums took {took:.1f} s: they waited for a helper's query"
    deadline = time.monotonic() + 3
    while _checksum_sessions(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _checksum_sessions(server) == []


def test_the_helper_connections_wait_for_a_lock_no_longer_than_the_callers_lock_timeout(scratch, locked_when_helping):
    """A backup bounds its wait behind another session's lock with lock_timeout on its own session: its helper
    connections, opened by the checksums, had none and waited for as long as the lock was held."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '1s'")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            checksums.table_checksums(conn, target=scratch, jobs=2)
    assert time.monotonic() - started < 6


# Inheritance (INHERITS, not partitions): v3 sums each table's own rows ---------------------------------------
INHERITANCE = """
CREATE SCHEMA "Lessons";
CREATE TABLE "Lessons".lesson (id integer NOT NULL, room text);
CREATE TABLE "Lessons".group_lesson (size integer) INHERITS ("Lessons".lesson);
INSERT INTO "Lessons".lesson VALUES (1, 'A'), (2, 'B');
INSERT INTO "Lessons".group_lesson VALUES (3, 'C', 4), (4, 'D', 6), (5, 'E', 8);
"""


def test_an_inheritance_parents_rows_are_counted_once_not_again_with_its_childrens(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(INHERITANCE)
        v3 = checksums.table_checksums(conn)
        v2 = checksums.table_checksums(conn, checksums.COLUMN_HASH_V2)
        assert {t: s["rows"] for t, s in v3.items()} == {"Lessons.lesson": 2, "Lessons.group_lesson": 3}
        assert v2["Lessons.lesson"]["rows"] == 5  # v2 counted the child's rows in the parent too
        assert v2["Lessons.group_lesson"] == v3["Lessons.group_lesson"]  # a table without children: the same
        conn.execute('DELETE FROM "Lessons".group_lesson WHERE id = 4')
        after = checksums.table_checksums(conn)
        assert after["Lessons.lesson"] == v3["Lessons.lesson"] and after["Lessons.group_lesson"]["rows"] == 2
        assert checksums.row_counts(conn) == {"Lessons.lesson": 2, "Lessons.group_lesson": 2}


def test_a_row_lost_from_an_inheritance_child_is_reported_lost_once(scratch, tmp_path):
    from prep_ops import comparison

    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(INHERITANCE)
    made = backup.backup(scratch, "full", "custom", directory=tmp_path)
    assert made.manifest["tables"]["Lessons.lesson"]["rows"] == 2
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute('DELETE FROM "Lessons".group_lesson WHERE id = 4')
        assert comparison.rows_lost(conn, made.manifest) == {"Lessons.group_lesson": (3, 2)}
        data = comparison.compare_data(conn, made.manifest)
    assert data.differing == ["Lessons.group_lesson"]


def test_a_column_hash_v2_backup_of_an_inheritance_parent_still_verifies_clean(scratch, tmp_path):
    """Backups taken before v3 summed a parent with its children: verify computes them the same way,
    so an unchanged backup is not reported as changed content."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(INHERITANCE)
        v2 = checksums.table_checksums(conn, checksums.COLUMN_HASH_V2)
    made = backup.backup(scratch, "full", "custom", directory=tmp_path)
    assert made.manifest["checksum_method"] == checksums.COLUMN_HASH
    assert made.manifest["tables"]["Lessons.lesson"] != v2["Lessons.lesson"]
    path = backup.manifest_path(made.path)
    path.write_text(json.dumps({**json.loads(path.read_text()), "checksum_method": checksums.COLUMN_HASH_V2,
                                "tables": v2}))
    result = verify.verify(made.path)
    assert result.ok, result.failures.to_string()
    assert set(result.report.loc[result.report["check"] == "content checksum", "object"]) == set(v2)


def test_a_types_owner_cannot_have_its_cast_to_text_run_by_whoever_takes_the_checksums(scratch, app_author):
    """A column of a type outside NATIVE_HASH_TYPES was hashed in its `::text` form, and `::text` takes the
    type's cast from pg_cast where there is one: any function the type's owner names. Whoever took the
    checksums (a superuser's backup) ran it. The text form now comes from the type's output function."""
    author, password = app_author
    with db.connect(scratch.with_user(author, password), autocommit=True) as conn:
        conn.execute("CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy')")
        conn.execute("CREATE TYPE app.plain AS ENUM ('sad', 'ok', 'happy')")
        conn.execute(sql.SQL("""CREATE FUNCTION app.spoken(app.mood) RETURNS text LANGUAGE plpgsql AS $f$
            BEGIN
                IF current_user <> {} THEN
                    PERFORM pg_advisory_lock(434343);  -- a mark that outlives any transaction
                END IF;
                RETURN 'same for all';
            END $f$""").format(sql.Literal(author)))
        conn.execute("CREATE CAST (app.mood AS text) WITH FUNCTION app.spoken(app.mood)")
        conn.execute("CREATE TABLE app.feelings (id int NOT NULL, m app.mood NOT NULL, n app.mood)")
        conn.execute("INSERT INTO app.feelings VALUES (1, 'sad', 'ok'), (2, 'happy', NULL)")
        conn.execute("CREATE TABLE app.plain_feelings (id int NOT NULL, m app.plain NOT NULL, n app.plain)")
        conn.execute("INSERT INTO app.plain_feelings VALUES (1, 'sad', 'ok'), (2, 'happy', NULL)")
        assert conn.execute("SELECT 'sad'::app.mood::text").fetchone()[0] == "same for all"
    with db.connect(scratch, autocommit=True) as conn:
        sums = {method: checksums.table_checksums(conn, method) for method in checksums.HASH_METHODS}
        marked = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 434343"
                              ).fetchone()[0]
    assert marked == 0
    for method, sum_of in sums.items():  # the values' own text: as the enum without a cast gives
        assert sum_of["app.feelings"] == sum_of["app.plain_feelings"], method


@pytest.mark.parametrize("method", [checksums.COLUMN_HASH, checksums.COLUMN_HASH_V1])
def test_a_schema_name_with_a_line_break_runs_nothing_out_of_the_checksum_querys_comment(scratch, method):
    """The query's comment named its {table}: a schema named "x<LF>SELECT pg_reload_conf();--" ended the
    comment, and `prep-ops backup` ran pg_reload_conf() as its (superuser) role, then died in a traceback."""
    name = "x\nSELECT set_config('prep_ops.injected', 'yes', false);--"
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY)").format(sql.Identifier(name, "t")))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1), (2)").format(sql.Identifier(name, "t")))
        found = checksums.table_checksums(conn, method)
        assert found[labels.label(name, "t")]["rows"] == 2
        assert conn.execute("SELECT current_setting('prep_ops.injected', true)").fetchone()[0] in (None, "")


def test_a_helper_that_fails_stops_the_callers_connection_after_the_table_it_is_on(scratch, monkeypatch):
    """A helper connection's error (here its lock_timeout behind another session's lock) was raised only once
    the caller's connection had summed every table left: behind a VACUUM FULL, a backup that gives up after
    --lock-wait still read the rest of the database first, its snapshot held open. The caller's connection now
    takes no further table. Each query takes a session advisory lock on the caller's side as its mark."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 60000) AS g")
        conn.execute("CREATE TABLE locked AS SELECT g AS id FROM generate_series(1, 30000) AS g")
        for n in range(8):
            conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(f"small_{n}")))
    names = ["big", "locked"] + [f"small_{n}" for n in range(8)]
    queries = {("public", name): sql.SQL("SELECT (SELECT count(*) FROM {t}), pg_advisory_lock(4242, {k}), "
                                         "pg_sleep({s})").format(t=sql.Identifier(name), k=sql.Literal(k),
                                                                 s=sql.Literal(1.0 if name == "big" else 0.3))
               for k, name in enumerate(names)}
    queries[("public", "locked")] = sql.SQL("SELECT count(*) FROM locked")  # the helper's: it waits on the lock
    with db.connect(scratch) as holder, db.connect(scratch, autocommit=True) as conn:
        connect = checksums.connect

        def locking_connect(target, **kwargs):  # once the tables are sized and handed out, as a VACUUM FULL
            holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")  # starting then would
            return connect(target, **kwargs)

        monkeypatch.setattr(checksums, "connect", locking_connect)
        conn.execute("SET lock_timeout = '1s'")
        with db.snapshot(conn):
            with pytest.raises(psycopg.errors.LockNotAvailable):
                checksums.each_table(conn, queries, target=scratch, jobs=2)
        summed = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 4242 "
                              "AND pid = pg_backend_pid()").fetchone()[0]
    # big (1 s), then the small table it was on when the helper gave up (0.3 s each): not the eight of them
    assert 1 <= summed <= 3, summed
