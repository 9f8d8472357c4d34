"""The scheduled summary export: an HTML report with charts plus CSV/Parquet, and its delivery.

Reporting code with no Dagster in it: orchestration's export and alert assets call it, and it reads
only the analyst file and what it is passed (settings come from orchestration/settings.py). See
README.md beside this file.
"""

from reporting.errors import ExportError, PersonalDataError
from reporting.period import Period, default_period
from reporting.personal_data import find_personal_data
from reporting.report import ExportResult, build_summary, run_export

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
