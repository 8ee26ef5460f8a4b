"""Run ids and what killed runs left: scratch.abandoned, on the server under test."""

import secrets
import threading
from datetime import datetime, timedelta, timezone

import pytest
from psycopg import sql

from prep_ops import db, scratch
from prep_ops.errors import TargetError

PREFIX = "prep_ops_abandontest_"


def test_abandoned_lists_older_runs_without_a_lock_in_use_or_not_and_never_a_live_or_newer_run(server):
    now = datetime.now(timezone.utc)
    run = scratch.run_id(now)
    killed, alive, newer = (scratch.run_id(now - timedelta(minutes=5)), scratch.run_id(now - timedelta(minutes=4)),
                            scratch.run_id(now + timedelta(minutes=5)))
    names = [PREFIX + killed, PREFIX + killed + "_copy", PREFIX + alive, PREFIX + newer]
    with db.connect(server, autocommit=True) as conn, db.connect(server, autocommit=True) as other:
        try:
            for name in names:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            scratch.claim(other, alive)  # a run that is still going: its session holds the lock
            with db.connect(server.with_database(PREFIX + killed)):  # in use (an orphaned pg_restore, say)
                found = scratch.abandoned(conn, PREFIX, run)
            assert sorted(found) == sorted([PREFIX + killed, PREFIX + killed + "_copy"])
            assert scratch.abandoned(conn, PREFIX, killed) == []  # nothing older than the oldest
        finally:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_role_another_run_makes_meanwhile_is_never_taken_for_a_real_one(server):
    """CI once failed two runbook 10 at once: one verification counted a role the other made in the same
    moment as a real role (it read temporary roles and all roles in two statements), so it neither
    locked nor made it, and that role vanished under its restore when the other run dropped it. Here a
    second session makes and drops the same role as fast as it can while this run asks for it again and
    again: each time, this run makes the role itself (after waiting), never uses the other's."""
    role = f"prep_ops_test_race_{secrets.token_hex(3)}"
    stop = threading.Event()

    def other_run():
        with db.connect(server, autocommit=True) as conn:
            while not stop.is_set():
                made = scratch.temporary_roles(conn, [role], scratch.run_id())
                scratch.drop_temporary_roles(conn, made)

    other = threading.Thread(target=other_run)
    other.start()
    try:
        with db.connect(server, autocommit=True) as conn:
            for _ in range(300):
                made = scratch.temporary_roles(conn, [role], scratch.run_id())
                scratch.drop_temporary_roles(conn, made)
                assert made == [role]
    finally:
        stop.set()
        other.join()
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_role_without_createdb_is_told_it_may_not_create_a_scratch_database_in_one_line(server):
    """verify --same-server (and every copy on a server) as a database owner without CREATEDB said only
    "database error: permission denied to create database"; it names the role, the database and the way out."""
    role, password = f"prep_ops_test_nocreatedb_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    with db.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    try:
        with db.connect(server.with_user(role, password), autocommit=True) as conn:
            with pytest.raises(TargetError, match=rf"^role {role} may not create the scratch database prep_ops_verify_x "
                                                  r"\(permission denied to create database\): use a role with CREATEDB"):
                scratch.create(conn, "prep_ops_verify_x", confirm=True)
    finally:
        with db.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
