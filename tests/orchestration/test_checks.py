"""Each asset check passes on the backfilled data (see test_pipeline) and fails on data broken on purpose.

The checks run through Dagster against the real working file, broken with plain SQL and restored
afterwards from a copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest


@pytest.fixture
def broken_warehouse(stepwise_env: Any, baseline: Any, tmp_path: Path) -> Iterator[Any]:
    """Yields a function running SQL on the working file; the file is restored afterwards."""
    backup = tmp_path / "working-backup.duckdb"
    shutil.copyfile(stepwise_env.working, backup)

    def execute(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(stepwise_env.working))
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    yield execute
    shutil.copyfile(backup, stepwise_env.working)


def run_checks(defs: Any, instance: Any, asset: str, names: set[str]) -> dict[str, dg.AssetCheckEvaluation]:
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.asset_check_keys if k.asset_key.to_user_string() == asset and k.name in names]
    assert len(keys) == len(names), (asset, names, keys)
    result = dg.materialize(
        list(graph.assets_defs),
        selection=dg.AssetSelection.checks(*keys),
        instance=instance,
        raise_on_error=False,
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def baseline_check(baseline: Any, asset: str, name: str) -> dg.AssetCheckEvaluation:
    found = [
        e
        for e in baseline.result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == asset and e.check_name == name
    ]
    assert found, (asset, name)
    return found[-1]


def test_not_empty_fails_on_an_emptied_mart(
    defs: Any, instance: Any, baseline: Any, broken_warehouse: Any
) -> None:
    assert baseline_check(baseline, "marts/funnel_daily", "not_empty").passed
    broken_warehouse("DELETE FROM marts.funnel_daily")
    assert not run_checks(defs, instance, "marts/funnel_daily", {"not_empty"})["not_empty"].passed


def test_unique_keys_fails_on_a_duplicated_row(
    defs: Any, instance: Any, baseline: Any, broken_warehouse: Any
) -> None:
    assert baseline_check(baseline, "marts/conversions_daily", "unique_keys").passed
    broken_warehouse("INSERT INTO marts.conversions_daily SELECT * FROM marts.conversions_daily LIMIT 1")
    evaluation = run_checks(defs, instance, "marts/conversions_daily", {"unique_keys"})["unique_keys"]
    assert not evaluation.passed
    assert evaluation.metadata["duplicated_keys"].value == 1


def test_rates_fail_outside_0_1(defs: Any, instance: Any, baseline: Any, broken_warehouse: Any) -> None:
    asset = "marts/micro_conversions_daily"
    good = baseline_check(baseline, asset, "rates_within_0_1")
    assert good.passed
    # A proportion above 1, and a per-session rate (which may exceed 1) below 0.
    assert "user_conversion_rate" in good.metadata["proportions"].value
    assert "conversion_rate" in good.metadata["per_session_rates"].value
    broken_warehouse(
        "UPDATE marts.micro_conversions_daily SET user_conversion_rate = 1.5 "
        "WHERE rowid = (SELECT min(rowid) FROM marts.micro_conversions_daily WHERE user_conversion_rate IS NOT NULL)"
    )
    broken_warehouse(
        "UPDATE marts.micro_conversions_daily SET conversion_rate = -0.25 "
        "WHERE rowid = (SELECT max(rowid) FROM marts.micro_conversions_daily)"
    )
    evaluation = run_checks(defs, instance, asset, {"rates_within_0_1"})["rates_within_0_1"]
    assert not evaluation.passed
    assert evaluation.metadata["rows_out_of_range"].value == {"user_conversion_rate": 1, "conversion_rate": 1}


def test_sessions_by_segment_must_reconcile_with_the_total(
    defs: Any, instance: Any, baseline: Any, broken_warehouse: Any
) -> None:
    asset = "marts/web_sessions_daily"
    assert baseline_check(baseline, asset, "sessions_reconcile_with_total").passed
    broken_warehouse(
        "UPDATE marts.web_sessions_daily SET sessions = sessions + 50 "
        "WHERE rowid = (SELECT min(rowid) FROM marts.web_sessions_daily)"
    )
    evaluation = run_checks(defs, instance, asset, {"sessions_reconcile_with_total"})
    assert not evaluation["sessions_reconcile_with_total"].passed
    assert evaluation["sessions_reconcile_with_total"].metadata["days_off"].value == 1


def test_ga4_leads_must_match_hubspot_contacts(
    defs: Any, instance: Any, baseline: Any, broken_warehouse: Any
) -> None:
    asset = "marts/channel_funnel_daily"
    good = baseline_check(baseline, asset, "ga4_leads_match_hubspot_contacts")
    assert good.passed
    # The sandbox agrees exactly except where a merged-away contact's creation day is unknown.
    assert good.metadata["outside_tolerance"].value == 0
    assert good.metadata["exactly_equal"].value >= 0.9 * good.metadata["day_channels"].value
    broken_warehouse(
        "UPDATE marts.channel_funnel_daily SET contacts_created = contacts_created + 10 "
        "WHERE rowid = (SELECT min(rowid) FROM marts.channel_funnel_daily WHERE leads > 0)"
    )
    evaluation = run_checks(defs, instance, asset, {"ga4_leads_match_hubspot_contacts"})
    assert not evaluation["ga4_leads_match_hubspot_contacts"].passed
    assert evaluation["ga4_leads_match_hubspot_contacts"].metadata["outside_tolerance"].value == 1


def test_thresholded_partition_raises_a_warning(
    defs: Any, instance: Any, baseline: Any, sandbox: Any, broken_warehouse: Any, run_range: Any
) -> None:
    asset = "raw/ga4_web_sessions"
    assert baseline_check(baseline, asset, "no_thresholding_or_other_row").passed
    settings = sandbox.server.config.ga4.properties["123456789"]
    settings.thresholding, settings.threshold_users, settings.other_row_cap = True, 3, 5
    try:
        result = run_range(
            defs,
            instance,
            "2026-11-11",
            "2026-11-11",
            asset_selection=[dg.AssetKey(["raw", "ga4_web_sessions"])],
        )
    finally:
        settings.thresholding, settings.threshold_users, settings.other_row_cap = False, 50, None
    assert result.success, "a warning does not fail the run"
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "2026-11-11" in evaluation.metadata["thresholded_days"].value
    assert "2026-11-11" in evaluation.metadata["other_row_days"].value
