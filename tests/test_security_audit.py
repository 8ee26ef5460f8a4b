"""The privilege audit on a real server: each finding is provoked, found with its severity, and its fix works."""

import secrets
import uuid

import pytest
from psycopg import sql

from prep_ops import db, roles, security_audit
from prep_ops.security_audit import Finding

HOSTILE = 'we"ird; DROP TABLE users; --'


def _name() -> str:
    return f"t{uuid.uuid4().hex[:8]}_audit"


@pytest.fixture
def role_set(migrated, owner):
    rs = roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_")
    yield rs
    roles.drop(owner, rs)


@pytest.fixture
def passwords():
    return {kind: secrets.token_urlsafe(16) for kind in roles.LOGIN_KINDS}


@pytest.fixture
def temporary_role(server):
    """Make a role for one test (cluster-wide, so dropped right after)."""
    made = []

    def make(options: str, password: str | None = None) -> str:
        name = _name()
        statement = sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(name))
        if password is not None:
            statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
        with db.connect(server, autocommit=True) as conn:
            conn.execute(statement)
        made.append(name)
        return name

    yield make
    with db.connect(server, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _about(found: list[Finding], check: str, subject: str | None = None) -> list[Finding]:
    return [f for f in found if f.check == check and (subject is None or f.subject == subject)]


# --- the privilege table and matrix ---------------------------------------------------------------
def test_privileges_say_who_can_do_what_and_how(migrated, role_set, passwords, owner):
    roles.apply(owner, role_set, passwords)
    frame = security_audit.privileges(owner, [*role_set.names.values(), "PUBLIC"])
    users = frame[(frame["schema"] == "public") & (frame["object"] == "users")]

    def held(role):
        rows = users[users["role"] == role]
        return dict(zip(rows["privilege"], rows["via"]))

    assert held(role_set.readonly) == {"SELECT": "granted"}
    assert held(role_set.reporter) == {"SELECT": f"member of {role_set.readonly}"}
    assert held(role_set.app) == {p: "granted" for p in ("SELECT", "INSERT", "UPDATE", "DELETE")}
    assert held(role_set.analyst) == {} and held("PUBLIC") == {}
    database = frame[(frame["kind"] == "database") & (frame["role"] == "PUBLIC")]
    assert set(database["privilege"]) == {"CONNECT", "TEMPORARY"} and set(database["via"]) == {"PUBLIC"}


def test_superusers_show_as_superuser(migrated, owner):
    with db.connect(migrated) as conn:
        me = conn.execute("SELECT current_user").fetchone()[0]
    frame = security_audit.privileges(owner, [me])
    assert set(frame["via"]) == {"superuser"} and "DELETE" in set(frame["privilege"])


def test_matrix_letters_and_access_levels(migrated, role_set, passwords, owner):
    roles.apply(owner, role_set, passwords)
    matrix = security_audit.privilege_matrix(security_audit.privileges(owner, [*role_set.names.values(), "PUBLIC"]))
    assert matrix.loc["public.users", role_set.readonly] == "r"
    assert matrix.loc["public.users", role_set.app] == "rawd"
    assert matrix.loc["public.schema_version", role_set.app] == "r"
    assert matrix.loc["public.users", role_set.analyst] == ""
    assert matrix.loc["schema public", role_set.dba] == "UC"
    levels = security_audit.access_levels(matrix)
    assert levels.loc["public.users", role_set.readonly] == 1
    assert levels.loc["public.users", role_set.app] == 2
    assert levels.loc["schema public", role_set.dba] == 3
    assert levels.loc["public.users", "PUBLIC"] == 0
    assert [security_audit.access_level(c) for c in ("", "r", "rw", "owner", "superuser", "UC")] == [0, 1, 2, 3, 3, 3]


def test_heatmap_draws(migrated, role_set, passwords, owner):
    import matplotlib

    matplotlib.use("Agg")
    from prep_ops import charts

    roles.apply(owner, role_set, passwords)
    matrix = security_audit.privilege_matrix(security_audit.privileges(owner, [*role_set.names.values(), "PUBLIC"]))
    fig = charts.privilege_heatmap(matrix, security_audit.access_levels(matrix))
    ax = fig.axes[0]
    assert ax.get_title() and [t.get_text() for t in ax.get_xticklabels()] == list(matrix.columns)
    assert len(ax.get_yticklabels()) == len(matrix)


# --- findings --------------------------------------------------------------------------------------
def test_a_second_superuser_is_high_and_createrole_medium(migrated, temporary_role, owner):
    superuser = temporary_role("SUPERUSER NOLOGIN")
    creator = temporary_role("CREATEROLE CREATEDB NOLOGIN")
    found = security_audit.findings(owner)
    [high] = _about(found, "superuser", superuser)
    assert high.severity == "high" and high.fix == f'ALTER ROLE "{superuser}" NOSUPERUSER'
    [medium] = _about(found, "powerful role attributes", creator)
    assert medium.severity == "medium" and medium.fix == f'ALTER ROLE "{creator}" NOCREATEROLE NOCREATEDB'
    assert security_audit.has_high(found)
    bootstrap = [f for f in _about(found, "superuser") if "bootstrap" in f.detail]
    assert len(bootstrap) == 1 and bootstrap[0].severity == "low"


def test_logins_without_password_or_with_md5_are_found(migrated, temporary_role, owner):
    no_password = temporary_role("LOGIN")
    md5 = temporary_role("LOGIN", password="md5" + "0123456789abcdef" * 2)  # a pre-hashed md5 password
    scram = temporary_role("LOGIN", password=roles.scram_verifier("good one"))
    found = security_audit.findings(owner)
    [missing] = _about(found, "login without a password", no_password)
    assert missing.severity in ("low", "medium")
    [weak] = _about(found, "password not SCRAM-hashed", md5)
    assert weak.severity == "high" and "md5" in weak.detail and "0123456789abcdef" not in weak.detail + weak.fix
    assert not [f for f in found if f.subject == scram]


def test_create_on_public_schema_for_public_is_high_and_fixable(migrated, owner):
    with db.connect(migrated) as conn:
        conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
    [finding] = _about(security_audit.findings(owner), "CREATE on a schema for PUBLIC", "public")
    assert finding.severity == "high"
    with db.connect(migrated) as conn:
        conn.execute(finding.fix)
    assert not _about(security_audit.findings(owner), "CREATE on a schema for PUBLIC")


def test_public_table_privileges_are_found(migrated, owner):
    with db.connect(migrated) as conn:
        conn.execute("GRANT SELECT ON courses TO PUBLIC")
        conn.execute("GRANT SELECT, DELETE ON users TO PUBLIC")
    found = security_audit.findings(owner)
    assert [f.severity for f in _about(found, "privileges for PUBLIC", "public.courses")] == ["medium"]
    [users] = _about(found, "privileges for PUBLIC", "public.users")
    assert users.severity == "high" and users.fix == 'REVOKE ALL ON "public"."users" FROM PUBLIC'


def test_read_only_gaps_are_found(migrated, role_set, passwords, owner):
    found = security_audit.findings(owner, role_set)
    assert [f.severity for f in _about(found, "read-only role", role_set.readonly)] == ["medium"]
    roles.apply(owner, role_set, passwords)
    found = security_audit.findings(owner, role_set)
    assert not [f for f in found if f.subject == role_set.readonly]
    with db.connect(migrated) as conn:
        conn.execute(sql.SQL("REVOKE SELECT ON enrollments FROM {}").format(sql.Identifier(role_set.readonly)))
        conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM {}").format(
            sql.Identifier(role_set.readonly)))
    found = security_audit.findings(owner, role_set)
    [tables] = _about(found, "tables the read-only role cannot read", role_set.readonly)
    assert "enrollments" in tables.detail and tables.severity == "medium"
    [defaults] = _about(found, "no default privileges for the read-only role", role_set.readonly)
    assert defaults.fix.startswith("ALTER DEFAULT PRIVILEGES FOR ROLE")
    with db.connect(migrated) as conn:
        conn.execute(tables.fix)
        conn.execute(defaults.fix)
    assert not [f for f in security_audit.findings(owner, role_set) if f.subject == role_set.readonly]


