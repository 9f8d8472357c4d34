"""Model contracts (transforms.model_contracts): every SQL model declares its grain, key, columns and inputs
once; the build order is derived from them, and a broken or missing contract fails with one message that
names the file and the fix. The built tables keep the contracts."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from transforms import build, model_contracts
from transforms.model_contracts import (
    CRM_DATE_STRATEGIES,
    CRM_KEYED_STRATEGIES,
    CRM_SCOPE_TABLES,
    SQL_DIR,
    ContractError,
    load_all_contracts,
    load_models,
)
from transforms.table_hashes import table_hashes

# The hand-written build order before contracts (kept here only to show the derived order builds the
# same tables).
HAND_WRITTEN_ORDER = (
    "staging.hubspot_lifecycle_stages",
    "staging.hubspot_deal_stages",
    "staging.hubspot_deals",
    "staging.hubspot_contacts",
    "staging.hubspot_merges",
    "staging.hubspot_contact_stage_events",
    "staging.hubspot_form_conversions",
    "staging.hubspot_contact_facts",
    "staging.hubspot_contact_micro_macro",
    "staging.hubspot_cohort_daily",
    "staging.ga4_web_sessions",
    "staging.ga4_events",
    "staging.ga4_landing_pages",
    "staging.ga4_campaigns",
    "staging.ga4_lead_forms",
    "staging.ga4_segment_daily",
    "staging.ga4_micro_macro_daily",
    "marts.conversion_catalog",
    "marts.web_sessions_daily",
    "marts.conversions_daily",
    "marts.micro_conversions_daily",
    "marts.macro_conversions_daily",
    "marts.funnel_daily",
    "marts.channel_funnel_daily",
    "marts.segment_summary",
    "marts.micro_macro_lift",
    "marts.data_quality",
    "staging.time_to_convert_km",
    "marts.time_to_convert",
    "marts.time_to_convert_curve",
    "staging.conversion_anomaly_scores",
    "marts.conversion_anomalies",
)

VALID_HEADER = """-- model: marts.{name}
-- write: replace_all
-- grain: one row per conversion_name
-- key: conversion_name
-- inputs: {inputs}
-- table: A test model.
-- column conversion_name VARCHAR NOT NULL: The conversion.
SELECT conversion_name FROM {source}
"""


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(SQL_DIR, target)
    return target


def _error(sql_dir: Path) -> str:
    with pytest.raises(ContractError) as caught:
        load_models(sql_dir)
    return str(caught.value)


def test_the_real_models_load_and_every_sql_file_is_built(sql_copy):
    models = load_models(sql_copy)
    files = sorted(p.name for d in ("staging", "marts") for p in (sql_copy / d).glob("*.sql"))
    assert sorted(m.path.name for m in models) == files
    assert {m.qualified for m in models} == set(HAND_WRITTEN_ORDER)


def test_an_unregistered_sql_file_fails_naming_file_and_fix(sql_copy):
    (sql_copy / "marts" / "orphan_mart.sql").write_text("SELECT 1 AS x\n")
    message = _error(sql_copy)
    assert "sql/marts/orphan_mart.sql" in message
    assert "no model contract" in message
    assert "-- model: schema.name" in message and "-- column <name> <TYPE>" in message


def test_a_reference_to_an_unknown_table_fails_naming_file_reference_and_fix(sql_copy):
    (sql_copy / "marts" / "lost_mart.sql").write_text(
        VALID_HEADER.format(name="lost_mart", inputs="staging.no_such_table", source="staging.no_such_table")
    )
    message = _error(sql_copy)
    assert "lost_mart.sql" in message
    assert "staging.no_such_table" in message
    assert "add transforms/sql/staging/no_such_table.sql with a contract, or fix the name" in message


def test_inputs_must_match_what_the_sql_reads(sql_copy):
    path = sql_copy / "marts" / "extra_mart.sql"
    path.write_text(
        VALID_HEADER.format(
            name="extra_mart", inputs="staging.conversion_catalog", source="marts.funnel_daily"
        )
    )
    message = _error(sql_copy)
    assert (
        "extra_mart.sql" in message
        and "reads marts.funnel_daily but '-- inputs:' does not list it" in message
    )
    path.write_text(
        VALID_HEADER.format(
            name="extra_mart",
            inputs="staging.conversion_catalog, marts.funnel_daily",
            source="staging.conversion_catalog",
        )
    )
    message = _error(sql_copy)
    assert "lists marts.funnel_daily but the SQL never reads it" in message
    path.write_text(
        VALID_HEADER.format(
            name="extra_mart", inputs="staging.conversion_catalog", source="staging.conversion_catalog"
        )
    )
    assert "marts.extra_mart" in {m.qualified for m in load_models(sql_copy)}


def test_a_cycle_fails(sql_copy):
    (sql_copy / "marts" / "loop_a.sql").write_text(
        VALID_HEADER.format(name="loop_a", inputs="marts.loop_b", source="marts.loop_b")
    )
    (sql_copy / "marts" / "loop_b.sql").write_text(
        VALID_HEADER.format(name="loop_b", inputs="marts.loop_a", source="marts.loop_a")
    )
    message = _error(sql_copy)
    assert "cycle" in message and "marts.loop_a -> marts.loop_b -> marts.loop_a" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("-- write: replace_all", "-- partition: full", "'-- partition:' was renamed"),
        ("-- write: replace_all", "-- write: overwrite", "unknown write strategy 'overwrite'"),
        ("-- column conversion_name VARCHAR NOT NULL:", "-- column conversion_name:", "has no type"),
        ("-- key: conversion_name", "-- key: conversion", "names column 'conversion', which is not declared"),
        ("-- model: marts.odd_mart", "-- model: marts.other_name", "name the file other_name.sql"),
    ],
)
def test_malformed_contracts_fail_with_the_fix(sql_copy, old, new, expected):
    text = VALID_HEADER.format(
        name="odd_mart", inputs="staging.conversion_catalog", source="staging.conversion_catalog"
    )
    assert old in text
    (sql_copy / "marts" / "odd_mart.sql").write_text(text.replace(old, new))
    message = _error(sql_copy)
    assert "odd_mart.sql" in message and expected in message


def test_the_derived_order_is_a_topological_order_of_the_real_models():
    order = [m.qualified for m in build.MODELS]
    position = {name: i for i, name in enumerate(order)}
    for model in build.MODELS:
        for table in model.inputs:
            if table in position:
                assert position[table] < position[model.qualified], (model.qualified, table)
            else:
                assert table in model_contracts.SOURCE_TABLES, (model.qualified, table)
    # The CRM date scope is final once every CRM-keyed model is re-staged: its readers come after them.
    crm_writers = [
        position[m.qualified]
        for m in build.MODELS
        if m.write in CRM_KEYED_STRATEGIES or m.qualified in CRM_SCOPE_TABLES
    ]
    for model in build.MODELS:
        if model.write in CRM_DATE_STRATEGIES:
            assert position[model.qualified] > max(crm_writers), model.qualified
    assert tuple(m.name for m in build.MODELS if m.schema == "marts") == build.MART_TABLES


def test_every_contract_declares_a_key_grain_and_typed_columns():
    for model in load_all_contracts():
        assert model.key and model.grain.startswith("one row per"), model.qualified
        assert all(c.type and c.comment for c in model.columns), model.qualified
        assert set(model.key) <= set(model.column_names)


@pytest.fixture(scope="module")
def built(warehouse):
    con = warehouse.connect()
    yield con
    con.close()


@pytest.mark.parametrize("model", build.MODELS, ids=lambda m: m.qualified)
def test_built_tables_keep_their_contract(built, model):
    columns = built.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
        "ORDER BY column_index",
        [model.schema, model.name],
    ).fetchall()
    assert columns == [(c.name, c.type) for c in model.columns]
    keys = ", ".join(f'"{k}"' for k in model.key)
    duplicated = built.execute(
        f"SELECT count(*) FROM (SELECT {keys} FROM {model.qualified} GROUP BY ALL HAVING count(*) > 1)"
    ).fetchall()[0][0]
    assert duplicated == 0, f"{model.qualified}: key ({keys}) repeats"
    for column in model.not_null:
        nulls = built.execute(f'SELECT count(*) FROM {model.qualified} WHERE "{column}" IS NULL').fetchall()[
            0
        ][0]
        assert nulls == 0, (model.qualified, column)
    for column, values in model.accepted_values.items():
        found = {
            r[0]
            for r in built.execute(
                f'SELECT DISTINCT "{column}" FROM {model.qualified} WHERE "{column}" IS NOT NULL'
            ).fetchall()
        }
        assert found <= set(values), (model.qualified, column, found - set(values))


def test_a_contract_and_its_built_table_must_agree(tmp_path):
    """A SELECT that drifts from its contract (type or column) fails the write with the fix."""
    from transforms.write_strategies import apply_comments

    sql = tmp_path / "drift.sql"
    sql.write_text(
        VALID_HEADER.format(
            name="drift", inputs="staging.conversion_catalog", source="staging.conversion_catalog"
        )
    )
    model = model_contracts.parse_model(sql)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    con.execute("CREATE TABLE marts.drift AS SELECT 1 AS conversion_name")
    with pytest.raises(ContractError, match="is INTEGER, the contract says VARCHAR"):
        apply_comments(con, model)
    con.execute("CREATE OR REPLACE TABLE marts.drift AS SELECT 'a' AS conversion_name, 2 AS extra")
    with pytest.raises(
        ContractError, match="column 'extra' of marts.drift has no '-- column extra INTEGER:' line"
    ):
        apply_comments(con, model)


def test_the_derived_order_builds_the_same_tables_as_the_hand_written_order(tmp_path, monkeypatch):
    """Both orders over one small store: every staging and marts table identical, to the bit."""
    from bench.transforms import load_raw_from_store
    from connectors.sandbox.store import build_store
    from transforms.catalog import default_catalog, default_channel_mapping

    store = build_store(
        "demo", seed=7, end_date=dt.date(2026, 11, 22), days=35, sessions_per_day=300, bulk_import_contacts=100,
        cache=False,
    )  # fmt: skip
    raw_path = tmp_path / "small_raw.duckdb"
    con = duckdb.connect(str(raw_path))
    load_raw_from_store(store, con, days_per_partition=35)
    con.close()
    store.close()
    by_name = {m.qualified: m for m in build.MODELS}
    hashes = []
    for name, models in (("derived", build.MODELS), ("hand", [by_name[n] for n in HAND_WRITTEN_ORDER])):
        path = tmp_path / f"small_{name}.duckdb"
        shutil.copyfile(raw_path, path)
        monkeypatch.setattr(build, "MODELS", models)
        con = duckdb.connect(str(path))
        build.build_all(con, default_catalog(), default_channel_mapping())
        hashes.append(table_hashes(con))
        con.close()
    assert len(hashes[0]) > 30
    assert hashes[0] == hashes[1]
