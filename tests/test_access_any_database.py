"""Runbook 06 on public sample databases nobody here designed: roles and grants in every user schema
(`archive`, `"Reporting"`), the security audit, the read-only proof and the audit log on the database's
own tables; the school-only steps SKIP with their reason."""

import secrets
import uuid

import psycopg
import pytest

from prep_ops import access_scope, audit_log, db, roles, runner, security_audit
from prep_ops import role_set as role_set_module
from prep_ops.errors import ParameterError

from conftest import passes_of_what_was_not_looked_at

SCHOOL_ONLY = ("schema at the latest version", "masked views hide every personal value",
               "analyst cannot read personal columns", "a change made as app is logged with old and new values")


@pytest.fixture
def role_set(server):
    """A private set of the five roles (roles are server-wide), dropped after the test."""
    rs = roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_")
    made: list[db.Target] = []
    yield rs, made
    for target in made:  # their grants in the copies first (a copy is dropped after this fixture's teardown)
        with db.connect(target, autocommit=True) as conn:
            roles.drop(conn, rs, confirm=True)


def _statuses(run) -> dict[str, dict]:
    return {c["name"]: c for c in run.checks}


def test_runbook_06_on_pagila_grants_every_schema_and_logs_its_tables(sample_copy, role_set, tmp_path, monkeypatch):
    rs, made = role_set
    pagila = sample_copy("pagila")
    made.append(pagila)
    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)  # someone's database, named by a URL: confirm=True needed
    for kind in role_set_module.LOGIN_KINDS:  # not scratch: no password is made up; a DBA gives them, as here
        monkeypatch.setenv(role_set_module.password_variable(kind), secrets.token_urlsafe(16))
    with db.connect(pagila, autocommit=True) as conn:
        # pagila's own two high findings (PUBLIC may create in public; a SECURITY DEFINER function without a
        # fixed search_path) fail the run's audit step, as they should: their fixes are applied, as a DBA would
        high = [f for f in security_audit.findings(conn, rs) if f.severity == "high"]
        assert [(f.check, f.subject.split("(")[0]) for f in high] == [
            ("CREATE on a schema for PUBLIC", "public"),
            ("SECURITY DEFINER without a fixed search_path", "public.rewards_report")]
        assert not [f for f in high if "school" in f.detail + f.fix]
        for finding in high:
            conn.execute(finding.fix)
    run = runner.run_one(runner.find("06"), tmp_path, {
        "database_url": pagila.url, "role_prefix": rs.readonly.removesuffix("readonly"), "confirm": True,
        "audit_tables": ["rental", "archive.old_rentals", '"Reporting"."Monthly Sales"', "payment"]})
    assert run.ok, (run.error, [c for c in run.checks if c["status"] == "FAIL"])
    checks = _statuses(run)
    assert not [c for c in run.checks if c["status"] == "FAIL"]
    for name in SCHOOL_ONLY:
        assert checks[name]["status"] == "SKIP", (name, checks[name])
        assert "has a schema of its own" in checks[name]["detail"] and "school" not in checks[name]["detail"]
    for name in ("roles and grants as wanted (a second plan is empty)", "changes to personal and financial data are logged",
                 "no high-severity finding", "analyst holds nothing on the tables", "reporter is read-only",
                 "app cannot read or change the audit log"):
        assert checks[name]["status"] == "PASS", (name, checks[name])
    assert checks["reporter is read-only"]["detail"].startswith("actor: allowed SELECT; denied INSERT")
    assert passes_of_what_was_not_looked_at([run]) == []

    # the reporter (a member of readonly) reads every user schema and writes none of it
    with db.connect(pagila, autocommit=True) as conn:
        passwords = roles.resolve_passwords({"reporter": "a-reporter-pass", "app": "an-app-pass"})
        roles.apply(conn, rs, passwords, confirm=True)  # the run's own passwords are never shown: set known ones
    reporter = roles.login(pagila, rs.reporter, "a-reporter-pass")
    for schema, table in (("archive", "old_rentals"), ("Reporting", "Monthly Sales"), ("public", "payment")):
        attempts = roles.try_access(reporter, table, schema=schema)
        assert set(attempts.loc[attempts["allowed"], "operation"]) == {"SELECT"}, attempts.to_string()
    with db.connect(reporter) as conn:
        assert conn.execute('SELECT count(*) FROM "Reporting"."Best Month"').fetchone()[0] == 1  # a view too
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE archive.old_rentals SET note = 'changed'")

    # tables made later in another schema are readable too (default privileges per schema)
    with db.connect(pagila, autocommit=True) as conn:
        conn.execute('CREATE TABLE "Reporting"."Later Table" (id int)')
    with db.connect(reporter) as conn:
        assert conn.execute('SELECT count(*) FROM "Reporting"."Later Table"').fetchone()[0] == 0

    # the audit log records a change the app makes to a named pagila table, and to a partition of payment
    with db.connect(roles.login(pagila, rs.app, "an-app-pass")) as conn:
        conn.execute("UPDATE rental SET return_date = return_date + interval '1 day' WHERE rental_id = 2")
        conn.execute("UPDATE payment SET amount = amount + 1 WHERE payment_id = (SELECT min(payment_id) FROM payment)")
        conn.commit()
    with db.connect(pagila, autocommit=True) as conn:
        assert set(audit_log.enabled(conn)) == {"rental", "archive.old_rentals", "Reporting.Monthly Sales", "payment"}
        [entry] = audit_log.entries(conn, "rental").to_dict("records")
        assert entry["operation"] == "UPDATE" and entry["login_role"] == rs.app and entry["row_key"] == {"rental_id": 2}
        assert entry["changed_columns"] == ["last_update", "return_date"]  # pagila's own trigger sets last_update
        logged = audit_log.entries(conn, limit=10)
        assert logged["table_name"].str.match(r"payment_p\d{4}_\d\d").sum() == 1  # the partition the row lives in


