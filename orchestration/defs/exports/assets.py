"""The weekly summary export asset, its job and schedule, and the `delivery` check.

One partition per ISO week (Monday to Sunday, in STEPWISE_TIME_ZONE). A run reads the published
analyst file read-only (never the working file, so it neither waits for nor blocks the pipeline),
writes `<STEPWISE_EXPORT_DIR>/<YYYY-Www>/`, then delivers by e-mail and/or Slack when configured.
A delivery that still fails after its retries fails the `delivery` check; the files stay written.
"""

import datetime as dt
import os

import dagster as dg

from orchestration.connections import Ga4Resource, HubSpotResource, data_source_label
from orchestration.settings import OWNERS, load_settings, resolve_path, start_date, time_zone
from orchestration.warehouse import WarehouseResource
from reporting.delivery import HEADLINE_FIELDS, DeliveryOutcome, deliver
from reporting.delivery_settings import DeliverySettings
from reporting.report import ExportResult, run_export
from reporting.safe_text import markdown_text

try:
    from orchestration.defs.publish import PUBLISH_KEY
except ImportError:  # the publish asset's module moved: depend on its documented key
    PUBLISH_KEY = dg.AssetKey(["publish", "analyst_duckdb"])

EXPORT_KEY = dg.AssetKey(["export", "weekly_summary"])
DEFAULT_CRON = "0 7 * * 1"


def export_cron() -> str:
    return load_settings().export_cron


def export_root() -> str:
    return load_settings().export_dir


# Weeks start on Monday (day_offset=1), so a partition key is the Monday of an ISO week.
WEEKLY = dg.WeeklyPartitionsDefinition(start_date=start_date(), timezone=time_zone(), day_offset=1)


def _delivery_markdown(outcomes: list[DeliveryOutcome]) -> str:
    if not outcomes:
        return (
            "_No delivery configured: set STEPWISE_SMTP_HOST/STEPWISE_SMTP_TO or STEPWISE_SLACK_WEBHOOK_URL._"
        )
    rows = ["| channel | result | attempts | target | detail |", "|---|---|---|---|---|"]
    for o in outcomes:
        rows.append(
            f"| {o.channel} | {'ok' if o.ok else '**failed**'} | {o.attempts} | {o.target} | {o.detail} |"
        )
    return "\n".join(rows)


def _headline_markdown(result: ExportResult) -> str:
    rows = ["| metric | this week | previous | change |", "|---|---:|---:|---:|"]
    for key, label, fmt in HEADLINE_FIELDS:
        value, previous = result.headline.get(key), result.headline.get(f"{key}_previous")
        if value is None:
            continue

        def shown(v: float | None, key: str = key, fmt: str = fmt) -> str:
            if v is None:
                return "–"
            return f"{v * 100:.2f} %" if key.endswith("_rate") else fmt.format(v)

        change = result.headline.get(f"{key}_change")
        delta = "new" if change is None else f"{change * 100:+.1f} %"
        rows.append(f"| {label} | {shown(value)} | {shown(previous)} | {delta} |")
    return "\n".join(rows)


def _metadata(
    result: ExportResult, outcomes: list[DeliveryOutcome], location: str
) -> dict[str, dg.MetadataValue]:
    h = result.headline
    meta: dict[str, dg.MetadataValue] = {
        "report_path": dg.MetadataValue.path(os.path.abspath(result.report_path)),
        "export_dir": dg.MetadataValue.path(os.path.abspath(result.out_dir)),
        "report_location": dg.MetadataValue.text(location),
        "period": dg.MetadataValue.text(result.period_label),
        "period_start": dg.MetadataValue.text(result.period.start.isoformat()),
        "period_end": dg.MetadataValue.text(result.period.end.isoformat()),
        "files": dg.MetadataValue.md("\n".join(f"- `{p.name}`" for p in result.files)),
        "file_count": dg.MetadataValue.int(len(result.files)),
        "data_source": dg.MetadataValue.text(result.data_source),
        "headline": dg.MetadataValue.md(_headline_markdown(result)),
        # Findings and notes name campaigns and pages (public input): no links or HTML from them.
        "findings": dg.MetadataValue.md(
            "\n".join(f"- {markdown_text(f)}" for f in h.get("findings", [])) or "_none_"
        ),
        "data_quality_notes": dg.MetadataValue.md(
            "\n".join(f"- {markdown_text(n)}" for n in result.notes) or "_none_"
        ),
        "delivery": dg.MetadataValue.md(_delivery_markdown(outcomes)),
        # Where e-mail-shaped values (public UTM/form input) were redacted; counts only, never the values.
        "personal_data_redacted_columns": dg.MetadataValue.int(len(result.redactions)),
        "personal_data_redactions": dg.MetadataValue.json(result.redactions),
    }
    for key in ("sessions", "micro_conversions", "macro_conversions", "macro_value"):
        if h.get(key) is not None:
            meta[f"headline_{key}"] = dg.MetadataValue.float(float(h[key]))
    if h.get("web_macro_rate") is not None:
        meta["headline_web_macro_rate"] = dg.MetadataValue.float(float(h["web_macro_rate"]))
    for key in ("micro_conversions", "macro_conversions"):
        change = h.get(f"{key}_change")
        if change is not None:
            meta[f"headline_{key}_change_pct"] = dg.MetadataValue.float(round(100 * float(change), 2))
    return meta


