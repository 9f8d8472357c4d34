"""What the connector knows of one property's GA4 quotas (``PropertyBudget``), read from the
``propertyQuota`` of each answer, and whether the next request may go out.

Apart from the client because it is state of its own, shared by every thread fetching for that property,
and its rules (reserve, unknown allowances never read as zero) are tested on their own.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from connectors.ga4.settings import Ga4Settings

STANDARD_SERVER_ERRORS_PER_HOUR = 10
GA4_STANDARD_CONCURRENT = 10  # concurrent requests per standard property (Data API quotas)
# Metrics that count users: a request with one of them may be thresholded (Google signals, demographics),
# so it also spends the property's separate allowance of potentially thresholded requests (120 an hour).
USER_METRICS = frozenset(
    {
        "totalUsers",
        "newUsers",
        "activeUsers",
        "active1DayUsers",
        "active7DayUsers",
        "active28DayUsers",
        "totalPurchasers",
        "firstTimePurchasers",
        "dauPerMau",
        "dauPerWau",
        "wauPerMau",
    }
)
# propertyQuota's sub-quotas: (our key, proto field). proto3 JSON leaves out a sub-quota the API did not
# report; a missing one is unknown (never read as a limit of 0).
QUOTA_FIELDS = (
    ("day", "tokens_per_day"),
    ("hour", "tokens_per_hour"),
    ("project_hour", "tokens_per_project_per_hour"),
    ("server_errors", "server_errors_per_project_per_hour"),
    ("concurrent", "concurrent_requests"),
    ("thresholded", "potentially_thresholded_requests_per_hour"),
)


@dataclass
class _QuotaView:
    consumed: int
    remaining: int

    @property
    def limit(self) -> int:
        return self.consumed + self.remaining


class PropertyBudget:
    """What the connector knows about one property's quota, from ``propertyQuota`` of each answer."""

    def __init__(self, property_id: str, settings: Ga4Settings) -> None:
        self.property_id = property_id
        self.settings = settings
        self.lock = threading.Lock()
        self.quota: dict[str, _QuotaView] = {}
        self.max_cost = 0
        self.server_errors = 0
        self.errors_since_quota = 0
        self.tokens_used = 0
        self.concurrency = threading.BoundedSemaphore(settings.max_concurrent_requests)
        self.concurrency_size = settings.max_concurrent_requests

    def observe(self, quota: Any) -> int:
        """Records a response's PropertyQuota; returns the tokens that request cost."""
        if quota is None:
            return 0
        views = {key: getattr(quota, name) for key, name in QUOTA_FIELDS if _has_field(quota, name)}
        with self.lock:
            before = self.quota.get("day")
            for key, status in views.items():
                self.quota[key] = _QuotaView(int(status.consumed), int(status.remaining))
            day = self.quota.get("day")
            if day is None:
                cost = 0  # the daily figure was not reported: this answer's cost is unknown
            elif before is None:
                cost = 1  # the first answer cannot show its own cost; GA4 charges at least one token
            elif day.consumed >= before.consumed:
                cost = day.consumed - before.consumed
            else:
                cost = day.consumed  # the daily window rolled over in between
            self.max_cost = max(self.max_cost, cost)
            self.errors_since_quota = 0
            self.tokens_used += cost
            self._fit_concurrency()
        return cost

    def _fit_concurrency(self) -> None:
        # Stay one below the property's concurrent-request limit (other tools may share it).
        concurrent = self.quota.get("concurrent")
        if concurrent and concurrent.limit:
            target = max(1, min(self.settings.max_concurrent_requests, concurrent.limit - 1))
            if target < self.concurrency_size:
                self.concurrency = threading.BoundedSemaphore(target)
                self.concurrency_size = target

    def remaining(self, key: str) -> int | None:
        with self.lock:
            view = self.quota.get(key)
            return view.remaining if view else None

    def check(self, report: str, potentially_thresholded: bool = False) -> str | None:
        """None if a request may go out; else 'day', 'hour', 'thresholded' or 'server_errors' (which
        allowance would be crossed). Allowances the API has not reported are unknown, never zero."""
        with self.lock:
            estimate = max(self.max_cost, 1)
            day = self.quota.get("day")
            if day and day.remaining - estimate < math.ceil(day.limit * self.settings.quota_reserve_fraction):
                return "day"
            for key in ("hour", "project_hour"):
                view = self.quota.get(key)
                if view and view.remaining - estimate < math.ceil(
                    view.limit * self.settings.quota_reserve_fraction
                ):
                    return "hour"
            thresholded = self.quota.get("thresholded")
            # One request spends one of these (not tokens); keep the same reserve.
            if (
                potentially_thresholded
                and thresholded
                and thresholded.remaining - 1
                < math.ceil(thresholded.limit * self.settings.quota_reserve_fraction)
            ):
                return "thresholded"
            # Failed answers carry no quota, so errors since the last one are added by hand; the
            # standard allowance (10 an hour) stands in until a response has shown the real one.
            errors = self.quota.get("server_errors")
            limit = errors.limit if errors else STANDARD_SERVER_ERRORS_PER_HOUR
            consumed = errors.consumed if errors else 0
            if consumed + self.errors_since_quota >= limit - 1:
                return "server_errors"
            return None

    def note_server_error(self) -> None:
        with self.lock:
            self.server_errors += 1
            self.errors_since_quota += 1

    def forget_hour(self) -> None:
        """After waiting, the hourly figures are stale: let one request probe the refreshed quota."""
        with self.lock:
            for key in ("hour", "project_hour", "server_errors", "thresholded"):
                self.quota.pop(key, None)


def _has_field(message: Any, name: str) -> bool:
    """Whether a proto-plus message carries ``name`` (proto3 JSON omits what the API did not send)."""
    try:
        return name in message
    except TypeError:  # not a proto-plus message (a test double): present if set
        return getattr(message, name, None) is not None
