"""Write connector Arrow batches into the `raw` schema (CONTRACTS §4).

Every public function writes its slice in ONE transaction and consumes the batch iterator one batch at
a time, so memory stays flat however large the report, and a failure half-way (an API error raised by
the iterator, a bad batch) rolls the whole slice back: a rerun never duplicates and never leaves half
a partition.

Tables are created from the first batch's schema plus the load metadata columns; a later batch with
a new column adds it (NULL for older rows).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "RawLoadError",
    "load_ga4_partition",
    "upsert_hubspot_objects",
    "replace_hubspot_metadata",
    "append_request_log",
    "record_ga4_property",
    "record_hubspot_portal",
    "REQUEST_LOG_COLUMNS",
]

HUBSPOT_OBJECT_TYPES = ("contacts", "companies", "deals")
HUBSPOT_METADATA_TABLES = ("properties", "pipelines")
SYNC_MODES = ("full", "incremental")
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")
_BATCH_VIEW = "_stepwise_raw_batch"

# raw.request_log columns and their DuckDB types (CONTRACTS §4); keys an entry has beyond these go to `extra`.
REQUEST_LOG_COLUMNS: dict[str, str] = {
    "run_id": "VARCHAR",
    "source": "VARCHAR",
    "source_id": "VARCHAR",
    "request": "VARCHAR",
    "mode": "VARCHAR",
    "start_date": "VARCHAR",
    "end_date": "VARCHAR",
    "rows": "BIGINT",
    "pages": "BIGINT",
    "requests": "BIGINT",
    "retries": "BIGINT",
    "http_429": "BIGINT",
    "splits": "BIGINT",
    "subject_to_thresholding": "BOOLEAN",
    "data_loss_from_other_row": "BOOLEAN",
    "sampled": "BOOLEAN",
    "quota_tokens_used": "BIGINT",
    "quota_tokens_remaining_hour": "BIGINT",
    "quota_tokens_remaining_day": "BIGINT",
    "wait_seconds": "DOUBLE",
    "started_at": "TIMESTAMP",
    "finished_at": "TIMESTAMP",
    "error": "VARCHAR",
    "extra": "JSON",
    "_loaded_at": "TIMESTAMP",
}


class RawLoadError(ValueError):
    """A batch does not fit the slice it is written to (wrong source id, a date outside the partition...)."""


def _identifier(value: str, what: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise RawLoadError(
            f"{what} {value!r} is not a valid table name part: use lower-case letters, digits and _"
        )
    return value


def _utc_now() -> dt.datetime:
    # Naive UTC: `_loaded_at` is a plain TIMESTAMP so it never depends on a session's TimeZone setting.
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(rows[0][0])


def _ensure_table(
    con: duckdb.DuckDBPyConnection, table: str, batch_table: pa.Table, metadata: Mapping[str, str]
) -> None:
    """Create raw.<table> from the batch's schema plus metadata columns, or add columns it lacks."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.register(_BATCH_VIEW, batch_table)
    try:
        if not _table_exists(con, "raw", table):
            meta_cols = ", ".join(
                f'CAST(NULL AS {sql_type}) AS "{name}"' for name, sql_type in metadata.items()
            )
            con.execute(f"CREATE TABLE raw.{table} AS SELECT *, {meta_cols} FROM {_BATCH_VIEW} LIMIT 0")
            return
        existing = {
            row[0]
            for row in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = ?",
                [table],
            ).fetchall()
        }
        described = con.execute(f"DESCRIBE SELECT * FROM {_BATCH_VIEW}").fetchall()
        for column_name, column_type, *_ in described:
            if column_name not in existing:
                con.execute(f'ALTER TABLE raw.{table} ADD COLUMN "{column_name}" {column_type}')
    finally:
        con.unregister(_BATCH_VIEW)


def _insert_batch(
    con: duckdb.DuckDBPyConnection,
    table: str,
    batch_table: pa.Table,
    metadata_values: Mapping[str, Any],
    *,
    select_suffix: str = "",
) -> int:
    con.register(_BATCH_VIEW, batch_table)
    try:
        meta_cols = ", ".join(f'? AS "{name}"' for name in metadata_values)
        inserted = con.execute(
            f"INSERT INTO raw.{table} BY NAME SELECT *, {meta_cols} FROM {_BATCH_VIEW} {select_suffix}",
            list(metadata_values.values()),
        ).fetchall()
        return int(inserted[0][0])
    finally:
        con.unregister(_BATCH_VIEW)


def _as_table(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    return batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])


