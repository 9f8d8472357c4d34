"""Materialisation metadata and content hashes for warehouse tables."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg
import duckdb

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Load metadata says when and by which sync a row was last written, which differs between two loads
# of the same data by design; content hashes compare the data and skip it.
VOLATILE_COLUMNS = frozenset({"_loaded_at", "_sync_mode", "_partition_key"})
JSON_OBJECT_COLUMNS = frozenset({"properties"})


def ident(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


def qualified(schema: str, table: str) -> str:
    return f"{ident(schema)}.{ident(table)}"


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(found[0][0])


def columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str, str | None]]:
    """(name, type, comment) per column, in table order."""
    return [
        (name, dtype, comment)
        for name, dtype, comment in con.execute(
            "SELECT column_name, data_type, comment FROM duckdb_columns() "
            "WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
            [schema, table],
        ).fetchall()
    ]


def row_count(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {qualified(schema, table)}").fetchall()[0][0])


def _md_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")[:60]


def markdown_preview(con: duckdb.DuckDBPyConnection, schema: str, table: str, limit: int = 10) -> str:
    cols = [name for name, _, _ in columns(con, schema, table)]
    shown = cols[:12]
    if not shown:
        return "_(no columns)_"
    select = ", ".join(ident(c) for c in shown)
    rows = con.execute(f"SELECT {select} FROM {qualified(schema, table)} LIMIT {int(limit)}").fetchall()
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
    if len(cols) > len(shown):
        lines.append(f"\n_{len(cols) - len(shown)} more columns not shown_")
    return "\n".join(lines)


def table_metadata(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    *,
    data_source: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    cols = columns(con, schema, table)
    table_comment = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [schema, table]
    ).fetchall()
    metadata: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(row_count(con, schema, table)),
        "dagster/table_name": dg.MetadataValue.text(f"stepwise.{schema}.{table}"),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=n, type=t, description=c or None) for n, t, c in cols]
        ),
        "preview": dg.MetadataValue.md(markdown_preview(con, schema, table)),
        "data_source": dg.MetadataValue.text(data_source),
    }
    if table_comment and table_comment[0][0]:
        metadata["table_description"] = dg.MetadataValue.text(table_comment[0][0])
    if extra:
        metadata.update(extra)
    return metadata


def content_hash(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, exclude: Iterable[str] = VOLATILE_COLUMNS
) -> tuple[int, str]:
    """(rows, order-independent hash of the rows) over every column except load metadata.

    Floating-point columns are rounded first: parallel aggregation may change their last bits.
    """
    skip = set(exclude)
    parts: list[str] = []
    for name, dtype, _ in columns(con, schema, table):
        if name in skip:
            continue
        expr = ident(name)
        if dtype.upper() in ("DOUBLE", "FLOAT", "REAL"):
            expr = f"round({expr}, 6)"
        elif name in JSON_OBJECT_COLUMNS and dtype.upper() in ("VARCHAR", "JSON"):
            # A JSON object compares by its members with values: the list and search endpoints order
            # keys differently, and one leaves out properties the other sends as null.
            expr = (
                f"list_sort(list_filter(map_entries(CAST(CAST({expr} AS JSON) AS MAP(VARCHAR, VARCHAR))), "
                "lambda e: e.value IS NOT NULL))"
            )
        elif "WITH TIME ZONE" in dtype.upper():
            # As text an instant depends on the session's TimeZone; as epoch it does not.
            expr = f"epoch_us({expr})"
        parts.append(f"coalesce(CAST({expr} AS VARCHAR), '\\N')")
    if not parts:
        return row_count(con, schema, table), "0"
    row_text = " || '\\x1f' || ".join(parts)
    n, digest = con.execute(
        f"SELECT count(*), coalesce(sum(hash({row_text})::HUGEINT), 0) FROM {qualified(schema, table)}"
    ).fetchall()[0]
    return int(n), str(digest)


def schema_hashes(
    con: duckdb.DuckDBPyConnection, schemas: Sequence[str], skip_tables: Iterable[str] = ()
) -> dict[str, tuple[int, str]]:
    skipped = set(skip_tables)
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN "
        f"({', '.join('?' for _ in schemas)}) ORDER BY 1, 2",
        list(schemas),
    ).fetchall()
    return {f"{s}.{t}": content_hash(con, s, t) for s, t in tables if f"{s}.{t}" not in skipped}
