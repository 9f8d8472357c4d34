"""Settings and errors of the HubSpot connector."""

from __future__ import annotations

from dataclasses import dataclass, field

OBJECT_TYPES = ("contacts", "companies", "deals")
LAST_MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
STAGE_DATE_PREFIX = "hs_v2_date_entered_"

# What the marts need, and no more: contact names, e-mail addresses and phone numbers are not
# extracted (data minimisation; nothing downstream uses them). Stage-entry dates are discovered.
BASE_PROPERTIES: dict[str, tuple[str, ...]] = {
    "contacts": (
        "createdate",
        "lastmodifieddate",
        "lifecyclestage",
        "hs_analytics_source",
        "hs_analytics_source_data_1",
        "hs_analytics_source_data_2",
        "first_conversion_event_name",
        "first_conversion_date",
        "recent_conversion_event_name",
        "recent_conversion_date",
        "num_conversion_events",
        "country",
        "hs_object_id",
        "hs_merged_object_ids",
    ),
    "companies": (
        "name",
        "domain",
        "country",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
        "hs_merged_object_ids",
    ),
    "deals": (
        "dealname",
        "pipeline",
        "dealstage",
        "amount",
        "createdate",
        "closedate",
        "hs_is_closed_won",
        "hs_lastmodifieddate",
        "hs_object_id",
        # Deals and companies are merged too: the survivor lists the merged-away ids, which the loader
        # flags so that a duplicate deal is never counted twice.
        "hs_merged_object_ids",
    ),
}


class HubSpotError(Exception):
    """Base class of the connector's errors."""


class HubSpotConfigError(HubSpotError):
    """The settings cannot work; raised before any API call."""


class HubSpotAuthError(HubSpotError):
    """401/403: the token is missing, expired, invalid or lacks a scope (named in the message)."""

    def __init__(self, message: str, status: int | None = None, scopes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.scopes = scopes


class HubSpotQuotaError(HubSpotError):
    """The portal's daily request cap is spent; retrying today cannot help."""


class HubSpotFetchError(HubSpotError):
    """A request failed for good (after the retries that made sense)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HubSpotResponseError(HubSpotFetchError):
    """A record does not parse (a timestamp that is no instant, a record without an id): the load
    stops before anything of the object type is written, naming object, id, field and value."""


@dataclass
class HubSpotSettings:
    """How to reach one HubSpot portal and how hard to push it.

    ``general_max_requests``/``general_interval_seconds`` and ``search_requests_per_second`` seed the
    shared rate limiter; the portal's ``X-HubSpot-RateLimit-*`` headers then take over.
    ``max_url_length`` bounds the request target of list calls: longer property lists are split, the
    rest read through batch read (a POST body).
    """

    access_token: str
    host: str = "https://api.hubapi.com"
    portal_id: str = "default"
    run_id: str | None = None
    general_max_requests: int = 100
    general_interval_seconds: float = 10.0
    search_requests_per_second: float = 4.0
    # Requests leave the limiter's window this much later than the nominal interval: send and arrival
    # times differ by the network's jitter, and the server counts arrivals.
    limiter_margin_seconds: float = 0.2
    # A SQLite file that every process on this host books its requests in (connectors.rate_budget), so
    # concurrent runs share the portal's allowance; None keeps the limiter to this process.
    rate_budget_path: str | None = None
    list_page_size: int = 100
    search_page_size: int = 200
    search_result_cap: int = 10_000
    batch_size: int = 100
    max_url_length: int = 4_000
    max_retries: int = 6
    max_rate_limit_retries: int = 30
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    request_timeout_seconds: float = 60.0
    prefetch_pages: int = 2
    # Search is eventually consistent: an edit reaches the index seconds (in incidents minutes) after it
    # was made, so a record stamped just before a run's cut may be missing from that run while a newer
    # one is not. An incremental extract re-reads this much before its ``since`` (the data cursor: the
    # largest last-modified instant loaded); upserts by id make the re-read idempotent.
    incremental_overlap_seconds: float = 300.0
    extra_properties: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.access_token or not self.access_token.strip():
            raise HubSpotAuthError(
                "HubSpot access token is missing: set the private app's token (HUBSPOT_ACCESS_TOKEN) or "
                "leave it unset to use the sandbox."
            )
        if not self.host.startswith(("http://", "https://")):
            raise HubSpotConfigError(f"HubSpot host {self.host!r} must start with http:// or https://")
        checks = {
            "list_page_size": (self.list_page_size, 1, 100),
            "search_page_size": (self.search_page_size, 1, 200),
            "batch_size": (self.batch_size, 1, 100),
            "general_max_requests": (self.general_max_requests, 1, 10_000),
            "search_requests_per_second": (self.search_requests_per_second, 0.1, 1_000),
        }
        for name, (value, lo, hi) in checks.items():
            if not lo <= value <= hi:
                raise HubSpotConfigError(f"HubSpot setting {name}={value} must be between {lo} and {hi}")
        if not 0 <= self.incremental_overlap_seconds <= 7 * 86_400:
            raise HubSpotConfigError(
                f"HubSpot setting incremental_overlap_seconds={self.incremental_overlap_seconds} must be "
                "between 0 and 604800 (a week)"
            )
        unknown = set(self.extra_properties) - set(OBJECT_TYPES)
        if unknown:
            raise HubSpotConfigError(
                f"HubSpot setting extra_properties names unknown object types {sorted(unknown)}; "
                f"use {list(OBJECT_TYPES)}"
            )
