"""Jobs and the daily schedule.

`stepwise_daily` runs ingest -> staging -> marts -> publish for a daily partition range, so the
downstream tables follow in the same run (no extra automation ticks), and a backfill of any range
from the UI is one run (single-run backfill policy on the partitioned assets).

With an accounts file (STEPWISE_ACCOUNTS) there is one such job per account instead, `stepwise_<label>`,
partitioned by the account's own local days, with its own schedule at STEPWISE_SCHEDULE_HOUR in the
account's zone: each account's day is requested once it has ended where the account is, a failing account
fails its own run only (the others build and publish in theirs), and one account is backfilled alone from
its job. Within a run, publish still waits for every ingest step of the run (publish.py).
"""

from typing import Any

import dagster as dg

from orchestration.defs.experiments import RAW_KEY as EXPERIMENTS_RAW_KEY
from orchestration.defs.experiments import READOUT_KEY
from orchestration.defs.ingest import ACCOUNT_DAILY, ACCOUNTS, PER_ACCOUNT, account_ingest_keys
from orchestration.settings import DAILY, schedule_hour

PIPELINE_GROUPS = ("ingest", "staging", "marts", "publish", "alerts")
# Runs that write the DuckDB working file carry this tag; the deployment's queue runs one of them at a
# time (tag_concurrency_limits in orchestration/dagster_instance.yaml, the dev and the deployed instance
# alike), as DuckDB allows one writing process.
WAREHOUSE_WRITER_TAGS = {"stepwise/writes": "warehouse"}


def account_job(label: str) -> Any:
    """One account's daily job: its ingest assets, then the shared staging, marts, publish and alerts."""
    selection = (
        dg.AssetSelection.assets(*account_ingest_keys(label), dg.AssetKey(["raw", "request_log"]))
        | dg.AssetSelection.groups("staging", "marts", "publish", "alerts")
        # The experiments report covers every property in STEPWISE_TIME_ZONE's days (DAILY), not one account's.
    ) - dg.AssetSelection.assets(EXPERIMENTS_RAW_KEY, READOUT_KEY)
    return dg.define_asset_job(
        name=f"stepwise_{label}",
        selection=selection,
        partitions_def=ACCOUNT_DAILY[label],
        tags={**WAREHOUSE_WRITER_TAGS, "stepwise/account": label},
        description=(
            f"Account '{label}' (GA4 property {ACCOUNTS.property(label).property_id}, days in "
            f"{ACCOUNTS.property(label).time_zone}): ingest its GA4 reports and its portal's HubSpot objects "
            "for a range of its days, rebuild staging and marts, publish, deliver alerts."
        ),
    )


def account_schedule(job: Any, label: str) -> Any:
    # Built from the partitioned job: it runs in the partitions' zone (the account's own), so each
    # account's yesterday is requested STEPWISE_SCHEDULE_HOUR hours after it ended there.
    return dg.build_schedule_from_partitioned_job(
        job,
        name=f"stepwise_{label}_schedule",
        hour_of_day=schedule_hour(),
        minute_of_hour=0,
        description=(
            f"Every day at STEPWISE_SCHEDULE_HOUR (default 6) in {ACCOUNTS.property(label).time_zone}: "
            f"account '{label}''s yesterday; the GA4 assets re-fetch the STEPWISE_LOOKBACK_DAYS days before it."
        ),
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )


ACCOUNT_JOBS = [account_job(label) for label in ACCOUNTS.labels] if PER_ACCOUNT else []
ACCOUNT_SCHEDULES = [
    account_schedule(j, label) for j, label in zip(ACCOUNT_JOBS, ACCOUNTS.labels, strict=False)
]


def _daily_job() -> Any:
    return dg.define_asset_job(
        name="stepwise_daily",
        selection=dg.AssetSelection.groups(*PIPELINE_GROUPS),
        partitions_def=DAILY,
        tags=WAREHOUSE_WRITER_TAGS,
        description=(
            "Ingest GA4 and HubSpot for a range of days, rebuild staging and marts, run their checks, "
            "publish the analyst file, and deliver new conversion anomaly alerts."
        ),
    )


# The one-account shape (no accounts file): one job over every property in STEPWISE_TIME_ZONE.
stepwise_daily = None if PER_ACCOUNT else _daily_job()

rebuild_models = dg.define_asset_job(
    name="rebuild_models",
    selection=dg.AssetSelection.groups("staging", "marts", "publish"),
    tags=WAREHOUSE_WRITER_TAGS,
    description="Rebuild staging and marts from what raw already holds (no API calls), then publish.",
    config={"ops": {"warehouse_model": {"config": {"full_rebuild": True}}}},
)


# The latest complete day each morning; each GA4 asset also re-fetches the STEPWISE_LOOKBACK_DAYS days
# before it (GA4 still revises them), so the schedule needs no range of its own.
stepwise_daily_schedule = (
    None
    if stepwise_daily is None
    else dg.build_schedule_from_partitioned_job(
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
)
