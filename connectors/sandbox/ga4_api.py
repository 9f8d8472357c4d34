"""The fake GA4 Data API v1beta (REST), served from the synthetic store.

Routes, as ``BetaAnalyticsDataClient(transport="rest")`` calls them:

- ``POST /v1beta/properties/{id}:runReport``
- ``GET  /v1beta/properties/{id}/metadata``
- ``POST /v1beta/properties/{id}:checkCompatibility`` (the sandbox's one compatibility rule: audience
  dimensions go with user metrics only)

Reports are computed by SQL over the store (one cursor per request thread, parameters for every
value, identifiers only from the catalog below). What the real API does and this fake mirrors:

- at most 9 dimensions, 10 metrics, 4 date ranges; unknown fields -> 400 INVALID_ARGUMENT with
  Google's error body; ``limit`` defaults to 10,000 and is capped at 250,000 rows per page (the real
  API caps silently, it does not reject a larger limit); a negative limit or offset is rejected.
- dates as ``YYYY-MM-DD``, ``NdaysAgo``, ``yesterday``, ``today`` where *today* is the day after the
  store's last day (so ``yesterday`` is the last day with data).
- token quotas per property (day, hour, project-hour), concurrent requests and server errors per
  hour, reported in ``propertyQuota`` and answered with 429 RESOURCE_EXHAUSTED when exhausted. A
  report costs ``1 + (days - 1) // 30 + rows_in_page // 10_000`` tokens (more days, more rows, more
  tokens; most small requests cost 1-3 as in GA4). Window lengths are configurable so tests can
  see an hour pass.
- thresholding (a property setting): rows whose user count is below ``threshold_users`` are
  withheld and ``subjectToThresholding`` is true whenever a user metric is requested.
- the "(other)" row: when a report has more distinct rows than the property's ``other_row_cap``,
  the rows past the cap (lowest first metric) fold into one row whose every dimension is
  "(other)", and ``dataLossFromOtherRow`` is true.
- sampling (a property setting): a report whose date range spans more than ``sampling_over_days``
  days reads a deterministic sample of sessions, scales the figures up and returns
  ``samplingMetadatas``.
- revisions: the store's last two days are still "processing". Each report request at offset 0
  that touches one of them advances that day's revision; the visible share of its sessions grows
  along ``REVISION_SCHEDULE`` and reaches 100 % after a few requests, so a lookback re-fetch sees
  higher figures. Pages at offset > 0 see the same revision as the request that started the report.

Several properties: the store's main property (``store.property_id``) serves every session; extra
properties configured in ``Ga4SandboxConfig.properties`` serve a *deterministic share* of the same
sessions (``session_share``, chosen by a hash of the session id), e.g. the default extra property
"987654321" serves 40 % of them. They are views of one population, clearly not independent sites.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from connectors.sandbox.server import ApiRequest, ApiResponse, Route, SandboxContext, google_error

API_SCHEMA_URL = "https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema"
MAX_DIMENSIONS = 9
MAX_METRICS = 10
MAX_DATE_RANGES = 4
MAX_LIMIT = 250_000
DEFAULT_LIMIT = 10_000
KEY_EVENTS = ("purchase", "generate_lead", "sign_up")
GA4_EPOCH = dt.date(2015, 8, 14)  # the API rejects earlier start dates
# Visible share of a still-processing day, by its age (0 = the store's last day) and by how many
# report requests have touched it so far.
REVISION_SCHEDULE: dict[int, tuple[float, ...]] = {0: (0.55, 0.75, 0.9, 1.0), 1: (0.85, 0.95, 1.0)}


# --------------------------------------------------------------------------------------------
# configuration


@dataclass
class Ga4QuotaLimits:
    """Per-property quota of a standard GA4 property (defaults as Google documents them)."""

    tokens_per_day: int = 200_000
    tokens_per_hour: int = 40_000
    tokens_per_project_per_hour: int = 14_000
    concurrent_requests: int = 10
    server_errors_per_project_per_hour: int = 10
    potentially_thresholded_requests_per_hour: int = 120
    hour_seconds: float = 3600.0  # length of the "hour" window; tests shorten it
    day_seconds: float = 86400.0


@dataclass
class Ga4PropertySettings:
    property_id: str
    session_share: float = 1.0  # share of the store's sessions this property sees
    time_zone: str | None = None  # None: the store's time zone
    currency_code: str = "USD"
    thresholding: bool = False
    threshold_users: int = 50
    other_row_cap: int | None = None  # None: never fold into "(other)"
    sampling_over_days: int | None = None  # None: never sample
    sampling_rate: float = 0.1
    revisions: bool = True
    quota: Ga4QuotaLimits = field(default_factory=Ga4QuotaLimits)


@dataclass
class Ga4SandboxConfig:
    """GA4 settings of a running sandbox (``SandboxConfig.ga4``); tests may change them live.

    ``properties`` maps property id -> settings; the store's main property is added with defaults
    when missing.
    """

    properties: dict[str, Ga4PropertySettings] = field(default_factory=dict)

    def property(self, property_id: str) -> Ga4PropertySettings | None:
        return self.properties.get(property_id)


def default_config() -> Ga4SandboxConfig:
    return Ga4SandboxConfig(
        properties={
            "123456789": Ga4PropertySettings("123456789"),
            "987654321": Ga4PropertySettings("987654321", session_share=0.4),
        }
    )


# --------------------------------------------------------------------------------------------
# the field catalog: API name -> SQL over the store


@dataclass(frozen=True)
class DimensionDef:
    api_name: str
    ui_name: str
    column: str  # SQL expression over the base row (columns of sessions / events)
    category: str
    event_scoped: bool = False
    custom: bool = False
    description: str = ""
    audience: bool = False  # served from experiment_exposures (see _AUDIENCE_JOIN)


@dataclass(frozen=True)
class MetricDef:
    api_name: str
    ui_name: str
    type: str  # TYPE_INTEGER, TYPE_FLOAT, TYPE_CURRENCY
    session_sql: str | None  # aggregate over session rows; None: needs event rows
    event_sql: str  # aggregate over event rows
    category: str
    user_metric: bool = False
    needs_engaged: bool = False
    description: str = ""


_KEY_LIST = ", ".join(f"'{name}'" for name in KEY_EVENTS)  # constants, not user input

DIMENSIONS: dict[str, DimensionDef] = {
    d.api_name: d
    for d in [
        DimensionDef("date", "Date", "strftime(date, '%Y%m%d')", "Time", description="YYYYMMDD"),
        DimensionDef("year", "Year", "strftime(date, '%Y')", "Time"),
        DimensionDef("month", "Month", "strftime(date, '%m')", "Time"),
        DimensionDef("dayOfWeek", "Day of week", "CAST(dayofweek(date) AS VARCHAR)", "Time"),
        DimensionDef(
            "sessionDefaultChannelGroup", "Session default channel group", "channel", "Traffic source"
        ),
        DimensionDef("sessionSource", "Session source", "source", "Traffic source"),
        DimensionDef("sessionMedium", "Session medium", "medium", "Traffic source"),
        DimensionDef(
            "sessionSourceMedium", "Session source / medium", "source || ' / ' || medium", "Traffic source"
        ),
        DimensionDef("sessionCampaignName", "Session campaign", "campaign", "Traffic source"),
        DimensionDef("deviceCategory", "Device category", "device_category", "Platform / device"),
        DimensionDef("country", "Country", "country", "Geography"),
        DimensionDef("newVsReturning", "New / established", "new_vs_returning", "User"),
        DimensionDef("landingPage", "Landing page", "landing_page", "Page / screen"),
        DimensionDef("eventName", "Event name", "event_name", "Event", event_scoped=True),
        DimensionDef(
            "customEvent:form_name",
            "form_name",
            "coalesce(form_name, '(not set)')",
            "Custom",
            event_scoped=True,
            custom=True,
            description="An event scoped custom dimension for your Analytics property.",
        ),
        # Audiences: the sandbox has one per variant of each planted experiment (the third-party testing
        # integration creates them on exp_variant_string), named after the exp_variant_string. As the API
        # schema says, users are reported in the audiences they belonged to during the date range; here a
        # visitor belongs from the day of their first exposure (membership outlasts every window).
        DimensionDef(
            "audienceId",
            "Audience ID",
            "_aud.audience_id",
            "General",
            audience=True,
            description="The numeric identifier of an Audience. Users are reported in the audiences that they "
            "belonged to during the report's date range.",
        ),
        DimensionDef(
            "audienceName",
            "Audience name",
            "_aud.audience_name",
            "General",
            audience=True,
            description="The given name of an Audience. Users are reported in the audiences that they belonged "
            "to during the report's date range.",
        ),
    ]
}

METRICS: dict[str, MetricDef] = {
    m.api_name: m
    for m in [
        MetricDef(
            "sessions", "Sessions", "TYPE_INTEGER", "count(*)", "count(DISTINCT session_id)", "Session"
        ),
        MetricDef(
            "engagedSessions",
            "Engaged sessions",
            "TYPE_INTEGER",
            "count(*) FILTER (WHERE engaged)",
            "count(DISTINCT session_id) FILTER (WHERE engaged)",
            "Session",
            needs_engaged=True,
        ),
        MetricDef(
            "engagementRate",
            "Engagement rate",
            "TYPE_FLOAT",
            "avg(CASE WHEN engaged THEN 1.0 ELSE 0.0 END)",
            "count(DISTINCT session_id) FILTER (WHERE engaged) / count(DISTINCT session_id)",
            "Session",
            needs_engaged=True,
        ),
        MetricDef(
            "totalUsers",
            "Total users",
            "TYPE_INTEGER",
            "count(DISTINCT user_id)",
            "count(DISTINCT user_id)",
            "User",
            user_metric=True,
        ),
        MetricDef(
            "activeUsers",
            "Active users",
            "TYPE_INTEGER",
            "count(DISTINCT user_id)",
            "count(DISTINCT user_id)",
            "User",
            user_metric=True,
        ),
        MetricDef(
            "newUsers",
            "New users",
            "TYPE_INTEGER",
            "count(DISTINCT user_id) FILTER (WHERE new_vs_returning = 'new')",
            "count(DISTINCT user_id) FILTER (WHERE new_vs_returning = 'new')",
            "User",
            user_metric=True,
        ),
        MetricDef(
            "screenPageViews",
            "Views",
            "TYPE_INTEGER",
            "sum(page_views)",
            "sum(event_count) FILTER (WHERE event_name = 'page_view')",
            "Page / screen",
        ),
        MetricDef("eventCount", "Event count", "TYPE_INTEGER", None, "sum(event_count)", "Event"),
        MetricDef("eventValue", "Event value", "TYPE_FLOAT", None, "sum(event_value)", "Event"),
        MetricDef(
            "keyEvents",
            "Key events",
            "TYPE_INTEGER",
            "sum(purchase + generate_lead + sign_up)",
            f"sum(event_count) FILTER (WHERE event_name IN ({_KEY_LIST}))",
            "Event",
        ),
        MetricDef(
            "ecommercePurchases",
            "Ecommerce purchases",
            "TYPE_INTEGER",
            "sum(purchase)",
            "sum(event_count) FILTER (WHERE event_name = 'purchase')",
            "Ecommerce",
        ),
        MetricDef(
            "purchaseRevenue",
            "Purchase revenue",
            "TYPE_CURRENCY",
            "sum(purchase_revenue)",
            "sum(event_value) FILTER (WHERE event_name = 'purchase')",
            "Revenue",
        ),
        MetricDef(
            "totalPurchasers",
            "Total purchasers",
            "TYPE_INTEGER",
            "count(DISTINCT user_id) FILTER (WHERE purchase > 0)",
            "count(DISTINCT user_id) FILTER (WHERE event_name = 'purchase' AND event_count > 0)",
            "Ecommerce",
            user_metric=True,
        ),
        MetricDef(
            "addToCarts",
            "Add to carts",
            "TYPE_INTEGER",
            "sum(add_to_cart)",
            "sum(event_count) FILTER (WHERE event_name = 'add_to_cart')",
            "Ecommerce",
        ),
        MetricDef(
            "checkouts",
            "Checkouts",
            "TYPE_INTEGER",
            "sum(begin_checkout)",
            "sum(event_count) FILTER (WHERE event_name = 'begin_checkout')",
            "Ecommerce",
        ),
    ]
}

_ENUM_MATCH = {
    0: "EXACT",
    1: "EXACT",
    2: "BEGINS_WITH",
    3: "ENDS_WITH",
    4: "CONTAINS",
    5: "FULL_REGEXP",
    6: "PARTIAL_REGEXP",
}
_ENUM_OPERATION = {
    1: "EQUAL",
    2: "LESS_THAN",
    3: "LESS_THAN_OR_EQUAL",
    4: "GREATER_THAN",
    5: "GREATER_THAN_OR_EQUAL",
}
_OP_SQL = {
    "EQUAL": "=",
    "LESS_THAN": "<",
    "LESS_THAN_OR_EQUAL": "<=",
    "GREATER_THAN": ">",
    "GREATER_THAN_OR_EQUAL": ">=",
}
_ENUM_AGGREGATION = {
    1: "TOTAL",
    4: "COUNT",
    5: "MINIMUM",
    6: "MAXIMUM",
}  # google.analytics.data.v1beta.MetricAggregation
_ENUM_ORDER_TYPE = {0: "ALPHANUMERIC", 1: "ALPHANUMERIC", 2: "CASE_INSENSITIVE_ALPHANUMERIC", 3: "NUMERIC"}
_RELATIVE_DAYS = re.compile(r"^(\d+)daysAgo$")


class ApiError(Exception):
    def __init__(self, code: int, status: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> ApiResponse:
        return ApiResponse(self.code, google_error(self.code, self.status, self.message), self.headers)


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def _enum(value: Any, table: dict[int, str], field_name: str) -> str:
    if isinstance(value, int):
        if value not in table:
            raise _invalid(f"Invalid value for {field_name}: {value}.")
        return table[value]
    if isinstance(value, str) and value in table.values():
        return value
    raise _invalid(f"Invalid value for {field_name}: {value!r}.")


# --------------------------------------------------------------------------------------------
# request parsing


@dataclass
class DateRangeSpec:
    start: dt.date
    end: dt.date
    name: str


@dataclass
class ReportRequest:
    dimensions: list[DimensionDef]
    metrics: list[MetricDef]
    date_ranges: list[DateRangeSpec]
    dimension_filter: dict | None
    metric_filter: dict | None
    order_bys: list[dict]
    offset: int
    limit: int
    keep_empty_rows: bool
    aggregations: list[str]
    return_quota: bool
    signature: str  # canonical form of everything that changes the full result (not offset/limit)


def _parse_date(value: Any, today: dt.date, which: str) -> dt.date:
    if not isinstance(value, str) or not value:
        raise _invalid(
            f"Invalid {which}: {value!r}. Valid date formats are YYYY-MM-DD, NdaysAgo, yesterday, or today."
        )
    if value == "today":
        return today
    if value == "yesterday":
        return today - dt.timedelta(days=1)
    m = _RELATIVE_DAYS.match(value)
    if m:
        return today - dt.timedelta(days=int(m.group(1)))
    try:
        return (
            dt.date.fromisoformat(value)
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)
            else _bad_date(value, which)
        )
    except ValueError:
        return _bad_date(value, which)


def _bad_date(value: str, which: str) -> dt.date:
    raise _invalid(
        f"Invalid {which}: {value}. Valid date formats are YYYY-MM-DD, NdaysAgo, yesterday, or today."
    )


def _int_field(body: dict, name: str, default: int) -> int:
    raw = body.get(name, default)
    try:
        return int(raw)  # int64 fields arrive as JSON strings
    except (TypeError, ValueError):
        raise _invalid(f"Invalid value at '{name}' (TYPE_INT64), \"{raw}\"") from None


def _filter_fields(expr: dict | None) -> list[str]:
    if not expr:
        return []
    if "filter" in expr:
        return [expr["filter"].get("fieldName", "")]
    out: list[str] = []
    for key in ("andGroup", "orGroup"):
        if key in expr:
            for sub in expr[key].get("expressions", []):
                out.extend(_filter_fields(sub))
    if "notExpression" in expr:
        out.extend(_filter_fields(expr["notExpression"]))
    return out


def parse_request(body: Any, today: dt.date) -> ReportRequest:
    if not isinstance(body, dict):
        raise _invalid("Invalid JSON payload received. Expected an object.")
    dim_names = [d.get("name", "") if isinstance(d, dict) else "" for d in body.get("dimensions", [])]
    met_names = [m.get("name", "") if isinstance(m, dict) else "" for m in body.get("metrics", [])]
    if len(dim_names) > MAX_DIMENSIONS:
        raise _invalid(
            f"Requests are limited to {MAX_DIMENSIONS} dimensions within a request. "
            f"This request has {len(dim_names)} dimensions."
        )
    if len(met_names) > MAX_METRICS:
        raise _invalid(
            f"Requests are limited to {MAX_METRICS} metrics within a request. This request has {len(met_names)} metrics."
        )
    if not met_names and not dim_names:
        raise _invalid("At least one dimension or metric must be requested.")
    for name in dim_names:
        if name not in DIMENSIONS:
            raise _invalid(
                f"Field {name} is not a valid dimension. For a list of valid dimensions and metrics, see {API_SCHEMA_URL}"
            )
    for name in met_names:
        if name not in METRICS:
            raise _invalid(
                f"Field {name} is not a valid metric. For a list of valid dimensions and metrics, see {API_SCHEMA_URL}"
            )
    for names, kind in ((dim_names, "dimension"), (met_names, "metric")):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise _invalid(f"Duplicate {kind} names are not allowed: {', '.join(dupes)}.")
    raw_ranges = body.get("dateRanges", [])
    if not raw_ranges:
        raise _invalid("Must specify at least one date range (dateRanges).")
    if len(raw_ranges) > MAX_DATE_RANGES:
        raise _invalid(
            f"Requests are limited to {MAX_DATE_RANGES} date ranges. This request has {len(raw_ranges)}."
        )
    ranges = []
    for i, r in enumerate(raw_ranges):
        start = _parse_date(r.get("startDate"), today, "startDate")
        end = _parse_date(r.get("endDate"), today, "endDate")
        if start > end:
            raise _invalid(
                f"The startDate {r.get('startDate')} is after the endDate {r.get('endDate')} in dateRanges[{i}]."
            )
        if start < GA4_EPOCH:
            raise _invalid(
                f"startDate {start.isoformat()} in dateRanges[{i}] is before {GA4_EPOCH.isoformat()}, the earliest date GA4 reports."
            )
        ranges.append(DateRangeSpec(start, end, str(r.get("name") or f"date_range_{i}")))
    for name in _filter_fields(body.get("dimensionFilter")):
        if name not in DIMENSIONS:
            raise _invalid(
                f"Field {name} is not a valid dimension. For a list of valid dimensions and metrics, see {API_SCHEMA_URL}"
            )
    for name in _filter_fields(body.get("metricFilter")):
        if name not in met_names:
            raise _invalid(f"Metric filter field {name} must be one of the request's metrics.")
    clash = _incompatible_fields(dim_names + _filter_fields(body.get("dimensionFilter")), met_names)
    if clash:
        raise _invalid(
            f"Please remove {clash[0]} to make the request compatible. The request's dimensions & metrics are "
            "incompatible. To learn more, see https://ga-dev-tools.web.app/ga4/dimensions-metrics-explorer/"
        )
    for ob in body.get("orderBys", []):
        if "metric" in ob and ob["metric"].get("metricName") not in met_names:
            raise _invalid(
                f"OrderBy metric {ob['metric'].get('metricName')} must be one of the request's metrics."
            )
        if "dimension" in ob and ob["dimension"].get("dimensionName") not in dim_names + ["dateRange"]:
            raise _invalid(
                f"OrderBy dimension {ob['dimension'].get('dimensionName')} must be one of the request's dimensions."
            )
    offset = _int_field(body, "offset", 0)
    limit = _int_field(body, "limit", 0)
    if offset < 0:
        raise _invalid("offset must be non-negative.")
    if limit < 0:
        raise _invalid("limit must be positive.")
    limit = min(limit or DEFAULT_LIMIT, MAX_LIMIT)
    aggregations = [
        _enum(a, _ENUM_AGGREGATION, "metricAggregations") for a in body.get("metricAggregations", [])
    ]
    canonical = {
        "d": dim_names,
        "m": met_names,
        "r": [(r.start.isoformat(), r.end.isoformat(), r.name) for r in ranges],
        "df": body.get("dimensionFilter"),
        "mf": body.get("metricFilter"),
        "o": body.get("orderBys", []),
        "k": bool(body.get("keepEmptyRows", False)),
        "a": aggregations,
    }
    return ReportRequest(
        dimensions=[DIMENSIONS[n] for n in dim_names],
        metrics=[METRICS[n] for n in met_names],
        date_ranges=ranges,
        dimension_filter=body.get("dimensionFilter"),
        metric_filter=body.get("metricFilter"),
        order_bys=list(body.get("orderBys", [])),
        offset=offset,
        limit=limit,
        keep_empty_rows=bool(body.get("keepEmptyRows", False)),
        aggregations=aggregations,
        return_quota=bool(body.get("returnPropertyQuota", False)),
        signature=json.dumps(canonical, sort_keys=True),
    )


# --------------------------------------------------------------------------------------------
# SQL building


def _string_condition(column: str, filt: dict, params: list[Any]) -> str:
    if "stringFilter" in filt:
        sf = filt["stringFilter"]
        match = _enum(sf.get("matchType", 1), _ENUM_MATCH, "matchType")
        value = str(sf.get("value", ""))
        case_sensitive = bool(sf.get("caseSensitive", False))
        col = column if case_sensitive else f"lower({column})"
        if not case_sensitive:
            value = value.lower()
        if match == "EXACT":
            params.append(value)
            return f"{col} = ?"
        if match == "BEGINS_WITH":
            params.append(value)
            return f"starts_with({col}, ?)"
        if match == "ENDS_WITH":
            params.append(value)
            return f"ends_with({col}, ?)"
        if match == "CONTAINS":
            params.append(value)
            return f"contains({col}, ?)"
        params.append(value if match == "PARTIAL_REGEXP" else f"^(?:{value})$")
        return f"regexp_matches({col}, ?)"
    if "inListFilter" in filt:
        lf = filt["inListFilter"]
        values = [str(v) for v in lf.get("values", [])]
        case_sensitive = bool(lf.get("caseSensitive", False))
        if not case_sensitive:
            values = [v.lower() for v in values]
        params.append(values)
        col = column if case_sensitive else f"lower({column})"
        return f"list_contains(?, {col})"
    if "emptyFilter" in filt:
        return f"({column} IS NULL OR {column} = '')"
    if "numericFilter" in filt:
        nf = filt["numericFilter"]
        op = _enum(nf.get("operation", 1), _ENUM_OPERATION, "operation")
        params.append(_numeric_value(nf.get("value", {})))
        return f"TRY_CAST({column} AS DOUBLE) {_OP_SQL[op]} ?"
    if "betweenFilter" in filt:
        bf = filt["betweenFilter"]
        params.extend([_numeric_value(bf.get("fromValue", {})), _numeric_value(bf.get("toValue", {}))])
        return f"TRY_CAST({column} AS DOUBLE) BETWEEN ? AND ?"
    raise _invalid(
        "A filter must set one of stringFilter, inListFilter, numericFilter, betweenFilter, emptyFilter."
    )


def _numeric_value(value: dict) -> float:
    if "int64Value" in value:
        return float(int(value["int64Value"]))
    if "doubleValue" in value:
        return float(value["doubleValue"])
    raise _invalid("A numeric filter value must set int64Value or doubleValue.")


def _filter_sql(expr: dict, column_of: Any, params: list[Any]) -> str:
    if "andGroup" in expr:
        parts = [_filter_sql(e, column_of, params) for e in expr["andGroup"].get("expressions", [])]
        return "(" + " AND ".join(parts or ["TRUE"]) + ")"
    if "orGroup" in expr:
        parts = [_filter_sql(e, column_of, params) for e in expr["orGroup"].get("expressions", [])]
        return "(" + " OR ".join(parts or ["FALSE"]) + ")"
    if "notExpression" in expr:
        return f"(NOT {_filter_sql(expr['notExpression'], column_of, params)})"
    if "filter" in expr:
        filt = expr["filter"]
        return "(" + _string_condition(column_of(filt.get("fieldName", "")), filt, params) + ")"
    raise _invalid("A filter expression must set one of andGroup, orGroup, notExpression, filter.")


def _hash_share_sql(salt: int) -> str:
    # A fixed salt per purpose keeps the property view, sampling and revisions independent draws.
    return f"(hash(session_id + {int(salt)}) % 1000)"


# --------------------------------------------------------------------------------------------
# per-server state


@dataclass
class _QuotaState:
    hour_start: float = 0.0
    day_start: float = 0.0
    tokens_hour: int = 0
    tokens_project_hour: int = 0
    tokens_day: int = 0
    thresholded_hour: int = 0
    server_errors_hour: int = 0
    in_flight: int = 0


@dataclass
class _Result:
    table: pa.Table  # ordered rows: d0.., m0..
    totals: dict[str, list[Any]]  # aggregation -> metric values
    row_count: int
    subject_to_thresholding: bool
    data_loss_from_other_row: bool
    sampling: list[dict[str, str]]


class Ga4State:
    """Quota counters, revision progress and a small cache of computed reports, per server."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.quota: dict[str, _QuotaState] = {}
        self.revision_hits: dict[tuple[str, dt.date], int] = {}
        self.cache: OrderedDict[str, _Result] = OrderedDict()
        self.compute_locks: dict[str, threading.Lock] = {}
        self.report_revisions: dict[tuple[str, str], tuple] = {}


