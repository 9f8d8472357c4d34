"""Worked examples of single models, dbt-unit-test style: GIVEN raw rows, EXPECT the model's rows.

Each example file writes its given raw rows and its expected output rows as small pipe tables; the
`new_example` fixture's examples load the given rows into the raw tables (the shapes of docs/CONTRACTS.md §3: GA4 report
rows with their segment columns, HubSpot records with their properties as JSON), runs the REAL build
(transforms.build.build_all, default catalog and channel mapping) on a DuckDB file in tmp_path, and compares a
query's rows with the expected table cell by cell. Only public entry points are used (build_all, the raw
tables), so the examples do not depend on how the build is organised inside.

Cells: 'NULL' is NULL; numbers are compared after formatting (integers as such, floats to 6 significant
digits); dates as YYYY-MM-DD; booleans as true/false; lists as [a, b]. Tests do not import this file: they
get the helper through the `new_example` fixture.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from transforms.build import build_all
from transforms.catalog import default_catalog, default_channel_mapping

PROPERTY = "p1"
PORTAL = "h1"
LOADED_AT = dt.datetime(2026, 11, 20, 6, 0)
TIME_ZONE = "America/New_York"

# HubSpot's standard contact lifecycle stages in pipeline order (what the properties and pipelines APIs list).
LIFECYCLE = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer")

# Types of the raw columns a given table may name (docs/CONTRACTS.md §3); the build adds any column left out.
RAW_TYPES = {
    "property_id": "VARCHAR",
    "date": "DATE",
    "event_name": "VARCHAR",
    "session_default_channel_group": "VARCHAR",
    "device_category": "VARCHAR",
    "country": "VARCHAR",
    "new_vs_returning": "VARCHAR",
    "landing_page": "VARCHAR",
    "session_campaign_name": "VARCHAR",
    "session_source": "VARCHAR",
    "session_medium": "VARCHAR",
    "sessions": "BIGINT",
    "engaged_sessions": "BIGINT",
    "total_users": "BIGINT",
    "new_users": "BIGINT",
    "event_count": "BIGINT",
    "event_value": "DOUBLE",
    "ecommerce_purchases": "BIGINT",
    "purchase_revenue": "DOUBLE",
    "key_events": "BIGINT",
    "subject_to_thresholding": "BOOLEAN",
    "data_loss_from_other_row": "BOOLEAN",
    "sampled": "BOOLEAN",
}
META = {"_loaded_at": "TIMESTAMP", "_source_id": "VARCHAR", "_partition_key": "VARCHAR"}
# Columns of a HubSpot record (raw.hubspot_contacts / raw.hubspot_deals); every other column of a given
# HubSpot table is a property of the record (the JSON `properties`), left out when the cell is empty.
HUBSPOT_COLUMNS = {
    "id": "VARCHAR",
    "created_at": "TIMESTAMPTZ",
    "updated_at": "TIMESTAMPTZ",
    "archived": "BOOLEAN",
    "merged_into": "VARCHAR",
    "contact_ids": "VARCHAR",
}


def parse_table(text: str) -> tuple[list[str], list[list[str | None]]]:
    """A pipe table (header line, then rows, cells between "|" without outer pipes; "#" starts a comment line) -> (columns, rows of str or None)."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#") and not set(ln) <= set("|-: ")]
    split = [
        [cell.strip() for cell in ln.split("|")] for ln in lines
    ]  # a trailing "|" ends with an empty cell
    header, body = split[0], split[1:]
    for row in body:
        assert len(row) == len(header), f"row {row} has {len(row)} cells for {len(header)} columns"
    return header, [[None if cell in ("", "NULL") else cell for cell in row] for row in body]


