"""Analysts and the pipeline never block each other; a killed run, a dead token or a bad setting
never damages the analyst file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]

READER = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    def snapshot():
        return con.execute("SELECT count(*) FROM raw.request_log").fetchall()[0][0]
    print("before", snapshot(), flush=True)
    sys.stdin.readline()
    print("after", snapshot(), flush=True)
    """
)


def test_analyst_reader_in_another_process_neither_blocks_nor_is_blocked(
    stepwise_env: Any, defs: Any, instance: Any, baseline: Any, run_range: Any
) -> None:
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(stepwise_env.analyst)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdin is not None
        before = int(reader.stdout.readline().split()[1])
        # The reader holds its read-only connection to the analyst file for the whole run.
        result = run_range(defs, instance, "2026-11-12", "2026-11-12")
        assert result.success
        reader.stdin.write("go\n")
        reader.stdin.flush()
        after = int(reader.stdout.readline().split()[1])
        assert after == before, "the open session keeps the data it opened"
    finally:
        reader.kill()
        reader.wait(timeout=10)
    con = duckdb.connect(str(stepwise_env.analyst), read_only=True)
    try:
        fresh = con.execute("SELECT count(*) FROM raw.request_log").fetchall()[0][0]
    finally:
        con.close()
    assert fresh > before, "a new connection sees the new run"


def test_kill_9_mid_write_then_rerun(
    stepwise_env: Any, baseline: Any, tmp_path: Path, hashes: Any, file_digest: Any
) -> None:
    """A run in another process is SIGKILLed while it writes the working file."""
    working = tmp_path / "working" / "stepwise.duckdb"
    analyst = tmp_path / "analyst" / "stepwise.duckdb"
    analyst.parent.mkdir(parents=True)
    shutil.copyfile(stepwise_env.analyst, analyst)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "orchestration" / "dagster_instance.yaml", home / "dagster.yaml")
    env = stepwise_env.subprocess_env(
        STEPWISE_WORKING_DB=str(working), STEPWISE_ANALYST_DB=str(analyst), DAGSTER_HOME=str(home)
    )
    analyst_before = file_digest(analyst)
    wal = working.with_name(working.name + ".wal")
    command = [sys.executable, "-m", "orchestration.demo", "--no-export"]
    log = open(tmp_path / "killed_run.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    killed_mid_write = False
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            # A non-empty WAL means a transaction is being written or not yet checkpointed.
            if wal.exists() and wal.stat().st_size > 0:
                os.kill(proc.pid, signal.SIGKILL)
                killed_mid_write = True
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and not killed_mid_write:
            proc.kill()
        proc.wait(timeout=30)
        log.close()
    assert killed_mid_write, "the run finished before a write could be interrupted"
    assert proc.returncode == -signal.SIGKILL

    assert file_digest(analyst) == analyst_before, "the analyst file is untouched"
    duckdb.connect(str(analyst), read_only=True).close()
    con = duckdb.connect(str(working))  # replays or discards the WAL
    con.execute("SELECT count(*) FROM duckdb_tables()").fetchall()
    con.close()

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert hashes(analyst, ("marts",)) == hashes(stepwise_env.working, ("marts",)), (
        "same marts as an undisturbed run"
    )


def _failures(result: Any) -> list[tuple[str, str]]:
    out = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            message = data.user_failure_data.description if data.user_failure_data else data.error.message
            out.append((event.step_key, message))
    return out


@pytest.fixture
def restore_faults(sandbox: Any) -> Any:
    yield sandbox
    sandbox.server.set_faults(None)
    sandbox.server.config.hubspot.expired_tokens.clear()


def test_expired_hubspot_token_fails_with_one_clear_message(
    stepwise_env: Any,
    defs: Any,
    instance: Any,
    baseline: Any,
    restore_faults: Any,
    monkeypatch: pytest.MonkeyPatch,
    run_range: Any,
    file_digest: Any,
) -> None:
    token = "pat-na1-expired-0000"
    restore_faults.server.config.hubspot.expired_tokens.add(token)
    monkeypatch.setenv("STEPWISE_SANDBOX_HUBSPOT_TOKEN", token)
    analyst_before = file_digest(stepwise_env.analyst)
    result = run_range(defs, instance, "2026-11-13", "2026-11-13")
    assert not result.success
    failures = _failures(result)
    assert failures, "the run must fail"
    steps = {step for step, _ in failures}
    assert steps <= {
        f"raw__hubspot_{o}" for o in ("contacts", "companies", "deals", "properties", "pipelines")
    }
    for _, message in failures:
        assert message.startswith("HubSpot ingestion stopped: HubSpotAuthError"), message
        assert "expired" in message.lower()
        assert token not in message
        assert "\n" not in message.strip()
    assert "publish__analyst_duckdb" not in {e.step_key for e in result.all_events if e.is_step_success}
    assert file_digest(stepwise_env.analyst) == analyst_before


def test_permanent_ga4_401_fails_the_run_and_keeps_the_analyst_file(
    stepwise_env: Any,
    defs: Any,
    instance: Any,
    baseline: Any,
    restore_faults: Any,
    run_range: Any,
    file_digest: Any,
) -> None:
    from connectors.sandbox.server import FaultPlan

    restore_faults.server.set_faults(FaultPlan(api="ga4", always="401"))
    analyst_before = file_digest(stepwise_env.analyst)
    result = run_range(defs, instance, "2026-11-13", "2026-11-13")
    assert not result.success
    failures = _failures(result)
    assert {step for step, _ in failures} == {
        f"raw__ga4_{s}"
        for s in (
            "web_sessions",
            "events",
            "key_events",
            "ecommerce",
            "landing_pages",
            "campaigns",
            "lead_forms",
            "experiments",  # the experiment readout's GA4 reports fail the same way
        )
    }
    for _, message in failures:
        assert message.startswith(("GA4 ingestion stopped:", "GA4 experiments ingestion stopped:")), message
    assert file_digest(stepwise_env.analyst) == analyst_before


def test_bad_configuration_fails_before_any_write_with_one_message(
    stepwise_env: Any, baseline: Any, tmp_path: Path, file_digest: Any
) -> None:
    home = tmp_path / "dagster_home"
    working = tmp_path / "w.duckdb"
    analyst_before = file_digest(stepwise_env.analyst)
    env = stepwise_env.subprocess_env(
        STEPWISE_GA4_PROPERTY_IDS="12345,properties/678",
        DAGSTER_HOME=str(home),
        STEPWISE_WORKING_DB=str(working),
    )
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.demo", "--no-export", "--days", "2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if "configuration error" in line]
    assert len(errors) == 1, done.stdout
    assert "STEPWISE_GA4_PROPERTY_IDS='12345,properties/678' must be numeric GA4 property ids" in errors[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert "nothing was written" in done.stdout
    # Checked before the instance, the sandbox or the warehouse is touched.
    assert not working.exists() and not home.exists()
    assert file_digest(stepwise_env.analyst) == analyst_before
