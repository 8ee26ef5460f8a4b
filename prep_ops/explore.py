"""Enrollment figures for analysts, aggregated in SQL: only the summary rows reach pandas."""

import pandas as pd
import psycopg

from . import sample
from .db import fetch_frame
from .errors import ParameterError
from .formatting import money
from .sqlfiles import load


def missing_tables(conn: psycopg.Connection) -> list[str]:
    """The school's tables (schema.EXPECTED_TABLES) this database lacks in public, by name: the exploration
    reads them, and on another database says so instead of failing on its first query."""
    from .schema import EXPECTED_TABLES, tables

    return sorted(EXPECTED_TABLES - set(tables(conn)["table_name"]))


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
    return in_term_order(table).astype(int)


SEASONS = ("winter", "spring", "summer", "fall")  # in calendar order within a year (winter: the January term)


def term_key(term: str) -> tuple:
    """Sort key of a term name such as `2025-fall`: its year, then its season in calendar order
    (alphabetical order would put fall before spring); a name of another shape sorts after, by name."""
    year, _, season = str(term).partition("-")
    if year.isdigit() and season in SEASONS:
        return (0, int(year), SEASONS.index(season), "")
    return (1, 0, 0, str(term))


def in_term_order(frame: pd.DataFrame, column: str | None = None) -> pd.DataFrame:
    """`frame` with its rows in chronological term order, by its index or by `column`; no row dropped."""
    terms = list(frame.index if column is None else frame[column])
    order = sorted(range(len(frame)), key=lambda i: term_key(terms[i]))
    return frame.iloc[order]


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
    return in_term_order(frame.pivot_table(index="term", columns="method", values="amount", fill_value=0.0, aggfunc="sum"))


def differences_by_term(first: pd.Series, second: pd.Series, cents: float = 0.005) -> str:
    """How two amounts per term (indexed by term) differ, "" when they agree to the cent: the same terms,
    the same amount in each."""
    missing = sorted(set(first.index) ^ set(second.index), key=term_key)
    if missing:
        return f"terms in one and not the other: {', '.join(map(str, missing))}"
    gap = (first.astype(float) - second.reindex(first.index).astype(float)).abs()
    off = gap[gap > cents]
    return "; ".join(f"{t}: {money(first[t])} against {money(second[t])}" for t in off.index)
