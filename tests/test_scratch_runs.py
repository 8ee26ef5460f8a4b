"""Run ids and what killed runs left: scratch.abandoned, on the server under test."""

from datetime import datetime, timedelta, timezone

from psycopg import sql

from prep_ops import db, scratch

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
