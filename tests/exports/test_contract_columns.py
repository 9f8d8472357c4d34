"""The report reads its marts' columns from the model contracts (transforms/sql/**), never by probing the
file; its export allow-list and the export fixtures keep to the same contracts."""

from __future__ import annotations

import duckdb

from reporting.export_columns import ALLOWED_ID_COLUMNS, TEXT_COLUMNS
from reporting.marts import MART_CONTRACTS, MARTS, mart_columns


def test_every_allowed_text_column_is_a_column_of_its_mart():
    for table, names in TEXT_COLUMNS.items():
        declared = mart_columns(table)
        unknown = [n for n in names if n not in declared]
        assert not unknown, (
            f"reporting/export_columns.py allows {unknown} on marts.{table}, which has no such column"
        )
    assert set(MARTS) <= set(MART_CONTRACTS)
    assert all(any(n in mart_columns(t) for t in MARTS) for n in ALLOWED_ID_COLUMNS)


def test_the_fixture_marts_are_built_from_the_contracts(fixture_marts):
    con = duckdb.connect(str(fixture_marts), read_only=True)
    try:
        for name, contract in MART_CONTRACTS.items():
            built = con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'marts' "
                "AND table_name = ? ORDER BY column_index",
                [name],
            ).fetchall()
            assert built == [(c.name, c.type) for c in contract.columns], name
    finally:
        con.close()
