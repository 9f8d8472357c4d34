"""Delivery state of marts.conversion_anomalies: which anomalies were already sent, kept across rebuilds.

The build (transforms.build) rebuilds the mart from scratch every time and reads this table for its
`delivered` column; only the delivery step writes it. One row per anomaly id, inserted once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb

DELIVERIES = "staging.conversion_anomaly_deliveries"
DELIVERIES_DDL = f"""
CREATE TABLE IF NOT EXISTS {DELIVERIES} (
    anomaly_id VARCHAR PRIMARY KEY,
    date DATE NOT NULL,
    delivered_at TIMESTAMP NOT NULL,
    channels VARCHAR NOT NULL
)
"""
_COMMENT = (
    "Delivery state of marts.conversion_anomalies (written by the alert delivery, read by the build): one "
    "row per anomaly already sent, with when and through which channels (email, slack). Survives rebuilds."
)

_COLUMN_COMMENTS = {
    "anomaly_id": "marts.conversion_anomalies.anomaly_id of the delivered anomaly.",
    "date": "The anomaly's day (property-local).",
    "delivered_at": "When every configured channel took the alert (UTC).",
    "channels": "Channels it went out by, comma separated: email, slack.",
}


def ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    """Create the delivery-state table if missing (the build calls this before the models)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute(DELIVERIES_DDL)
    # COMMENT ON takes no parameters; the texts are constants of this module.
    con.execute(f"COMMENT ON TABLE {DELIVERIES} IS {_literal(_COMMENT)}")
    for column, text in _COLUMN_COMMENTS.items():
        con.execute(f"COMMENT ON COLUMN {DELIVERIES}.{column} IS {_literal(text)}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def mark_delivered(
    con: duckdb.DuckDBPyConnection,
    anomaly_ids: Sequence[str],
    channels: Sequence[str],
    at: dt.datetime | None = None,
) -> int:
    """Record the anomalies as delivered (state table and the mart's `delivered` column) in one
    transaction. Ids already recorded are left as they were. Returns how many were newly recorded."""
    if not anomaly_ids:
        return 0
    when = at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ensure_state(con)
    con.execute("BEGIN TRANSACTION")
    try:
        before = con.execute(f"SELECT count(*) FROM {DELIVERIES}").fetchall()[0][0]
        con.execute(
            f"""
            INSERT INTO {DELIVERIES}
            SELECT a.anomaly_id, a.date, ?::TIMESTAMP, ? FROM marts.conversion_anomalies AS a
            WHERE a.anomaly_id IN (SELECT unnest(?::VARCHAR[]))
            ON CONFLICT DO NOTHING
            """,
            [when, ",".join(channels), list(anomaly_ids)],
        )
        after = con.execute(f"SELECT count(*) FROM {DELIVERIES}").fetchall()[0][0]
        con.execute(
            f"""
            UPDATE marts.conversion_anomalies AS a SET delivered = true, delivered_at = d.delivered_at
            FROM {DELIVERIES} AS d WHERE d.anomaly_id = a.anomaly_id AND NOT a.delivered
            """
        )
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return int(after - before)
