"""Every environment setting is parsed and validated in one place, with one message per bad value.

Hostile or mistyped values (`²`, full-width digits, `-1`, `20250101`) are refused with a message naming
the variable, the value and the accepted form; a run with a bad setting stops before any step writes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from orchestration.settings import (
    MAX_QUOTED,
    SETTINGS,
    StepwiseConfigError,
    StepwiseSettings,
    describe_defaults,
    load_settings,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("STEPWISE_LOOKBACK_DAYS", "-1", "a whole number of days from 0 to 30, ASCII digits"),
        ("STEPWISE_LOOKBACK_DAYS", "²", "a whole number of days from 0 to 30, ASCII digits"),
        ("STEPWISE_LOOKBACK_DAYS", "31", "a whole number of days from 0 to 30"),
        ("STEPWISE_DUCKDB_THREADS", "abc", "a whole number of threads from 1 to 256, ASCII digits"),
        ("STEPWISE_DUCKDB_THREADS", "0", "a whole number of threads from 1 to 256"),
        ("STEPWISE_DUCKDB_MEMORY_LIMIT", "lots", "a size with its unit such as 2GB"),
        ("STEPWISE_DUCKDB_MEMORY_LIMIT", "２GB", "a size with its unit such as 2GB"),
        ("STEPWISE_SCHEDULE_HOUR", "²", "an hour from 0 to 23"),
        ("STEPWISE_SCHEDULE_HOUR", "24", "an hour from 0 to 23"),
        ("STEPWISE_START_DATE", "20250101", "a date written YYYY-MM-DD"),
        ("STEPWISE_START_DATE", "2025-02-30", "a date written YYYY-MM-DD"),
        ("STEPWISE_GA4_PROPERTY_IDS", "１２３４５", "numeric GA4 property ids (ASCII digits"),
        ("STEPWISE_GA4_PROPERTY_IDS", "123,properties/678", "numeric GA4 property ids (ASCII digits"),
        ("STEPWISE_TIME_ZONE", "Mars/Olympus", "an IANA time zone"),
        ("STEPWISE_SMTP_PORT", "５８７", "a port from 1 to 65535, ASCII digits"),
        ("STEPWISE_SANDBOX_SEED", "7e3", "a whole number, ASCII digits"),
        ("STEPWISE_SANDBOX_PRESET", "huge", "a store preset: demo or large"),
        ("STEPWISE_RECONCILE_TOLERANCE", "1e-2", "a share from 0 to 1"),
        ("STEPWISE_EXPORT_CRON", "every monday", "a cron expression of five fields"),
        ("STEPWISE_CRM_COHORT_LAG_DAYS", "2.5", "a whole number of days >= 0"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/no/such/key.json", "an existing service-account JSON key file"),
    ],
)
def test_a_bad_value_gives_one_message_naming_variable_value_and_form(
    name: str, value: str, accepted: str
) -> None:
    with pytest.raises(StepwiseConfigError) as err:
        load_settings({name: value})
    message = str(err.value)
    assert message == f"environment: {name}={value!r} must be " + SETTINGS_ACCEPTED[name]
    assert accepted in message
    assert "\n" not in message


SETTINGS_ACCEPTED = {s.name: s.accepted for s in SETTINGS}


def test_the_defaults_load_and_ascii_values_are_accepted() -> None:
    settings = load_settings({})
    assert settings.lookback_days == 3 and settings.duckdb_threads == 2 and settings.schedule_hour == 6
    assert settings.ga4_is_sandbox and settings.hubspot_is_sandbox
    chosen = load_settings(
        {
            "STEPWISE_LOOKBACK_DAYS": "0",
            "STEPWISE_DUCKDB_MEMORY_LIMIT": "512MB",
            "STEPWISE_START_DATE": "2026-01-31",
            "STEPWISE_GA4_PROPERTY_IDS": " 123, 456 ",
            "HUBSPOT_ACCESS_TOKEN": "pat-na1-0000",
            "STEPWISE_SMTP_PORT": "",  # empty counts as unset
        }
    )
    assert chosen.lookback_days == 0 and chosen.duckdb_memory_limit == "512MB"
    assert chosen.ga4_property_ids == ("123", "456") and not chosen.ga4_is_sandbox
    assert not chosen.hubspot_is_sandbox and chosen.smtp_port == 587


def test_several_bad_values_are_listed_in_one_message() -> None:
    with pytest.raises(StepwiseConfigError) as err:
        load_settings({"STEPWISE_LOOKBACK_DAYS": "-1", "STEPWISE_DUCKDB_THREADS": "abc"})
    assert str(err.value).count("must be") == 2
    assert "STEPWISE_LOOKBACK_DAYS='-1'" in str(err.value) and "STEPWISE_DUCKDB_THREADS='abc'" in str(
        err.value
    )


def test_secrets_are_never_quoted_and_long_values_are_cut() -> None:
    with pytest.raises(StepwiseConfigError) as err:
        load_settings({"HUBSPOT_ACCESS_TOKEN": "pat-na1 secret-part"})
    assert "HUBSPOT_ACCESS_TOKEN=(hidden) must be" in str(err.value)
    assert "secret-part" not in str(err.value)
    with pytest.raises(StepwiseConfigError) as err:
        load_settings({"STEPWISE_SCHEDULE_HOUR": "9" * 100_000})
    assert len(str(err.value)) < 400
    assert "9" * (MAX_QUOTED + 1) not in str(err.value) and "(100000 characters)" in str(err.value)


def test_cross_field_delivery_rules_are_part_of_the_same_validation() -> None:
    with pytest.raises(StepwiseConfigError, match="STEPWISE_SMTP_TO is empty"):
        load_settings({"STEPWISE_SMTP_HOST": "smtp.example.com"})
    with pytest.raises(StepwiseConfigError, match="must be a different file"):
        load_settings({"STEPWISE_WORKING_DB": "data/x.duckdb", "STEPWISE_ANALYST_DB": "data/x.duckdb"})


def test_every_setting_has_a_field_and_the_defaults_page_is_current() -> None:
    fields = set(StepwiseSettings.model_fields) - {"delivery"}
    assert {s.field for s in SETTINGS} == fields
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)
    page = (REPO / "docs" / "SETTINGS.md").read_text(encoding="utf-8")
    assert page.strip() == describe_defaults().strip(), "run `python -m orchestration.settings --markdown`"
    assert "docs/SETTINGS.md" in (REPO / "README.md").read_text(encoding="utf-8")


def test_only_the_settings_module_reads_the_environment() -> None:
    allowed = {Path("orchestration/settings.py"), Path("connectors/sandbox/__main__.py")}
    found = []
    for layer in ("connectors", "transforms", "orchestration", "reporting"):
        for path in sorted((REPO / layer).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"os\.environ|getenv", line) and path.relative_to(REPO) not in allowed:
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, found


def test_bad_setting_at_run_time_stops_the_run_before_any_step_writes(
    stepwise_env: Any,
    defs: Any,
    instance: Any,
    baseline: Any,
    run_range: Any,
    hashes: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The definitions loaded with good settings; the run's process then sees a bad GA4 one. The
    warehouse resource's setup validates everything before the first step, so no HubSpot step writes."""
    before = hashes(stepwise_env.working)
    monkeypatch.setenv("STEPWISE_GA4_PROPERTY_IDS", "１２３４５")
    result = run_range(defs, instance, "2026-11-14", "2026-11-15")
    assert not result.success
    started = [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
    assert started == []
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    run = instance.get_run_by_id(result.run_id)
    assert run.is_failure
    messages = " ".join(
        str(getattr(record.dagster_event, "event_specific_data", ""))
        for record in instance.all_logs(result.run_id)
    )
    assert "STEPWISE_GA4_PROPERTY_IDS='１２３４５' must be numeric GA4 property ids" in messages, failure
    monkeypatch.undo()
    assert hashes(stepwise_env.working) == before


@pytest.mark.parametrize(
    ("name", "value"),
    [("STEPWISE_LOOKBACK_DAYS", "-1"), ("STEPWISE_START_DATE", "20250101")],
)
def test_a_bad_setting_fails_the_code_location_load_with_one_message(
    stepwise_env: Any, name: str, value: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import orchestration.definitions"],
        cwd=REPO,
        env=stepwise_env.subprocess_env(**{name: value}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        f"orchestration.settings.StepwiseConfigError: environment: {name}={value!r} must be "
        + SETTINGS_ACCEPTED[name]
    )
