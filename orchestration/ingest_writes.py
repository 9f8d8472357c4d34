"""Glue between the ingest assets and `transforms.raw_load` (CONTRACTS §4)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from orchestration.table_meta import columns, table_exists
from transforms import raw_load

GA4_FLAGS = ("subject_to_thresholding", "data_loss_from_other_row", "sampled")


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def load_ga4_days(
    con: duckdb.DuckDBPyConnection,
    spec_name: str,
    batches: Sequence[pa.RecordBatch],
    *,
    property_id: str,
    start: dt.date,
    end: dt.date,
) -> int:
    """One transaction per (property, date) slice, so each daily partition is replaced on its own
    and `_partition_key` is the day whatever range the run covered."""
    batches = [b for b in batches if b.num_rows]
    table = pa.Table.from_batches(batches) if batches else None
    rows = 0
    for day in days(start, end):
        day_rows: list[pa.Table] = []
        if table is not None:
            day_rows = [table.filter(pc.equal(table.column("date"), pa.scalar(day, pa.date32())))]
        rows += raw_load.load_ga4_partition(
            con, spec_name, property_id, day, day, day_rows, partition_key=day.isoformat()
        )
    return rows


def ga4_flagged_days(
    con: duckdb.DuckDBPyConnection, table: str, start: dt.date, end: dt.date, property_id: str | None = None
) -> list[tuple[dt.date, str]]:
    """(date, flag) for every loaded day in the range where GA4 raised a quality flag (of one property
    when `property_id` is given: an account's check speaks of its own days)."""
    if not table_exists(con, "raw", table):
        return []
    present = {name for name, _, _ in columns(con, "raw", table)}
    out: list[tuple[dt.date, str]] = []
    for flag in GA4_FLAGS:
        if flag not in present:
            continue
        out += [
            (d, flag)
            for (d,) in con.execute(
                f'SELECT DISTINCT date FROM raw."{table}" WHERE "{flag}" AND date BETWEEN ? AND ? '
                "AND (? IS NULL OR property_id = ?) ORDER BY 1",
                [start, end, property_id, property_id],
            ).fetchall()
        ]
    return out


def hubspot_has_rows(con: duckdb.DuckDBPyConnection, table: str, portal_id: str) -> bool:
    if not table_exists(con, "raw", table):
        return False
    found = con.execute(f'SELECT count(*) FROM raw."{table}" WHERE portal_id = ?', [portal_id]).fetchall()
    return bool(found[0][0])


def append_request_log(
    con: duckdb.DuckDBPyConnection, entries: Iterable[dict[str, Any]], *, run_id: str
) -> int:
    return raw_load.append_request_log(con, run_id, list(entries))


def request_log_entries(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    if not table_exists(con, "raw", "request_log"):
        return []
    cursor = con.execute("SELECT * FROM raw.request_log WHERE run_id = ?", [run_id])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
