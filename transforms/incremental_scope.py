"""The scope of an incremental build: which dates, HubSpot contacts and deals are rebuilt.

Scopes are TEMP macros the SQL calls (`sw_in_dates`, `sw_in_crm_dates`, `sw_in_contacts`,
`sw_in_raw_contacts`, `sw_in_deals`): `true` for a full build, a semi-join on the TEMP scope tables filled
here for an incremental one. GA4-derived rows are rebuilt for the requested dates; CRM-derived rows (and
rows mixing both) also for every date the re-staged HubSpot records touch, before or after re-staging.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from transforms.raw_schema import EXPECTED_RAW

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


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> Any:
    return con.execute(sql, list(params or [])).fetchall()[0][0]


def prepare_incremental_scope(
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
CONTACT_ROW_SNAPSHOT = {
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


def capture_rows(
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


def mark_merged(con: duckdb.DuckDBPyConnection, target: str) -> None:
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


def add_changed_crm_dates(con: duckdb.DuckDBPyConnection) -> None:
    """After re-staging: the dates where the scoped records' rows differ before/after join the CRM scope."""
    mark_merged(con, "sw_rows_new")
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


def refresh_touched_contacts(con: duckdb.DuckDBPyConnection) -> None:
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


def extend_scope_with_merges(con: duckdb.DuckDBPyConnection) -> None:
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
    if scalar(con, "SELECT count(*) FROM sw_scope_merged"):
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


def read_state(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    if not _build_state_exists(con):
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
GA4_WATERMARK_SQL = (
    "SELECT max(loaded_at) FROM ("
    + " UNION ALL ".join(f"SELECT max(_loaded_at) AS loaded_at FROM raw.{table}" for table in _GA4_RAW_TABLES)
    + ")"
)


def changed_ga4_dates(con: duckdb.DuckDBPyConnection, watermark: dt.datetime) -> list[dt.date]:
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


def _build_state_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        scalar(
            con,
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'staging' AND table_name = 'build_state'",
        )
    )
