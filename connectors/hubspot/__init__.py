"""HubSpot CRM connector: contacts, companies, deals, pipelines and property metadata.

Knows nothing of Dagster or DuckDB; yields ``pyarrow.RecordBatch``es (CONTRACTS §3) and a request log
(CONTRACTS §4 ``raw.request_log``).
"""

from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.ratelimit import PortalRateLimiter, shared_limiter
from connectors.hubspot.records import DEAL_SCHEMA, OBJECT_SCHEMA, PIPELINES_SCHEMA, PROPERTIES_SCHEMA
from connectors.hubspot.settings import (
    BASE_PROPERTIES,
    LAST_MODIFIED,
    OBJECT_TYPES,
    HubSpotAuthError,
    HubSpotConfigError,
    HubSpotError,
    HubSpotFetchError,
    HubSpotQuotaError,
    HubSpotResponseError,
    HubSpotSettings,
)

__all__ = [
    "BASE_PROPERTIES",
    "DEAL_SCHEMA",
    "LAST_MODIFIED",
    "OBJECT_SCHEMA",
    "OBJECT_TYPES",
    "PIPELINES_SCHEMA",
    "PROPERTIES_SCHEMA",
    "HubSpotAuthError",
    "HubSpotClient",
    "HubSpotConfigError",
    "HubSpotError",
    "HubSpotFetchError",
    "HubSpotQuotaError",
    "HubSpotResponseError",
    "HubSpotSettings",
    "PortalRateLimiter",
    "shared_limiter",
]