def _state(ctx: SandboxContext) -> Ga4State:
    with ctx.lock:
        state = ctx.state["ga4"].get("state")
        if state is None:
            state = ctx.state["ga4"]["state"] = Ga4State()
        return state


def _config(ctx: SandboxContext) -> Ga4SandboxConfig:
    cfg = ctx.config.ga4
    if cfg is None:
        cfg = ctx.config.ga4 = default_config()
    return cfg


def _property_settings(ctx: SandboxContext, property_id: str) -> Ga4PropertySettings:
    cfg = _config(ctx)
    settings = cfg.property(property_id)
    main_id = str(getattr(ctx.store, "property_id", "123456789"))
    if settings is None and property_id == main_id:
        settings = cfg.properties[property_id] = Ga4PropertySettings(property_id)
    if settings is None:
        raise ApiError(
            403,
            "PERMISSION_DENIED",
            "User does not have sufficient permissions for this property. To learn more about Property ID, see "
            "https://developers.google.com/analytics/devguides/reporting/data/v1/property-id.",
        )
    return settings


def _store_end(ctx: SandboxContext) -> dt.date:
    end = getattr(ctx.store, "end_date", None)
    if isinstance(end, dt.datetime):
        end = end.date()
    if end is None:
        cur = ctx.store.cursor()
        end = cur.execute("SELECT max(date) FROM sessions").fetchall()[0][0]
    return end


