"""Jobs and the daily schedule.

`stepwise_daily` runs ingest -> staging -> marts -> publish for a daily partition range, so the
downstream tables follow in the same run (no extra automation ticks), and a backfill of any range
from the UI is one run (single-run backfill policy on the partitioned assets).
"""

import datetime as dt

import dagster as dg

from orchestration.settings import DAILY, lookback_days, schedule_hour, time_zone

PIPELINE_GROUPS = ("ingest", "staging", "marts", "publish")
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

stepwise_daily = dg.define_asset_job(
    name="stepwise_daily",
    selection=dg.AssetSelection.groups(*PIPELINE_GROUPS),
    partitions_def=DAILY,
    description=(
        "Ingest GA4 and HubSpot for a range of days, rebuild staging and marts, run their checks, "
        "and publish the analyst file."
    ),
)

rebuild_models = dg.define_asset_job(
    name="rebuild_models",
    selection=dg.AssetSelection.groups("staging", "marts", "publish"),
    description="Rebuild staging and marts from what raw already holds (no API calls), then publish.",
)


def lookback_range(scheduled: dt.datetime, lookback: int) -> tuple[str, str] | None:
    """(first, last) partition keys: the last complete day and the `lookback` days before it."""
    last = DAILY.get_last_partition_key(current_time=scheduled)
    if last is None:
        return None
    keys = DAILY.get_partition_keys(current_time=scheduled)
    first = keys[max(0, len(keys) - 1 - lookback)]
    return first, last


@dg.schedule(
    name="stepwise_daily_schedule",
    job=stepwise_daily,
    cron_schedule=f"0 {schedule_hour()} * * *",
    execution_timezone=time_zone(),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "Every day at STEPWISE_SCHEDULE_HOUR (default 6) in STEPWISE_TIME_ZONE: yesterday plus the "
        "STEPWISE_LOOKBACK_DAYS days before it (GA4 still revises them), as one run."
    ),
)
def stepwise_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    window = lookback_range(context.scheduled_execution_time, lookback_days())
    if window is None:
        return dg.SkipReason("no complete day in the partition range yet (STEPWISE_START_DATE)")
    first, last = window
    return dg.RunRequest(
        run_key=f"daily-{last}",
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last, "stepwise/trigger": "schedule"},
    )
