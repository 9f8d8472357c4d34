"""How each model's table is written: one function per write strategy of the contracts
(transforms.model_contracts.WRITE_STRATEGIES), and the comments and column check every written table gets.

A full build (or a model whose table does not exist yet) creates the table from its SELECT; an incremental
build deletes the rows of the scope (transforms.incremental_scope) and inserts the SELECT's rows, which the
scope macros restrict to the same scope.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from transforms.incremental_scope import CONTACT_ROW_SNAPSHOT, capture_rows
from transforms.model_contracts import ContractError, Model


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? AND table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )


def built_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    """(name, type) per column of a table, in table order."""
    return [
        (r[0], r[1])
        for r in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ? ORDER BY column_index",
            [schema, table],
        ).fetchall()
    ]


def check_columns(model: Model, built: list[tuple[str, str]]) -> None:
    """The written table has exactly the contract's columns, in its order, with its types."""
    declared = [(c.name, c.type) for c in model.columns]
    if built == declared:
        return
    names = [n for n, _ in built]
    for name, dtype in built:
        if name not in model.column_comments:
            raise ContractError(
                f"{model.path.name}: column '{name}' of {model.qualified} has no '-- column {name} {dtype}:' "
                "line; add it to the header (model contracts: docs/CONTRACTS.md)"
            )
    for column in model.columns:
        if column.name not in names:
            raise ContractError(
                f"{model.path.name}: the contract declares column '{column.name}' but the SELECT does not "
                f"produce it; remove its '-- column' line or select it"
            )
    for (name, dtype), column in zip(built, model.columns, strict=True):
        if name != column.name:
            raise ContractError(
                f"{model.path.name}: {model.qualified} has column '{name}' where the contract lists "
                f"'{column.name}'; list the '-- column' lines in the SELECT's order"
            )
        if dtype != column.type:
            raise ContractError(
                f"{model.path.name}: column '{name}' of {model.qualified} is {dtype}, the contract says "
                f"{column.type}; fix '-- column {name} {dtype}:' or cast it in the SELECT"
            )


def apply_comments(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    check_columns(model, built_columns(con, model.schema, model.name))
    con.execute(f"COMMENT ON TABLE {model.qualified} IS {quote(model.table_comment)}")
    for column in model.columns:
        con.execute(f'COMMENT ON COLUMN {model.qualified}."{column.name}" IS {quote(column.comment)}')


def replace_from_arrow(con: duckdb.DuckDBPyConnection, qualified: str, table: pa.Table) -> None:
    con.register("_sw_arrow", table)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {qualified} AS SELECT * FROM _sw_arrow")
    finally:
        con.unregister("_sw_arrow")


def write_sql_model(
    con: duckdb.DuckDBPyConnection, model: Model, incremental: bool, existing: set[str]
) -> None:
    """Write one SQL model's table; `existing` holds the qualified names of the model tables already there."""
    if not incremental or model.write == "replace_all" or model.qualified not in existing:
        con.execute(f"CREATE OR REPLACE TABLE {model.qualified} AS {model.select_sql}")
        apply_comments(con, model)
        return
    STRATEGIES[model.write](con, model)


def _insert(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    con.execute(f"INSERT INTO {model.qualified} BY NAME {model.select_sql}")


def replace_dates(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    con.execute(f"DELETE FROM {model.qualified} WHERE date IN (SELECT scope_date FROM sw_scope_dates)")
    _insert(con, model)


def replace_dates_by_source(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    con.execute(
        f"DELETE FROM {model.qualified} WHERE source_system = 'ga4' "
        "AND date IN (SELECT scope_date FROM sw_scope_dates)"
    )
    con.execute(
        f"DELETE FROM {model.qualified} WHERE source_system <> 'ga4' "
        "AND date IN (SELECT scope_date FROM sw_scope_crm_dates)"
    )
    _insert(con, model)


def replace_dates_and_crm_dates(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    con.execute(f"DELETE FROM {model.qualified} WHERE date IN (SELECT scope_date FROM sw_scope_crm_dates)")
    _insert(con, model)


def upsert_contacts(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    delete = (
        f"DELETE FROM {model.qualified} AS t WHERE EXISTS "
        "(SELECT 1 FROM sw_scope_contacts AS s WHERE s.scope_portal_id = t.portal_id AND s.scope_contact_key = t.contact_key)"
    )
    returning = CONTACT_ROW_SNAPSHOT.get(model.name)
    if returning is None:
        con.execute(delete)
        _insert(con, model)
        return
    # The rows before and after re-staging, for the CRM dates they touch (incremental_scope).
    capture_rows(con, "sw_rows_old", model.name, con.execute(f"{delete} RETURNING {returning}"))
    insert = f"INSERT INTO {model.qualified} BY NAME {model.select_sql}"
    capture_rows(con, "sw_rows_new", model.name, con.execute(f"{insert} RETURNING {returning}"))


def upsert_deals(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    con.execute(
        f"DELETE FROM {model.qualified} AS t WHERE EXISTS "
        "(SELECT 1 FROM sw_scope_deals AS s WHERE s.scope_portal_id = t.portal_id AND s.scope_deal_id = t.deal_id)"
    )
    _insert(con, model)


# The incremental write of each SQL strategy (replace_all and a first build create the table whole;
# replace_all_statistics is transforms.stats_models).
STRATEGIES = {
    "replace_dates": replace_dates,
    "replace_dates_by_source": replace_dates_by_source,
    "replace_dates_and_crm_dates": replace_dates_and_crm_dates,
    "upsert_contacts": upsert_contacts,
    "upsert_deals": upsert_deals,
}
