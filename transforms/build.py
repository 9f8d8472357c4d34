"""Build `staging` and `marts` from `raw` in DuckDB: the SQL files under transforms/sql, run in order.

Each SQL file is one SELECT with a header naming the model, how it is partitioned and the comment of
the table and of every column:

    -- model: marts.web_sessions_daily
    -- partition: date | contact | deal | full | stats
    -- table: <table comment>
    -- column <name>: <column comment>

Configuration reaches the SQL as small tables (staging.conversion_catalog, staging.channel_mapping,
staging.channel_groups) and DuckDB variables set with parameters (time zone, discovered stage
properties); no value is pasted into SQL text. Scopes are TEMP macros (`sw_in_dates`,
`sw_in_contacts`, `sw_in_deals`): `true` for a full build, a semi-join on the changed keys for an
incremental one.

A build runs in ONE transaction: readers see the previous build or this one, and a failure leaves
the warehouse as it was. `dates=None` rebuilds everything; `dates=[...]` rebuilds those dates, plus
the HubSpot records loaded since the last build and every date they touch; a changed catalog,
mapping or time zone turns an incremental request into a full build.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa

from transforms import anomalies, stats, stats_clustered
from transforms.catalog import GA4_DEFAULT_CHANNEL_GROUPS, Catalog, ChannelMapping
from transforms.raw_load import REQUEST_LOG_COLUMNS

__all__ = [
    "BuildError",
    "BuildResult",
    "Model",
    "MODELS",
    "MART_TABLES",
    "build_all",
    "build_from_files",
    "load_models",
]

SQL_DIR = Path(__file__).resolve().parent / "sql"
PARTITIONS = ("date", "date_source", "date_all", "contact", "deal", "full", "stats")
MART_TABLES = (
    "conversion_catalog",
    "web_sessions_daily",
    "conversions_daily",
    "micro_conversions_daily",
    "macro_conversions_daily",
    "funnel_daily",
    "channel_funnel_daily",
    "segment_summary",
    "micro_macro_lift",
    "data_quality",
    "time_to_convert",
    "time_to_convert_curve",
    "conversion_anomalies",
)
# Build order (dependencies first). Staging lookups loaded from Python come before all of these.
MODEL_ORDER = (
    "staging/hubspot_lifecycle_stages",
    "staging/hubspot_deal_stages",
    "staging/hubspot_deals",
    "staging/hubspot_contacts",
    "staging/hubspot_merges",
    "staging/hubspot_contact_stage_events",
    "staging/hubspot_form_conversions",
    "staging/hubspot_contact_facts",
    "staging/hubspot_contact_micro_macro",
    "staging/hubspot_cohort_daily",
    "staging/ga4_web_sessions",
    "staging/ga4_events",
    "staging/ga4_landing_pages",
    "staging/ga4_campaigns",
    "staging/ga4_lead_forms",
    "staging/ga4_segment_daily",
    "staging/ga4_micro_macro_daily",
    "marts/conversion_catalog",
    "marts/web_sessions_daily",
    "marts/conversions_daily",
    "marts/micro_conversions_daily",
    "marts/macro_conversions_daily",
    "marts/funnel_daily",
    "marts/channel_funnel_daily",
    "marts/segment_summary",
    "marts/micro_macro_lift",
    "marts/data_quality",
    "staging/time_to_convert_km",
    "marts/time_to_convert",
    "marts/time_to_convert_curve",
    "staging/conversion_anomaly_scores",
    "marts/conversion_anomalies",
)
_STAGE_PROPERTY = re.compile(r"hs_v2_date_entered_[A-Za-z0-9_]+")

# Raw tables the model reads and the columns it needs (CONTRACTS §3/§4). A missing table (a report not
# configured, a source not connected) is created empty with these columns so the build still runs.
_GA4_FLAGS = "subject_to_thresholding BOOLEAN, data_loss_from_other_row BOOLEAN, sampled BOOLEAN"
_META = "_loaded_at TIMESTAMP, _source_id VARCHAR, _partition_key VARCHAR"
_SEGMENT = "session_default_channel_group VARCHAR, device_category VARCHAR, country VARCHAR, new_vs_returning VARCHAR"
EXPECTED_RAW: dict[str, str] = {
    "ga4_web_sessions": f"property_id VARCHAR, date DATE, {_SEGMENT}, sessions BIGINT, engaged_sessions BIGINT, "
    f"total_users BIGINT, new_users BIGINT, {_GA4_FLAGS}, {_META}",
    "ga4_events": f"property_id VARCHAR, date DATE, event_name VARCHAR, {_SEGMENT}, event_count BIGINT, "
    f"total_users BIGINT, event_value DOUBLE, {_GA4_FLAGS}, {_META}",
    "ga4_landing_pages": "property_id VARCHAR, date DATE, landing_page VARCHAR, session_default_channel_group VARCHAR, "
    "sessions BIGINT, engaged_sessions BIGINT, total_users BIGINT, ecommerce_purchases BIGINT, key_events BIGINT, "
    f"{_GA4_FLAGS}, {_META}",
    "ga4_campaigns": "property_id VARCHAR, date DATE, session_campaign_name VARCHAR, session_source VARCHAR, "
    "session_medium VARCHAR, session_default_channel_group VARCHAR, sessions BIGINT, total_users BIGINT, "
    f"ecommerce_purchases BIGINT, purchase_revenue DOUBLE, key_events BIGINT, {_GA4_FLAGS}, {_META}",
    "ga4_lead_forms": "property_id VARCHAR, date DATE, event_name VARCHAR, custom_event_form_name VARCHAR, "
    f"session_default_channel_group VARCHAR, event_count BIGINT, {_GA4_FLAGS}, {_META}",
    "hubspot_contacts": "portal_id VARCHAR, id VARCHAR, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, archived BOOLEAN, "
    f"merged_into VARCHAR, properties VARCHAR, {_META}, _sync_mode VARCHAR",
    "hubspot_deals": "portal_id VARCHAR, id VARCHAR, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, archived BOOLEAN, "
    f"merged_into VARCHAR, properties VARCHAR, contact_ids VARCHAR, {_META}, _sync_mode VARCHAR",
    "hubspot_properties": "portal_id VARCHAR, object_type VARCHAR, name VARCHAR, label VARCHAR, type VARCHAR, "
    f"field_type VARCHAR, group_name VARCHAR, {_META}",
    "hubspot_pipelines": "portal_id VARCHAR, object_type VARCHAR, pipeline_id VARCHAR, pipeline_label VARCHAR, "
    "stage_id VARCHAR, stage_label VARCHAR, display_order BIGINT, is_closed BOOLEAN, probability DOUBLE, "
    f"{_META}",
    "request_log": ", ".join(f'"{name}" {sql_type}' for name, sql_type in REQUEST_LOG_COLUMNS.items()),
}

MACROS_SQL = r"""
CREATE OR REPLACE TEMP MACRO sw_label(x) AS coalesce(nullif(trim(CAST(x AS VARCHAR)), ''), '(not set)');
CREATE OR REPLACE TEMP MACRO sw_hs_instant(s) AS CASE
    WHEN s IS NULL OR trim(s) = '' THEN NULL
    WHEN right(s, 1) = 'Z' THEN TRY_CAST(s AS TIMESTAMPTZ)
    WHEN regexp_full_match(s, '[0-9]{9,}') THEN timezone('UTC', make_timestamp(CAST(s AS BIGINT) * 1000))
    WHEN length(s) = 10 THEN timezone('UTC', TRY_CAST(s AS DATE)::TIMESTAMP)
    WHEN regexp_matches(s, '[0-9][T ][0-9].*[+-][0-9]{2}(:?[0-9]{2})?$') THEN TRY_CAST(s AS TIMESTAMPTZ)
    ELSE timezone('UTC', TRY_CAST(s AS TIMESTAMP))
