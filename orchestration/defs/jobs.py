"""Jobs and the daily schedule.

`stepwise_daily` runs ingest -> staging -> marts -> publish for a daily partition range, so the
downstream tables follow in the same run (no extra automation ticks), and a backfill of any range
from the UI is one run (single-run backfill policy on the partitioned assets).
"""

import dagster as dg

from orchestration.settings import DAILY, schedule_hour

PIPELINE_GROUPS = ("ingest", "staging", "marts", "publish", "alerts")
# Runs that write the DuckDB working file carry this tag; the deployment's queue runs one of them at a
# time (tag_concurrency_limits in orchestration/deployment.py), as DuckDB allows one writing process.
WAREHOUSE_WRITER_TAGS = {"stepwise/writes": "warehouse"}

stepwise_daily = dg.define_asset_job(
    name="stepwise_daily",
    selection=dg.AssetSelection.groups(*PIPELINE_GROUPS),
    partitions_def=DAILY,
    tags=WAREHOUSE_WRITER_TAGS,
    description=(
        "Ingest GA4 and HubSpot for a range of days, rebuild staging and marts, run their checks, "
        "publish the analyst file, and deliver new conversion anomaly alerts."
    ),
)

rebuild_models = dg.define_asset_job(
    name="rebuild_models",
    selection=dg.AssetSelection.groups("staging", "marts", "publish"),
    tags=WAREHOUSE_WRITER_TAGS,
    description="Rebuild staging and marts from what raw already holds (no API calls), then publish.",
    config={"ops": {"warehouse_model": {"config": {"full_rebuild": True}}}},
)


# The latest complete day each morning; each GA4 asset also re-fetches the STEPWISE_LOOKBACK_DAYS days
# before it (GA4 still revises them), so the schedule needs no range of its own.
stepwise_daily_schedule = dg.build_schedule_from_partitioned_job(
    stepwise_daily,
    name="stepwise_daily_schedule",
    hour_of_day=schedule_hour(),
    minute_of_hour=0,
    description=(
        "Every day at STEPWISE_SCHEDULE_HOUR (default 6) in STEPWISE_TIME_ZONE: yesterday's partition; "
        "the GA4 assets re-fetch the STEPWISE_LOOKBACK_DAYS days before it."
    ),
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
