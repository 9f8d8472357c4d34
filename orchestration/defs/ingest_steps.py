"""Helpers every ingest step shares: the dates a partition (range) covers, the property's zone, the
sandbox notice, a failure with one clear message, and a run's request-log totals as asset metadata.

Apart from ``ingest.py`` so the GA4, HubSpot and experiment assets (``experiments.py``) take them from one
place that holds no asset definitions.
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any

import dagster as dg

from orchestration.connections import Ga4Resource, HubSpotResource
from orchestration.settings import time_zone


def partition_dates(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


def partition_label(context: dg.AssetExecutionContext) -> str:
    keys = context.partition_key_range
    return keys.start if keys.start == keys.end else f"{keys.start}..{keys.end}"


def ga4_time_zone(client: Any, property_id: str) -> str:
    """The property's reporting zone when the client knows it, else the partitions' zone."""
    lookup = getattr(client, "property_time_zone", None)
    if callable(lookup):
        found = lookup(property_id)
        if found:
            return str(found)
    return time_zone()


def warn_if_sandbox(context: dg.AssetExecutionContext, *resources: Ga4Resource | HubSpotResource) -> None:
    # Each resource says whether its data is synthetic; the sandbox ones share one notice.
    for notice in dict.fromkeys(n for r in resources if (n := r.sandbox_notice())):
        context.log.warning(notice)


def clear_failure(exc: BaseException, source: str) -> dg.Failure:
    """One message, naming what to fix; the stack stays in the debug log, secrets stay out."""
    name = type(exc).__name__
    return dg.Failure(
        description=f"{source} ingestion stopped: {name}: {exc}",
        metadata={"error_type": name},
        allow_retries=False,
    )


def request_metadata(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def total(field: str) -> int:
        return int(sum((e.get(field) or 0) for e in entries))

    remaining_day = [int(v) for e in entries if (v := e.get("quota_tokens_remaining_day")) is not None]
    remaining_hour = [int(v) for e in entries if (v := e.get("quota_tokens_remaining_hour")) is not None]
    meta: dict[str, Any] = {
        "requests": dg.MetadataValue.int(total("requests")),
        "retries": dg.MetadataValue.int(total("retries")),
        "http_429": dg.MetadataValue.int(total("http_429")),
        "quota_tokens_used": dg.MetadataValue.int(total("quota_tokens_used")),
        "pages": dg.MetadataValue.int(total("pages")),
        "rows_fetched": dg.MetadataValue.int(total("rows")),
        "wait_seconds": dg.MetadataValue.float(float(sum((e.get("wait_seconds") or 0) for e in entries))),
    }
    if remaining_day:
        meta["quota_tokens_remaining_day"] = dg.MetadataValue.int(min(remaining_day))
    if remaining_hour:
        meta["quota_tokens_remaining_hour"] = dg.MetadataValue.int(min(remaining_hour))
    return meta


def no_table_metadata(
    con: Any, schema: str, table: str, *, data_source: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """A report with no row yet has no table (raw tables take their columns from the first batch)."""
    return {
        "data_source": dg.MetadataValue.text(data_source),
        "dagster/row_count": dg.MetadataValue.int(0),
        **extra,
    }
