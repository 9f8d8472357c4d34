"""Shared fixtures: a small sandbox store, a private warehouse and Dagster instance per session.

Everything is real: the definitions are loaded from orchestration/defs, the sandbox serves over
HTTP on 127.0.0.1 and the official SDKs talk to it, DuckDB files live under a tmp directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
# A small, fixed store so runs are quick and every number is reproducible.
SANDBOX_END = "2026-11-15"
SANDBOX_DAYS = 10
WINDOW = ("2026-11-06", "2026-11-15")
CREDENTIAL_VARS = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "STEPWISE_GA4_PROPERTY_IDS",
    "HUBSPOT_ACCESS_TOKEN",
    "STEPWISE_SANDBOX_URL",
    "STEPWISE_SANDBOX_HUBSPOT_TOKEN",
)
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass
class StepwiseEnv:
    root: Path
    env: dict[str, str]

    @property
    def working(self) -> Path:
        return Path(self.env["STEPWISE_WORKING_DB"])

    @property
    def analyst(self) -> Path:
        return Path(self.env["STEPWISE_ANALYST_DB"])

    def subprocess_env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
        env.update(self.env)
        env.update(overrides)
        env["PYTHONPATH"] = str(REPO)
        return env


def stepwise_settings(root: Path) -> dict[str, str]:
    return {
        "STEPWISE_WORKING_DB": str(root / "working" / "stepwise.duckdb"),
        "STEPWISE_ANALYST_DB": str(root / "analyst" / "stepwise.duckdb"),
        "STEPWISE_START_DATE": "2026-11-01",
        "STEPWISE_TIME_ZONE": "America/New_York",
        "STEPWISE_SANDBOX_PRESET": "demo",
        "STEPWISE_SANDBOX_SEED": "7",
        "STEPWISE_SANDBOX_DAYS": str(SANDBOX_DAYS),
        "STEPWISE_SANDBOX_SESSIONS_PER_DAY": "300",
        "STEPWISE_SANDBOX_END_DATE": SANDBOX_END,
        "STEPWISE_SANDBOX_REVISIONS": "off",
        "STEPWISE_DUCKDB_THREADS": "2",
        "STEPWISE_DUCKDB_MEMORY_LIMIT": "1GB",
        "DAGSTER_HOME": str(root / "dagster_home"),
    }


@pytest.fixture(scope="session")
def stepwise_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StepwiseEnv]:
    root = tmp_path_factory.mktemp("stepwise")
    settings = stepwise_settings(root)
    saved = {k: os.environ.get(k) for k in (*settings, *CREDENTIAL_VARS)}
    for name in CREDENTIAL_VARS:
        os.environ.pop(name, None)
    os.environ.update(settings)
    home = Path(settings["DAGSTER_HOME"])
    home.mkdir(parents=True)
    shutil.copyfile(REPO / "orchestration" / "dagster_instance.yaml", home / "dagster.yaml")
    try:
        yield StepwiseEnv(root, settings)
    finally:
        from orchestration.connections import stop_sandboxes

        stop_sandboxes()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def defs(stepwise_env: StepwiseEnv) -> Any:
    """The real definitions, loaded the way `dagster dev` loads them (resources read the env now)."""
    import dagster as dg

    import orchestration

    return dg.load_from_defs_folder(path_within_project=Path(orchestration.__file__).parent)


@pytest.fixture(scope="session")
def instance(stepwise_env: StepwiseEnv) -> Iterator[Any]:
    import dagster as dg

    temp_dir = stepwise_env.root / "test_instance"
    temp_dir.mkdir()
    with dg.instance_for_test(temp_dir=str(temp_dir), set_dagster_home=False) as inst:
        yield inst


@pytest.fixture(scope="session")
def sandbox(stepwise_env: StepwiseEnv) -> Any:
    from orchestration.connections import get_sandbox

    return get_sandbox()


def run_range(defs: Any, instance: Any, first: str, last: str, **kwargs: Any) -> Any:
    job = defs.resolve_job_def(kwargs.pop("job", "stepwise_daily"))
    return job.execute_in_process(
        instance=instance,
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last},
        raise_on_error=False,
        **kwargs,
    )


def hashes(path: Path, schemas: tuple[str, ...] = ("raw", "staging", "marts")) -> dict[str, tuple[int, str]]:
    from orchestration.table_meta import schema_hashes

    con = duckdb.connect(str(path), read_only=True)
    try:
        # request_log and marts.data_quality are per run by design (they grow with every run), and
        # staging.build_state records when the last build ran.
        return schema_hashes(
            con, schemas, skip_tables=("raw.request_log", "marts.data_quality", "staging.build_state")
        )
    finally:
        con.close()


def file_digest(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Baseline:
    result: Any
    working_hashes: dict[str, tuple[int, str]]
    analyst_digest: str


@pytest.fixture(scope="session")
def baseline(stepwise_env: StepwiseEnv, defs: Any, instance: Any, sandbox: Any) -> Baseline:
    """One undisturbed backfill of the whole window: the reference every other test compares with."""
    result = run_range(defs, instance, *WINDOW)
    assert result.success, [
        (e.step_key, e.step_failure_data.error.message if e.step_failure_data.error else e.step_failure_data)
        for e in result.all_events
        if e.is_step_failure
    ]
    return Baseline(result, hashes(stepwise_env.working), file_digest(stepwise_env.analyst))


@pytest.fixture(name="run_range")
def run_range_fixture() -> Any:
    return run_range


@pytest.fixture(name="hashes")
def hashes_fixture() -> Any:
    return hashes


@pytest.fixture(name="file_digest")
def file_digest_fixture() -> Any:
    return file_digest
