"""GA4 Data API connector (no Dagster, no DuckDB): report specs, a quota-aware client, Arrow output."""

from connectors.ga4.client import Ga4Client
from connectors.ga4.convert import FLAG_COLUMNS, batch_schema, response_to_batch
from connectors.ga4.errors import Ga4ConfigError, Ga4FetchError, Ga4QuotaDeferred, Ga4QuotaExhausted
from connectors.ga4.quota import PropertyBudget
from connectors.ga4.settings import Ga4Settings
from connectors.ga4.specs import (
    ReportSpec,
    check_specs,
    column_name,
    custom_report_spec,
    default_report_specs,
    spec_from_dict,
)
from connectors.ga4.windows import DateWindow, plan_windows, replaced_dates

__all__ = [
    "FLAG_COLUMNS",
    "DateWindow",
    "Ga4Client",
    "Ga4ConfigError",
    "Ga4FetchError",
    "Ga4QuotaDeferred",
    "Ga4QuotaExhausted",
    "Ga4Settings",
    "PropertyBudget",
    "ReportSpec",
    "batch_schema",
    "check_specs",
    "column_name",
    "custom_report_spec",
    "default_report_specs",
    "plan_windows",
    "replaced_dates",
    "response_to_batch",
    "spec_from_dict",
]
