"""The code location loads the way `dagster dev` loads it, and its shape is what the UI promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
DESIGN_MARTS = {
    "conversion_catalog",
    "web_sessions_daily",
    "conversions_daily",
    "micro_conversions_daily",
    "macro_conversions_daily",
    "funnel_daily",
    "channel_funnel_daily",
    "segment_summary",
    "micro_macro_lift",
    "data_quality",
}


def validate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAGSTER, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_workspace_validates(stepwise_env: Any) -> None:
    done = validate(stepwise_env.subprocess_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stepwise" in done.stdout + done.stderr


def test_bad_setting_fails_the_load_with_one_message(stepwise_env: Any) -> None:
    done = validate(stepwise_env.subprocess_env(STEPWISE_SCHEDULE_HOUR="25"))
    assert done.returncode != 0
    assert "STEPWISE_SCHEDULE_HOUR='25' must be an hour from 0 to 23" in done.stdout + done.stderr


def test_assets_groups_kinds_pools(defs: Any) -> None:
    graph = defs.resolve_asset_graph()
    nodes = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    groups: dict[str, set[str]] = {}
    for name, node in nodes.items():
        groups.setdefault(node.group_name, set()).add(name)
    assert {f"marts/{m}" for m in DESIGN_MARTS} <= groups["marts"]
    assert groups["staging"], "one asset per staging table"
    assert {
        "raw/ga4_web_sessions",
        "raw/ga4_events",
        "raw/ga4_key_events",
        "raw/ga4_ecommerce",
        "raw/ga4_landing_pages",
        "raw/ga4_campaigns",
        "raw/ga4_lead_forms",
        "raw/hubspot_contacts",
        "raw/hubspot_companies",
        "raw/hubspot_deals",
        "raw/hubspot_properties",
        "raw/hubspot_pipelines",
        "raw/request_log",
    } <= groups["ingest"]
    assert groups["publish"] == {"publish/analyst_duckdb"}
    for name, node in nodes.items():
        if node.group_name not in ("ingest", "staging", "marts", "publish"):
            continue
        assert node.pools == {"duckdb"}, name
        assert node.owners, name
        assert node.description, name
        kinds = set(node.kinds)
        if name.startswith("raw/ga4"):
            assert {"ga4", "duckdb"} <= kinds
            assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
        elif name.startswith("raw/hubspot_") and name.split("_", 1)[1] in ("contacts", "companies", "deals"):
            assert {"hubspot", "duckdb"} <= kinds
            assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
        else:
            assert "duckdb" in kinds
        if node.group_name == "marts":
            assert node.freshness_policy is not None, name


def test_checks_sit_beside_their_assets(defs: Any) -> None:
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    names = {name for _, name in checks}
    for expected in (
        "not_empty",
        "unique_keys",
        "rates_within_0_1",
        "sessions_reconcile_with_total",
        "ga4_leads_match_hubspot_contacts",
        "no_thresholding_or_other_row",
    ):
        assert expected in names, (expected, sorted(names))
    assert ("raw/ga4_web_sessions", "no_thresholding_or_other_row") in checks
    # A mart that is empty when all is well (no anomaly) has no not_empty check; the anomalies WARN instead.
    assert all(("marts/" + m, "not_empty") in checks for m in DESIGN_MARTS)
    assert ("marts/time_to_convert", "not_empty") in checks
    assert ("marts/conversion_anomalies", "no_open_anomalies") in checks
    assert ("marts/conversion_anomalies", "not_empty") not in checks


def test_schedule_from_the_partitioned_job(defs: Any) -> None:
    schedule = defs.resolve_schedule_def("stepwise_daily_schedule")
    assert schedule.job_name == "stepwise_daily"
    assert schedule.cron_schedule == "0 6 * * *"  # STEPWISE_SCHEDULE_HOUR default
    assert schedule.execution_timezone == "America/New_York"


def test_schedule_hour_is_configurable(stepwise_env: Any) -> None:
    code = (
        "from orchestration.definitions import defs; "
        "s = defs.resolve_schedule_def('stepwise_daily_schedule'); print(s.cron_schedule)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=stepwise_env.subprocess_env(STEPWISE_SCHEDULE_HOUR="4"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 4 * * *"


def test_every_job_that_writes_the_warehouse_waits_its_turn_in_the_queue(defs: Any) -> None:
    # The instance template (used by `make ui`, the tests and `make deploy-local`) admits one run tagged
    # stepwise/writes at a time; a job whose steps claim the duckdb pool must carry that tag, or two of
    # its runs would take turns on the working file and read each other's half-loaded partitions.
    import yaml

    from orchestration.defs.jobs import WAREHOUSE_WRITER_TAGS

    template = yaml.safe_load((REPO / "orchestration" / "dagster_instance.yaml").read_text())
    [(key, value)] = WAREHOUSE_WRITER_TAGS.items()
    assert {"key": key, "value": value, "limit": 1} in template["concurrency"]["runs"][
        "tag_concurrency_limits"
    ]
    writers = []
    for job in defs.resolve_all_job_defs():
        if job.name.startswith(
            "__"
        ):  # the UI's ad-hoc materialisations: no run tags to set (steps keep the pool)
            continue
        pools = {getattr(node.definition, "pool", None) for node in job.graph.node_dict.values()}
        if "duckdb" in pools:
            writers.append(job.name)
            assert job.tags.get(key) == value, job.name
    assert "stepwise_daily" in writers and "rebuild_models" in writers