END;
CREATE OR REPLACE TEMP MACRO sw_utc(instant) AS timezone('UTC', instant);
-- HubSpot record ids are numbers sent as strings; the integer is what incremental scopes join on (a
-- fraction of the cost of comparing strings). Only the canonical spelling maps, so the key is one-to-one.
CREATE OR REPLACE TEMP MACRO sw_contact_key(id) AS CASE
    WHEN id IS NULL THEN NULL
    WHEN CAST(TRY_CAST(id AS UBIGINT) AS VARCHAR) IS DISTINCT FROM id THEN
        error('HubSpot contact id ''' || id || ''' is not a plain number (HubSpot record ids are): check raw.hubspot_contacts / raw.hubspot_deals contact_ids')
    ELSE CAST(id AS UBIGINT)
END;
-- The contact properties staging reads (the stage-entry properties come from sw_stage_paths).
CREATE OR REPLACE TEMP MACRO sw_contact_properties(properties) AS json_extract_string(properties, list_concat(
    ['$.createdate', '$.lastmodifieddate', '$.lifecyclestage', '$.hs_analytics_source',
     '$.hs_analytics_source_data_1', '$.hs_analytics_source_data_2', '$.country',
     '$.first_conversion_event_name', '$.first_conversion_date', '$.recent_conversion_event_name',
     '$.recent_conversion_date', '$.num_conversion_events', '$.hs_merged_object_ids'],
    getvariable('sw_stage_paths')));
-- What a staged contact row depends on, except its last-modified instant (p[2], updated_at): a record that
-- only had lastmodifieddate bumped (a bulk import, a touch) keeps its hash and gets an UPDATE of that column.
CREATE OR REPLACE TEMP MACRO sw_contact_content_hash(p, archived, merged_into, created_at) AS
    hash(list_concat(p[1:1], p[3:]), archived, merged_into, created_at);
CREATE OR REPLACE TEMP MACRO sw_contact_updated_at(lastmodifieddate, updated_at) AS
    sw_utc(coalesce(sw_hs_instant(lastmodifieddate), sw_hs_instant(CAST(updated_at AS VARCHAR))));
CREATE OR REPLACE TEMP MACRO sw_local_date(utc_ts) AS
    CAST(timezone(getvariable('sw_time_zone'), timezone('UTC', utc_ts)) AS DATE);
"""
FULL_SCOPE_SQL = """
CREATE OR REPLACE TEMP MACRO sw_in_dates(d) AS true;
CREATE OR REPLACE TEMP MACRO sw_in_crm_dates(d) AS true;
CREATE OR REPLACE TEMP MACRO sw_in_contacts(p, k) AS true;
CREATE OR REPLACE TEMP MACRO sw_in_raw_contacts(raw_rowid) AS true;
CREATE OR REPLACE TEMP MACRO sw_in_deals(p, i) AS true;
"""
INCREMENTAL_SCOPE_SQL = """
CREATE OR REPLACE TEMP MACRO sw_in_dates(d) AS d IN (SELECT scope_date FROM sw_scope_dates);
CREATE OR REPLACE TEMP MACRO sw_in_crm_dates(d) AS d IN (SELECT scope_date FROM sw_scope_crm_dates);
CREATE OR REPLACE TEMP MACRO sw_in_contacts(p, k) AS
    EXISTS (SELECT 1 FROM sw_scope_contacts WHERE scope_portal_id = p AND scope_contact_key = k);
-- By rowid, so that the scan reads the (large) JSON properties of the scoped raw rows only.
CREATE OR REPLACE TEMP MACRO sw_in_raw_contacts(raw_rowid) AS raw_rowid IN (SELECT scope_rowid FROM sw_scope_raw_contacts);
CREATE OR REPLACE TEMP MACRO sw_in_deals(p, i) AS
    EXISTS (SELECT 1 FROM sw_scope_deals WHERE scope_portal_id = p AND scope_deal_id = i);
"""


DEFAULT_GATE = stats.MinimumSample()


class BuildError(RuntimeError):
    """The warehouse cannot be built as asked (missing time zone, unusable raw data...)."""


@dataclass(frozen=True)
class Model:
    schema: str
    name: str
    partition: str
    select_sql: str
    table_comment: str
    column_comments: dict[str, str]
    path: Path

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class BuildResult:
    mode: str  # 'full' or 'incremental'
    dates: list[dt.date] = field(default_factory=list)  # dates rebuilt (incremental)
    contacts: int = 0  # HubSpot contacts re-staged (incremental)
    deals: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # per model
    row_counts: dict[str, int] = field(default_factory=dict)  # marts.* after the build
    reason: str = ""


def _parse_model(path: Path) -> Model:
    header: dict[str, str] = {}
    columns: dict[str, str] = {}
    body: list[str] = []
    in_header = True
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, text = line[3:].partition(":")
        key = key.strip()
        if (
            in_header
            and line.startswith("-- ")
            and (key in ("model", "partition", "table") or key.startswith("column "))
        ):
            if key.startswith("column "):
                columns[key.removeprefix("column ").strip()] = text.strip()
            else:
                header[key] = text.strip()
            continue
        in_header = False
        body.append(line)
    schema, _, name = header.get("model", "").partition(".")
    partition = header.get("partition", "")
    if not schema or not name or partition not in PARTITIONS or "table" not in header:
        raise BuildError(
            f"{path}: header needs '-- model: schema.name', '-- partition: {'|'.join(PARTITIONS)}', '-- table: ...'"
        )
    return Model(schema, name, partition, "\n".join(body).strip().rstrip(";"), header["table"], columns, path)


def load_models() -> list[Model]:
    return [_parse_model(SQL_DIR / f"{entry}.sql") for entry in MODEL_ORDER]


MODELS = load_models()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? AND table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ? "
            "AND table_name = ? ORDER BY column_index",
            [schema, table],
        ).fetchall()
    ]


def _apply_comments(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    con.execute(f"COMMENT ON TABLE {model.qualified} IS {_quote(model.table_comment)}")
    for column in _columns(con, model.schema, model.name):
        text = model.column_comments.get(column)
        if text is None:
            raise BuildError(
                f"{model.path.name}: column '{column}' of {model.qualified} has no '-- column {column}:' comment"
            )
        con.execute(f'COMMENT ON COLUMN {model.qualified}."{column}" IS {_quote(text)}')


def _resolve_time_zone(con: duckdb.DuckDBPyConnection, time_zone: str | None) -> str:
    if time_zone is None:
        if not _exists(con, "raw", "ga4_properties"):
            raise BuildError(
                "no reporting time zone: pass build_all(..., time_zone='Area/City') or record the GA4 property's "
                "time zone with transforms.raw_load.record_ga4_property() before building"
            )
        zones = [
            r[0]
            for r in con.execute("SELECT DISTINCT time_zone FROM raw.ga4_properties ORDER BY 1").fetchall()
        ]
        if len(zones) != 1:
            raise BuildError(
                f"the GA4 properties in raw.ga4_properties use {len(zones)} time zones ({', '.join(map(str, zones))}); "
                "pass build_all(..., time_zone=...) to choose the reporting time zone"
            )
        time_zone = zones[0]
    known = con.execute("SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [time_zone]).fetchall()[0][
        0
    ]
    if not known:
        raise BuildError(f"time zone {time_zone!r} is not an IANA time zone name (e.g. 'America/New_York')")
    return str(time_zone)


def _config_fingerprint(catalog: Catalog, mapping: ChannelMapping, time_zone: str, lead_event: str) -> str:
    payload = {
        "catalog": [dataclasses.asdict(c) for c in catalog.conversions],
        "mapping": mapping.mapping,
        "unmapped": mapping.unmapped_channel,
        "time_zone": time_zone,
        "lead_event": lead_event,
        "models": [m.select_sql for m in MODELS],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _replace_from_arrow(con: duckdb.DuckDBPyConnection, qualified: str, table: pa.Table) -> None:
    con.register("_sw_arrow", table)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {qualified} AS SELECT * FROM _sw_arrow")
    finally:
        con.unregister("_sw_arrow")


# Comments of the tables loaded from Python (the SQL models carry theirs in their headers).
LOOKUP_COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "staging.conversion_catalog": (
        "The validated conversion catalog the last build used (the SQL reads it; marts.conversion_catalog shows it).",
        {
            "conversion_name": "Unique conversion name.",
            "source_system": "'ga4' or 'hubspot'.",
            "signal_type": "'event', 'lifecycle_stage', 'deal_won' or 'form'.",
            "signal": "GA4 event name, lifecycle stage, deal pipeline id (* = any) or form name.",
            "tier": "'micro' or 'macro'.",
            "kind": "'process_milestone' or 'secondary_action' (micro only).",
            "funnel_name": "Funnel the conversion is a step of.",
            "funnel_step": "Step position in the funnel, from 1.",
            "value": "Fixed value per conversion (value_source 'fixed').",
            "value_source": "'fixed', 'event_value', 'deal_amount' or NULL.",
            "description": "Free text from the catalog.",
            "catalog_file": "Catalog file name.",
            "catalog_line": "Line of the entry in the catalog file.",
        },
    ),
    "staging.channel_mapping": (
        "The validated channel mapping (HubSpot hs_analytics_source -> GA4 default channel group) the last build used.",
        {
            "hs_analytics_source": "HubSpot original source value.",
            "channel": "GA4 default channel group it maps to.",
            "mapping_line": "Line of the entry in the mapping file.",
        },
    ),
    "staging.channel_groups": (
        "GA4 default channel groups, the one channel taxonomy of the warehouse.",
        {"channel": "Channel group name as GA4 spells it.", "channel_key": "Lower-case match key."},
    ),
    "staging.build_state": (
        "Bookkeeping of the last build: configuration fingerprint, reporting time zone, and the raw HubSpot "
        "load watermarks the next incremental build starts from.",
        {
            "config_fingerprint": "SHA-256 of catalog, mapping, time zone, settings and model SQL; a change forces a full build.",
            "time_zone": "Reporting time zone (the GA4 property's) used for HubSpot dates.",
            "lead_event_name": "GA4 lead event and unsettled-days setting of the build.",
            "contacts_watermark": "Newest raw.hubspot_contacts _loaded_at the build saw.",
            "deals_watermark": "Newest raw.hubspot_deals _loaded_at the build saw.",
            "ga4_watermark": "Newest _loaded_at of the raw GA4 tables the build saw (dates='changed' rebuilds the dates loaded after it).",
        },
    ),
}


def _comment_lookup(con: duckdb.DuckDBPyConnection, qualified: str) -> None:
    table_comment, columns = LOOKUP_COMMENTS[qualified]
    con.execute(f"COMMENT ON TABLE {qualified} IS {_quote(table_comment)}")
    for column, text in columns.items():
        con.execute(f'COMMENT ON COLUMN {qualified}."{column}" IS {_quote(text)}')


def _load_lookups(con: duckdb.DuckDBPyConnection, catalog: Catalog, mapping: ChannelMapping) -> None:
    _replace_from_arrow(con, "staging.conversion_catalog", catalog.to_arrow())
    _replace_from_arrow(con, "staging.channel_mapping", mapping.to_arrow())
    groups = list(GA4_DEFAULT_CHANNEL_GROUPS)
    _replace_from_arrow(
        con,
        "staging.channel_groups",
        pa.table({"channel": groups, "channel_key": [g.lower() for g in groups]}),
    )
    for qualified in ("staging.conversion_catalog", "staging.channel_mapping", "staging.channel_groups"):
        _comment_lookup(con, qualified)


def _set_stage_variables(con: duckdb.DuckDBPyConnection, from_raw: bool = False) -> list[str]:
    sql = (
        "SELECT DISTINCT name FROM raw.hubspot_properties WHERE object_type = 'contacts' "
        "AND starts_with(name, 'hs_v2_date_entered_') AND length(name) > 19 ORDER BY 1"
        if from_raw
        else "SELECT DISTINCT property_name FROM staging.hubspot_lifecycle_stages ORDER BY 1"
    )
    names = [r[0] for r in con.execute(sql).fetchall()]
    bad = [n for n in names if not _STAGE_PROPERTY.fullmatch(n)]
    if bad:
        raise BuildError(
            f"raw.hubspot_properties: stage property name {bad[0]!r} is not a plain HubSpot property name"
        )
    con.execute("SET VARIABLE sw_stage_paths = ?::VARCHAR[]", [[f'$."{n}"' for n in names]])
    con.execute(
        "SET VARIABLE sw_stage_names = ?::VARCHAR[]", [[n.removeprefix("hs_v2_date_entered_") for n in names]]
    )
    return names


def _ensure_raw(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    raw_columns: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'raw'"
    ).fetchall():
        raw_columns.setdefault(table, set()).add(column)
    for table, ddl in EXPECTED_RAW.items():
        if table not in raw_columns:
            con.execute(f"CREATE TABLE raw.{table} ({ddl})")
            continue
        # Older loads may lack a column added later (e.g. contact_ids); add it empty.
        have = raw_columns[table]
        for column_def in _split_columns(ddl):
            name = column_def.split()[0].strip('"')
            if name not in have:
                con.execute(f"ALTER TABLE raw.{table} ADD COLUMN {column_def}")


def _split_columns(ddl: str) -> list[str]:
    return [part.strip() for part in ddl.split(",")]


def _run_model(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    incremental: bool,
    gate: stats.MinimumSample,
    existing: set[str],
) -> None:
    """Build one model; `existing` holds the qualified names of the model tables already there."""
    if model.partition == "stats":
        _run_stats_model(con, model, gate)
        return
    if not incremental or model.partition == "full" or model.qualified not in existing:
        con.execute(f"CREATE OR REPLACE TABLE {model.qualified} AS {model.select_sql}")
        _apply_comments(con, model)
        return
    if model.partition == "date":
        con.execute(f"DELETE FROM {model.qualified} WHERE date IN (SELECT scope_date FROM sw_scope_dates)")
    elif model.partition == "date_source":
        con.execute(
            f"DELETE FROM {model.qualified} WHERE source_system = 'ga4' "
            "AND date IN (SELECT scope_date FROM sw_scope_dates)"
        )
        con.execute(
            f"DELETE FROM {model.qualified} WHERE source_system <> 'ga4' "
            "AND date IN (SELECT scope_date FROM sw_scope_crm_dates)"
        )
    elif model.partition == "date_all":
        con.execute(
            f"DELETE FROM {model.qualified} WHERE date IN (SELECT scope_date FROM sw_scope_crm_dates)"
        )
    elif model.partition == "contact":
        delete = (
            f"DELETE FROM {model.qualified} AS t WHERE EXISTS "
            "(SELECT 1 FROM sw_scope_contacts AS s WHERE s.scope_portal_id = t.portal_id AND s.scope_contact_key = t.contact_key)"
        )
        returning = _CONTACT_ROW_SNAPSHOT.get(model.name)
        if returning is None:
            con.execute(delete)
        else:
            _capture_rows(con, "sw_rows_old", model.name, con.execute(f"{delete} RETURNING {returning}"))
            insert = f"INSERT INTO {model.qualified} BY NAME {model.select_sql}"
            _capture_rows(con, "sw_rows_new", model.name, con.execute(f"{insert} RETURNING {returning}"))
            return
    elif model.partition == "deal":
        con.execute(
            f"DELETE FROM {model.qualified} AS t WHERE EXISTS "
            "(SELECT 1 FROM sw_scope_deals AS s WHERE s.scope_portal_id = t.portal_id AND s.scope_deal_id = t.deal_id)"
        )
    con.execute(f"INSERT INTO {model.qualified} BY NAME {model.select_sql}")


def _stats_columns(model: Model, counts: pa.Table, gate: stats.MinimumSample) -> pa.Table:
    if model.name == "segment_summary":
        a, n1 = counts.column("conversions"), counts.column("units")
        c, n2 = counts.column("rest_conversions"), counts.column("rest_units")
        fam_cols: tuple[str, ...] = ("source_system", "conversion_name", "segment_dimension")
        excluded = np.zeros(counts.num_rows, dtype=bool)
    else:
        a, n1 = counts.column("did_macro"), counts.column("did_count")
        c, n2 = counts.column("did_not_macro"), counts.column("did_not_count")
        fam_cols = ("basis",)
        excluded = np.asarray(counts.column("is_prerequisite").to_numpy(zero_copy_only=False), dtype=bool)
    family_values = list(zip(*(counts.column(col).to_pylist() for col in fam_cols), strict=True))
    # Prerequisites are their own (untested) family: they never enter the q-values or ranks of the others.
    families: list[object] = [
        ("prerequisite",) if x else f for f, x in zip(family_values, excluded, strict=True)
    ]

    def floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=float)

    crude = (floats(a), floats(n1), floats(c), floats(n2))
    mh: stats.MantelHaenszel | None = None
    if "day_counts" in counts.column_names:
        import pyarrow.compute as pc

        # GA4 rows (day lists): day-clustered inference (transforms/stats_clustered.py, STATISTICS.md);
        # HubSpot rows (NULL list) are per contact and keep the plain comparison.
        day_counts = counts.column("day_counts").combine_chunks()
        flat_days = pc.list_flatten(day_counts)
        clustered_rows = np.asarray(day_counts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        day_arrays = (
            floats(flat_days.field("conversions")),
            floats(flat_days.field("units")),
            floats(flat_days.field("rest_conversions")),
            floats(flat_days.field("rest_units")),
            np.asarray(pc.list_parent_indices(day_counts).to_numpy(zero_copy_only=False), dtype=np.int64),
        )
        # Rows without days (HubSpot, clustered_rows False) get exactly compare_against_rest's statistics.
        assert clustered_rows[np.unique(day_arrays[4])].all()
        result, _ = stats_clustered.compare_day_clustered(*crude, day_arrays, families, gate)
        counts = counts.drop_columns(["day_counts"])
    elif "strata_counts" in counts.column_names:
        import pyarrow.compute as pc

        # Basis segment_day: Mantel-Haenszel over the per-segment strata listed by the SQL (STATISTICS.md);
        # the contact basis (NULL list) keeps the crude comparison.
        strata_counts = counts.column("strata_counts").combine_chunks()
        flat = pc.list_flatten(strata_counts)
        strata = (
            floats(flat.field("did_macro")),
            floats(flat.field("did_count")),
            floats(flat.field("did_not_macro")),
            floats(flat.field("did_not_count")),
            np.asarray(pc.list_parent_indices(strata_counts).to_numpy(zero_copy_only=False), dtype=np.int64),
        )
        stratified = np.asarray(strata_counts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        # Day cells of each stratum: the test permutes the micro's occurrence across a segment's days.
        permutation = tuple(
            floats(flat.field(f)) for f in ("cells", "did_cells", "sum_m2", "sum_mn", "sum_n2")
        )
        result, mh = stats.compare_with_strata(
            *crude,
            families,
            stratified,
            strata,
            gate,
            permutation=permutation,  # type: ignore[arg-type]
        )
        counts = counts.drop_columns(["strata_counts"])
    else:
        result = stats.compare_against_rest(*crude, families, gate)
    tested = result.tested & ~excluded
    gate_reason = np.where(
        excluded, "prerequisite of the macro (a step on its funnel path)", result.gate_reason
    )

    def masked(values: np.ndarray) -> pa.Array:
        return pa.array(np.where(tested, values, np.nan), pa.float64(), from_pandas=True)

    def finite(values: np.ndarray) -> pa.Array:
        return pa.array(values, pa.float64(), from_pandas=True)

    if model.name == "segment_summary":
        extra = {
            "rate": finite(result.rate),
            "rate_ci_low": finite(result.rate_ci_low),
            "rate_ci_high": finite(result.rate_ci_high),
            "rest_rate": finite(result.rest_rate),
        }
    else:
        from transforms.stats import wilson_interval

        did_low, did_high = wilson_interval(
            a.to_numpy(zero_copy_only=False), n1.to_numpy(zero_copy_only=False)
        )
        extra = {
            "did_macro_rate": finite(result.rate),
            "did_macro_rate_ci_low": finite(did_low),
            "did_macro_rate_ci_high": finite(did_high),
            "did_not_macro_rate": finite(result.rest_rate),
        }
    extra |= {
        "lift": finite(result.lift),
        "lift_ci_low": finite(result.lift_ci_low),
        "lift_ci_high": finite(result.lift_ci_high),
        "test_method": pa.array(
            [m if t else None for m, t in zip(result.test_method, tested, strict=True)], pa.string()
        ),
        "p_value": masked(result.p_value),
        "q_value": masked(result.q_value),
        "min_detectable_lift": masked(
            result.min_detectable_lift
            if result.min_detectable_lift is not None
            else np.full(tested.shape, np.nan)
        ),
        "significant": pa.array(result.significant & tested),
        "tested": pa.array(tested),
        "gate_reason": pa.array(
            [None if t else r for r, t in zip(gate_reason, tested, strict=True)], pa.string()
        ),
        "rank": pa.array([r if t else None for r, t in zip(result.rank, tested, strict=True)], pa.int32()),
    }
    if mh is not None:
        extra |= {
            "crude_lift": finite(stats.rate_ratio_katz(*crude)[0]),
            "strata": pa.array(mh.strata, pa.int64(), mask=~stratified),
            "strata_did_count": pa.array(mh.units, pa.int64(), mask=~stratified),
            "strata_did_not_count": pa.array(mh.rest_units, pa.int64(), mask=~stratified),
            "strata_macro": pa.array(mh.conversions, pa.int64(), mask=~stratified),
        }
    table = counts
    for name, column in extra.items():
        table = table.append_column(name, column)
    return table


def _run_stats_model(con: duckdb.DuckDBPyConnection, model: Model, gate: stats.MinimumSample) -> None:
    counts = con.sql(model.select_sql).to_arrow_table()
    table = _stats_columns(model, counts, gate)
    order = [c for c in model.column_comments if c in table.column_names]
    missing = [c for c in table.column_names if c not in model.column_comments]
    if missing:
        raise BuildError(f"{model.path.name}: column '{missing[0]}' has no '-- column' comment")
    _replace_from_arrow(con, model.qualified, table.select(order))
    _apply_comments(con, model)


def _dates_param(dates: Iterable[dt.date | str]) -> list[dt.date]:
    return sorted({d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)) for d in dates})


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> Any:
    return con.execute(sql, list(params or [])).fetchall()[0][0]


def _prepare_incremental_scope(
    con: duckdb.DuckDBPyConnection, dates: list[dt.date], state: dict[str, Any]
) -> None:
    """Fill the TEMP scope tables: requested dates, HubSpot records loaded since the last build, and
    every date those records touched before (their old rows are about to be replaced).

    Scope columns are named scope_* so that a scope macro's argument can never bind to them."""
    # GA4-derived rows are rebuilt for the requested dates; CRM-derived rows (and rows mixing both)
    # also for every date the re-staged HubSpot records touch.
    con.execute("CREATE OR REPLACE TEMP TABLE sw_scope_dates (scope_date DATE)")
    con.execute("CREATE OR REPLACE TEMP TABLE sw_scope_crm_dates (scope_date DATE)")
    if dates:
        con.execute("INSERT INTO sw_scope_dates SELECT unnest(?::DATE[])", [dates])
        con.execute("INSERT INTO sw_scope_crm_dates SELECT unnest(?::DATE[])", [dates])
    con.execute(
        "CREATE OR REPLACE TEMP TABLE sw_scope_deals AS SELECT DISTINCT portal_id AS scope_portal_id, "
        "id AS scope_deal_id FROM raw.hubspot_deals WHERE _loaded_at > ?",
        [state["deals_watermark"]],
    )
    # A sync re-delivers records it has delivered before (lookback windows, overlapping passes): only
    # contacts whose raw record differs from the one staged last time are re-staged.
    # The JSON of the delivered records is parsed once, for the scope and for _refresh_touched_contacts.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE sw_delivered_contacts AS
        SELECT portal_id AS delivered_portal_id, id AS delivered_id, sw_contact_key(id) AS delivered_key,
            sw_contact_content_hash(p, archived, merged_into, created_at) AS delivered_hash,
            sw_contact_updated_at(p[2], updated_at) AS delivered_updated_at_utc
        FROM (
            SELECT *, sw_contact_properties(properties) AS p FROM raw.hubspot_contacts WHERE _loaded_at > ?
        )
        """,
        [state["contacts_watermark"]],
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE sw_scope_contacts AS
        SELECT DISTINCT d.delivered_portal_id AS scope_portal_id, d.delivered_id AS scope_contact_id,
            d.delivered_key AS scope_contact_key
        FROM sw_delivered_contacts AS d
        LEFT JOIN staging.hubspot_contacts AS s ON s.portal_id = d.delivered_portal_id AND s.contact_key = d.delivered_key
        WHERE s._content_hash IS DISTINCT FROM d.delivered_hash
        """
    )
    # A changed deal changes its contact's facts (old and new association) and its close dates.
    con.execute(
        """
        INSERT INTO sw_scope_contacts
        SELECT d.portal_id, d.contact_id, d.contact_key FROM staging.hubspot_deals AS d
        JOIN sw_scope_deals AS s ON s.scope_portal_id = d.portal_id AND s.scope_deal_id = d.deal_id
        WHERE d.contact_id IS NOT NULL
        UNION
        SELECT r.portal_id, json_extract_string(r.contact_ids, '$[0]'),
            sw_contact_key(json_extract_string(r.contact_ids, '$[0]')) FROM raw.hubspot_deals AS r
        JOIN sw_scope_deals AS s ON s.scope_portal_id = r.portal_id AND s.scope_deal_id = r.id
        WHERE json_extract_string(r.contact_ids, '$[0]') IS NOT NULL
        EXCEPT
        SELECT scope_portal_id, scope_contact_id, scope_contact_key FROM sw_scope_contacts
        """
    )
    con.execute("CREATE OR REPLACE TEMP TABLE sw_snapshot_old (snapshot_date DATE, row_hash UBIGINT)")
    con.execute("CREATE OR REPLACE TEMP TABLE sw_snapshot_new (snapshot_date DATE, row_hash UBIGINT)")
    for target in ("sw_rows_old", "sw_rows_new"):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {target} (model VARCHAR, snapshot_date DATE, portal_id VARCHAR, "
            "contact_id VARCHAR, row_hash UBIGINT)"
        )
    con.execute(_DEAL_SNAPSHOT_SQL.format(target="sw_snapshot_old"))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE sw_scope_raw_contacts AS SELECT r.rowid AS scope_rowid "
        "FROM raw.hubspot_contacts AS r SEMI JOIN sw_scope_contacts AS s "
        "ON s.scope_portal_id = r.portal_id AND s.scope_contact_id = r.id"
    )


# Everything a staged HubSpot row contributes to the date-partitioned marts, per date: comparing the scoped
# records' rows before and after re-staging gives the dates whose CRM rows really changed (a bulk import
# that only bumps lastmodifieddate re-stages thousands of contacts but changes no date). The contact-keyed
# rows come from the DELETE ... RETURNING and INSERT ... RETURNING that re-stage them, so this costs no
# extra scan of the staging tables; only deals (joined to their contact's channel) are queried.
_CONTACT_ROW_SNAPSHOT = {
    "hubspot_contacts": "created_date, portal_id, contact_id, "
    "hash('contact', portal_id, contact_id, channel, country, merged_into)",
    "hubspot_contact_stage_events": "entered_date, portal_id, contact_id, "
    "hash('stage', portal_id, contact_id, stage, entered_at_utc, channel, country)",
    "hubspot_form_conversions": "converted_date, portal_id, contact_id, "
    "hash('form', portal_id, contact_id, form_name, position, converted_at_utc, channel, country)",
    "hubspot_contact_facts": "created_date, portal_id, contact_id, "
    "hash('facts', portal_id, contact_id, channel, hs_analytics_source, country, conversions, reached_macro)",
}
_DEAL_SNAPSHOT_SQL = """
INSERT INTO {target}
SELECT d.close_date, hash('deal', d.portal_id, d.deal_id, d.contact_id, d.pipeline, d.amount, d.is_closed_won,
    c.channel, c.country)
FROM (
    SELECT d.* FROM staging.hubspot_deals AS d
    SEMI JOIN sw_scope_contacts AS s ON s.scope_portal_id = d.portal_id AND s.scope_contact_key = d.contact_key
    UNION
    SELECT d.* FROM staging.hubspot_deals AS d
    SEMI JOIN sw_scope_deals AS s ON s.scope_portal_id = d.portal_id AND s.scope_deal_id = d.deal_id
) AS d
LEFT JOIN staging.hubspot_contacts AS c ON c.portal_id = d.portal_id AND c.contact_key = d.contact_key
"""


def _capture_rows(
    con: duckdb.DuckDBPyConnection, target: str, model_name: str, result: duckdb.DuckDBPyConnection
) -> None:
    assert target in ("sw_rows_old", "sw_rows_new")
    rows = pa.table(result.fetchnumpy())
    if not rows.num_rows:
        return
    con.register("_sw_returned_rows", rows)
    try:
        con.execute(f"INSERT INTO {target} SELECT ?, * FROM _sw_returned_rows", [model_name])
    finally:
        con.unregister("_sw_returned_rows")


def _mark_merged(con: duckdb.DuckDBPyConnection, target: str) -> None:
    """A staged contact row's contribution also depends on whether hubspot_merges lists it as merged away:
    fold that into its hash, as of now (the old rows before hubspot_merges is rebuilt, the new ones after)."""
    assert target in ("sw_rows_old", "sw_rows_new")
    con.execute(
        f"""
        UPDATE {target} AS r SET row_hash = hash(r.row_hash, EXISTS (
            SELECT 1 FROM staging.hubspot_merges AS m WHERE m.portal_id = r.portal_id AND m.merged_id = r.contact_id))
        WHERE r.model = 'hubspot_contacts'
        """
    )


def _add_changed_crm_dates(con: duckdb.DuckDBPyConnection) -> None:
    """After re-staging: the dates where the scoped records' rows differ before/after join the CRM scope."""
    _mark_merged(con, "sw_rows_new")
    con.execute("INSERT INTO sw_snapshot_old SELECT snapshot_date, row_hash FROM sw_rows_old")
    con.execute("INSERT INTO sw_snapshot_new SELECT snapshot_date, row_hash FROM sw_rows_new")
    con.execute(_DEAL_SNAPSHOT_SQL.format(target="sw_snapshot_new"))
    con.execute(
        """
        INSERT INTO sw_scope_crm_dates
        SELECT snapshot_date FROM (
            (SELECT * FROM sw_snapshot_old EXCEPT ALL SELECT * FROM sw_snapshot_new)
            UNION ALL
            (SELECT * FROM sw_snapshot_new EXCEPT ALL SELECT * FROM sw_snapshot_old)
        )
        """
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE sw_scope_crm_dates AS "
        "SELECT DISTINCT scope_date FROM sw_scope_crm_dates WHERE scope_date IS NOT NULL"
    )


def _refresh_touched_contacts(con: duckdb.DuckDBPyConnection) -> None:
    """Re-delivered contacts whose content is unchanged but whose lastmodifieddate moved are not re-staged
    (nothing downstream reads that instant): their staged updated_at_utc is brought up to date in place."""
    con.execute(
        """
        UPDATE staging.hubspot_contacts AS s SET updated_at_utc = d.delivered_updated_at_utc
        FROM sw_delivered_contacts AS d
        WHERE s.portal_id = d.delivered_portal_id AND s.contact_key = d.delivered_key
          AND s.updated_at_utc IS DISTINCT FROM d.delivered_updated_at_utc
        """
    )


def _extend_scope_with_merges(con: duckdb.DuckDBPyConnection) -> None:
    """Contacts newly listed as merged into a re-staged survivor leave the marts: scope them too
    (their stage, form and facts rows are captured as they are re-staged)."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE sw_scope_merged AS
        SELECT *, sw_contact_key(scope_contact_id) AS scope_contact_key FROM (
            SELECT DISTINCT c.portal_id AS scope_portal_id, unnest(c.merged_object_ids) AS scope_contact_id
            FROM staging.hubspot_contacts AS c
            JOIN sw_scope_contacts AS s ON s.scope_portal_id = c.portal_id AND s.scope_contact_key = c.contact_key
            EXCEPT
            SELECT scope_portal_id, scope_contact_id FROM sw_scope_contacts
            EXCEPT
            SELECT portal_id, merged_id FROM staging.hubspot_merges  -- merged before: already left out
        )
        """
    )
    if _scalar(con, "SELECT count(*) FROM sw_scope_merged"):
        # Their staged contact rows stay but now leave the marts: their creation dates and the close dates of
        # their deals change; their stage, form and facts rows are captured when re-staged with the scope.
        con.execute(
            """
            INSERT INTO sw_scope_crm_dates
            SELECT c.created_date FROM staging.hubspot_contacts AS c
            SEMI JOIN sw_scope_merged AS s ON s.scope_portal_id = c.portal_id AND s.scope_contact_key = c.contact_key
            UNION ALL
            SELECT d.close_date FROM staging.hubspot_deals AS d
            SEMI JOIN sw_scope_merged AS s ON s.scope_portal_id = d.portal_id AND s.scope_contact_key = d.contact_key
            """
        )
        con.execute("INSERT INTO sw_scope_contacts BY NAME SELECT * FROM sw_scope_merged")


def _read_state(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    if not _exists(con, "staging", "build_state"):
        return None
    cursor = con.execute("SELECT * FROM staging.build_state")
    rows = cursor.fetchall()
    if not rows:
        return None
    # Read by name: a state written before a column existed (ga4_watermark) still reads.
    row = dict(zip([d[0] for d in cursor.description], rows[0], strict=True))
    return {
        "config_fingerprint": row["config_fingerprint"],
        "contacts_watermark": row["contacts_watermark"] or dt.datetime(1970, 1, 1),
        "deals_watermark": row["deals_watermark"] or dt.datetime(1970, 1, 1),
        "ga4_watermark": row.get("ga4_watermark"),
    }


_GA4_RAW_TABLES = tuple(table for table in EXPECTED_RAW if table.startswith("ga4_"))
_GA4_WATERMARK_SQL = (
    "SELECT max(loaded_at) FROM ("
    + " UNION ALL ".join(f"SELECT max(_loaded_at) AS loaded_at FROM raw.{table}" for table in _GA4_RAW_TABLES)
    + ")"
)


def _changed_ga4_dates(con: duckdb.DuckDBPyConnection, watermark: dt.datetime) -> list[dt.date]:
    """GA4 dates whose raw rows were (re)loaded since the last build, plus dates the staged web sessions
    still hold but raw no longer does (a partition reloaded empty)."""
    loaded = " UNION ".join(
        f"SELECT date FROM raw.{table} WHERE _loaded_at > $watermark" for table in _GA4_RAW_TABLES
    )
    gone = "(SELECT date FROM staging.ga4_web_sessions EXCEPT SELECT date FROM raw.ga4_web_sessions)"
    return [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT date FROM ({loaded} UNION {gone}) ORDER BY 1", {"watermark": watermark}
        ).fetchall()
    ]


def _write_state(con: duckdb.DuckDBPyConnection, fingerprint: str, time_zone: str, lead_event: str) -> None:
    con.execute(
        f"""
        CREATE OR REPLACE TABLE staging.build_state AS
        SELECT ?::VARCHAR AS config_fingerprint, ?::VARCHAR AS time_zone, ?::VARCHAR AS lead_event_name,
            (SELECT max(_loaded_at) FROM raw.hubspot_contacts) AS contacts_watermark,
            (SELECT max(_loaded_at) FROM raw.hubspot_deals) AS deals_watermark,
            ({_GA4_WATERMARK_SQL}) AS ga4_watermark
        """,
        [fingerprint, time_zone, lead_event],
    )
    _comment_lookup(con, "staging.build_state")


def build_all(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    channel_mapping: ChannelMapping,
    *,
    dates: Iterable[dt.date | str] | Literal["changed"] | None = None,
    time_zone: str | None = None,
    lead_event_name: str = "generate_lead",
    unsettled_days: int = 2,
    gate: stats.MinimumSample = DEFAULT_GATE,
    follow_up_days: int = 60,
) -> BuildResult:
    """Build staging and marts from raw, fully (`dates=None`), for the given partition dates, or
    (`dates="changed"`) for the GA4 dates loaded since the last build, which is what a scheduled run wants.
    Every incremental request also takes the HubSpot records loaded since the last build.

    `catalog` and `channel_mapping` are validated objects (transforms.catalog.load_*). The reporting
    time zone is `time_zone` or the one recorded for the GA4 property (raw_load.record_ga4_property).
    `unsettled_days`: GA4 revises its most recent days (about 48 h), so the windows of segment_summary
    and micro_macro_lift end that many days before the last GA4 date (daily marts keep every day).
    `follow_up_days`: micro_macro_lift's contact basis follows each contact this many days from creation
    (only contacts created at least that long before the window's end count).
    """
    if isinstance(unsettled_days, bool) or not isinstance(unsettled_days, int) or unsettled_days < 0:
        raise BuildError(f"unsettled_days must be a whole number >= 0, not {unsettled_days!r}")
    if isinstance(follow_up_days, bool) or not isinstance(follow_up_days, int) or follow_up_days < 1:
        raise BuildError(f"follow_up_days must be a whole number >= 1, not {follow_up_days!r}")
    if not isinstance(catalog, Catalog) or not isinstance(channel_mapping, ChannelMapping):
        raise BuildError(
            "build_all needs a Catalog and a ChannelMapping from transforms.catalog.load_catalog/load_channel_mapping"
        )
    zone = _resolve_time_zone(con, time_zone)
    fingerprint = _config_fingerprint(
        catalog, channel_mapping, zone, f"{lead_event_name}|{unsettled_days}|{follow_up_days}"
    )
    requested: list[dt.date] | Literal["changed"] | None
    if dates is None or dates == "changed":
        requested = dates
    elif isinstance(dates, str):
        raise BuildError(f"dates must be None, 'changed' or a list of dates, not {dates!r}")
    else:
        requested = _dates_param(dates)

    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("SET VARIABLE sw_unsettled_days = ?", [unsettled_days])
        con.execute("SET VARIABLE sw_follow_up_days = ?", [follow_up_days])
        result = _build(con, catalog, channel_mapping, requested, zone, lead_event_name, fingerprint, gate)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return result


def _build(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    mapping: ChannelMapping,
    requested: list[dt.date] | Literal["changed"] | None,
    zone: str,
    lead_event: str,
    fingerprint: str,
    gate: stats.MinimumSample,
) -> BuildResult:
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    _ensure_raw(con)
    anomalies.ensure_state(con)  # the alert delivery state that marts.conversion_anomalies reads
    con.execute(MACROS_SQL)
    con.execute("SET VARIABLE sw_time_zone = ?", [zone])
    con.execute("SET VARIABLE sw_unmapped_channel = ?", [mapping.unmapped_channel])
    con.execute("SET VARIABLE sw_lead_event = ?", [lead_event])
    # The stage-entry properties staging parses (the DISTINCT names staging.hubspot_lifecycle_stages
    # discovers), known before the scope is prepared; a change in them re-parses every contact, so they are
    # part of the fingerprint and a change forces a full build.
    stage_properties = _set_stage_variables(con, from_raw=True)
    fingerprint = hashlib.sha256(f"{fingerprint}|{stage_properties}".encode()).hexdigest()

    state = _read_state(con)
    incremental = requested is not None
    reason = "dates given" if incremental else "no dates given"
    if incremental and state is None:
        incremental, reason = False, "first build"
    elif incremental and state is not None and state["config_fingerprint"] != fingerprint:
        incremental, reason = (
            False,
            "catalog, mapping, time zone, model SQL or discovered stage properties changed since the last build",
        )
    elif requested == "changed" and state is not None and state["ga4_watermark"] is None:
        incremental, reason = False, "the last build recorded no GA4 load watermark"
    if incremental and requested == "changed":
        assert state is not None
        requested = _changed_ga4_dates(con, state["ga4_watermark"])
        reason = f"GA4 dates loaded since the last build: {len(requested)}"
    result = BuildResult(mode="incremental" if incremental else "full", reason=reason)

    _load_lookups(con, catalog, mapping)
    if incremental:
        assert state is not None and isinstance(requested, list)
        _prepare_incremental_scope(con, requested, state)  # the scope macros bind these TEMP tables
    con.execute(INCREMENTAL_SCOPE_SQL if incremental else FULL_SCOPE_SQL)

    existing = {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() AND schema_name IN ('staging', 'marts')"
        ).fetchall()
    }
    for model in MODELS:
        started = time.perf_counter()
        try:
            _run_model(con, model, incremental, gate, existing)
        except duckdb.Error as exc:
            raise BuildError(f"{model.path.name} ({model.qualified}): {exc}") from exc
        if model.name == "hubspot_lifecycle_stages":
            _set_stage_variables(con)
        if incremental and model.name == "hubspot_contacts":
            _mark_merged(con, "sw_rows_old")  # before hubspot_merges is rebuilt
            _refresh_touched_contacts(con)
            _extend_scope_with_merges(con)
        if incremental and model.name == "hubspot_contact_facts":
            _add_changed_crm_dates(con)
        result.seconds[model.qualified] = time.perf_counter() - started

    if incremental:
        result.dates = [
            r[0] for r in con.execute("SELECT scope_date FROM sw_scope_crm_dates ORDER BY 1").fetchall()
        ]
        result.contacts = _scalar(con, "SELECT count(*) FROM sw_scope_contacts")
        result.deals = _scalar(con, "SELECT count(*) FROM sw_scope_deals")
    _write_state(con, fingerprint, zone, lead_event)
    counts = " UNION ALL ".join(f"SELECT '{table}', count(*) FROM marts.{table}" for table in MART_TABLES)
    result.row_counts = {name: int(rows) for name, rows in con.execute(counts).fetchall()}
    return result


def build_from_files(
    con: duckdb.DuckDBPyConnection,
    catalog_path: str | Path | None = None,
    channel_mapping_path: str | Path | None = None,
    **options: Any,
) -> BuildResult:
    """Validate both configuration files completely, then build: a bad file raises one ConfigError
    (file, line, field, fix) before anything is written. None means the shipped default."""
    from transforms.catalog import (
        DEFAULT_CATALOG_PATH,
        DEFAULT_CHANNEL_MAPPING_PATH,
        load_catalog,
        load_channel_mapping,
    )

    catalog = load_catalog(catalog_path or DEFAULT_CATALOG_PATH)
    mapping = load_channel_mapping(channel_mapping_path or DEFAULT_CHANNEL_MAPPING_PATH)
    return build_all(con, catalog, mapping, **options)