def _check_source_column(batch_table: pa.Table, column: str, expected: str, what: str) -> None:
    if column not in batch_table.column_names:
        raise RawLoadError(f"{what} batch has no '{column}' column (CONTRACTS §3 requires it)")
    values = pc.unique(batch_table.column(column).cast(pa.string())).to_pylist()
    wrong = [v for v in values if v != expected]
    if wrong:
        raise RawLoadError(
            f"{what} batch carries {column}={wrong[0]!r}, but the slice being written is {expected!r}"
        )


# ------------------------------------------------------------------------------------------------ GA4


def load_ga4_partition(
    con: duckdb.DuckDBPyConnection,
    spec_name: str,
    property_id: str,
    start_date: dt.date | str,
    end_date: dt.date | str,
    batches: Iterable[pa.RecordBatch | pa.Table],
    partition_key: str,
    *,
    loaded_at: dt.datetime | None = None,
) -> int:
    """Replace the (property_id, start_date..end_date) slice of raw.ga4_<spec_name>; returns rows written.

    The old slice is deleted and the new rows inserted in one transaction. Batches with rows outside
    the slice are refused (they would survive the next rerun's delete and duplicate).
    """
    table = "ga4_" + _identifier(spec_name, "GA4 report spec name")
    start = dt.date.fromisoformat(str(start_date))
    end = dt.date.fromisoformat(str(end_date))
    if end < start:
        raise RawLoadError(f"GA4 partition {partition_key!r}: end_date {end} is before start_date {start}")
    metadata = {
        "_loaded_at": loaded_at or _utc_now(),
        "_source_id": str(property_id),
        "_partition_key": partition_key,
    }
    metadata_types = {"_loaded_at": "TIMESTAMP", "_source_id": "VARCHAR", "_partition_key": "VARCHAR"}
    rows = 0
    with _transaction(con):
        if _table_exists(con, "raw", table):
            con.execute(
                f"DELETE FROM raw.{table} WHERE property_id = ? AND date BETWEEN ? AND ?",
                [str(property_id), start, end],
            )
        for batch in batches:
            batch_table = _as_table(batch)
            if batch_table.num_rows == 0:
                continue
            _check_source_column(batch_table, "property_id", str(property_id), f"GA4 '{spec_name}'")
            if "date" not in batch_table.column_names:
                raise RawLoadError(f"GA4 '{spec_name}' batch has no 'date' column")
            dates = batch_table.column("date")
            if not pa.types.is_date(dates.type):
                raise RawLoadError(f"GA4 '{spec_name}' batch: 'date' is {dates.type}, CONTRACTS §3 says DATE")
            low, high = pc.min(dates).as_py(), pc.max(dates).as_py()
            if low < start or high > end:
                raise RawLoadError(
                    f"GA4 '{spec_name}' batch has dates {low}..{high} outside the partition {start}..{end}"
                )
            _ensure_table(con, table, batch_table, metadata_types)
            _insert_batch(con, table, batch_table, metadata)
            rows += batch_table.num_rows
    return rows


def record_ga4_property(
    con: duckdb.DuckDBPyConnection,
    property_id: str,
    *,
    time_zone: str,
    currency_code: str | None = None,
    loaded_at: dt.datetime | None = None,
) -> None:
    """Remember a GA4 property's reporting time zone (from its metadata/configuration).

    The build reads it to put HubSpot's UTC timestamps onto the property's calendar days.
    """
    valid = con.execute("SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [time_zone]).fetchall()[0][
        0
    ]
    if not valid:
        raise RawLoadError(
            f"GA4 property {property_id}: time zone {time_zone!r} is not an IANA time zone name"
        )
    with _transaction(con):
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.execute(
            "CREATE TABLE IF NOT EXISTS raw.ga4_properties (property_id VARCHAR, time_zone VARCHAR, "
            "currency_code VARCHAR, _loaded_at TIMESTAMP)"
        )
        con.execute("DELETE FROM raw.ga4_properties WHERE property_id = ?", [str(property_id)])
        con.execute(
            "INSERT INTO raw.ga4_properties VALUES (?, ?, ?, ?)",
            [str(property_id), time_zone, currency_code, loaded_at or _utc_now()],
        )


