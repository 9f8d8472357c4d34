"""The production deployment, for real: PostgreSQL on loopback, the daemon, the queued coordinator.

The test starts its own PostgreSQL cluster (Debian's postgresql package; as root the cluster belongs to
the ``postgres`` system user), writes the instance yaml with ``orchestration.deployment``, starts
``dagster-daemon`` and ``dagster-webserver``, submits two runs of five daily partitions each through the
webserver's GraphQL API, and checks that the daemon ran both from the queue, that the ``duckdb`` pool (one slot,
claimed per run) kept the runs from interleaving, and that the analyst file was published.
Every process is stopped by the PID the deployment started.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import pytest

from orchestration.deployment import Deployment, free_port

# Minutes on a shared 2-core machine (each run has about 100 steps taking turns on the pool).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# Two runs of five daily partitions each (a single-run range, as a backfill from the UI launches it):
# the marts' statistics need more days than GA4 still revises.
RANGES = (("2026-11-06", "2026-11-10"), ("2026-11-11", "2026-11-15"))
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
CREDENTIAL_VARS = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "STEPWISE_GA4_PROPERTY_IDS",
    "HUBSPOT_ACCESS_TOKEN",
    "STEPWISE_SANDBOX_URL",
    "STEPWISE_SANDBOX_HUBSPOT_TOKEN",
)


def _settings(root: Path) -> dict[str, str]:
    return {
        "STEPWISE_WORKING_DB": str(root / "working" / "stepwise.duckdb"),
        "STEPWISE_ANALYST_DB": str(root / "analyst" / "stepwise.duckdb"),
        "STEPWISE_START_DATE": "2026-11-01",
        "STEPWISE_TIME_ZONE": "America/New_York",
        "STEPWISE_SANDBOX_PRESET": "demo",
        "STEPWISE_SANDBOX_SEED": "7",
        "STEPWISE_SANDBOX_DAYS": "10",
        "STEPWISE_SANDBOX_SESSIONS_PER_DAY": "300",
        "STEPWISE_SANDBOX_END_DATE": "2026-11-15",
        "STEPWISE_SANDBOX_REVISIONS": "off",
        "STEPWISE_DUCKDB_THREADS": "1",
        "STEPWISE_DUCKDB_MEMORY_LIMIT": "1GB",
        "STEPWISE_LOOKBACK_DAYS": "0",
    }


@pytest.fixture
def pg_parent():
    """A directory the postgres system user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="stepwise-pg-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_partitions_run_in_parallel_through_postgres_daemon_and_queue(tmp_path, pg_parent, monkeypatch):
    import dagster as dg
    from dagster_graphql import DagsterGraphQLClient

    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    env = _settings(tmp_path)
    deployment = Deployment(
        base_dir=tmp_path / "deploy",
        pg_port=free_port(),
        ui_port=free_port(),
        max_concurrent_runs=3,
        env=env,
        postgres_dir=pg_parent / "postgres",
    )
    with deployment.running():
        postgres_pid = deployment.cluster.pid
        instance_yaml = (deployment.home / "dagster.yaml").read_text()
        assert "postgres_db" in instance_yaml and "QueuedRunCoordinator" in instance_yaml
        assert deployment.cluster.password not in instance_yaml
        deployment.wait_for_webserver()
        client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.ui_port)
        run_ids = [
            client.submit_job_execution("stepwise_daily", tags={RANGE_START_TAG: first, RANGE_END_TAG: last})
            for first, last in RANGES
        ]
        for name, value in deployment.process_env().items():
            if name.startswith(("DAGSTER_", "STEPWISE_")):
                monkeypatch.setenv(name, value)
        with dg.DagsterInstance.from_config(str(deployment.home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            deadline = time.monotonic() + 780
            while time.monotonic() < deadline:
                runs = instance.get_runs(filters=dg.RunsFilter(run_ids=run_ids))
                if len(runs) == len(run_ids) and all(r.is_finished for r in runs):
                    break
                time.sleep(2)
            runs = instance.get_runs(filters=dg.RunsFilter(run_ids=run_ids))
            statuses = {r.tags.get(RANGE_START_TAG): r.status for r in runs}
            assert statuses == {first: dg.DagsterRunStatus.SUCCESS for first, _ in RANGES}, _logs(deployment)
            # Each run was started by the daemon's run launcher (nothing ran them in this process) ...
            for run_id in run_ids:
                kinds = [entry.dagster_event.event_type for entry in _events(instance, run_id)]
                assert dg.DagsterEventType.RUN_START in kinds and dg.DagsterEventType.RUN_SUCCESS in kinds
            # ... and the duckdb pool (one slot, claimed per run) kept the runs apart: no step of one run
            # starts before the last step of the other has finished.
            spans = sorted(span for run_id in run_ids for span in _step_spans(instance, run_id))
            assert len(spans) >= 3 * len(RANGES)
            overlaps = [(a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]
            assert not overlaps, overlaps[:3]
            order = [run for _, _, run, _ in spans]
            assert order == sorted(order, key=order.index), "the runs' steps interleaved"
            assert len(set(order)) == len(RANGES)
    # Stopped by its own PID.
    with pytest.raises(ProcessLookupError):
        os.kill(postgres_pid, 0)
    analyst = Path(env["STEPWISE_ANALYST_DB"])
    with duckdb.connect(str(analyst), read_only=True) as con:
        days = con.execute("SELECT DISTINCT CAST(date AS VARCHAR) FROM marts.web_sessions_daily").fetchall()
    loaded = {d for (d,) in days}
    assert {first for first, _ in RANGES} | {last for _, last in RANGES} <= loaded


def _events(instance, run_id):
    """Every Dagster event of the run (all_logs reads them all; the records API pages)."""
    return [entry for entry in instance.all_logs(run_id) if entry.dagster_event is not None]


def _step_spans(instance, run_id):
    """(start, end, run, step) of every step, from the event log in PostgreSQL."""
    import dagster as dg

    starts: dict[str, float] = {}
    spans = []
    for entry in _events(instance, run_id):
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            spans.append((starts[event.step_key], entry.timestamp, run_id, event.step_key))
    return spans


def _logs(deployment) -> str:
    out = []
    for path in sorted((deployment.base_dir / "logs").glob("*.log")):
        out.append(f"--- {path.name}\n{path.read_text()[-3000:]}")
    return "\n".join(out)
