"""Per-table content hashes of a warehouse's staging and marts tables, to show a refactor changed nothing.

    python -m transforms.table_hashes <warehouse.duckdb>          # one line per table
    python -m transforms.table_hashes --build <raw-only copy.duckdb>  # build_from_files on it, then hash
    python -m bench.table_hashes <demo_raw.duckdb>                # a raw-only file of the demo store

Building copies of one raw-only file at two commits compares their builds on the same raw data, even if
the sandbox store changes in between. The hash is order-independent and exact (no
rounding): every value of every column, cast to text, with the column names and types in the line.
"""

from __future__ import annotations

import argparse
import sys

import duckdb


def table_hashes(
    con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] = ("staging", "marts")
) -> list[str]:
    """'schema.table rows hash' per table, sorted; the types and names of the columns are hashed too."""
    lines = []
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name IN (SELECT unnest(?::VARCHAR[])) ORDER BY 1, 2",
        [list(schemas)],
    ).fetchall()
    for schema, table in tables:
        columns = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ? ORDER BY column_index",
            [schema, table],
        ).fetchall()
        if table == "build_state":
            # Bookkeeping: its fingerprint covers the model SQL text, which a header change alters.
            columns = [c for c in columns if c[0] != "config_fingerprint"]
        shape = ",".join(f"{name} {dtype}" for name, dtype in columns)
        parts = [
            f"coalesce(CAST(epoch_us(\"{n}\") AS VARCHAR), '\\N')"
            if "WITH TIME ZONE" in t
            else f"coalesce(CAST(\"{n}\" AS VARCHAR), '\\N')"
            for n, t in columns
        ]
        row_text = " || '\\x1f' || ".join(parts) or "''"
        rows, digest = con.execute(
            f'SELECT count(*), coalesce(sum(hash({row_text})::HUGEINT), 0) FROM "{schema}"."{table}"'
        ).fetchall()[0]
        shape_hash = con.execute("SELECT hash(?)", [shape]).fetchall()[0][0]
        lines.append(f"{schema}.{table} {rows} {digest} {shape_hash}")
    return lines


def build(path: str) -> None:
    from transforms.build import build_from_files

    con = duckdb.connect(path)
    try:
        build_from_files(con)
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse")
    parser.add_argument("--build", action="store_true", help="run build_from_files on the file first")
    args = parser.parse_args(argv)
    if args.build:
        build(args.warehouse)
    con = duckdb.connect(args.warehouse, read_only=True)
    try:
        for line in table_hashes(con):
            print(line)
    finally:
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
