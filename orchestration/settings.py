"""Load-time settings from the environment, validated with one clear message each.

These shape the definitions themselves (partitions, schedule), so they are read when the code
location loads; a bad value stops the load, before any API call or write.
"""

from __future__ import annotations

import os
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from orchestration.resources import StepwiseConfigError

OWNERS = ["team:data-platform"]
DUCKDB_POOL = "duckdb"


def time_zone() -> str:
    # Daily partitions are property-local days, as GA4 reports them (the sandbox property's zone).
    name = os.environ.get("STEPWISE_TIME_ZONE", "America/New_York")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise StepwiseConfigError(
            f"environment: STEPWISE_TIME_ZONE={name!r} is not an IANA time zone; "
            "use your GA4 property's zone, e.g. America/New_York or Europe/Berlin"
        ) from exc
    return name


def start_date() -> str:
    value = os.environ.get("STEPWISE_START_DATE", "2025-01-01")
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise StepwiseConfigError(
            f"environment: STEPWISE_START_DATE={value!r} is not a date; use YYYY-MM-DD, "
            "the first day you want to be able to backfill"
        ) from exc
    return value


def schedule_hour() -> int:
    value = os.environ.get("STEPWISE_SCHEDULE_HOUR", "6")
    if not value.isdigit() or not 0 <= int(value) <= 23:
        raise StepwiseConfigError(
            f"environment: STEPWISE_SCHEDULE_HOUR={value!r} must be an hour from 0 to 23 "
            "(in STEPWISE_TIME_ZONE)"
        )
    return int(value)


def lookback_days() -> int:
    value = os.environ.get("STEPWISE_LOOKBACK_DAYS", "3")
    if not value.isdigit() or int(value) > 30:
        raise StepwiseConfigError(
            f"environment: STEPWISE_LOOKBACK_DAYS={value!r} must be a whole number of days from 0 to 30 "
            "(GA4 revises about the last 3 days)"
        )
    return int(value)


def hubspot_incremental_overlap_seconds() -> float:
    """How far before the data cursor an incremental HubSpot extract starts (search lags edits)."""
    value = os.environ.get("HUBSPOT_INCREMENTAL_OVERLAP_SECONDS", "300").strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 604_800:
        raise StepwiseConfigError(
            f"environment: HUBSPOT_INCREMENTAL_OVERLAP_SECONDS={value!r} must be a number of seconds from 0 "
            "to 604800; the default 300 covers HubSpot's usual search-index lag with room to spare"
        )
    return seconds


DAILY = dg.DailyPartitionsDefinition(start_date=start_date(), timezone=time_zone())
