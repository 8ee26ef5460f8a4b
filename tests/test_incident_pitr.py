"""Runbook 10, scope="point-in-time": the drill on a private archiving cluster loses no row, where the
dump-based scope would lose the work done after the last dump; the moment comes from the audit log, the
WAL, or recover_to; nothing of the drill is left behind, also after a kill; live without archiving or a
base backup, SKIP with the reason.

The drills run on a private cluster of the embedded binaries (pitr_cluster), whatever the server under
test, so they run once in CI (server_independent); the live test uses the server under test."""

import os
import re
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest
from psycopg import sql

import pitr_fixtures
from prep_ops import backup, base_backup, db, incident, migrate, runner, seed
from prep_ops.base_backup import lsn_value
from prep_ops.errors import ParameterError, StepFailed
from prep_ops.incident import point_in_time, recovery_steps
from prep_ops.incident.drills import pitr_cluster

from conftest import _create, _drop, check_statuses

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "10_incident_data_recovery.ipynb"
ZERO_LOST = "zero rows lost, including the work after the last logical backup"
source_cluster = pitr_fixtures.source_cluster  # the fixture, used by name
independent = pytest.mark.server_independent


def _postgres_on(folder: Path) -> list[psutil.Process]:
    """The postgres processes whose command line names a folder under `folder`."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if "postgres" in (process.info["name"] or "") and str(folder) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def _drill_folders() -> list[Path]:
    return sorted(pitr_cluster.home().glob("*")) if pitr_cluster.home().exists() else []


def _nothing_left(run) -> None:
    cluster = run.drill.cluster
    assert not cluster.folder.exists() and not cluster.archive.exists()
    assert not _postgres_on(cluster.folder)
    assert _drill_folders() == []
    with db.connect(db.resolve_target(), autocommit=True) as conn:  # the dump's copy on the embedded server
        assert conn.execute("SELECT count(*) FROM pg_database WHERE starts_with(datname, %s)",
                            (run.copy_prefix,)).fetchone()[0] == 0


def _run_steps(run) -> None:
    try:
        recovery_steps.stop_application(run)
        recovery_steps.assess_damage(run)
        recovery_steps.restore(run)
        recovery_steps.verify_data(run)
        recovery_steps.resume_service(run)
    finally:
        recovery_steps.clean_up(run)


@independent
def test_point_in_time_drill_passes_with_zero_rows_lost_where_the_dump_would_lose_some(tmp_path, incident_id):
    result = runner.run_one(NOTEBOOK, tmp_path, {"incident_id": incident_id, "scope": "point-in-time",
                                                 "drill_students": 300})
    assert result.ok, result.error
    status = {c["name"]: c["status"] for c in result.checks}
    for name in ("application stopped", "damage found where it was done", "point-in-time copy made", ZERO_LOST,
                 "application can connect again"):
        assert status[name] == "PASS", name
    report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
    would_lose = int(re.search(r"rows lost: 0 with point-in-time, (\d+) with the dump-based scope", report).group(1))
    assert would_lose > 0
    assert "the first damaging change: DELETE of public.enrollments" in report  # from the audit log
    assert "outcome:** all must-hold checks passed" in report
    assert _drill_folders() == []


@independent
def test_the_dump_would_lose_the_work_after_it_and_point_in_time_keeps_it(incident_id):
    run = recovery_steps.start(db.resolve_target(), "drill", incident_id=incident_id, scope="point-in-time",
                               drill_students=200)
    _run_steps(run)
    statuses = check_statuses(run, ("point-in-time copy made", ZERO_LOST))
    assert statuses["point-in-time copy made"] == statuses[ZERO_LOST] == "PASS"
    assert run.point.moment.source == "audit log"
    table = recovery_steps.losses(run)
    assert (table["lost_with_point_in_time"] == 0).all()
    # every card payment made or changed after the dump is lost by the dump-based scope
    assert table.loc["public.tuition_payments", "lost_with_dump"] >= run.drill.after_dump["changed_payments"]
    assert table.loc["public.enrollments", "lost_with_dump"] > 0
    _nothing_left(run)


@independent
def test_recover_to_given_explicitly_is_the_moment_used(incident_id):
    run = recovery_steps.start(db.resolve_target(), "drill", incident_id=incident_id, scope="point-in-time",
                               drill_students=200, drill_audit_log=False)
    run.recover_to = run.drill.before_damage[0].isoformat()  # the DBA knows when it happened
    _run_steps(run)
    assert run.point.moment.source == "given"
    assert run.point.moment.to_time == run.drill.before_damage[0]
    assert check_statuses(run, (ZERO_LOST,))[ZERO_LOST] == "PASS"
    assert run.point.dump_would_lose > 0
    _nothing_left(run)


@independent
def test_without_an_audit_log_the_damaging_change_is_found_in_the_wal(incident_id):
    run = recovery_steps.start(db.resolve_target(), "drill", incident_id=incident_id, scope="point-in-time",
                               drill_students=200, drill_audit_log=False)
    _run_steps(run)
    moment = run.point.moment
    assert moment.source == "WAL (pg_walinspect)"
    # the first damaging record is after the WAL position read just before the damage began
    assert lsn_value(moment.to_lsn) >= lsn_value(run.drill.before_damage[1])
    assert check_statuses(run, (ZERO_LOST,))[ZERO_LOST] == "PASS"
    _nothing_left(run)


@independent
def test_start_refuses_a_bad_recover_to_before_making_anything():
    before = _drill_folders()
    for bad in ("yesterday at noon", "0/XYZ"):
        with pytest.raises(ParameterError, match="not a date and time|not a WAL location"):
            recovery_steps.start(db.resolve_target(), "drill", scope="point-in-time", recover_to=bad)
    assert _drill_folders() == before


@independent
def test_neither_audit_log_nor_wal_asks_for_recover_to_in_one_line(source_cluster):
    with source_cluster.connect() as conn:
        conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, fee numeric)")
        conn.execute("INSERT INTO lessons SELECT g, g FROM generate_series(1, 50) g")
        start = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        conn.execute("DELETE FROM lessons WHERE id > 40")
        damaged = {"public.lessons": {"missing": {(str(i),) for i in range(41, 51)}, "changed": set()}}
        # no audit log and no pg_walinspect in this database: nothing can say when the damage began
        with pytest.raises(ParameterError, match="give recover_to") as asked:
            point_in_time.find_moment(conn, damaged, since=source_cluster_started(conn), start_lsn=start)
        assert "\n" not in str(asked.value)
        conn.execute("CREATE EXTENSION pg_walinspect")  # with it, the DELETE's record is found
        found = point_in_time.find_moment(conn, damaged, since=source_cluster_started(conn), start_lsn=start)
        assert found.source == "WAL (pg_walinspect)"
        assert lsn_value(found.to_lsn) >= lsn_value(start)


def source_cluster_started(conn):
    return conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]


_KILLED_AFTER_MAKING_THE_CLUSTER = """
import os, signal
from prep_ops.incident.drills import pitr_cluster
cluster = pitr_cluster.make(pitr_cluster.new_folder(), database="killed", scratch=True)
print(cluster.folder, cluster.archive, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@independent
def test_a_killed_drills_cluster_is_removed_by_the_next_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PREP_OPS_WAL_DIR", str(tmp_path / "wal"))  # the next run's configuration is the killed one's
    killed = subprocess.run([sys.executable, "-c", _KILLED_AFTER_MAKING_THE_CLUSTER], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PREP_OPS_WAL_DIR": str(tmp_path / "wal")})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    folder, archive = (Path(p) for p in killed.stdout.split())
    assert folder.is_dir() and archive.is_dir() and _postgres_on(folder)  # left running by the kill
    removed = pitr_cluster.remove_stale()
    assert folder in removed
    assert not folder.exists() and not archive.exists() and not _postgres_on(folder)


def test_live_point_in_time_without_archiving_or_a_base_backup_skips_with_the_reason(server, tmp_path, incident_id):
    target = _create(server)
    try:
        with db.connect(target, autocommit=True) as conn:
            migrate.apply(conn, confirm=True)
            seed.seed(conn, students=100, seed=3, confirm=True)
        backup.backup(target, "full", "custom", directory=tmp_path)
        with db.connect(target, autocommit=True) as conn:
            conn.execute("DELETE FROM enrollments WHERE id % 5 = 0")
        run = recovery_steps.start(target, "live", incident_id=incident_id, confirm=True, scope="point-in-time",
                                   backup_dir=tmp_path)
        recovery_steps.assess_damage(run)
        recovery_steps.restore(run)
        recovery_steps.verify_data(run)
        recovery_steps.clean_up(run)
        with db.connect(target, autocommit=True) as conn:
            archiving = conn.execute("SHOW archive_mode").fetchone()[0]
            sysid = base_backup.source_of(conn)["system_identifier"]
        expected = ("WAL archiving is off on this server" if archiving == "off"  # the embedded server
                    else f"no base backup of this cluster in {base_backup.root(tmp_path) / sysid}")  # CI's PG 15
        events = [e.text for e in run.inc.events if e.kind == "check"]
        skip = next(t for t in events if t.startswith("SKIP point-in-time copy made"))
        assert skip.startswith(f"SKIP point-in-time copy made — nothing to recover from: {expected}"), skip
        assert any(t.startswith(f"SKIP {ZERO_LOST} — nothing to recover from: {expected}") for t in events)
        with db.connect(target, autocommit=True) as conn:  # nothing put back, nothing recovered beside it
            assert conn.execute("SELECT count(*) FROM enrollments WHERE id % 5 = 0").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                                (run.pitr_name,)).fetchone()[0] == 0
    finally:
        _drop(server, target)


# --- the second review ------------------------------------------------------------------------------
@independent
def test_a_drill_without_its_base_backup_fails_the_point_in_time_copy_rather_than_skipping(incident_id):
    run = recovery_steps.start(db.resolve_target(), "drill", incident_id=incident_id, scope="point-in-time",
                               drill_students=200)
    gone = base_backup.root(run.drill.backups_dir) / run.drill.cluster.system_identifier
    shutil.rmtree(gone)  # a drill always makes one: without it, nothing can be recovered and the drill failed
    with pytest.raises(StepFailed, match="step 2"):
        _run_steps(run)
    assert check_statuses(run, ("point-in-time copy made",))["point-in-time copy made"] == "FAIL"
    failed = next(e.text for e in run.inc.events if e.text.startswith("FAIL point-in-time copy made"))
    assert failed == f"FAIL point-in-time copy made: nothing to recover from: no base backup of this cluster in {gone} " \
                     "(prep-ops backup --kind base)"
    _nothing_left(run)


@independent
def test_a_copy_from_after_the_damage_fails_zero_rows_lost_against_the_dump(incident_id):
    """The copy holds the damage too, so the tables equal it: only the dump itself shows the rows lost."""
    run = recovery_steps.start(db.resolve_target(), "drill", incident_id=incident_id, scope="point-in-time",
                               drill_students=200, drill_audit_log=False)
    run.recover_to = datetime.now(timezone.utc)  # after the damage
    with pytest.raises(StepFailed, match="step 4"):
        _run_steps(run)
    statuses = check_statuses(run, ("point-in-time copy made", ZERO_LOST))
    assert (statuses["point-in-time copy made"], statuses[ZERO_LOST]) == ("PASS", "FAIL")
    # the damage deleted these rows of the dump (and some added after it); nothing put them back
    deleted = int(run.found.differences.set_index("table").loc["public.enrollments", "missing"])
    assert deleted > 0
    failed = next(e.text for e in run.inc.events if e.text.startswith(f"FAIL {ZERO_LOST}"))
    assert f"0 rows lost, {deleted} rows of the last logical backup missing" in failed
    assert any(e.text.startswith(f"rows of the last logical backup still missing: public.enrollments: {deleted} ")
               for e in run.inc.events)
    _nothing_left(run)


@independent
def test_an_ordinary_delete_between_the_base_backup_and_the_dump_is_not_taken_for_the_damage(source_cluster):
    with source_cluster.connect() as conn:
        conn.execute("CREATE EXTENSION pg_walinspect")
        conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, fee numeric)")
        conn.execute("INSERT INTO lessons SELECT g, g FROM generate_series(1, 100) g")
        base = base_backup.take(conn, source_cluster.target)
        conn.execute("DELETE FROM lessons WHERE id > 90")  # ordinary work, before the dump: the dump lacks them
        dump = backup.backup(source_cluster.target)
        conn.execute("INSERT INTO lessons SELECT g, g FROM generate_series(101, 120) g")  # the work after the dump
        before_damage = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        conn.execute("DELETE FROM lessons WHERE id <= 10")
        damaged = {"public.lessons": {"missing": {(str(i),) for i in range(1, 11)}, "changed": set()}}
        since = datetime.fromisoformat(dump.manifest["started"])
        found = point_in_time.find_moment(conn, damaged, since=since, start_lsn=base.manifest["start_lsn"],
                                          snapshot=dump.manifest["snapshot"])
        assert found.source == "WAL (pg_walinspect)"
        assert lsn_value(found.to_lsn) >= lsn_value(before_damage)  # the damage, not the delete before the dump
        # every DELETE since the base backup, as before: the ordinary one, a copy too old to keep the work
        too_old = point_in_time.find_moment(conn, damaged, since=since, start_lsn=base.manifest["start_lsn"])
        assert lsn_value(too_old.to_lsn) < lsn_value(dump.manifest["snapshot"]["lsn_before"])