def _time_zone(ctx: SandboxContext, settings: Ga4PropertySettings) -> str:
    return settings.time_zone or str(getattr(ctx.store, "time_zone", "America/New_York"))


# --------------------------------------------------------------------------------------------
# quota


def _roll_windows(q: _QuotaState, limits: Ga4QuotaLimits, now: float) -> None:
    if not q.hour_start or now - q.hour_start >= limits.hour_seconds:
        q.hour_start = now
        q.tokens_hour = q.tokens_project_hour = q.thresholded_hour = q.server_errors_hour = 0
    if not q.day_start or now - q.day_start >= limits.day_seconds:
        q.day_start = now
        q.tokens_day = 0


def _server_errors_seen(ctx: SandboxContext, window_age: float) -> int:
    """5xx answers of the GA4 API (injected ones included) within the current hour window."""
    horizon = time.monotonic() - window_age
    return sum(
        1
        for t, api, _route, status in ctx.counters.events()
        if api == "ga4" and status >= 500 and t >= horizon
    )


def _quota_json(q: _QuotaState, limits: Ga4QuotaLimits) -> dict[str, Any]:
    def status(consumed: int, limit: int) -> dict[str, int]:
        return {"consumed": consumed, "remaining": max(0, limit - consumed)}

    return {
        "tokensPerDay": status(q.tokens_day, limits.tokens_per_day),
        "tokensPerHour": status(q.tokens_hour, limits.tokens_per_hour),
        "concurrentRequests": status(0, limits.concurrent_requests),
        "serverErrorsPerProjectPerHour": status(
            q.server_errors_hour, limits.server_errors_per_project_per_hour
        ),
        "potentiallyThresholdedRequestsPerHour": status(
            q.thresholded_hour, limits.potentially_thresholded_requests_per_hour
        ),
        "tokensPerProjectPerHour": status(q.tokens_project_hour, limits.tokens_per_project_per_hour),
    }


