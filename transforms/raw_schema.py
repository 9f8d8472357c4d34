"""The raw tables the SQL models read, with the columns they need (docs/CONTRACTS.md §3/§4).

A missing table (a report not configured, a source not connected) is created empty with these columns so
the build still runs; an older load lacking a column added later gets it, empty.
"""

from __future__ import annotations

import duckdb

from transforms.raw_load import REQUEST_LOG_COLUMNS

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


def ensure_raw(con: duckdb.DuckDBPyConnection) -> None:
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
        for column_def in split_columns(ddl):
            name = column_def.split()[0].strip('"')
            if name not in have:
                con.execute(f"ALTER TABLE raw.{table} ADD COLUMN {column_def}")


def split_columns(ddl: str) -> list[str]:
    return [part.strip() for part in ddl.split(",")]
