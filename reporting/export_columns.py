"""Which columns of each mart an export may carry.

Text columns are listed per mart and reviewed: anything textual not named here stays in the
warehouse, so a new free-text column upstream must be reviewed before it can reach an inbox.
Non-text columns are aggregates (counts, rates, dates, flags) and pass, unless their name says they
identify a person or a record tied to one; a column named like personal data refuses the export
(reporting/personal_data.py).
"""

from __future__ import annotations

import re

import duckdb

from reporting import personal_data, section_alerts
from reporting.errors import PersonalDataError
from reporting.marts import mart_columns

# Text columns that may be exported, per mart. Anything textual not named here stays in the warehouse:
# a new free-text column upstream must be reviewed before it can reach an inbox.
TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "conversion_catalog": (
        "conversion_name", "description", "source_system", "signal", "signal_type", "tier", "kind",
        "funnel_name", "value_source",
    ),
    "web_sessions_daily": ("property_id", "channel", "device_category", "country", "visitor_type"),
    "conversions_daily": (
        "source_system", "source_id", "conversion_name", "tier", "kind", "channel", "device_category",
        "country", "visitor_type", "conversion_unit",
    ),
    "funnel_daily": ("funnel_name", "step_name", "count_unit", "source_system", "portal_id"),
    "channel_funnel_daily": ("channel", "portal_id"),
    "segment_summary": (
        "tier", "conversion_name", "segment_dimension", "segment_value", "unit", "source_system",
        "test_method", "gate_reason",
    ),
    "micro_macro_lift": (
        "micro_conversion", "basis", "macro_conversion", "unit", "kind", "test_method", "gate_reason",
    ),
    "data_quality": ("run_id", "source", "source_id", "request", "mode"),
}  # fmt: skip
TEXT_COLUMNS.update(section_alerts.TEXT_COLUMNS)
TEXT_COLUMNS["micro_conversions_daily"] = (*TEXT_COLUMNS["conversions_daily"], "sessions_basis")
TEXT_COLUMNS["macro_conversions_daily"] = TEXT_COLUMNS["micro_conversions_daily"]

# Non-text columns are aggregates (counts, rates, dates, flags) and pass, unless their name says they
# identify a person or a record tied to one.
IDENTIFYING_NAME = re.compile(r"(^id$|_ids?$|email|phone|name$|firstname|lastname|address|^ip)", re.I)
ALLOWED_ID_COLUMNS = {"property_id", "source_id", "run_id", "conversion_name", "step_name", "funnel_name"}
NUMERIC_TYPES = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|"
    r"FLOAT|DOUBLE|REAL|DECIMAL.*|BOOLEAN|DATE|TIMESTAMP.*)$"
)


def columns_to_export(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    allowed_text = set(TEXT_COLUMNS.get(table, ()))
    out = []
    for name, dtype in mart_columns(table).items():
        if name.startswith("_"):
            continue
        if (
            name in allowed_text
            or (NUMERIC_TYPES.match(dtype.upper()) and not IDENTIFYING_NAME.search(name))
            or name in ALLOWED_ID_COLUMNS
        ):
            out.append(name)
    try:
        personal_data.check_export_columns(table, out)
    except personal_data.PersonalColumnError as exc:
        raise PersonalDataError(str(exc)) from None
    return out