def _exhausted(message: str) -> ApiError:
    return ApiError(429, "RESOURCE_EXHAUSTED", message)


def _admit(
    ctx: SandboxContext, state: Ga4State, settings: Ga4PropertySettings, potentially_thresholded: bool = False
) -> _QuotaState:
    """Checks every quota before the report runs; counts the request as in flight. A potentially
    thresholded request (user metrics on a property with thresholding) also needs the separate
    120-an-hour allowance."""
    limits = settings.quota
    now = ctx.clock()
    with state.lock:
        q = state.quota.setdefault(settings.property_id, _QuotaState())
        _roll_windows(q, limits, now)
        # A rolling hour: errors answered before this property's first report still count.
        q.server_errors_hour = _server_errors_seen(ctx, limits.hour_seconds)
        if q.tokens_day >= limits.tokens_per_day:
            raise _exhausted(
                "Exhausted property tokens per day. Quota will be refreshed at midnight Pacific time "
                "(the sandbox: when its day window ends)."
            )
        if q.tokens_hour >= limits.tokens_per_hour:
            raise _exhausted("Exhausted property tokens per hour. Quota will be refreshed within an hour.")
        if q.tokens_project_hour >= limits.tokens_per_project_per_hour:
            raise _exhausted(
                "Exhausted property tokens per project per hour. Quota will be refreshed within an hour."
            )
        if q.server_errors_hour >= limits.server_errors_per_project_per_hour:
            raise _exhausted("Exhausted server errors per project per hour for this property.")
        if potentially_thresholded and q.thresholded_hour >= limits.potentially_thresholded_requests_per_hour:
            # Google's wording (its 429 carries no other field that names this quota).
            raise _exhausted(
                "Exhausted potentially thresholded requests quota. This quota will refresh in under an hour. "
                "To learn more, see https://developers.google.com/analytics/devguides/reporting/data/v1/quotas"
            )
        if q.in_flight >= limits.concurrent_requests:
            raise _exhausted("Exhausted concurrent requests quota for this property.")
        q.in_flight += 1
        return q


