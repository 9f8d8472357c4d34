"""One entry of ``raw.request_log`` (CONTRACTS §4) as a GA4 fetch fills it: counters, flags, quota
figures, start and finish.

Apart from the client so the entry's columns are listed in one place, beside the HubSpot connector's own
``request_log.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass
class ReportLog:
    entry: dict[str, Any]

    def add(self, key: str, n: int | float = 1) -> None:
        self.entry[key] = self.entry.get(key, 0) + n

    def flag(self, key: str, value: bool) -> None:
        self.entry[key] = bool(self.entry.get(key)) or bool(value)


def new_log(
    request_log: list[dict[str, Any]],
    run_id: str,
    property_id: str,
    report: str,
    mode: str,
    start: dt.date | None,
    end: dt.date | None,
) -> ReportLog:
    """A new entry, appended to ``request_log`` at once so a failed fetch still leaves its record."""
    entry: dict[str, Any] = {
        "run_id": run_id,
        "source": "ga4",
        "source_id": property_id,
        "request": report,
        "mode": mode,
        "start_date": start,
        "end_date": end,
        "rows": 0,
        "pages": 0,
        "requests": 0,
        "retries": 0,
        "http_429": 0,
        "splits": 0,
        "subject_to_thresholding": False,
        "data_loss_from_other_row": False,
        "sampled": False,
        "quota_tokens_used": 0,
        "quota_tokens_remaining_hour": None,
        "quota_tokens_remaining_day": None,
        "wait_seconds": 0.0,
        "started_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "finished_at": None,
        "error": None,
    }
    request_log.append(entry)
    return ReportLog(entry)


def finish_log(log: ReportLog, error: str | None = None) -> None:
    log.entry["finished_at"] = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    log.entry["wait_seconds"] = round(float(log.entry["wait_seconds"]), 3)
    if error is not None:
        log.entry["error"] = error
