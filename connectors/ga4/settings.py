"""How the GA4 connector is configured (``Ga4Settings``) and how many rows one page may ask for.

Apart from the client so the quota budget and the retry loop can read the settings without importing
the client, and so a caller can size pages (``page_limit``) without building one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from connectors.ga4.specs import ReportSpec

MAX_PAGE_SIZE = 250_000
ANALYTICS_SCOPE = "https://www.googleapis.com/auth/analytics.readonly"


@dataclass
class Ga4Settings:
    """How the connector talks to GA4. Secrets never live here: only a path to a key file.

    ``api_endpoint`` set and no ``credentials_file``: anonymous credentials (the sandbox).
    Otherwise the service-account file (``credentials_file`` or GOOGLE_APPLICATION_CREDENTIALS)
    or application default credentials.
    """

    property_ids: list[str]
    api_endpoint: str | None = None
    credentials_file: str | None = None
    lookback_days: int = 3
    page_size: int = MAX_PAGE_SIZE
    # The SDK parses a REST page into Python dicts first (about 450 bytes per value), so a 250,000-row
    # page of 9 columns briefly needs about 1 GB. Pages are made smaller than page_size when a page of
    # the report's width would need more than this much memory (None: always page_size).
    page_memory_mb: float | None = 320.0
    max_retries: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 64.0
    timeout_s: float = 120.0
    # Stop before a quota is spent: keep this share of each token allowance unused.
    quota_reserve_fraction: float = 0.05
    # How long a fetch may wait for hourly tokens to refresh before it defers (0: defer at once).
    max_quota_wait_s: float = 0.0
    quota_poll_s: float = 300.0
    max_concurrent_requests: int = 3
    # A SQLite file every process on this host shares (connectors.rate_budget): requests of all of them
    # to one property stay within its concurrent-request quota, one below it (None: this process only).
    rate_budget_path: str | None = None
    prefetch_pages: bool = True
    split_incomplete: bool = True
    max_split_dimensions: int = 2  # after date, split one day by at most this many dimensions in turn
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def problems(self) -> list[str]:
        out = []
        if not self.property_ids:
            out.append(
                "Ga4Settings.property_ids: name at least one GA4 property id (digits, e.g. '123456789')"
            )
        for pid in self.property_ids:
            if not str(pid).isdigit():
                out.append(
                    f"Ga4Settings.property_ids: '{pid}' is not a GA4 property id (digits only, no 'properties/')"
                )
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            out.append(f"Ga4Settings.page_size: {self.page_size} must be between 1 and {MAX_PAGE_SIZE:,}")
        if self.lookback_days < 0:
            out.append("Ga4Settings.lookback_days: must be 0 or more")
        if not 0 <= self.quota_reserve_fraction < 1:
            out.append("Ga4Settings.quota_reserve_fraction: must be in [0, 1)")
        if self.max_concurrent_requests < 1:
            out.append("Ga4Settings.max_concurrent_requests: must be 1 or more")
        return out


PARSE_BYTES_PER_VALUE = 450


def page_limit(settings: Ga4Settings, spec: ReportSpec, *, dimensions: int | None = None) -> int:
    """Rows per page for a spec: ``page_size``, or fewer when a page would outgrow ``page_memory_mb``.

    ``dimensions``: the request asks for this many dimensions (and all the spec's metrics) instead
    of the spec's own."""
    if settings.page_memory_mb is None:
        return settings.page_size
    values_per_row = (len(spec.dimensions) if dimensions is None else dimensions) + len(spec.metrics)
    by_memory = int(settings.page_memory_mb * 2**20 // (values_per_row * PARSE_BYTES_PER_VALUE))
    return min(settings.page_size, max(1_000, by_memory))