# --------------------------------------------------------------------------------------------
# report computation


def _revision_filter(
    ctx: SandboxContext, state: Ga4State, settings: Ga4PropertySettings, req: ReportRequest, advance: bool
) -> tuple[tuple, list[tuple[dt.date, float]]]:
    """The visible share of each still-processing day the request touches (and advance it)."""
    if not settings.revisions:
        return (), []
    end = _store_end(ctx)
    touched: list[tuple[dt.date, float]] = []
    with state.lock:
        key = (settings.property_id, req.signature)
        if not advance and key in state.report_revisions:
            shares = state.report_revisions[key]
            return shares, list(shares)
        for age, schedule in REVISION_SCHEDULE.items():
            day = end - dt.timedelta(days=age)
            if not any(r.start <= day <= r.end for r in req.date_ranges):
                continue
            hits = state.revision_hits.get((settings.property_id, day), 0)
            share = schedule[min(hits, len(schedule) - 1)]
            state.revision_hits[(settings.property_id, day)] = hits + 1
            if share < 1.0:
                touched.append((day, share))
        shares = tuple(touched)
        state.report_revisions[key] = shares
    return shares, touched


def _compute(
    ctx: SandboxContext,
    settings: Ga4PropertySettings,
    req: ReportRequest,
    revisions: list[tuple[dt.date, float]],
) -> _Result:
    uses_events = (
        any(d.event_scoped for d in req.dimensions)
        or any(m.session_sql is None for m in req.metrics)
        or any(DIMENSIONS[name].event_scoped for name in _filter_fields(req.dimension_filter))
    )
    needs_engaged = uses_events and any(m.needs_engaged for m in req.metrics)
    sampled_ranges = [
        r
        for r in req.date_ranges
        if settings.sampling_over_days is not None
        and (r.end - r.start).days + 1 > settings.sampling_over_days
    ]
    sample_permille = max(1, int(round(settings.sampling_rate * 1000))) if sampled_ranges else 1000
    scale = 1000.0 / sample_permille

    params: list[Any] = []
    where: list[str] = []
    if settings.session_share < 1.0:
        where.append(f"{_hash_share_sql(11)} < ?")
        params.append(int(round(settings.session_share * 1000)))
    for day, share in revisions:
        where.append(f"NOT (date = ? AND {_hash_share_sql(23)} >= ?)")
        params.extend([day, int(round(share * 1000))])
    if sample_permille < 1000:
        where.append(f"{_hash_share_sql(37)} < ?")
        params.append(sample_permille)
    if req.dimension_filter:
        where.append(_filter_sql(req.dimension_filter, lambda name: DIMENSIONS[name].column, params))
    if uses_events:
        source = "events"
        if needs_engaged:
            source = "events JOIN (SELECT session_id AS _sid, engaged FROM sessions) AS _eng ON _eng._sid = events.session_id"
    else:
        source = "sessions"
    if any(d.audience for d in req.dimensions) or any(
        DIMENSIONS[name].audience for name in _filter_fields(req.dimension_filter)
    ):
        source += _AUDIENCE_JOIN

    dims = list(req.dimensions)
    multi_range = len(req.date_ranges) > 1
    dim_cols = [f"d{i}" for i in range(len(dims) + (1 if multi_range else 0))]
    dim_select = [f"{d.column} AS d{i}" for i, d in enumerate(dims)]
    metric_select = []
    for i, m in enumerate(req.metrics):
        expr = m.event_sql if uses_events else m.session_sql
        if m.type == "TYPE_INTEGER":
            metric_select.append(f"CAST(round(coalesce({expr}, 0) * {scale}) AS BIGINT) AS m{i}")
        else:
            metric_select.append(f"CAST(coalesce({expr}, 0) AS DOUBLE) * {scale} AS m{i}")
    users_select = f"CAST(round(count(DISTINCT user_id) * {scale}) AS BIGINT) AS _users"

    def union_sql(grouped: bool) -> tuple[str, list[Any]]:
        parts = []
        part_params: list[Any] = []
        for r in req.date_ranges:
            if grouped:
                range_dim = ["? AS d" + str(len(dims))] if multi_range else []
                select = ", ".join(range_dim + dim_select + metric_select + [users_select])
                group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(dim_cols)))}" if dim_cols else ""
            else:
                select, group = ", ".join(metric_select), ""
            cond = " AND ".join(["date BETWEEN ? AND ?"] + where)
            parts.append(f"SELECT {select} FROM {source} WHERE {cond}{group}")
            part_params.extend(([r.name] if multi_range and grouped else []) + [r.start, r.end] + params)
        return " UNION ALL ".join(parts), part_params

    sql, part_params = union_sql(grouped=True)

    metric_cols = [f"m{i}" for i in range(len(req.metrics))]
    outer_where = []
    outer_params: list[Any] = []
    if not req.keep_empty_rows and metric_cols:
        outer_where.append("NOT (" + " AND ".join(f"{c} = 0" for c in metric_cols) + ")")
    thresholded = settings.thresholding and any(m.user_metric for m in req.metrics)
    if thresholded:
        outer_where.append("_users >= ?")
        outer_params.append(settings.threshold_users)
    if req.metric_filter:
        names = [m.api_name for m in req.metrics]
        outer_where.append(_filter_sql(req.metric_filter, lambda name: f"m{names.index(name)}", outer_params))
    order = _order_sql(req, dims, multi_range)
    where_sql = f" WHERE {' AND '.join(outer_where)}" if outer_where else ""
    full_sql = f"SELECT * EXCLUDE (_users) FROM ({sql}){where_sql} ORDER BY {order}"

    cur = ctx.store.cursor()
    try:
        table = cur.sql(full_sql, params=part_params + outer_params).to_arrow_table()
        other = False
        cap = settings.other_row_cap
        if cap is not None and table.num_rows > cap and dim_cols:
            table = _fold_other(cur, table, cap, dim_cols, metric_cols, req, order)
            other = True
        totals = _aggregations(cur, req, table, union_sql(grouped=False), metric_cols)
        sampling = []
        if sampled_ranges:
            read = cur.execute(
                f"SELECT count(*) FILTER (WHERE {_hash_share_sql(37)} < ?), count(*) FROM sessions WHERE date BETWEEN ? AND ?",
                [sample_permille, min(r.start for r in req.date_ranges), max(r.end for r in req.date_ranges)],
            ).fetchall()[0]
            sampling = [{"samplesReadCount": str(read[0]), "samplingSpaceSize": str(read[1])}]
    finally:
        cur.close()
    return _Result(
        table=table,
        totals=totals,
        row_count=table.num_rows,
        subject_to_thresholding=thresholded,
        data_loss_from_other_row=other,
        sampling=sampling,
    )


