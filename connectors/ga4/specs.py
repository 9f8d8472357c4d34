"""Declarative GA4 report specs: what to ask the Data API for, validated before any request."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.ga4.errors import Ga4ConfigError

MAX_DIMENSIONS = 9
MAX_METRICS = 10
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SPEC_KEYS = {"name", "dimensions", "metrics", "filters", "split_dimension", "keep_empty_rows"}


def column_name(api_name: str) -> str:
    """GA4 API name -> snake_case column (``sessionDefaultChannelGroup`` -> ``session_default_channel_group``,
    ``customEvent:form_name`` -> ``custom_event_form_name``)."""
    text = re.sub(r"[^0-9A-Za-z]+", "_", api_name)
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    return text.strip("_").lower()


@dataclass(frozen=True)
class ReportSpec:
    """One GA4 report: a raw table ``raw.ga4_<name>``.

    ``filters`` maps a dimension to the values to keep (an exact, case-sensitive in-list filter);
    ``split_dimension`` is the dimension a one-day request is split by when GA4 folds rows into
    "(other)" or samples (default: the first dimension after ``date``).
    """

    name: str
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...]
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    split_dimension: str | None = None
    keep_empty_rows: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dimensions", tuple(self.dimensions))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "filters", {k: tuple(v) for k, v in dict(self.filters).items()})

    def problems(self, source: str = "report specs") -> list[str]:
        """Every problem with this spec on its own (no API needed), one message each."""
        where = f"{source}: report '{self.name}'"
        out = []
        if not _NAME.match(self.name or ""):
            out.append(f"{where}: name must be lower_snake_case (it becomes table raw.ga4_{self.name})")
        if "date" not in self.dimensions:
            out.append(f"{where}: dimensions must include 'date' (rows are stored per property and day)")
        if len(self.dimensions) > MAX_DIMENSIONS:
            out.append(
                f"{where}: {len(self.dimensions)} dimensions; GA4 allows at most {MAX_DIMENSIONS} per request"
            )
        if not self.metrics:
            out.append(f"{where}: needs at least one metric")
        if len(self.metrics) > MAX_METRICS:
            out.append(f"{where}: {len(self.metrics)} metrics; GA4 allows at most {MAX_METRICS} per request")
        for kind, names in (("dimension", self.dimensions), ("metric", self.metrics)):
            dupes = sorted({n for n in names if list(names).count(n) > 1})
            for name in dupes:
                out.append(f"{where}: {kind} '{name}' is listed twice")
        columns = [column_name(n) for n in (*self.dimensions, *self.metrics)]
        clashes = sorted({c for c in columns if columns.count(c) > 1})
        for c in clashes:
            out.append(f"{where}: two fields map to the same column '{c}'")
        if self.split_dimension is not None and self.split_dimension not in self.dimensions:
            out.append(f"{where}: split_dimension '{self.split_dimension}' must be one of its dimensions")
        for dim, values in self.filters.items():
            if not values:
                out.append(f"{where}: filter on '{dim}' lists no values")
        return out

    @property
    def split_by(self) -> str | None:
        order = self.split_order()
        return order[0] if order else None

    def split_order(self) -> list[str]:
        """Dimensions to split a one-day request by, in turn: ``split_dimension`` first, then the
        others (not ``date``, not one the spec already pins to a single value)."""
        rest = [d for d in self.dimensions if d != "date" and len(self.filters.get(d, ())) != 1]
        if self.split_dimension:
            rest = [self.split_dimension] + [d for d in rest if d != self.split_dimension]
        return rest

    def dimension_filter(self, extra: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, Any] | None:
        """The GA4 FilterExpression (REST JSON shape) for this spec's filters plus ``extra``."""
        merged: dict[str, tuple[str, ...]] = dict(self.filters)
        for dim, values in (extra or {}).items():
            merged[dim] = tuple(v for v in merged[dim] if v in values) if dim in merged else tuple(values)
        if not merged:
            return None
        exprs = [
            {
                "filter": {
                    "field_name": dim,
                    "in_list_filter": {"values": list(values), "case_sensitive": True},
                }
            }
            for dim, values in sorted(merged.items())
        ]
        return exprs[0] if len(exprs) == 1 else {"and_group": {"expressions": exprs}}


SEGMENT = ("sessionDefaultChannelGroup", "deviceCategory", "country", "newVsReturning")