def cell(value: Any) -> str:
    """One output value as the expected tables spell it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | decimal.Decimal):
        value = float(value)
        if value != value:
            return "NaN"
        return f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cell(v) for v in value) + "]"
    return str(value)


class Example:
    """One small warehouse: load given raw rows, build, compare a query with an expected table."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.con = duckdb.connect(str(path))
        self.con.execute("CREATE SCHEMA IF NOT EXISTS raw")

    # -- given --------------------------------------------------------------------------------------------
    def _insert(self, table: str, columns: dict[str, str], rows: Iterable[Sequence[Any]]) -> None:
        names = list(columns)
        exists = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'raw' AND table_name = ?", [table]
        ).fetchall()[0][0]
        if not exists:
            ddl = ", ".join(f'"{n}" {t}' for n, t in columns.items())
            self.con.execute(f"CREATE TABLE raw.{table} ({ddl})")
        placeholders = ", ".join(f"CAST(? AS {t})" for t in columns.values())
        quoted = ", ".join(f'"{n}"' for n in names)
        self.con.executemany(
            f"INSERT INTO raw.{table} ({quoted}) VALUES ({placeholders})", [list(r) for r in rows]
        )

    def ga4(self, report: str, text: str) -> None:
        """GA4 report rows (raw.ga4_<report>): columns named as the raw table's (see RAW_TYPES); property_id
        defaults to PROPERTY."""
        header, rows = parse_table(text)
        unknown = [c for c in header if c not in RAW_TYPES]
        assert not unknown, f"not a raw GA4 column: {unknown}"
        cols = [c for c in header if c != "property_id"]
        columns = {"property_id": "VARCHAR"} | {c: RAW_TYPES[c] for c in cols} | META
        full = []
        for row in rows:
            values = dict(zip(header, row, strict=True))
            pid = values.get("property_id") or PROPERTY
            full.append([pid, *(values[c] for c in cols), LOADED_AT, pid, "examples"])
        self._insert(f"ga4_{report}", columns, full)

    def hubspot(self, object_type: str, text: str) -> None:
        """HubSpot records (raw.hubspot_contacts / raw.hubspot_deals): record columns (HUBSPOT_COLUMNS) and
        properties (every other column, e.g. createdate, lifecyclestage, hs_v2_date_entered_lead)."""
        header, rows = parse_table(text)
        record_cols = [c for c in header if c in HUBSPOT_COLUMNS]
        columns = (
            {"portal_id": "VARCHAR"}
            | {c: HUBSPOT_COLUMNS[c] for c in record_cols}
            | {"properties": "VARCHAR", "_loaded_at": "TIMESTAMP", "_source_id": "VARCHAR"}
            | {"_partition_key": "VARCHAR", "_sync_mode": "VARCHAR"}
        )
        full = []
        for row in rows:
            values = dict(zip(header, row, strict=True))
            props = {k: v for k, v in values.items() if k not in HUBSPOT_COLUMNS and v is not None}
            full.append(
                [PORTAL]
                + [values[c] for c in record_cols]
                + [json.dumps(props, sort_keys=True), LOADED_AT, PORTAL, "examples", "full"]
            )
        self._insert(f"hubspot_{object_type}", columns, full)

    def hubspot_lifecycle_stages(self, stages: Sequence[str] = LIFECYCLE) -> None:
        """The portal's metadata: a hs_v2_date_entered_<stage> contact property per stage and the lifecycle
        pipeline's order of the stages (what staging discovers the stages from)."""
        meta = META
        self._insert(
            "hubspot_properties",
            {"portal_id": "VARCHAR", "object_type": "VARCHAR", "name": "VARCHAR", "type": "VARCHAR"} | meta,
            [
                [PORTAL, "contacts", f"hs_v2_date_entered_{s}", "datetime", LOADED_AT, PORTAL, "examples"]
                for s in stages
            ],
        )
        self._insert(
            "hubspot_pipelines",
            {
                "portal_id": "VARCHAR",
                "object_type": "VARCHAR",
                "pipeline_id": "VARCHAR",
                "stage_id": "VARCHAR",
                "stage_label": "VARCHAR",
                "display_order": "BIGINT",
                "is_closed": "BOOLEAN",
            }
            | meta,
            [
                [
                    PORTAL,
                    "contacts",
                    "contacts-lifecycle-pipeline",
                    s,
                    s,
                    i,
                    False,
                    LOADED_AT,
                    PORTAL,
                    "examples",
                ]
                for i, s in enumerate(stages)
            ],
        )

    # -- build and expect ---------------------------------------------------------------------------------
    def build(self, **options: Any) -> None:
        options.setdefault("time_zone", TIME_ZONE)
        build_all(self.con, default_catalog(), default_channel_mapping(), **options)

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[list[str]]:
        return [[cell(v) for v in r] for r in self.con.execute(sql, params or []).fetchall()]

    def expect(self, sql: str, text: str, params: Sequence[Any] | None = None) -> None:
        """The query's rows equal the expected table (same columns, same order of rows)."""
        header, expected = parse_table(text)
        got = self.con.execute(sql, params or [])
        names = [d[0] for d in got.description]
        assert names == header, f"columns {names} != expected {header}"
        actual = [[cell(v) for v in r] for r in got.fetchall()]
        want = [["NULL" if c is None else c for c in row] for row in expected]
        if actual != want:
            width = [max(len(x) for x in col) for col in zip(header, *actual, *want, strict=False)]

            def fmt(row: Sequence[str]) -> str:
                return " | ".join(x.ljust(w) for x, w in zip(row, width, strict=False))

            lines = ["expected:", fmt(header), *map(fmt, want), "got:", fmt(header), *map(fmt, actual)]
            pytest.fail("\n".join(lines), pytrace=False)


@pytest.fixture(scope="module")
def new_example(tmp_path_factory):
    """A factory of empty examples (a module builds its example once and its tests query it)."""
    made: list[Example] = []

    def make() -> Example:
        made.append(Example(tmp_path_factory.mktemp("example") / "warehouse.duckdb"))
        return made[-1]

    yield make
    for ex in made:
        ex.con.close()