@independent
def test_a_table_name_that_needs_quoting_is_found_in_the_wal(source_cluster):
    name = "Fee Lessons.v2"  # capitals, a space and a dot: no regclass text parses it
    table = sql.Identifier("public", name)
    with source_cluster.connect() as conn:
        conn.execute("CREATE EXTENSION pg_walinspect")
        conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, fee numeric)").format(table))
        conn.execute(sql.SQL("INSERT INTO {} SELECT g, g FROM generate_series(1, 50) g").format(table))
        start = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        conn.execute(sql.SQL("UPDATE {} SET fee = 0 WHERE id <= 5").format(table))
        conn.execute(sql.SQL("DELETE FROM {} WHERE id > 40").format(table))
        for kind, keys in (("changed", range(1, 6)), ("missing", range(41, 51))):
            damaged = {f"public.{name}": {"missing": set(), "changed": set(), kind: {(str(i),) for i in keys}}}
            found = point_in_time.find_moment(conn, damaged, since=source_cluster_started(conn), start_lsn=start)
            assert found.source == "WAL (pg_walinspect)" and f"public.{name}" in found.detail, kind
            assert lsn_value(found.to_lsn) >= lsn_value(start)


@independent
def test_a_point_in_time_repair_of_a_table_stamping_last_update_loses_no_row(source_cluster, incident_id):
    """pagila's film: `last_updated()` stamps `last_update = now()` in a BEFORE UPDATE trigger. The rows put
    back from the point-in-time copy were stamped again on the way in, so step 4 FAILed 'zero rows lost' on
    the rows it had just repaired, and told the DBA to give another recover_to. Live, on an archiving cluster:
    base backup, dump, work after the dump, then the damage; every row comes back as it was. The cluster is not
    one prep-ops runs, and its WAL since the dump is not archived yet: step 2, confirmed and a superuser, has it
    archived (pg_switch_wal) instead of failing until archive_timeout comes round."""
    with source_cluster.connect() as conn:
        conn.execute("CREATE EXTENSION pg_walinspect")
        conn.execute("CREATE TABLE film (film_id int PRIMARY KEY, title text NOT NULL, "
                     "last_update timestamptz NOT NULL DEFAULT now())")
        conn.execute("CREATE FUNCTION last_updated() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN NEW.last_update = CURRENT_TIMESTAMP; RETURN NEW; END $$")
        conn.execute("CREATE TRIGGER last_updated BEFORE UPDATE ON film FOR EACH ROW EXECUTE FUNCTION last_updated()")
        conn.execute("INSERT INTO film SELECT g, 'film ' || g, '2022-02-15 09:46:10+00' FROM generate_series(1, 60) g")
        base_backup.take(conn, source_cluster.target)
        backup.backup(source_cluster.target)
        conn.execute("INSERT INTO film SELECT g, 'film ' || g FROM generate_series(61, 70) g")  # work after the dump
        conn.execute("UPDATE film SET title = 'film 5, retitled' WHERE film_id = 5")  # and a change after it
        conn.execute("SELECT pg_sleep(1.1)")  # the damage a second later: a moment between them to find
        expected = conn.execute("SELECT * FROM film ORDER BY film_id").fetchall()
        conn.execute("UPDATE film SET title = 'damaged' WHERE film_id IN (3, 5, 65)")
    run = recovery_steps.start(source_cluster.target, "live", incident_id=incident_id, confirm=True,
                               scope="point-in-time")
    _run_steps(run)
    statuses = check_statuses(run, ("point-in-time copy made", ZERO_LOST))
    assert (statuses["point-in-time copy made"], statuses[ZERO_LOST]) == ("PASS", "PASS")
    assert any(e.text.startswith("public.film: 0 rows inserted, 3 updated (BEFORE triggers held off while writing: "
                                 "last_updated)") for e in run.inc.events)
    with source_cluster.connect() as conn:
        assert conn.execute("SELECT * FROM film ORDER BY film_id").fetchall() == expected
        assert conn.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'last_updated'").fetchone() == ("O",)