def test_security_definer_without_search_path_is_high_and_fixable(migrated, owner):
    with db.connect(migrated) as conn:
        conn.execute(sql.SQL("CREATE FUNCTION {}(n integer, label text) RETURNS integer LANGUAGE sql SECURITY DEFINER "
                             "AS 'SELECT n'").format(sql.Identifier("public", HOSTILE)))
        conn.execute("CREATE FUNCTION safe() RETURNS integer LANGUAGE sql SECURITY DEFINER "
                     "SET search_path = pg_catalog, pg_temp AS 'SELECT 1'")
    found = _about(security_audit.findings(owner), "SECURITY DEFINER without a fixed search_path")
    assert [f.subject for f in found] == [f"public.{HOSTILE}(n integer, label text)"]
    assert found[0].severity == "high"
    with db.connect(migrated) as conn:
        conn.execute(found[0].fix)
        assert conn.execute("SELECT to_regclass('public.users')").fetchone()[0] is not None
    assert not _about(security_audit.findings(owner), "SECURITY DEFINER without a fixed search_path")


def test_trust_rules_are_graded_by_where_the_server_listens(migrated, owner):
    found = security_audit.findings(owner)
    trust = _about(found, "trust without a password")
    local = [f for f in trust if "socket" in f.detail]
    assert local, "both test servers trust their socket"
    if migrated.embedded:
        assert {f.severity for f in local} == {"low"} and "embedded server trusts its private socket" in local[0].detail
        assert {f.severity for f in trust if f not in local} <= {"info"}  # host rules, but no TCP listener
    else:
        assert {f.severity for f in local} == {"medium"}
    assert all("pg_hba.conf line" in f.subject and "scram-sha-256" in f.fix for f in trust)