@pytest.mark.parametrize("name", ["chinook", "northwind"])
def test_runbook_06_on_another_sample_without_audit_tables(sample_copy, role_set, tmp_path, monkeypatch, name):
    rs, made = role_set
    copy = sample_copy(name)
    made.append(copy)
    monkeypatch.setenv("PREP_OPS_SCRATCH", "1")  # the test's own copy, declared throwaway (the kernel inherits it)
    run = runner.run_one(runner.find("06"), tmp_path, {"database_url": copy.url,
                                                       "role_prefix": rs.readonly.removesuffix("readonly")})
    assert run.ok, (run.error, [c for c in run.checks if c["status"] == "FAIL"])
    checks = _statuses(run)
    logged = checks["changes to personal and financial data are logged"]
    assert logged["status"] == "SKIP" and "-p audit_tables" in logged["detail"] and "school" not in logged["detail"]
    assert checks["app cannot read or change the audit log"]["status"] == "SKIP"
    assert checks["reporter is read-only"]["status"] == "PASS"
    assert checks["roles and grants as wanted (a second plan is empty)"]["status"] == "PASS"
    assert all(checks[n]["status"] == "SKIP" for n in SCHOOL_ONLY)
    assert passes_of_what_was_not_looked_at([run]) == []


def test_audit_tables_that_do_not_exist_are_refused_by_name(sample_db):
    with db.connect(sample_db("pagila"), autocommit=True) as conn:
        with pytest.raises(ParameterError, match="unknown table 'users'.*archive.old_rentals"):
            access_scope.scope(conn, ["rental", "users"])
        with pytest.raises(ParameterError, match="list of table names"):
            access_scope.scope(conn, [3])
        chosen = access_scope.scope(conn, ['"Reporting"."Monthly Sales"', "rental"])
        assert chosen.audited_labels == ["Reporting.Monthly Sales", "rental"] and not chosen.school
        assert chosen.proof_table.label == "actor" and chosen.schemas == ("public", "Reporting", "archive")