@independent
def test_a_live_point_in_time_repair_on_a_server_whose_archiver_now_fails_recovers_from_what_is_archived(
        source_cluster, incident_id):
    """Live, confirmed, as a superuser, on a cluster prep-ops does not run: step 2 has the WAL since the damage
    archived (pg_switch_wal) where it can. The damage's WAL was archived already, then the archiver broke (a
    full archive disk, a changed command): step 2 waited 120 s for a segment that never came and FAILed
    'was not archived ... is archiving on?', where the archive held all the point-in-time copy needs. Archiving
    now is an attempt on a live server: the copy is made from what is archived, and the report says so."""
    with source_cluster.connect() as conn:
        conn.execute("CREATE EXTENSION pg_walinspect")
        conn.execute("CREATE TABLE film (film_id int PRIMARY KEY, title text NOT NULL)")
        conn.execute("INSERT INTO film SELECT g, 'film ' || g FROM generate_series(1, 60) g")
        base_backup.take(conn, source_cluster.target)
        backup.backup(source_cluster.target)
        conn.execute("INSERT INTO film SELECT g, 'film ' || g FROM generate_series(61, 70) g")  # work after the dump
        conn.execute("SELECT pg_sleep(1.1)")
        expected = conn.execute("SELECT * FROM film ORDER BY film_id").fetchall()
        conn.execute("UPDATE film SET title = 'damaged' WHERE film_id IN (3, 5, 65)")
        conn.execute("SELECT pg_sleep(1.1)")
        conn.execute("SELECT pg_current_xact_id()")  # a commit after the damage: replay stops at the damage's
        segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        deadline = datetime.now(timezone.utc).timestamp() + 60
        while not (source_cluster.archive / segment).exists():
            assert datetime.now(timezone.utc).timestamp() < deadline, "the damage's WAL was never archived"
            conn.execute("SELECT pg_sleep(0.2)")
        conn.execute("ALTER SYSTEM SET archive_command = 'false'")  # the archiver breaks
        conn.execute("SELECT pg_reload_conf()")
    started = datetime.now(timezone.utc)
    run = recovery_steps.start(source_cluster.target, "live", incident_id=incident_id, confirm=True,
                               scope="point-in-time")
    _run_steps(run)
    statuses = check_statuses(run, ("point-in-time copy made", ZERO_LOST))
    assert (statuses["point-in-time copy made"], statuses[ZERO_LOST]) == ("PASS", "PASS")
    assert (datetime.now(timezone.utc) - started).total_seconds() < 100
    assert any(e.text.startswith("the WAL since the damage could not be archived now (the server's archiver failed on "
                                 "WAL segment") for e in run.inc.events)
    with source_cluster.connect() as conn:
        assert conn.execute("SELECT * FROM film ORDER BY film_id").fetchall() == expected