def test_settings_are_graded_by_exposure():
    findings = security_audit._setting_findings
    by_check = lambda items: {f.check: f.severity for f in items}  # noqa: E731
    settings = {"ssl": "off", "password_encryption": "md5", "data_checksums": "off"}
    assert by_check(findings(settings, "network")) == {"connection encryption": "high", "password encryption": "high",
                                                      "data checksums": "medium"}
    assert by_check(findings(settings, "loopback"))["connection encryption"] == "low"
    assert by_check(findings(settings, "none"))["connection encryption"] == "info"
    assert findings({"ssl": "on", "password_encryption": "scram-sha-256", "data_checksums": "on"}, "network") == []
    assert security_audit._listening({"listen_addresses": ""}) == "none"
    assert security_audit._listening({"listen_addresses": "localhost, ::1"}) == "loopback"
    assert security_audit._listening({"listen_addresses": "*"}) == "network"
    assert security_audit._listening({}) == "unknown"


def test_the_test_servers_settings(migrated, owner):
    found = security_audit.findings(owner)
    encryption = _about(found, "connection encryption")
    assert all(f.severity in ("info", "low") for f in encryption)  # embedded: socket only; CI: loopback
    assert not _about(found, "password encryption")  # both default to scram-sha-256


def test_without_superuser_the_audit_says_what_it_could_not_check(migrated, role_set, passwords, owner):
    roles.apply(owner, role_set, passwords)
    with db.connect(roles.login(migrated, role_set.reporter, passwords["reporter"]), autocommit=True) as reporter:
        found = security_audit.findings(reporter, role_set)
    info = {f.check: f.detail for f in found if f.severity == "info"}
    assert "needs superuser" in info["password storage"] and "needs superuser" in info["pg_hba.conf"]