def _order_sql(req: ReportRequest, dims: list[DimensionDef], multi_range: bool) -> str:
    names = [d.api_name for d in dims] + (["dateRange"] if multi_range else [])
    metric_names = [m.api_name for m in req.metrics]
    terms = []
    for ob in req.order_bys:
        direction = "DESC" if ob.get("desc") else "ASC"
        if "metric" in ob:
            terms.append(f"m{metric_names.index(ob['metric']['metricName'])} {direction}")
        elif "dimension" in ob:
            col = f"d{names.index(ob['dimension']['dimensionName'])}"
            kind = _enum(ob["dimension"].get("orderType", 1), _ENUM_ORDER_TYPE, "orderType")
            if kind == "NUMERIC":
                col = f"TRY_CAST({col} AS DOUBLE)"
            elif kind == "CASE_INSENSITIVE_ALPHANUMERIC":
                col = f"lower({col})"
            terms.append(f"{col} {direction}")
    # Ties broken by every dimension so pages never overlap or miss rows.
    terms.extend(f"d{i} ASC" for i in range(len(names)))
    if not terms:
        terms.append("1")
    return ", ".join(terms)


def _fold_other(
    cur: Any,
    table: pa.Table,
    cap: int,
    dim_cols: list[str],
    metric_cols: list[str],
    req: ReportRequest,
    order: str,
) -> pa.Table:
    first_metric = metric_cols[0] if metric_cols else None
    rank_order = (f"{first_metric} DESC, " if first_metric else "") + ", ".join(f"{c} ASC" for c in dim_cols)
    cur.register("_report_rows", table)
    try:
        other_metrics = ", ".join(
            (
                f"CAST(sum({c}) AS BIGINT) AS {c}"
                if table.schema.field(c).type == pa.int64()
                else f"sum({c}) AS {c}"
            )
            for c in metric_cols
        )
        other_dims = ", ".join(f"'(other)' AS {c}" for c in dim_cols)
        sql = f"""
            WITH ranked AS (SELECT *, row_number() OVER (ORDER BY {rank_order}) AS _rank FROM _report_rows)
            SELECT * FROM (
                SELECT * EXCLUDE (_rank) FROM ranked WHERE _rank < ?
                UNION ALL
                SELECT {other_dims}{", " + other_metrics if other_metrics else ""} FROM ranked WHERE _rank >= ?
            ) ORDER BY {order}
        """
        return cur.sql(sql, params=[cap, cap]).to_arrow_table()
    finally:
        cur.unregister("_report_rows")


