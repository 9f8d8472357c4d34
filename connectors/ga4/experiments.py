"""Experiment readouts from GA4: per variant audience, the users over the window and the converting users.

GA4's documented third-party testing integration sends ``experience_impression`` with ``exp_variant_string``
and creates one audience per variant. The Data API reports users in the audiences they belonged to during
the report's date range (``audienceName``), so one request per experiment and window gives, with the metric
``totalUsers`` (users deduplicated over the whole window, not summed over days):

- exposed users per variant: dimensions ``audienceName``, filter audienceName in the variants' audiences;
- converting users per variant and conversion: dimensions ``audienceName`` + ``eventName``, filtered to the
  conversions' event names (a user counts once however often they converted).

Audience dimensions are compatible with a limited set of fields. Before any report, ``validate_experiments``
checks the fields against the property's metadata (getMetadata) and asks the property itself whether the
exact request is compatible (checkCompatibility, with the same dimensions, metrics and dimension filter), so
a property that refuses the combination stops the run with one message instead of a failed report.
No Dagster, no DuckDB: this returns Arrow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from connectors.ga4.client import Ga4Client
from connectors.ga4.errors import Ga4ConfigError
from connectors.ga4.request_log import finish_log

__all__ = [
    "EXPERIMENT_METRIC",
    "EXPERIMENT_REPORT",
    "ExperimentQuery",
    "experiment_schema",
    "fetch_experiment",
    "validate_experiments",
]

EXPERIMENT_REPORT = "experiments"
EXPERIMENT_METRIC = "totalUsers"
AUDIENCE_DIMENSION = "audienceName"
EVENT_DIMENSION = "eventName"
EXPOSED_EVENT = None  # event_name of the exposure rows: NULL (users of the audience, any event)


@dataclass(frozen=True)
class ExperimentQuery:
    """What to read for one experiment: its variants' audience names and its conversions' GA4 event names."""

    name: str
    audiences: tuple[str, ...]
    events: tuple[str, ...]

    def requests(self) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        """(dimensions, dimension filter) of the two reports; the metric is always totalUsers."""
        audiences = {
            "filter": {
                "field_name": AUDIENCE_DIMENSION,
                "in_list_filter": {"values": list(self.audiences), "case_sensitive": True},
            }
        }
        events = {
            "filter": {
                "field_name": EVENT_DIMENSION,
                "in_list_filter": {"values": list(self.events), "case_sensitive": True},
            }
        }
        return [
            ((AUDIENCE_DIMENSION,), audiences),
            ((AUDIENCE_DIMENSION, EVENT_DIMENSION), {"and_group": {"expressions": [audiences, events]}}),
        ]


def experiment_schema() -> pa.Schema:
    return pa.schema(
        [
            ("property_id", pa.string()),
            ("experiment", pa.string()),
            ("window_start", pa.date32()),
            ("window_end", pa.date32()),
            ("audience_name", pa.string()),
            ("event_name", pa.string()),  # NULL: the audience's users over the window (the exposed)
            ("total_users", pa.int64()),
            ("subject_to_thresholding", pa.bool_()),
            ("data_loss_from_other_row", pa.bool_()),
            ("sampled", pa.bool_()),
        ]
    )


def validate_experiments(
    client: Ga4Client, queries: Sequence[ExperimentQuery], source: str = "experiments"
) -> None:
    """Metadata and compatibility of every experiment request on every property, before any report.

    Raises Ga4ConfigError with one line per problem."""
    from google.analytics.data_v1beta.types import CheckCompatibilityRequest, Compatibility

    problems: list[str] = []
    for property_id in client.settings.property_ids:
        dims, mets = client.metadata(property_id)
        for name, kind, offered in (
            (AUDIENCE_DIMENSION, "dimension", dims),
            (EVENT_DIMENSION, "dimension", dims),
            (EXPERIMENT_METRIC, "metric", mets),
        ):
            if name not in offered:
                problems.append(
                    f"{source}: GA4 property {property_id} does not offer the {kind} '{name}' that experiment "
                    "readouts need (see its metadata)"
                )
        if problems:
            continue
        for query in queries:
            for dimensions, dimension_filter in query.requests():
                request = CheckCompatibilityRequest(
                    property=f"properties/{property_id}",
                    dimensions=[{"name": d} for d in dimensions],
                    metrics=[{"name": EXPERIMENT_METRIC}],
                )
                request.dimension_filter = dimension_filter  # type: ignore[assignment]
                log = client._new_log(property_id, EXPERIMENT_REPORT, "metadata", None, None)

                def check(r: Any = request) -> Any:
                    return client._sdk().check_compatibility(request=r, timeout=client.settings.timeout_s)

                try:
                    answer = client._call(property_id, EXPERIMENT_REPORT, check, log, use_budget=False)
                finally:
                    finish_log(log)
                wanted = set(dimensions) | {EXPERIMENT_METRIC}
                refused = sorted(
                    [
                        c.dimension_metadata.api_name
                        for c in answer.dimension_compatibilities
                        if c.compatibility == Compatibility.INCOMPATIBLE
                    ]
                    + [
                        c.metric_metadata.api_name
                        for c in answer.metric_compatibilities
                        if c.compatibility == Compatibility.INCOMPATIBLE
                    ]
                )
                refused = [name for name in refused if name in wanted]
                if refused:
                    problems.append(
                        f"{source}: experiment '{query.name}': GA4 property {property_id} reports "
                        f"{', '.join(refused)} incompatible with {', '.join(sorted(wanted - set(refused)))} "
                        "(checkCompatibility); experiment readouts need audience dimensions with totalUsers"
                    )
    if problems:
        raise Ga4ConfigError("\n".join(problems))


def fetch_experiment(
    client: Ga4Client, property_id: str, query: ExperimentQuery, start: dt.date, end: dt.date
) -> pa.Table:
    """Both reports of one experiment over [start, end] for one property, as rows of ``experiment_schema``."""
    from google.analytics.data_v1beta.types import RunReportRequest

    columns: dict[str, list[Any]] = {name: [] for name in experiment_schema().names}
    log = client._new_log(property_id, EXPERIMENT_REPORT, "full", start, end)
    try:
        for dimensions, dimension_filter in query.requests():
            offset = 0
            while True:
                request = RunReportRequest(
                    property=f"properties/{property_id}",
                    dimensions=[{"name": d} for d in dimensions],
                    metrics=[{"name": EXPERIMENT_METRIC}],
                    date_ranges=[{"start_date": start.isoformat(), "end_date": end.isoformat()}],
                    offset=offset,
                    limit=10_000,
                    return_property_quota=True,
                )
                request.dimension_filter = dimension_filter  # type: ignore[assignment]
                response = client._run(property_id, EXPERIMENT_REPORT, request, log)
                meta = response.metadata
                flags = (
                    bool(meta.subject_to_thresholding),
                    bool(meta.data_loss_from_other_row),
                    len(meta.sampling_metadatas) > 0,
                )
                for key, value in zip(
                    ("subject_to_thresholding", "data_loss_from_other_row", "sampled"), flags, strict=True
                ):
                    log.flag(key, value)
                for row in response.rows:
                    values = [v.value for v in row.dimension_values]
                    columns["property_id"].append(property_id)
                    columns["experiment"].append(query.name)
                    columns["window_start"].append(start)
                    columns["window_end"].append(end)
                    columns["audience_name"].append(values[0])
                    columns["event_name"].append(values[1] if len(values) > 1 else EXPOSED_EVENT)
                    columns["total_users"].append(int(row.metric_values[0].value))
                    columns["subject_to_thresholding"].append(flags[0])
                    columns["data_loss_from_other_row"].append(flags[1])
                    columns["sampled"].append(flags[2])
                log.add("pages")
                log.add("rows", len(response.rows))
                offset += len(response.rows)
                if not response.rows or offset >= response.row_count:
                    break
    except Exception as exc:
        finish_log(log, error=str(exc))
        raise
    finish_log(log)
    return pa.table(columns, schema=experiment_schema())
