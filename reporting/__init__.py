"""The scheduled summary export: an HTML report with charts plus CSV/Parquet, and its delivery."""

from reporting.report import (
    ExportError,
    ExportResult,
    Period,
    PersonalDataError,
    build_summary,
    default_period,
    find_personal_data,
    run_export,
)

__all__ = [
    "ExportError",
    "ExportResult",
    "Period",
    "PersonalDataError",
    "build_summary",
    "default_period",
    "find_personal_data",
    "run_export",
]