def test_runbook_06s_audit_pass_as_a_role_that_is_no_superuser_names_what_it_did_not_check(migrated, role_set, passwords,
                                                                                           owner):
    """Runbook 06 said PASS "no high-severity finding: 3 info, 1 medium, 1 low" as a role that may not read
    pg_authid or pg_hba_file_rules, where trust rules (a high finding) were never looked at. The detail
    names the checks that were not run."""
    roles.apply(owner, role_set, passwords)
    with db.connect(roles.login(migrated, role_set.reporter, passwords["reporter"]), autocommit=True) as reporter:
        verdict = security_audit.audit_check(security_audit.as_frame(security_audit.findings(reporter, role_set)))
    assert "password storage not checked: reading pg_authid needs superuser" in verdict["detail"]
    assert "pg_hba.conf not checked: reading pg_hba_file_rules needs superuser" in verdict["detail"]
    assert "pg_hba.conf not checked" in verdict["skipped"]  # no high finding, but not all looked at: SKIP, not PASS
    superuser = security_audit.audit_check(security_audit.as_frame(security_audit.findings(owner, role_set)))
    assert "not checked" not in superuser["detail"] and superuser["name"] == "no high-severity finding"
    assert superuser["skipped"] == ""


def test_findings_frame_and_order(migrated, temporary_role, owner):
    temporary_role("SUPERUSER NOLOGIN")
    found = security_audit.findings(owner)
    frame = security_audit.as_frame(found)
    assert list(frame.columns) == ["check", "severity", "subject", "detail", "fix"]
    ranks = [security_audit.SEVERITIES.index(s) for s in frame["severity"]]
    assert ranks == sorted(ranks) and frame["severity"].iloc[0] == "high"
    assert not security_audit.has_high([f for f in found if f.severity != "high"])


def test_grants_is_the_one_read_of_direct_grants(migrated, owner):
    owner.execute("GRANT SELECT, INSERT ON courses TO PUBLIC")
    public = [(g["name"], g["privilege"]) for g in security_audit.grants(owner, "public", ["PUBLIC"])
              if g["role"] and g["kind"] == "table"]
    assert public == [("courses", "INSERT"), ("courses", "SELECT")]
    [finding] = _about(security_audit.findings(owner), "privileges for PUBLIC", "public.courses")
    assert finding.severity == "high" and finding.detail == "every role may INSERT, SELECT"
    every = {(g["kind"], g["name"]) for g in security_audit.grants(owner, "public", [])}  # no grantee: objects only
    assert ("table", "users") in every and ("sequence", "users_id_seq") in every and ("schema", "public") in every


def test_audit_flags_a_trigger_owned_by_a_non_superuser(migrated, owner, temporary_role):
    check = "code of a non-superuser on tables superusers write"
    assert not _about(security_audit.findings(owner), check)  # the audit log's triggers: the migrating superuser's
    plotter = temporary_role("NOLOGIN NOSUPERUSER")
    role = sql.Identifier(plotter)
    owner.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(role))
    owner.execute(sql.SQL("GRANT TRIGGER ON users TO {}").format(role))
    with owner.transaction():
        owner.execute(sql.SQL("SET LOCAL ROLE {}").format(role))
        owner.execute("CREATE FUNCTION public.escalate() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'")
        owner.execute("CREATE TRIGGER escalate BEFORE INSERT ON users FOR EACH STATEMENT EXECUTE FUNCTION public.escalate()")
    try:
        found = security_audit.findings(owner)
        [finding] = _about(found, check, "public.users")
        assert finding.severity == "high" and security_audit.has_high(found)
        assert f'trigger "escalate" on "public"."users" runs "public"."escalate"() owned by {plotter}' in finding.detail
        assert finding.fix.endswith('ALTER TABLE "public"."users" DISABLE TRIGGER "escalate"')
        owner.execute(finding.fix.split("(as a superuser) ")[1])
        assert not _about(security_audit.findings(owner), check)  # a disabled trigger does not fire
    finally:
        owner.execute("DROP FUNCTION public.escalate() CASCADE")
        owner.execute(sql.SQL("REVOKE ALL ON users FROM {}").format(role))
        owner.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(role))