def _aggregations(
    cur: Any, req: ReportRequest, table: pa.Table, ungrouped: tuple[str, list[Any]], metric_cols: list[str]
) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    if not req.aggregations or not metric_cols:
        return out
    if "TOTAL" in req.aggregations:
        # Totals deduplicate users as GA4 does: the same query without grouping, not a sum of rows.
        sql, params = ungrouped
        rows = cur.execute(
            f"SELECT {', '.join(f'sum({c})' for c in metric_cols)} FROM ({sql})", params
        ).fetchall()
        out["TOTAL"] = list(rows[0])
    for agg, fn in (("MAXIMUM", "max"), ("MINIMUM", "min"), ("COUNT", "count")):
        if agg in req.aggregations:
            cur.register("_agg_rows", table)
            try:
                rows = cur.execute(
                    f"SELECT {', '.join(f'{fn}({c})' for c in metric_cols)} FROM _agg_rows"
                ).fetchall()
            finally:
                cur.unregister("_agg_rows")
            out[agg] = list(rows[0])
    return out


# --------------------------------------------------------------------------------------------
# JSON encoding


def _metric_text(value: Any, metric_type: str) -> str:
    if value is None:
        return "0"
    if metric_type == "TYPE_INTEGER":
        return str(int(value))
    f = float(value)
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return repr(round(f, 10)) if metric_type != "TYPE_CURRENCY" else f"{f:.2f}".rstrip("0").rstrip(".")


def _rows_json(cur: Any, page: pa.Table, req: ReportRequest, dim_count: int) -> bytes:
    """The page's rows as JSON text, built by DuckDB (a Python loop is too slow at 250,000 rows)."""
    if page.num_rows == 0:
        return b""
    pieces = []
    if dim_count:
        dv = " || ',' || ".join(f"'{{\"value\":' || to_json(d{i})::VARCHAR || '}}'" for i in range(dim_count))
        pieces.append(f"'\"dimensionValues\":[' || {dv} || ']'")
    if req.metrics:
        mvs = []
        for i, m in enumerate(req.metrics):
            if m.type == "TYPE_INTEGER":
                text = f"CAST(m{i} AS VARCHAR)"
            elif m.type == "TYPE_CURRENCY":
                text = (
                    f"CASE WHEN m{i} = trunc(m{i}) THEN CAST(CAST(m{i} AS BIGINT) AS VARCHAR) "
                    f"ELSE rtrim(rtrim(printf('%.2f', m{i}), '0'), '.') END"
                )
            else:
                text = (
                    f"CASE WHEN m{i} = trunc(m{i}) THEN CAST(CAST(m{i} AS BIGINT) AS VARCHAR) "
                    f"ELSE CAST(round(m{i}, 10) AS VARCHAR) END"
                )
            mvs.append(f"'{{\"value\":\"' || {text} || '\"}}'")
        pieces.append("'\"metricValues\":[' || " + " || ',' || ".join(mvs) + " || ']'")
    row_expr = "'{' || " + " || ',' || ".join(pieces) + " || '}'"
    numbered = page.append_column("_rn", pa.array(range(page.num_rows), pa.int64()))
    cur.register("_page_rows", numbered)
    try:
        text = cur.execute(f"SELECT string_agg({row_expr}, ',' ORDER BY _rn) FROM _page_rows").fetchall()[0][
            0
        ]
    finally:
        cur.unregister("_page_rows")
    return text.encode()


def _aggregate_rows(result: _Result, req: ReportRequest, dim_count: int) -> dict[str, list[dict]]:
    names = {
        "TOTAL": ("totals", "RESERVED_TOTAL"),
        "MAXIMUM": ("maximums", "RESERVED_MAX"),
        "MINIMUM": ("minimums", "RESERVED_MIN"),
    }
    out: dict[str, list[dict]] = {}
    for agg, values in result.totals.items():
        if agg not in names:
            continue
        key, label = names[agg]
        row: dict[str, Any] = {}
        if dim_count:
            row["dimensionValues"] = [{"value": label} for _ in range(dim_count)]
        row["metricValues"] = [
            {"value": _metric_text(v, m.type)} for v, m in zip(values, req.metrics, strict=True)
        ]
        out[key] = [row]
    return out


# --------------------------------------------------------------------------------------------
# handlers


def _property_id(req: ApiRequest) -> str:
    return req.path_params["property_id"]


