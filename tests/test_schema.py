from prep_ops import migrate, schema


def test_latest_schema_has_everything_expected(migrated):
    assert schema.missing(migrated) == {"tables": set(), "indexes": set(), "checks": set()}
    assert "enrollments" in set(schema.tables(migrated)["table_name"])


def test_missing_reports_what_an_older_schema_lacks(scratch):
    migrate.apply(scratch, to=2)
    missing = schema.missing(scratch)
    assert missing["tables"] == {"enrollments", "tuition_payments"}
    assert "users_role_check" in missing["checks"]


def test_enrollments_course_id_is_left_unindexed_on_purpose(migrated):
    definitions = " ".join(schema.indexes(migrated)["definition"])
    assert "enrollments USING btree (course_id" not in definitions