def record_hubspot_portal(
    con: duckdb.DuckDBPyConnection,
    portal_id: str,
    *,
    time_zone: str,
    property_id: str | None = None,
    hub_id: str | None = None,
    currency_code: str | None = None,
    loaded_at: dt.datetime | None = None,
) -> None:
    """Remember a HubSpot portal's time zone (GET /account-info/v3/details) and the GA4 property it is paired
    with (the accounts configuration: the property whose visitors become its contacts; None: unpaired).

    ``portal_id`` is the label the portal's rows carry in raw.hubspot_* (HubSpotSettings.portal_id);
    ``hub_id`` HubSpot's own portalId. The build cuts the portal's UTC instants into days in ``time_zone``
    and puts its rows next to the paired property's GA4 rows (raw.hubspot_portals).
    """
    valid = con.execute("SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [time_zone]).fetchall()[0][
        0
    ]
    if not valid:
        raise RawLoadError(
            f"HubSpot portal {portal_id}: time zone {time_zone!r} is not an IANA time zone name"
        )
    with _transaction(con):
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.execute(
            "CREATE TABLE IF NOT EXISTS raw.hubspot_portals (portal_id VARCHAR, time_zone VARCHAR, "
            "property_id VARCHAR, hub_id VARCHAR, currency_code VARCHAR, _loaded_at TIMESTAMP)"
        )
        con.execute("DELETE FROM raw.hubspot_portals WHERE portal_id = ?", [str(portal_id)])
        con.execute(
            "INSERT INTO raw.hubspot_portals VALUES (?, ?, ?, ?, ?, ?)",
            [
                str(portal_id),
                time_zone,
                None if property_id is None else str(property_id),
                None if hub_id is None else str(hub_id),
                currency_code,
                loaded_at or _utc_now(),
            ],
        )


# -------------------------------------------------------------------------------------------- HubSpot


def upsert_hubspot_objects(
    con: duckdb.DuckDBPyConnection,
    object_type: str,
    portal_id: str,
    batches: Iterable[pa.RecordBatch | pa.Table],
    sync_mode: str,
    *,
    partition_key: str | None = None,
    loaded_at: dt.datetime | None = None,
) -> int:
    """Upsert HubSpot records into raw.hubspot_<object_type> by (portal_id, id); returns rows written.

    Within one call the newest version of a record wins (by updated_at; on a tie the later batch);
    an already stored version that is newer than the incoming one is kept. Records missing from a
    full sync are kept too (archived records are not listed by a full sync, only by the archived pass).
    """
    if object_type not in HUBSPOT_OBJECT_TYPES:
        raise RawLoadError(
            f"HubSpot object type {object_type!r} is not one of {', '.join(HUBSPOT_OBJECT_TYPES)}"
        )
    if sync_mode not in SYNC_MODES:
        raise RawLoadError(f"HubSpot sync_mode {sync_mode!r} is not one of {', '.join(SYNC_MODES)}")
    table = f"hubspot_{object_type}"
    metadata = {
        "_loaded_at": loaded_at or _utc_now(),
        "_source_id": str(portal_id),
        "_partition_key": partition_key,
        "_sync_mode": sync_mode,
    }
    metadata_types = {
        "_loaded_at": "TIMESTAMP",
        "_source_id": "VARCHAR",
        "_partition_key": "VARCHAR",
        "_sync_mode": "VARCHAR",
    }
    rows = 0
    with _transaction(con):
        for batch in batches:
            batch_table = _as_table(batch)
            if batch_table.num_rows == 0:
                continue
            _check_source_column(batch_table, "portal_id", str(portal_id), f"HubSpot {object_type}")
            for needed in ("id", "updated_at", "properties"):
                if needed not in batch_table.column_names:
                    raise RawLoadError(f"HubSpot {object_type} batch has no '{needed}' column")
            _ensure_table(con, table, batch_table, metadata_types)
            con.register(_BATCH_VIEW, batch_table)
            try:
                # The newest version per id within the batch; a stored version strictly newer wins.
                # Properties the incoming version does not carry keep their stored value (an
                # archived-pass record, for one, carries only ids and dates).
                con.execute(
                    f"""
                    CREATE OR REPLACE TEMP TABLE _sw_incoming AS
                    SELECT b.* REPLACE (
                        CASE WHEN t.properties IS NULL THEN b.properties
                             ELSE CAST(json_merge_patch(t.properties, b.properties) AS VARCHAR) END AS properties)
                    FROM (
                        SELECT * FROM {_BATCH_VIEW}
                        QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC NULLS LAST) = 1
                    ) AS b
                    LEFT JOIN raw.{table} AS t ON t.portal_id = b.portal_id AND t.id = b.id
                    WHERE t.id IS NULL OR t.updated_at IS NULL OR b.updated_at IS NULL OR t.updated_at <= b.updated_at
                    """
                )
            finally:
                con.unregister(_BATCH_VIEW)
            con.execute(
                f"DELETE FROM raw.{table} AS t USING _sw_incoming AS b WHERE t.portal_id = b.portal_id AND t.id = b.id"
            )
            meta_cols = ", ".join(f'? AS "{name}"' for name in metadata)
            inserted = con.execute(
                f"INSERT INTO raw.{table} BY NAME SELECT *, {meta_cols} FROM _sw_incoming",
                list(metadata.values()),
            ).fetchall()
            rows += int(inserted[0][0])
        con.execute("DROP TABLE IF EXISTS _sw_incoming")
    return rows