def default_report_specs() -> list[ReportSpec]:
    """The default reports of CONTRACTS.md §3."""
    return [
        ReportSpec(
            "web_sessions", ("date", *SEGMENT), ("sessions", "engagedSessions", "totalUsers", "newUsers")
        ),
        ReportSpec("events", ("date", "eventName", *SEGMENT), ("eventCount", "totalUsers", "eventValue")),
        ReportSpec("key_events", ("date", "eventName", *SEGMENT), ("keyEvents",)),
        ReportSpec(
            "ecommerce", ("date", *SEGMENT), ("ecommercePurchases", "purchaseRevenue", "totalPurchasers")
        ),
        ReportSpec(
            "landing_pages",
            ("date", "landingPage", "sessionDefaultChannelGroup"),
            ("sessions", "engagedSessions", "totalUsers", "ecommercePurchases", "keyEvents"),
        ),
        ReportSpec(
            "campaigns",
            ("date", "sessionCampaignName", "sessionSource", "sessionMedium", "sessionDefaultChannelGroup"),
            ("sessions", "totalUsers", "ecommercePurchases", "purchaseRevenue", "keyEvents"),
        ),
        ReportSpec(
            "lead_forms",
            ("date", "eventName", "customEvent:form_name", "sessionDefaultChannelGroup"),
            ("eventCount",),
            filters={"eventName": ("generate_lead",)},
        ),
    ]


CUSTOM_PREFIX = "custom_"


def custom_report_spec(
    name: str,
    dimensions: Iterable[str],
    metrics: Iterable[str],
    filters: Mapping[str, Iterable[str]] | None = None,
) -> ReportSpec:
    """A user's own report (the accounts file's ``custom_reports``): table ``raw.ga4_custom_<name>``.

    The prefix keeps custom tables apart from the built-in ones whatever the user names them. Check it
    with ``problems()`` and against the property's metadata (``Ga4Client.validate``) before any request.
    """
    return ReportSpec(
        CUSTOM_PREFIX + name,
        tuple(dimensions),
        tuple(metrics),
        filters={k: tuple(v) for k, v in (filters or {}).items()},
    )


def spec_from_dict(data: Mapping[str, Any], source: str = "configuration") -> ReportSpec:
    """A user's report spec from configuration (YAML/JSON mapping); raises Ga4ConfigError."""
    name = data.get("name", "?") if isinstance(data, Mapping) else "?"
    where = f"{source}: report '{name}'"
    if not isinstance(data, Mapping):
        raise Ga4ConfigError(f"{source}: a report spec must be a mapping with name, dimensions, metrics")
    unknown = sorted(set(data) - _SPEC_KEYS)
    if unknown:
        raise Ga4ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_SPEC_KEYS))}"
        )
    for key in ("name", "dimensions", "metrics"):
        if key not in data:
            raise Ga4ConfigError(f"{where}: missing '{key}'")
    dims, mets = data["dimensions"], data["metrics"]
    if not isinstance(dims, list | tuple) or not all(isinstance(d, str) for d in dims):
        raise Ga4ConfigError(f"{where}: 'dimensions' must be a list of GA4 dimension API names")
    if not isinstance(mets, list | tuple) or not all(isinstance(m, str) for m in mets):
        raise Ga4ConfigError(f"{where}: 'metrics' must be a list of GA4 metric API names")
    filters = data.get("filters") or {}
    if not isinstance(filters, Mapping):
        raise Ga4ConfigError(f"{where}: 'filters' must map a dimension to a list of values")
    filters = {k: tuple([v] if isinstance(v, str) else v) for k, v in filters.items()}
    spec = ReportSpec(
        name=str(data["name"]),
        dimensions=tuple(dims),
        metrics=tuple(mets),
        filters=filters,
        split_dimension=data.get("split_dimension"),
        keep_empty_rows=bool(data.get("keep_empty_rows", False)),
    )
    check_specs([spec], source)
    return spec


def check_specs(specs: Iterable[ReportSpec], source: str = "report specs") -> None:
    specs = list(specs)
    problems = [p for s in specs for p in s.problems(source)]
    names = [s.name for s in specs]
    for dupe in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{source}: report name '{dupe}' is used twice")
    if problems:
        raise Ga4ConfigError("\n".join(problems))