def run_report(request: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    try:
        return _run_report(request, ctx)
    except ApiError as exc:
        return exc.response()


def _run_report(request: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    state = _state(ctx)
    property_id = _property_id(request)
    settings = _property_settings(ctx, property_id)
    try:
        body = request.json()
    except ValueError:
        raise _invalid("Invalid JSON payload received.") from None
    today = _store_end(ctx) + dt.timedelta(days=1)
    req = parse_request(body, today)
    # The same condition marks a result subject_to_thresholding (see _compute).
    potentially_thresholded = settings.thresholding and any(m.user_metric for m in req.metrics)
    q = _admit(ctx, state, settings, potentially_thresholded)
    try:
        shares, revisions = _revision_filter(ctx, state, settings, req, advance=req.offset == 0)
        # The settings are part of the key: tests change them on a live server.
        key = hashlib.sha256(f"{settings!r}|{req.signature}|{shares}".encode()).hexdigest()
        with state.lock:
            compute_lock = state.compute_locks.setdefault(key, threading.Lock())
        with compute_lock:
            with state.lock:
                result = state.cache.get(key)
                if result is not None:
                    state.cache.move_to_end(key)
            if result is None:
                result = _compute(ctx, settings, req, revisions)
                with state.lock:
                    state.cache[key] = result
                    while len(state.cache) > 4:
                        old_key, _ = state.cache.popitem(last=False)
                        state.compute_locks.pop(old_key, None)
        page = result.table.slice(req.offset, req.limit)
        dim_count = len(req.dimensions) + (1 if len(req.date_ranges) > 1 else 0)
        cur = ctx.store.cursor()
        try:
            rows_text = _rows_json(cur, page, req, dim_count)
        finally:
            cur.close()
        days = max((r.end - r.start).days + 1 for r in req.date_ranges)
        cost = 1 + (days - 1) // 30 + page.num_rows // 10_000
        with state.lock:
            q.tokens_day += cost
            q.tokens_hour += cost
            q.tokens_project_hour += cost
            if result.subject_to_thresholding:
                q.thresholded_hour += 1
            quota = _quota_json(q, settings.quota)
        ctx.counters.incr("ga4.tokens", cost)
        ctx.counters.incr("ga4.rows", page.num_rows)
    finally:
        with state.lock:
            q.in_flight -= 1
    return ApiResponse(200, _encode_report(ctx, settings, req, result, rows_text, dim_count, quota))


def _encode_report(
    ctx: SandboxContext,
    settings: Ga4PropertySettings,
    req: ReportRequest,
    result: _Result,
    rows_text: bytes,
    dim_count: int,
    quota: dict[str, Any],
) -> bytes:
    dim_headers = [{"name": d.api_name} for d in req.dimensions]
    if len(req.date_ranges) > 1:
        dim_headers.append({"name": "dateRange"})
    head: dict[str, Any] = {}
    if dim_headers:
        head["dimensionHeaders"] = dim_headers
    if req.metrics:
        head["metricHeaders"] = [{"name": m.api_name, "type": m.type} for m in req.metrics]
    tail: dict[str, Any] = dict(_aggregate_rows(result, req, dim_count))
    if result.row_count:
        tail["rowCount"] = result.row_count
    metadata: dict[str, Any] = {"currencyCode": settings.currency_code, "timeZone": _time_zone(ctx, settings)}
    if result.data_loss_from_other_row:
        metadata["dataLossFromOtherRow"] = True
    if result.subject_to_thresholding:
        metadata["subjectToThresholding"] = True
    if result.sampling:
        metadata["samplingMetadatas"] = result.sampling
    tail["metadata"] = metadata
    if req.return_quota:
        tail["propertyQuota"] = quota
    tail["kind"] = "analyticsData#runReport"
    head_text = json.dumps(head, separators=(",", ":"))[:-1]
    tail_text = json.dumps(tail, separators=(",", ":"))[1:]
    sep = "," if head_text != "{" else ""
    if rows_text:
        return f'{head_text}{sep}"rows":['.encode() + rows_text + f"],{tail_text}".encode()
    return f"{head_text}{sep}{tail_text}".encode()


# --------------------------------------------------------------------------------------------
# compatibility (audiences)

# Membership per (visitor, audience) from the day of the visitor's first exposure; a row of the base table
# (session or event) joins every audience its visitor belonged to on that day.
_AUDIENCE_JOIN = (
    " JOIN (SELECT user_id AS _aud_user, exp_variant_string AS audience_name, audience_id, date AS _aud_from "
    "FROM experiment_exposures) AS _aud ON _aud._aud_user = user_id AND date >= _aud._aud_from"
)


def _incompatible_fields(dimension_names: list[str], metric_names: list[str]) -> list[str]:
    """The sandbox's compatibility rule: audience dimensions (in the request or its dimension filter) go
    only with user metrics (totalUsers, activeUsers, newUsers, totalPurchasers); a session or event metric
    beside them is incompatible. Returns the fields to remove (metrics first), [] when compatible."""
    if not any(name in DIMENSIONS and DIMENSIONS[name].audience for name in dimension_names):
        return []
    return [name for name in metric_names if name in METRICS and not METRICS[name].user_metric]


def check_compatibility(request: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    """``POST /v1beta/properties/{id}:checkCompatibility``: every dimension and metric, with whether it can
    be in a report beside the request's dimensions, metrics and dimension filter. An unknown field is a 400
    as in runReport; an incompatible request is NOT an error here (the method reports it)."""
    try:
        _property_settings(ctx, _property_id(request))
        try:
            body = request.json()
        except ValueError:
            raise _invalid("Invalid JSON payload received.") from None
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Expected an object.")
        dims = [d.get("name", "") for d in body.get("dimensions", []) if isinstance(d, dict)]
        mets = [m.get("name", "") for m in body.get("metrics", []) if isinstance(m, dict)]
        filter_dims = _filter_fields(body.get("dimensionFilter"))
        for name in dims + filter_dims:
            if name not in DIMENSIONS:
                raise _invalid(
                    f"Field {name} is not a valid dimension. For a list of valid dimensions and metrics, see {API_SCHEMA_URL}"
                )
        for name in mets:
            if name not in METRICS:
                raise _invalid(
                    f"Field {name} is not a valid metric. For a list of valid dimensions and metrics, see {API_SCHEMA_URL}"
                )
        wanted = body.get("compatibilityFilter", 0)
        wanted = (
            {0: None, 1: "COMPATIBLE", 2: "INCOMPATIBLE"}.get(wanted, wanted)
            if isinstance(wanted, int)
            else wanted
        )
    except ApiError as exc:
        return exc.response()
    base_dims = dims + filter_dims
    dim_out = []
    for d in DIMENSIONS.values():
        ok = not _incompatible_fields([d.api_name], mets)
        dim_out.append(
            {
                "dimensionMetadata": {
                    "apiName": d.api_name,
                    "uiName": d.ui_name,
                    "description": d.description or d.ui_name,
                },
                "compatibility": "COMPATIBLE" if ok else "INCOMPATIBLE",
            }
        )
    met_out = []
    for m in METRICS.values():
        ok = not _incompatible_fields(base_dims, [m.api_name])
        met_out.append(
            {
                "metricMetadata": {
                    "apiName": m.api_name,
                    "uiName": m.ui_name,
                    "description": m.description or m.ui_name,
                },
                "compatibility": "COMPATIBLE" if ok else "INCOMPATIBLE",
            }
        )
    if wanted:
        dim_out = [x for x in dim_out if x["compatibility"] == wanted]
        met_out = [x for x in met_out if x["compatibility"] == wanted]
    return ApiResponse(200, {"dimensionCompatibilities": dim_out, "metricCompatibilities": met_out})


def get_metadata(request: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    try:
        settings = _property_settings(ctx, _property_id(request))
    except ApiError as exc:
        return exc.response()
    dims = []
    for d in DIMENSIONS.values():
        item: dict[str, Any] = {
            "apiName": d.api_name,
            "uiName": d.ui_name,
            "description": d.description or d.ui_name,
            "category": d.category,
        }
        if d.custom:
            item["customDefinition"] = True
        dims.append(item)
    metrics = [
        {
            "apiName": m.api_name,
            "uiName": m.ui_name,
            "description": m.description or m.ui_name,
            "type": m.type,
            "category": m.category,
        }
        for m in METRICS.values()
    ]
    return ApiResponse(
        200, {"name": f"properties/{settings.property_id}/metadata", "dimensions": dims, "metrics": metrics}
    )


def routes() -> list[Route]:
    prop = r"/v1beta/properties/(?P<property_id>[^/:]+)"
    return [
        Route("ga4", "POST", prop + ":runReport", run_report, name="ga4:runReport"),
        Route("ga4", "GET", prop + "/metadata", get_metadata, name="ga4:getMetadata"),
        Route(
            "ga4", "POST", prop + ":checkCompatibility", check_compatibility, name="ga4:checkCompatibility"
        ),
    ]


__all__ = [
    "DIMENSIONS",
    "METRICS",
    "Ga4PropertySettings",
    "Ga4QuotaLimits",
    "Ga4SandboxConfig",
    "default_config",
    "routes",
]
