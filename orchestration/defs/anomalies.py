"""Alerts group: conversion anomalies delivered once by e-mail and Slack, and a WARN check on open ones.

marts.conversion_anomalies is built with the other marts (transforms.build, one transaction). This asset
runs after it: it sends the anomalies not delivered yet (within STEPWISE_ALERT_LOOKBACK_DAYS of the last
judged day) through the weekly report's channels, and records them in staging.conversion_anomaly_deliveries,
which survives rebuilds, so an anomaly is never sent twice. An anomaly counts as delivered only when every
configured channel took it; with no channel configured nothing is sent and nothing recorded.
"""

import dagster as dg

from orchestration.connections import Ga4Resource, HubSpotResource, data_source_label
from orchestration.settings import DUCKDB_POOL, OWNERS, StepwiseConfigError, load_settings
from orchestration.table_meta import table_exists
from orchestration.warehouse import WarehouseResource
from reporting.alerts import deliver_alerts, open_anomalies, pending_alerts
from reporting.delivery_settings import DeliverySettings
from reporting.safe_text import markdown_text
from transforms.anomalies import mark_delivered

ANOMALIES_KEY = dg.AssetKey(["marts", "conversion_anomalies"])
ALERTS_KEY = dg.AssetKey(["alerts", "conversion_anomaly_alerts"])
OPEN_DAYS = 14  # an anomaly this close to the last judged day is still 'open'


def _table(alerts: list) -> str:
    if not alerts:
        return "_none_"
    rows = [
        "| day | series | kind | events | expected | interval | severity |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for a in alerts[:50]:
        rows.append(
            f"| {a.date} | {markdown_text(a.series_label)} | {a.kind} | {a.observed:,} | {a.expected:,.0f} | "
            f"{a.interval_low:,.0f}–{a.interval_high:,.0f} | {a.severity} |"
        )
    return "\n".join(rows)


@dg.asset(
    key=ALERTS_KEY,
    group_name="alerts",
    kinds={"duckdb", "email", "slack"},
    owners=OWNERS,
    pool=DUCKDB_POOL,
    deps=[ANOMALIES_KEY],
    check_specs=[
        dg.AssetCheckSpec(
            "alert_delivery",
            asset=ALERTS_KEY,
            description="Every configured channel (SMTP e-mail, Slack webhook) took the new alerts within its retries.",
        )
    ],
    description=(
        "Sends the conversion anomalies of marts.conversion_anomalies not delivered yet (within "
        "STEPWISE_ALERT_LOOKBACK_DAYS, default 28, of the last judged day) by e-mail and/or Slack, once each, "
        "and records them (the mart's `delivered` column; the state survives rebuilds)."
    ),
)
def conversion_anomaly_alerts(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    ga4: Ga4Resource,
    hubspot: HubSpotResource,
):
    try:
        loaded = load_settings()
    except StepwiseConfigError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    settings: DeliverySettings = loaded.delivery
    lookback = loaded.alert_lookback_days
    sandbox = data_source_label(ga4, hubspot) == "sandbox"
    with warehouse.connect(read_only=True) as con:
        pending = pending_alerts(con, lookback) if table_exists(con, "marts", "conversion_anomalies") else []
    outcomes = deliver_alerts(pending, settings, sandbox=sandbox) if settings.configured else []
    delivered = 0
    if pending and outcomes and all(o.ok for o in outcomes):
        with warehouse.connect() as con:
            delivered = mark_delivered(con, [a.anomaly_id for a in pending], [o.channel for o in outcomes])
    if pending and not settings.configured:
        context.log.warning(
            f"{len(pending)} conversion anomal(ies) not delivered: no channel configured "
            "(STEPWISE_SMTP_HOST/STEPWISE_SMTP_TO or STEPWISE_SLACK_WEBHOOK_URL)"
        )
    failed = [o for o in outcomes if not o.ok]
    yield dg.MaterializeResult(
        metadata={
            "pending": dg.MetadataValue.int(len(pending)),
            "delivered": dg.MetadataValue.int(delivered),
            "channels": dg.MetadataValue.json([o.as_metadata() for o in outcomes]),
            "alerts": dg.MetadataValue.md(_table(pending)),
            "lookback_days": dg.MetadataValue.int(lookback),
        }
    )
    yield dg.AssetCheckResult(
        check_name="alert_delivery",
        passed=not failed,
        metadata={"outcomes": dg.MetadataValue.json([o.as_metadata() for o in outcomes])},
        description=None if not failed else "; ".join(f"{o.channel}: {o.detail}" for o in failed),
    )


@dg.asset_check(
    asset=ANOMALIES_KEY,
    name="no_open_anomalies",
    blocking=False,
    pool=DUCKDB_POOL,
    description=(
        f"WARNs while marts.conversion_anomalies holds an anomaly within {OPEN_DAYS} days of the last judged "
        "day (a conversion or funnel step that stopped, dropped or spiked), delivered or not."
    ),
)
def no_open_anomalies(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        if not table_exists(con, "marts", "conversion_anomalies"):
            return dg.AssetCheckResult(passed=True, description="marts.conversion_anomalies is not built yet")
        found = open_anomalies(con, OPEN_DAYS)
    return dg.AssetCheckResult(
        passed=not found,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "open_anomalies": dg.MetadataValue.int(len(found)),
            "anomalies": dg.MetadataValue.md(_table(found)),
        },
        description=None if not found else "; ".join(markdown_text(a.sentence) for a in found[:5]),
    )
