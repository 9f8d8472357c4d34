"""Errors of the GA4 connector: short messages naming the property, report and cause."""

from __future__ import annotations


class Ga4ConfigError(ValueError):
    """A report spec or setting is wrong; raised before any report request."""


class Ga4FetchError(RuntimeError):
    """A report could not be fetched (permanent API error, exhausted retries, inconsistent paging)."""

    def __init__(self, message: str, *, property_id: str | None = None, report: str | None = None) -> None:
        super().__init__(message)
        self.property_id = property_id
        self.report = report


class Ga4QuotaDeferred(Ga4FetchError):
    """The property's hourly token (or server-error) budget is spent: rerun after the quota refreshes."""


class Ga4QuotaExhausted(Ga4FetchError):
    """The property's daily token budget is spent: its remaining reports fail for today."""


class Ga4ResponseError(Ga4FetchError):
    """A response row does not parse (a date that is no day, a metric that is no number, a missing
    value): the load stops before anything of the report is written, naming report, field, value and
    property."""
