"""RunReportResponse -> typed Arrow batch (types from the response headers, snake_case names)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors.ga4.errors import Ga4ResponseError
from connectors.ga4.specs import ReportSpec, column_name

TYPE_INTEGER = 1  # google.analytics.data_v1beta.MetricType.TYPE_INTEGER
FLAG_COLUMNS = ("subject_to_thresholding", "data_loss_from_other_row", "sampled")
# GA4's folded row carries "(other)" in every dimension, the date too: it has no day of its own.
OTHER_ROW = "(other)"
# A value quoted in an error is cut to this many characters: it comes from a response.
MAX_QUOTED = 40
INTEGER_RE = r"^-?[0-9]+$"
DECIMAL_RE = r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"


def _quoted(value: str) -> str:
    return repr(value if len(value) <= MAX_QUOTED else value[:MAX_QUOTED] + "…")


def _bad_row(
    property_id: str, spec: ReportSpec, row: int, field: str, value: str | None, expected: str
) -> Ga4ResponseError:
    shown = "missing" if value is None else f"{_quoted(value)}"
    return Ga4ResponseError(
        f"GA4 property {property_id}, report '{spec.name}': field '{field}' is {shown} in row {row + 1} of the "
        f"response, not {expected}; nothing of this report was written",
        property_id=property_id,
        report=spec.name,
    )


def batch_schema(spec: ReportSpec, metric_types: dict[str, int] | None = None) -> pa.Schema:
    """The Arrow schema of a spec's batches (metric types default to integer when unknown)."""
    fields = [pa.field("property_id", pa.string(), nullable=False), pa.field("date", pa.date32())]
    fields += [pa.field(column_name(d), pa.string()) for d in spec.dimensions if d != "date"]
    for m in spec.metrics:
        is_int = (metric_types or {}).get(m, TYPE_INTEGER) == TYPE_INTEGER
        fields.append(pa.field(column_name(m), pa.int64() if is_int else pa.float64()))
    fields += [pa.field(f, pa.bool_(), nullable=False) for f in FLAG_COLUMNS]
    return pa.schema(fields)


def response_to_batch(
    response: Any, *, property_id: str, spec: ReportSpec, single_day: dt.date | None = None
) -> pa.RecordBatch:
    """One page of a report as a RecordBatch.

    ``date`` is the property-local day (GA4 reports dates in the property's time zone). A row that
    GA4 folded into "(other)" has no date of its own; when the request covered one day
    (``single_day``) that day is used, otherwise it stays NULL and the row keeps its flag.
    """
    pb = type(response).pb(response)
    dim_names = [h.name for h in pb.dimension_headers]
    metric_names = [h.name for h in pb.metric_headers]
    metric_types = {h.name: h.type_ for h in pb.metric_headers}
    rows = pb.rows
    n = len(rows)
    # Reading the protobuf rows once, column lists filled together, is the cheap path through upb.
    dim_cols: list[list[str]] = [[""] * n for _ in dim_names]
    met_cols: list[list[str]] = [[""] * n for _ in metric_names]
    nd, nm = len(dim_names), len(metric_names)
    for r, row in enumerate(rows):
        dvs = row.dimension_values
        mvs = row.metric_values
        if len(dvs) != nd or len(mvs) != nm:
            short = dim_names[len(dvs)] if len(dvs) < nd else metric_names[min(len(mvs), nm - 1)]
            raise _bad_row(property_id, spec, r, short, None, "one value per header")
        for i in range(nd):
            dim_cols[i][r] = dvs[i].value
        for i in range(nm):
            met_cols[i][r] = mvs[i].value
    by_name: dict[str, pa.Array] = {}
    for name, values in zip(dim_names, dim_cols, strict=True):
        by_name[name] = pa.array(values, pa.string())
    for name, values in zip(metric_names, met_cols, strict=True):
        is_int = metric_types[name] == TYPE_INTEGER
        text = pa.array(values, pa.string())
        # Checked before the cast, vectorised: Arrow's cast error names neither row nor field.
        ok = pc.match_substring_regex(text, INTEGER_RE if is_int else DECIMAL_RE)
        if pc.any(pc.invert(ok)).as_py():  # None on an empty page: nothing to refuse
            r = ok.to_pylist().index(False)
            raise _bad_row(property_id, spec, r, name, values[r], "a whole number" if is_int else "a number")
        by_name[name] = pc.cast(text, pa.int64() if is_int else pa.float64())

    meta = pb.metadata
    flags = {
        "subject_to_thresholding": bool(meta.subject_to_thresholding),
        "data_loss_from_other_row": bool(meta.data_loss_from_other_row),
        "sampled": len(meta.sampling_metadatas) > 0,
    }
    schema = batch_schema(spec, metric_types)
    arrays: list[pa.Array] = [pa.array([property_id] * n, pa.string())]
    if "date" in by_name:
        dates = pc.strptime(by_name["date"], format="%Y%m%d", unit="s", error_is_null=True).cast(pa.date32())
        if dates.null_count:
            # Only the "(other)" row may lack a day; "20261345" would land as a NULL date that no
            # slice DELETE ever removes, so it stops the load instead.
            raw_dates = by_name["date"].to_pylist()
            for r, (value, parsed) in enumerate(zip(raw_dates, dates.to_pylist(), strict=True)):
                if parsed is None and value != OTHER_ROW:
                    raise _bad_row(property_id, spec, r, "date", value, "a day written YYYYMMDD")
        if single_day is not None and dates.null_count:
            dates = pc.fill_null(dates, pa.scalar(single_day, pa.date32()))
        arrays.append(dates)
    else:
        arrays.append(pa.nulls(n, pa.date32()))
    for d in spec.dimensions:
        if d != "date":
            arrays.append(by_name[d])
    for m in spec.metrics:
        arrays.append(by_name[m])
    for f in FLAG_COLUMNS:
        arrays.append(pa.array([flags[f]] * n, pa.bool_()))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
