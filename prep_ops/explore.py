"""Enrollment figures for analysts, aggregated in SQL: only the summary rows reach pandas."""

import pandas as pd
import psycopg

from . import sample
from .db import fetch_frame
from .errors import ParameterError
from .sqlfiles import load


def _validate(term: str | None, instrument: str | None) -> dict:
    if term is not None and term not in sample.TERMS:
        raise ParameterError(f"unknown term {term!r}; terms are {', '.join(sample.TERMS)}")
    if instrument is not None and instrument not in sample.INSTRUMENTS:
        raise ParameterError(f"unknown instrument {instrument!r}; instruments are {', '.join(sample.INSTRUMENTS)}")
    return {"term": term, "instrument": instrument}


def _frame(conn: psycopg.Connection, name: str, params: dict) -> pd.DataFrame:
    return fetch_frame(conn, load("explore", name), params)


def by_instrument_level(conn: psycopg.Connection, term: str | None = None, instrument: str | None = None) -> pd.DataFrame:
    """Students enrolled or completed, as a table of instrument (rows) × level (columns)."""
    frame = _frame(conn, "by_instrument_level", _validate(term, instrument))
    table = frame.pivot_table(index="instrument", columns="level", values="students", fill_value=0, aggfunc="sum")
    return table.reindex(columns=[lv for lv in sample.LEVELS if lv in table.columns]).astype(int)


def by_term(conn: psycopg.Connection, term: str | None = None, instrument: str | None = None) -> pd.DataFrame:
    """Enrollments per term (rows) and status (columns)."""
    frame = _frame(conn, "by_term", _validate(term, instrument))
    table = frame.pivot_table(index="term", columns="status", values="enrollments", fill_value=0, aggfunc="sum")
    return _in_term_order(table).astype(int)


def _in_term_order(table: pd.DataFrame) -> pd.DataFrame:
    return table.reindex([t for t in sample.TERMS if t in table.index])


def teacher_load(conn: psycopg.Connection, term: str | None = None, instrument: str | None = None) -> pd.DataFrame:
    """Per teacher: weekly hours offered, students enrolled this term and load ratio (1.0 = fully booked)."""
    params = _validate(term, instrument)
    params["term"] = term or sample.CURRENT_TERM
    return _frame(conn, "teacher_load", params)


def waitlists_drops(conn: psycopg.Connection, term: str | None = None, instrument: str | None = None) -> pd.DataFrame:
    """Waitlisted and dropped enrollments per instrument."""
    return _frame(conn, "waitlists_drops", _validate(term, instrument))


def revenue_by_term(conn: psycopg.Connection, term: str | None = None, instrument: str | None = None) -> pd.DataFrame:
    """Tuition received per term (rows) and payment method (columns), in US$."""
    frame = _frame(conn, "revenue_by_term", _validate(term, instrument))
    frame["amount"] = frame["amount"].astype(float)
    return _in_term_order(frame.pivot_table(index="term", columns="method", values="amount", fill_value=0.0, aggfunc="sum"))
