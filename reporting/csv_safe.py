"""CSV files that a spreadsheet opens as data, never as formulas.

Excel, LibreOffice and Google Sheets evaluate a cell that begins with `=`, `+`, `-` or `@` (and some
do after a leading tab or carriage return) as a formula: a campaign named `=HYPERLINK("http://evil",
"click")` becomes a live link in the analyst's spreadsheet. OWASP's rule for CSV injection: prefix such
a cell with a single quote, which spreadsheets show as text and do not evaluate.

Only text columns are neutralised: a negative number in a numeric column stays a number (`-0.25`),
and the Parquet files and the marts keep the values as they are. The rewrite is one SQL expression per
text column over the export query, so DuckDB writes the CSV in one vectorised pass as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

# Cells starting with one of these are evaluated by spreadsheets (OWASP "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# Columns of these types are numbers, flags or dates; everything else is written as text.
_NON_TEXT_TYPE = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|"
    r"FLOAT|DOUBLE|REAL|DECIMAL.*|BOOLEAN|DATE|TIME.*|TIMESTAMP.*|INTERVAL)$",
    re.IGNORECASE,
)


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"unexpected column name {name!r}")
    return f'"{name}"'


def is_text_type(duckdb_type: str) -> bool:
    return not _NON_TEXT_TYPE.match(duckdb_type.strip())


def neutralised_expression(column: str) -> str:
    """SQL for one text column: the value, with a `'` in front when it would start a formula."""
    col = _ident(column)
    # The trigger characters are our constants, not data: chr() keeps tab and CR readable here.
    triggers = ", ".join(f"chr({ord(c)})" for c in FORMULA_TRIGGERS)
    return (
        f"CASE WHEN left(CAST({col} AS VARCHAR), 1) IN ({triggers}) "
        f"THEN '''' || CAST({col} AS VARCHAR) ELSE CAST({col} AS VARCHAR) END AS {col}"
    )


def neutralising_select(query: str, columns: Sequence[str], types: Mapping[str, str]) -> str:
    """Wrap `query` (which selects `columns`) so its text columns are formula-safe for a CSV file."""
    parts = [
        neutralised_expression(c) if is_text_type(types.get(c, "VARCHAR")) else _ident(c) for c in columns
    ]
    return f"SELECT {', '.join(parts)} FROM ({query}) AS export_rows"


def write_csv(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: Mapping[str, Any] | Sequence[Any],
    path: Path,
    columns: Sequence[str],
    types: Mapping[str, str],
) -> Path:
    """`COPY (query) TO path` as CSV with a header, text cells neutralised (see the module docstring)."""
    literal = str(path).replace("'", "''")
    con.execute(
        f"COPY ({neutralising_select(query, columns, types)}) TO '{literal}' (FORMAT csv, HEADER)", params
    )
    return path


def needs_neutralising(value: str) -> bool:
    """The same rule in Python, for CSV written without DuckDB."""
    return value[:1] in FORMULA_TRIGGERS


def neutralise(value: Any) -> Any:
    """A cell for `csv.writer`: text that would start a formula gets a leading `'`; numbers pass."""
    if isinstance(value, str) and needs_neutralising(value):
        return "'" + value
    return value


__all__ = [
    "FORMULA_TRIGGERS",
    "is_text_type",
    "needs_neutralising",
    "neutralise",
    "neutralised_expression",
    "neutralising_select",
    "write_csv",
]