def test_roles_plan_covers_every_user_schema_not_the_system_ones(sample_db, role_set):
    rs, _ = role_set
    with db.connect(sample_db("pagila"), autocommit=True) as conn:
        texts = [str(s) for s in roles.plan(conn, rs)]
    for schema in ('"public"', '"archive"', '"Reporting"'):
        assert f'GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO "{rs.readonly}"' in texts
        assert any(t.startswith("ALTER DEFAULT PRIVILEGES") and f"IN SCHEMA {schema} GRANT SELECT ON TABLES TO" in t
                   and t.endswith(f'"{rs.readonly}"') for t in texts)
    assert not [t for t in texts if "pg_catalog" in t or "information_schema" in t or '"audit"' in t]


def test_school_database_plan_stays_in_public(owner):
    rs = roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_")
    texts = [str(s) for s in roles.plan(owner, rs)]
    schemas = {t.split(" IN SCHEMA ")[1].split()[0] for t in texts if " IN SCHEMA " in t}
    assert schemas == {'"public"'}  # audit, masked and masking_private grant their own way
    with pytest.raises(ParameterError, match="no table to audit"):
        audit_log.enable(owner, "rental")


def test_an_extensions_relations_are_left_alone(migrated, owner):
    rs = roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_")
    owner.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public")
    try:
        texts = [str(s) for s in roles.plan(owner, rs)]
        readonly = [t for t in texts if t.startswith("GRANT SELECT ON ") and t.endswith(f'"{rs.readonly}"')]
        assert readonly == [f'GRANT SELECT ON TABLE "public"."courses", "public"."enrollments", "public"."prep_ops_migrations", '
                            f'"public"."schema_version", "public"."students", "public"."teachers", '
                            f'"public"."tuition_payments", "public"."users" TO "{rs.readonly}"']
        assert not [t for t in texts if "pg_stat_statements" in t]
        roles.apply(owner, rs)
        assert roles.plan(owner, rs) == []
        assert not owner.execute("SELECT has_table_privilege(%s, 'public.pg_stat_statements', 'INSERT')",
                                 (rs.app,)).fetchone()[0]
    finally:
        roles.drop(owner, rs)


def test_prep_ops_own_audit_log_is_never_an_audited_table_nor_the_proof_table(migrated, sample_copy):
    """A trigger on audit.log would log its own inserts without end (every audited write failing with
    "stack depth limit exceeded"): it is refused by name, and never chosen to try writes on."""
    with db.connect(migrated, autocommit=True) as conn:
        with pytest.raises(ParameterError, match="never audited"):
            audit_log.enable(conn, ["audit.log"], confirm=True)
        with pytest.raises(ParameterError, match="never audited"):
            access_scope.scope(conn, ["audit.log"])
        assert audit_log.enabled(conn) == []
    chinook = sample_copy("chinook")
    with db.connect(chinook, autocommit=True) as conn:
        audit_log.install(conn, confirm=True)  # the log on a database of its own schema, as 06 makes it
        conn.execute("CREATE SCHEMA hr")  # a schema sorting after audit: the first table must not be the log
        conn.execute('DROP SCHEMA public CASCADE')
        found = access_scope.scope(conn)
    assert found.proof_table is None or found.proof_table.schema != "audit", found.proof_table


