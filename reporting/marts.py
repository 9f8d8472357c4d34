"""What the export reads: the analyst-facing marts, through a few small SQL helpers.

Every section reads `marts.*` (and, for the CRM cohort lag, `staging.*`) from a read-only connection
to the analyst file, aggregating in SQL; these helpers run a query into dicts, list a mart's columns,
quote identifiers, and find the period and statistics window a table covers.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from typing import Any

import duckdb

from reporting.errors import ExportError
from reporting.period import Period
from transforms.build import MART_TABLES
from transforms.model_contracts import load_all_contracts

# The analyst-facing marts, as the transforms build them, and their contracts (transforms/sql/**): the
# columns and types every mart has, so the report never probes the file for them.
MARTS = MART_TABLES
MART_CONTRACTS = {m.name: m for m in load_all_contracts() if m.schema == "marts"}


def query_rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | dict[str, Any] = ()
) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def mart_columns(table: str) -> dict[str, str]:
    """name -> type of every column of marts.<table>, in order, from its model contract."""
    return {c.name: c.type for c in MART_CONTRACTS[table].columns}


def ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ExportError(f"unexpected column name {name!r} in the marts")
    return f'"{name}"'


def as_float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def relative_change(current: float | None, previous: float | None) -> float | None:
    if current is None or previous in (None, 0):
        return None
    return current / previous - 1


def check_marts(con: duckdb.DuckDBPyConnection) -> None:
    present = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'"
        ).fetchall()
    }
    missing = [m for m in MARTS if m not in present]
    if missing:
        raise ExportError(
            "the analyst file has no "
            + ", ".join(f"marts.{m}" for m in missing)
            + ": build and publish the marts first (e.g. `make demo` or materialise the marts in Dagster)"
        )


def detect_sandbox(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the analyst file was built from the built-in sandbox (its ids are fixed)."""
    ids = {r[0] for r in con.execute("SELECT DISTINCT source_id FROM marts.data_quality").fetchall()}
    ids |= {r[0] for r in con.execute("SELECT DISTINCT source_id FROM marts.conversions_daily").fetchall()}
    return "sandbox" in ids


def date_filter(cols: dict[str, str]) -> tuple[str, list[str]] | None:
    if "date" in cols:
        return "date BETWEEN $start AND $end", ["date"]
    if "start_date" in cols and "end_date" in cols:
        return "start_date <= $end AND end_date >= $start", ["start_date", "end_date"]
    if "window_start" in cols and "window_end" in cols:
        return "window_start = $window_start AND window_end = $window_end", []
    return None


def segment_window(
    con: duckdb.DuckDBPyConnection, table: str, period: Period
) -> tuple[dt.date, dt.date] | None:
    """The statistics window to report: the latest one ending by the period's end, else the latest."""
    cols = mart_columns(table)
    if not {"window_start", "window_end"} <= cols.keys():
        return None
    rows = con.execute(
        f"""SELECT window_start, window_end FROM (SELECT DISTINCT window_start, window_end FROM marts.{table})
            ORDER BY (window_end <= $end) DESC, window_end DESC, window_start ASC LIMIT 1""",
        {"end": period.end},
    ).fetchall()
    return (rows[0][0], rows[0][1]) if rows else None


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )
