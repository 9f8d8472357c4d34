"""Personal data never leaves in an export, and one hostile value cannot switch the export off.

Campaign names, landing pages and form names are typed by the public: anyone can send a session with
`utm_campaign=x.y@example.com`. Refusing the whole week for that would let one URL switch off every
team's report, so the guard works at two levels:

- **Values.** Before the report reads the file, every text value shaped like an e-mail address is
  replaced by `REDACTED` (in the report, the e-mail, the CSV and Parquet files, the findings and the
  Slack message alike), and the report's data-quality notes and the run's metadata say where and how
  many. The file itself is not changed: the export reads every table through views in a private
  in-memory catalog (`stepwise_redacted.<schema>.*`) that rewrite only the offending values.
- **Columns.** A column whose name says it holds personal data (e-mail, phone, person or contact
  names and ids, addresses, IPs) is never exported: selecting one refuses the export
  (`PersonalDataError`), as does an e-mail-like string that still turns up in a written file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

# The same shape the file scan looks for (RE2 and Python `re` read it alike).
EMAIL_REGEX = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
EMAIL_PATTERN = re.compile(EMAIL_REGEX)
REDACTED = "[redacted e-mail-like value]"
REDACTING_CATALOG = "stepwise_redacted"
# The schemas an export reads (the marts, and staging for the CRM cohort lag) are scanned and redacted;
# any other schema (raw) is mirrored as it is: nothing in the export reads its text, and the scan of
# the written files would still refuse a leak.
REDACTED_SCHEMAS = ("marts", "staging")

# Column names that say "this identifies a person": never exported, whatever their type.
PERSONAL_COLUMN = re.compile(
    r"(e_?mail|phone|firstname|lastname|first_name|last_name|full_name|^name$|person|"
    r"address|^ip$|ip_address|contact_id|contact_name|user_id|client_id|visitor_id|cookie)",
    re.IGNORECASE,
)


class PersonalColumnError(RuntimeError):
    """A column that holds personal data was selected for an export."""


@dataclass(frozen=True)
class Redaction:
    """Values of one column that were shaped like e-mail addresses and were not exported."""

    schema: str
    table: str
    column: str
    values: int  # distinct values redacted
    rows: int  # rows that carried one

    def describe(self) -> str:
        return (
            f"{self.schema}.{self.table}.{self.column}: {self.values} value(s) shaped like an e-mail "
            f"address ({self.rows} row(s)) shown as “{REDACTED}”"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "table": self.table,
            "column": self.column,
            "values": self.values,
            "rows": self.rows,
        }


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _relations(con: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[str, str]]:
    return [
        (schema, table)
        for schema, table in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = ? "
            "AND table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY 1, 2",
            [catalog],
        ).fetchall()
    ]


def _text_columns(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[tuple[str, str], list[str]]:
    rows = con.execute(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        "WHERE table_catalog = ? AND data_type = 'VARCHAR' AND list_contains(?, table_schema) "
        "ORDER BY 1, 2, ordinal_position",
        [catalog, list(REDACTED_SCHEMAS)],
    ).fetchall()
    out: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in rows:
        out.setdefault((schema, table), []).append(column)
    return out


def _matches(column: str, pattern: str) -> str:
    # `contains` first: a vectorised byte search that spares the regex on almost every value.
    return f"(contains({_quote(column)}, '@') AND regexp_matches({_quote(column)}, {pattern}))"


def find_redactions(con: duckdb.DuckDBPyConnection, catalog: str) -> list[Redaction]:
    """Text columns of the exported schemas of `catalog` holding e-mail-shaped values: one SQL pass per
    table."""
    found = []
    for (schema, table), columns in _text_columns(con, catalog).items():
        counts = ", ".join(
            f"count(DISTINCT {_quote(c)}) FILTER (WHERE {_matches(c, '$p')}), "
            f"count(*) FILTER (WHERE {_matches(c, '$p')})"
            for c in columns
        )
        row = con.execute(
            f"SELECT {counts} FROM {_quote(catalog)}.{_quote(schema)}.{_quote(table)}", {"p": EMAIL_REGEX}
        ).fetchall()[0]
        for i, column in enumerate(columns):
            values, rows = int(row[2 * i]), int(row[2 * i + 1])
            if values:
                found.append(Redaction(schema, table, column, values, rows))
    return found


def redact_marts(con: duckdb.DuckDBPyConnection) -> list[Redaction]:
    """Point `con` at views of its tables with e-mail-shaped text values replaced; return what was replaced.

    Every schema of the file (marts, staging, …) is mirrored, so whatever a report section reads goes
    through the redaction. `con` may be read-only (the analyst file): the views live in a private
    in-memory catalog, and `USE` makes `marts.x` resolve to them for the rest of this connection's life.
    With nothing to redact the connection is left as it is.
    """
    source = con.execute("SELECT current_database()").fetchall()[0][0]
    redactions = find_redactions(con, source)
    if not redactions:
        return []
    by_table: dict[tuple[str, str], list[str]] = {}
    for r in redactions:
        by_table.setdefault((r.schema, r.table), []).append(r.column)
    con.execute(f"ATTACH ':memory:' AS {REDACTING_CATALOG} (READ_ONLY false)")
    # A view definition cannot take parameters: the pattern and label are our constants, quoted here.
    pattern = "'" + EMAIL_REGEX.replace("'", "''") + "'"
    label = "'" + REDACTED.replace("'", "''") + "'"
    for schema, table in _relations(con, source):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {REDACTING_CATALOG}.{_quote(schema)}")
        replaced = [
            f"CASE WHEN {_matches(c, pattern)} THEN {label} ELSE {_quote(c)} END AS {_quote(c)}"
            for c in by_table.get((schema, table), [])
        ]
        select = f"* REPLACE ({', '.join(replaced)})" if replaced else "*"
        con.execute(
            f"CREATE VIEW {REDACTING_CATALOG}.{_quote(schema)}.{_quote(table)} AS "
            f"SELECT {select} FROM {_quote(source)}.{_quote(schema)}.{_quote(table)}"
        )
    con.execute(f"USE {REDACTING_CATALOG}")
    return redactions


def check_export_columns(table: str, columns: Iterable[str]) -> None:
    """Refuse the export when a column that holds personal data would be written."""
    personal = [c for c in columns if PERSONAL_COLUMN.search(c)]
    if personal:
        raise PersonalColumnError(
            f"refusing to export marts.{table}: column(s) {', '.join(personal)} hold personal data; "
            "remove them from the export's reviewed columns (reporting/export_columns.py TEXT_COLUMNS)"
        )


def data_quality_note(redactions: list[Redaction]) -> dict[str, str] | None:
    """The report's data-quality note (same shape as the other notes) saying what was redacted."""
    if not redactions:
        return None
    where = "; ".join(
        f"{r.schema}.{r.table}.{r.column} ({r.values} value{'s' if r.values != 1 else ''}, "
        f"{r.rows} row{'s' if r.rows != 1 else ''})"
        for r in redactions
    )
    return {
        "kind": "personal-data",
        "level": "warn",
        "text": "Text shaped like an e-mail address (typed into a public URL or form) was redacted from this "
        f"export and is shown as “{REDACTED}”: {where}. The analyst file keeps the values; their counts "
        "are still included.",
    }


# --- the last scan of the written files ---------------------------------------------------------


def _text_of(path: Path) -> Iterable[str]:
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        yield " ".join(table.column_names)
        for column in table.columns:
            if column.type in ("string", "large_string") or str(column.type) in ("string", "large_string"):
                yield "\n".join(v for v in column.to_pylist() if v is not None)
    else:
        yield path.read_text(encoding="utf-8", errors="replace")


def find_personal_data(paths: Iterable[Path]) -> list[str]:
    """E-mail-like strings in the given files (text, HTML, CSV, and Parquet string columns)."""
    hits = []
    for path in paths:
        for text in _text_of(path):
            for match in EMAIL_PATTERN.finditer(text):
                hits.append(f"{path.name}: {match.group(0)[:3]}…")
    return hits


__all__ = [
    "EMAIL_PATTERN",
    "EMAIL_REGEX",
    "PERSONAL_COLUMN",
    "REDACTED",
    "PersonalColumnError",
    "Redaction",
    "check_export_columns",
    "data_quality_note",
    "find_personal_data",
    "find_redactions",
    "redact_marts",
]