def test_a_databases_own_audit_and_masked_schemas_are_user_schemas_like_any_other(sample_copy, role_set):
    """prep-ops' `audit` and `masked` are known by what prep-ops made there, not by name: a database's
    own schemas of those names get the read-only grants, their tables may be audited, and prep-ops' audit
    log, which needs the name `audit`, is refused in one line that says so, changing nothing."""
    from prep_ops import catalog
    from prep_ops.errors import AuditLogError

    rs, made = role_set
    chinook = sample_copy("chinook")
    made.append(chinook)
    with db.connect(chinook, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA audit; CREATE TABLE audit.events (id int PRIMARY KEY, what text); "
                     "CREATE SCHEMA masked; CREATE VIEW masked.artists AS SELECT 1 AS id")
        assert catalog.own_schemas(conn) == ()
        found = access_scope.scope(conn, ["audit.events"])
        assert {"audit", "masked"} <= set(found.schemas) and found.audited == ()
        assert found.audit_choice.startswith("schema audit is the database's own")
        texts = [str(s) for s in roles.plan(conn, rs)]
        for schema in ('"audit"', '"masked"'):
            assert f'GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO "{rs.readonly}"' in texts, texts
        with pytest.raises(AuditLogError, match="schema audit is the database's own") as refused:
            audit_log.install(conn, confirm=True)
        assert "\n" not in str(refused.value)
        assert conn.execute("SELECT to_regclass('audit.log'), to_regprocedure('audit.log_change()')").fetchone() == (None, None)

    # prep-ops' own, once made: never granted by roles-as-code, never audited
    copy = sample_copy("chinook")
    with db.connect(copy, autocommit=True) as conn:
        audit_log.install(conn, confirm=True)
        assert catalog.own_schemas(conn) == ("audit",)
        assert "audit" not in access_scope.scope(conn).schemas
        with pytest.raises(ParameterError, match="never audited"):
            access_scope.scope(conn, ["audit.log"])


def test_runbook_06_without_login_passwords_skips_each_proof_that_needs_a_login(migrated, role_set, tmp_path, monkeypatch):
    """On a server that asks for passwords, a run with confirm=True on a database not declared scratch
    and no PREP_OPS_<ROLE>_PASSWORD cannot log in as reporter, analyst or app: each proof that needs the
    login is SKIP, saying which variable to set, instead of a traceback that stops the runbook."""
    rs, made = role_set
    made.append(migrated)
    with db.connect(migrated, autocommit=True) as conn:
        probe = f"t{uuid.uuid4().hex[:8]}_nopass"
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(probe)))
        try:
            if not roles.login_refused(roles.login(migrated, probe), probe):
                pytest.skip("the server under test lets a role without a password log in (the embedded one trusts its socket)")
        finally:
            conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(probe)))
    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)
    for kind in role_set_module.LOGIN_KINDS:
        monkeypatch.delenv(role_set_module.password_variable(kind), raising=False)
    run = runner.run_one(runner.find("06"), tmp_path, {
        "database_url": migrated.url, "role_prefix": rs.readonly.removesuffix("readonly"), "confirm": True})
    assert run.ok, run.error
    checks = _statuses(run)
    for name, kind in (("reporter is read-only", "REPORTER"), ("analyst cannot read personal columns", "ANALYST"),
                       ("app cannot read or change the audit log", "APP")):
        assert checks[name]["status"] == "SKIP", (name, checks[name])
        assert "cannot log in" in checks[name]["detail"] and f"set PREP_OPS_{kind}_PASSWORD" in checks[name]["detail"]
    assert checks["roles and grants as wanted (a second plan is empty)"]["status"] == "PASS"
    assert passes_of_what_was_not_looked_at([run]) == []


def test_the_audit_tables_example_for_a_quoted_name_is_a_parameter_that_names_that_table(scratch):
    """On a database whose first table is "My ""Odd"" Schema"."Odd Table", the SKIP's example read
    `-p audit_tables '["My "Odd" Schema.Odd Table"]'`: neither JSON nor a name as in SQL. Given back to the
    shell and the runner as shown, it must choose that table."""
    import shlex

    from prep_ops.parameters import parse_value

    with db.connect(scratch, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "My ""Odd"" Schema"; CREATE TABLE "My ""Odd"" Schema"."Odd Table" (id int)')
        found = access_scope.scope(conn)
        example = found.audit_choice.split("e.g. ", 1)[1]
        words = shlex.split(example)
        assert words[:2] == ["-p", "audit_tables"], example
        chosen = access_scope.scope(conn, parse_value(words[2]))
    assert [(t.schema, t.name) for t in chosen.audited] == [('My "Odd" Schema', "Odd Table")]