@dg.asset(
    key=EXPORT_KEY,
    group_name="export",
    kinds={"duckdb", "html", "csv", "parquet", "email", "slack"},
    owners=OWNERS,
    deps=[PUBLISH_KEY],
    partitions_def=WEEKLY,
    check_specs=[
        dg.AssetCheckSpec(
            "delivery",
            asset=EXPORT_KEY,
            description=(
                "Every configured delivery (SMTP e-mail, Slack webhook) succeeded within its retries. "
                "Passes when none is configured. A failure leaves the export files in place."
            ),
        )
    ],
    description=(
        "The weekly summary for marketing: summary.html (headline micro and macro numbers against the "
        "previous week, funnel drop-off, trends, segment ranking with intervals, micro conversions that "
        "lead to macro conversions, the web-to-CRM channel funnel, data-quality notes) plus CSV and "
        "Parquet of the summary marts, written to STEPWISE_EXPORT_DIR/<ISO week>/ from the published "
        "analyst file. Aggregates only: no personal data. Delivered by e-mail (STEPWISE_SMTP_*) and/or "
        "Slack (STEPWISE_SLACK_WEBHOOK_URL) when configured."
    ),
)
def weekly_summary(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    ga4: Ga4Resource,
    hubspot: HubSpotResource,
) -> dg.MaterializeResult:
    # Delivery settings are validated first: a bad setting fails before anything is written.
    loaded = load_settings()
    settings: DeliverySettings = loaded.delivery
    week_start = dt.date.fromisoformat(context.partition_key[:10])
    sandbox = True if data_source_label(ga4, hubspot) == "sandbox" else None
    result = run_export(
        warehouse.analyst_file,
        out_root=resolve_path(export_root()),
        period_end=week_start + dt.timedelta(days=6),
        period_days=7,
        sandbox=sandbox,
        crm_cohort_lag_days=loaded.crm_cohort_lag_days,
    )
    context.log.info(
        f"wrote the {result.period_label} summary to {result.out_dir} ({result.data_source} data)"
    )
    for r in result.redactions:
        context.log.warning(
            f"redacted {r['values']} e-mail-shaped value(s) in {r['schema']}.{r['table']}.{r['column']} "
            f"({r['rows']} row(s)) from the {result.period_label} export"
        )
    outcomes = deliver(result, settings)
    failed = [o for o in outcomes if not o.ok]
    for o in failed:
        context.log.error(f"{o.channel} delivery failed ({o.target}): {o.detail}")
    location = settings.report_location(result)
    check = dg.AssetCheckResult(
        check_name="delivery",
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "no delivery configured"
            if not outcomes
            else "; ".join(
                f"{o.channel}: {'ok' if o.ok else 'failed'} after {o.attempts} attempt(s)" for o in outcomes
            )
        ),
        metadata={
            "configured": dg.MetadataValue.text(", ".join(settings.configured) or "none"),
            "failed": dg.MetadataValue.text(", ".join(o.channel for o in failed) or "none"),
            "outcomes": dg.MetadataValue.md(_delivery_markdown(outcomes)),
            "files_kept": dg.MetadataValue.path(os.path.abspath(result.out_dir)),
        },
    )
    return dg.MaterializeResult(metadata=_metadata(result, outcomes, location), check_results=[check])


weekly_summary_job = dg.define_asset_job(
    name="weekly_summary_export",
    selection=dg.AssetSelection.assets(EXPORT_KEY),
    description="Write and deliver the summary export for one ISO week (pick the week in the launchpad).",
)


@dg.schedule(
    name="weekly_summary_export_schedule",
    job=weekly_summary_job,
    cron_schedule=export_cron(),
    execution_timezone=time_zone(),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "STEPWISE_EXPORT_CRON (default '0 7 * * 1', Mondays 07:00) in STEPWISE_TIME_ZONE: the summary "
        "of the last complete ISO week."
    ),
)
def weekly_summary_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    with dg.partition_loading_context(effective_dt=context.scheduled_execution_time):
        last_week = WEEKLY.get_last_partition_key()
    if last_week is None:
        return dg.SkipReason("no complete week since STEPWISE_START_DATE yet")
    return dg.RunRequest(
        run_key=f"summary-{last_week}", partition_key=last_week, tags={"stepwise/trigger": "schedule"}
    )
