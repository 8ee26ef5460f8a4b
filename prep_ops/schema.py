"""What the database's schema holds (tables, constraints, indexes), and what it must hold."""

import pandas as pd
import psycopg

from .db import fetch_frame, snapshot
from .sqlfiles import load

# What the latest migration must have made: checked by the schema setup runbook and the tests.
EXPECTED_TABLES = {"users", "students", "teachers", "courses", "schema_version", "enrollments",
                   "tuition_payments"}
EXPECTED_INDEXES = {"idx_users_email", "idx_students_level_instrument", "idx_users_username",
                    "idx_tuition_payments_student_id", "enrollments_student_course_term_key",
                    "students_user_id_key", "teachers_user_id_key"}
EXPECTED_CHECKS = {"users_role_check", "users_email_format_check", "students_level_check",
                   "courses_level_check", "enrollments_status_check", "tuition_payments_amount_check",
                   "tuition_payments_method_check"}


def tables(conn: psycopg.Connection) -> pd.DataFrame:
    """Tables of the public schema: columns, estimated rows, size."""
    return fetch_frame(conn, load("schema", "tables"))


def constraints(conn: psycopg.Connection) -> pd.DataFrame:
    """Primary key, foreign key, unique and check constraints of the public schema."""
    return fetch_frame(conn, load("schema", "constraints"))


def indexes(conn: psycopg.Connection) -> pd.DataFrame:
    """Indexes of the public schema with their definitions."""
    return fetch_frame(conn, load("schema", "indexes"))


def missing(conn: psycopg.Connection) -> dict[str, set[str]]:
    """Expected tables, indexes and check constraints that the database lacks (empty sets: all there),
    read in one snapshot."""
    with snapshot(conn):
        return {
            "tables": EXPECTED_TABLES - set(tables(conn)["table_name"]),
            "indexes": EXPECTED_INDEXES - set(indexes(conn)["index_name"]),
            "checks": EXPECTED_CHECKS - set(constraints(conn)["constraint_name"]),
        }