def replace_hubspot_metadata(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    portal_id: str,
    batches: Iterable[pa.RecordBatch | pa.Table],
    *,
    object_type: str | None = None,
    partition_key: str | None = None,
    loaded_at: dt.datetime | None = None,
) -> int:
    """Replace raw.hubspot_<kind> ('properties' or 'pipelines') for a portal in one transaction.

    With `object_type` only that object type's rows of the portal are replaced (so loading the deal
    pipelines does not drop the contact ones); without it, every row of the portal.
    """
    if kind not in HUBSPOT_METADATA_TABLES:
        raise RawLoadError(
            f"HubSpot metadata kind {kind!r} is not one of {', '.join(HUBSPOT_METADATA_TABLES)}"
        )
    table = f"hubspot_{kind}"
    metadata = {
        "_loaded_at": loaded_at or _utc_now(),
        "_source_id": str(portal_id),
        "_partition_key": partition_key,
    }
    metadata_types = {"_loaded_at": "TIMESTAMP", "_source_id": "VARCHAR", "_partition_key": "VARCHAR"}
    rows = 0
    with _transaction(con):
        if _table_exists(con, "raw", table):
            if object_type is None:
                con.execute(f"DELETE FROM raw.{table} WHERE portal_id = ?", [str(portal_id)])
            else:
                con.execute(
                    f"DELETE FROM raw.{table} WHERE portal_id = ? AND object_type = ?",
                    [str(portal_id), object_type],
                )
        for batch in batches:
            batch_table = _as_table(batch)
            if batch_table.num_rows == 0:
                continue
            _check_source_column(batch_table, "portal_id", str(portal_id), f"HubSpot {kind}")
            if object_type is not None:
                _check_source_column(batch_table, "object_type", object_type, f"HubSpot {kind}")
            _ensure_table(con, table, batch_table, metadata_types)
            _insert_batch(con, table, batch_table, metadata)
            rows += batch_table.num_rows
    return rows


# ---------------------------------------------------------------------------------------- request log


def _log_value(value: Any, sql_type: str) -> Any:
    if value is None:
        return None
    if sql_type == "VARCHAR":
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        return str(value)
    if sql_type == "TIMESTAMP":
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)
        parsed = dt.datetime.fromisoformat(str(value))
        return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    if sql_type == "BOOLEAN":
        return bool(value)
    if sql_type == "BIGINT":
        return int(value)
    if sql_type == "DOUBLE":
        return float(value)
    return value


def append_request_log(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    entries: Iterable[Mapping[str, Any]],
    *,
    loaded_at: dt.datetime | None = None,
) -> int:
    """Append connector request-log entries to raw.request_log (one transaction); returns rows appended.

    Known keys (REQUEST_LOG_COLUMNS) become typed columns; any other keys are kept as JSON in `extra`.
    """
    stamp = loaded_at or _utc_now()
    columns = [c for c in REQUEST_LOG_COLUMNS if c not in ("extra", "_loaded_at")]
    records: list[list[Any]] = []
    for entry in entries:
        row = [_log_value(entry.get(c), REQUEST_LOG_COLUMNS[c]) for c in columns]
        row[0] = run_id
        extra = {k: v for k, v in entry.items() if k not in REQUEST_LOG_COLUMNS}
        row.append(json.dumps(extra, default=str, sort_keys=True) if extra else None)
        row.append(stamp)
        records.append(row)
    with _transaction(con):
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        ddl = ", ".join(f'"{name}" {sql_type}' for name, sql_type in REQUEST_LOG_COLUMNS.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS raw.request_log ({ddl})")
        if records:
            placeholders = ", ".join("?" for _ in REQUEST_LOG_COLUMNS)
            con.executemany(f"INSERT INTO raw.request_log VALUES ({placeholders})", records)
    return len(records)
