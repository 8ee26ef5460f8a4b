import pytest

from prep_ops import db, migrate, schema


def test_latest_schema_has_everything_expected(owner):
    assert schema.missing(owner) == {"tables": set(), "indexes": set(), "checks": set()}
    assert "enrollments" in set(schema.tables(owner)["table_name"])


def test_missing_reports_what_an_older_schema_lacks(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        migrate.apply(conn, to=2)
        missing = schema.missing(conn)
    assert missing["tables"] == {"enrollments", "tuition_payments"}
    assert "users_role_check" in missing["checks"]


def test_enrollments_course_id_is_left_unindexed_on_purpose(owner):
    definitions = " ".join(schema.indexes(owner)["definition"])
    assert "enrollments USING btree (course_id" not in definitions


@pytest.mark.server_independent
def test_what_is_missing_reads_as_words_not_as_a_python_dict():
    """Runbook 01 said "all present" when something was missing, and its fix was a dict's repr."""
    assert schema.in_words({"tables": set(), "indexes": set(), "checks": set()}) == "all present"
    assert schema.in_words({"tables": {"users", "courses"}, "indexes": set(), "checks": {"x_check"}}) == \
        "missing: tables courses, users; checks x_check"
