"""Build `staging` and `marts` from `raw` in DuckDB: the SQL models under transforms/sql, in the order
their contracts' inputs give (transforms.model_contracts).

Configuration reaches the SQL as small tables (staging.conversion_catalog, staging.channel_mapping,
staging.channel_groups) and DuckDB variables set with parameters (time zone, discovered stage
properties); no value is pasted into SQL text. Each model's table is written by its contract's write
strategy (transforms.write_strategies, transforms.stats_models) within the scope of the build
(transforms.incremental_scope).

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from transforms import anomalies, stats
from transforms import incremental_scope as scope
from transforms.catalog import GA4_DEFAULT_CHANNEL_GROUPS, Catalog, ChannelMapping
from transforms.model_contracts import (
    CRM_KEYED_STRATEGIES,
    CRM_SCOPE_TABLES,
    SQL_DIR,
    BuildError,
    ContractError,
    Model,
    load_models,
)
from transforms.raw_schema import EXPECTED_RAW, ensure_raw
from transforms.stats_models import write_statistics_model
from transforms.write_strategies import quote, replace_from_arrow, write_sql_model
from transforms.zones import AccountZones, ZoneError, resolve_account_zones, set_zone_macros

__all__ = [
    "BuildError",
    "BuildResult",
    "ContractError",
    "EXPECTED_RAW",
    "Model",
    "MODELS",
    "MART_TABLES",
    "SQL_DIR",
    "build_all",
    "build_from_files",
    "load_models",
]

# Every model build_all builds, in build order (a broken contract fails here, at import, with one message).
MODELS = load_models()
# The analyst-facing tables of DESIGN.md: every marts model, in build order.
MART_TABLES = tuple(m.name for m in MODELS if m.schema == "marts")
_STAGE_PROPERTY = re.compile(r"hs_v2_date_entered_[A-Za-z0-9_]+")

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


DEFAULT_GATE = stats.MinimumSample()


@dataclass
class BuildResult:
    mode: str  # 'full' or 'incremental'
    dates: list[dt.date] = field(default_factory=list)  # dates rebuilt (incremental)
    contacts: int = 0  # HubSpot contacts re-staged (incremental)
    deals: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # per model
    row_counts: dict[str, int] = field(default_factory=dict)  # marts.* after the build
    reason: str = ""


def _config_fingerprint(catalog: Catalog, mapping: ChannelMapping, time_zone: str, lead_event: str) -> str:
    payload = {
        "catalog": [dataclasses.asdict(c) for c in catalog.conversions],
        "mapping": mapping.mapping,
        "unmapped": mapping.unmapped_channel,
        "time_zone": time_zone,
        "lead_event": lead_event,
        "models": sorted((m.qualified, m.select_sql) for m in MODELS),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


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
            "time_zone": "Reporting time zone (the GA4 property's) used for HubSpot dates; with portals in several zones, 'per portal: <portal>=<zone>, ...' (transforms/zones.py).",
            "lead_event_name": "GA4 lead event and unsettled-days setting of the build.",
            "contacts_watermark": "Newest raw.hubspot_contacts _loaded_at the build saw.",
            "deals_watermark": "Newest raw.hubspot_deals _loaded_at the build saw.",
            "ga4_watermark": "Newest _loaded_at of the raw GA4 tables the build saw (dates='changed' rebuilds the dates loaded after it).",
        },
    ),
}


def _comment_lookup(con: duckdb.DuckDBPyConnection, qualified: str) -> None:
    table_comment, columns = LOOKUP_COMMENTS[qualified]
    con.execute(f"COMMENT ON TABLE {qualified} IS {quote(table_comment)}")
    for column, text in columns.items():
        con.execute(f'COMMENT ON COLUMN {qualified}."{column}" IS {quote(text)}')


def _load_lookups(con: duckdb.DuckDBPyConnection, catalog: Catalog, mapping: ChannelMapping) -> None:
    replace_from_arrow(con, "staging.conversion_catalog", catalog.to_arrow())
    replace_from_arrow(con, "staging.channel_mapping", mapping.to_arrow())
    groups = list(GA4_DEFAULT_CHANNEL_GROUPS)
    replace_from_arrow(
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


def _dates_param(dates: Iterable[dt.date | str]) -> list[dt.date]:
    return sorted({d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)) for d in dates})


def _write_state(con: duckdb.DuckDBPyConnection, fingerprint: str, time_zone: str, lead_event: str) -> None:
    con.execute(
        f"""
        CREATE OR REPLACE TABLE staging.build_state AS
        SELECT ?::VARCHAR AS config_fingerprint, ?::VARCHAR AS time_zone, ?::VARCHAR AS lead_event_name,
            (SELECT max(_loaded_at) FROM raw.hubspot_contacts) AS contacts_watermark,
            (SELECT max(_loaded_at) FROM raw.hubspot_deals) AS deals_watermark,
            ({scope.GA4_WATERMARK_SQL}) AS ga4_watermark
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
    time zone is `time_zone` or the one recorded for the GA4 property (raw_load.record_ga4_property); each
    HubSpot portal recorded with raw_load.record_hubspot_portal has its days cut in its own zone (transforms/zones.py).
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
    try:
        zones = resolve_account_zones(con, time_zone)  # each portal's zone and property (transforms/zones.py)
    except ZoneError as exc:
        raise BuildError(str(exc)) from None
    fingerprint = _config_fingerprint(
        catalog, channel_mapping, zones.fingerprint(), f"{lead_event_name}|{unsettled_days}|{follow_up_days}"
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
        result = _build(con, catalog, channel_mapping, requested, zones, lead_event_name, fingerprint, gate)
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
    zones: AccountZones,
    lead_event: str,
    fingerprint: str,
    gate: stats.MinimumSample,
) -> BuildResult:
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    ensure_raw(con)
    anomalies.ensure_state(con)  # the alert delivery state that marts.conversion_anomalies reads
    con.execute(MACROS_SQL)
    con.execute("SET VARIABLE sw_time_zone = ?", [zones.default_zone])
    set_zone_macros(con, zones)
    con.execute("SET VARIABLE sw_unmapped_channel = ?", [mapping.unmapped_channel])
    con.execute("SET VARIABLE sw_lead_event = ?", [lead_event])
    # The stage-entry properties staging parses (the DISTINCT names staging.hubspot_lifecycle_stages
    # discovers), known before the scope is prepared; a change in them re-parses every contact, so they are
    # part of the fingerprint and a change forces a full build.
    stage_properties = _set_stage_variables(con, from_raw=True)
    fingerprint = hashlib.sha256(f"{fingerprint}|{stage_properties}".encode()).hexdigest()

    state = scope.read_state(con)
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
        requested = scope.changed_ga4_dates(con, state["ga4_watermark"])
        reason = f"GA4 dates loaded since the last build: {len(requested)}"
    result = BuildResult(mode="incremental" if incremental else "full", reason=reason)

    _load_lookups(con, catalog, mapping)
    if incremental:
        assert state is not None and isinstance(requested, list)
        scope.prepare_incremental_scope(con, requested, state)  # the scope macros bind these TEMP tables
    con.execute(scope.INCREMENTAL_SCOPE_SQL if incremental else scope.FULL_SCOPE_SQL)

    existing = {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() AND schema_name IN ('staging', 'marts')"
        ).fetchall()
    }
    # The CRM date scope is complete once the last model it snapshots is re-staged (model_contracts orders
    # every model that reads that scope after it).
    crm_scope_done = max(
        i for i, m in enumerate(MODELS) if m.write in CRM_KEYED_STRATEGIES or m.qualified in CRM_SCOPE_TABLES
    )
    for index, model in enumerate(MODELS):
        started = time.perf_counter()
        try:
            if model.write == "replace_all_statistics":
                write_statistics_model(con, model, gate)
            else:
                write_sql_model(con, model, incremental, existing)
        except duckdb.Error as exc:
            raise BuildError(f"{model.path.name} ({model.qualified}): {exc}") from exc
        if model.qualified == "staging.hubspot_lifecycle_stages":
            _set_stage_variables(con)
        if incremental and model.qualified == "staging.hubspot_contacts":
            scope.mark_merged(con, "sw_rows_old")  # before hubspot_merges is rebuilt
            scope.refresh_touched_contacts(con)
            scope.extend_scope_with_merges(con)
        if incremental and index == crm_scope_done:
            scope.add_changed_crm_dates(con)
        result.seconds[model.qualified] = time.perf_counter() - started

    if incremental:
        result.dates = [
            r[0] for r in con.execute("SELECT scope_date FROM sw_scope_crm_dates ORDER BY 1").fetchall()
        ]
        result.contacts = scope.scalar(con, "SELECT count(*) FROM sw_scope_contacts")
        result.deals = scope.scalar(con, "SELECT count(*) FROM sw_scope_deals")
    _write_state(con, fingerprint, zones.state_label(), lead_event)
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
