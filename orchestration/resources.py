"""Dagster resources: the DuckDB warehouse and the GA4 / HubSpot connections.

Resource keys are fixed (`warehouse`, `ga4`, `hubspot`): the export assets use them too.

With no credentials in the environment the GA4 and HubSpot resources talk to the built-in sandbox,
started in this process on 127.0.0.1 (one per process, shared by both APIs so the two views come
from the same synthetic people). Every asset then reports `data_source: sandbox`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKING_DB = "data/working/stepwise.duckdb"
DEFAULT_ANALYST_DB = "data/stepwise.duckdb"
SANDBOX_TOKEN = "sandbox-private-app-token"
SANDBOX_PORTAL_ID = "sandbox"
SANDBOX_PROPERTY_ID = "123456789"

log = logging.getLogger("stepwise.orchestration")


class StepwiseConfigError(Exception):
    """A configuration problem, detected before any API call or write."""


def resolve_path(path: str) -> Path:
    """Relative paths are relative to the repository root, so `dagster dev` and the demo agree."""
    candidate = Path(os.path.expanduser(path))
    return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WarehouseResource(dg.ConfigurableResource):
    """The pipeline's own DuckDB file, and the analyst copy it publishes by atomic rename.

    The pipeline only ever opens `working_path`; analysts open `analyst_path` read-only. Publishing
    copies a checkpointed working file beside the analyst file and renames it over, so a reader sees
    the old file or the new one, and never holds a lock the pipeline needs.
    """

    working_path: str = DEFAULT_WORKING_DB
    analyst_path: str = DEFAULT_ANALYST_DB
    memory_limit: str = "2GB"
    threads: int = 2

    @property
    def working_file(self) -> Path:
        return resolve_path(self.working_path)

    @property
    def analyst_file(self) -> Path:
        return resolve_path(self.analyst_path)

    def check_config(self) -> None:
        if self.threads < 1:
            raise StepwiseConfigError(
                f"warehouse.threads is {self.threads}: set STEPWISE_DUCKDB_THREADS to 1 or more"
            )
        if self.working_file.resolve() == self.analyst_file.resolve():
            raise StepwiseConfigError(
                f"warehouse: the working file and the analyst file are both {self.working_file}; "
                "set STEPWISE_WORKING_DB and STEPWISE_ANALYST_DB to different paths"
            )

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        self.check_config()
        path = self.working_file
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(
            str(path),
            read_only=read_only,
            config={"memory_limit": self.memory_limit, "threads": self.threads},
        )
        try:
            yield con
        finally:
            con.close()

    def publish(self) -> dict[str, Any]:
        """Checkpoint the working file and atomically replace the analyst file with a copy of it."""
        working = self.working_file
        if not working.exists():
            raise StepwiseConfigError(f"warehouse: nothing to publish, {working} does not exist yet")
        with self.connect() as con:
            con.execute("CHECKPOINT")
        wal = working.with_name(working.name + ".wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise RuntimeError(f"{wal} still holds changes after CHECKPOINT; another writer is open")
        analyst = self.analyst_file
        analyst.parent.mkdir(parents=True, exist_ok=True)
        tmp = analyst.with_name(f".{analyst.name}.{os.getpid()}.publishing")
        try:
            with open(working, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, length=16 * 1024 * 1024)
                dst.flush()
                os.fsync(dst.fileno())
            # Open the copy before it goes live: a file DuckDB cannot read is never published.
            check = duckdb.connect(str(tmp), read_only=True)
            check.close()
            os.replace(tmp, analyst)
            _fsync_dir(analyst.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return {"analyst_file": str(analyst), "bytes": analyst.stat().st_size}


# --- the in-process sandbox ---------------------------------------------------------------------


@dataclass
class SandboxHandle:
    base_url: str
    server: Any  # connectors.sandbox.server.SandboxServer, or None for an external one
    store: Any
    preset: str
    seed: int

    @property
    def start_date(self) -> date | None:
        for name in ("start_date", "first_date"):
            value = getattr(self.store, name, None)
            if value is not None:
                return value
        return None

    @property
    def end_date(self) -> date | None:
        return getattr(self.store, "end_date", None)


_SANDBOX_LOCK = threading.Lock()
_SANDBOX: dict[tuple[Any, ...], SandboxHandle] = {}
_SANDBOX_INT_OVERRIDES = {
    "STEPWISE_SANDBOX_DAYS": "days",
    "STEPWISE_SANDBOX_SESSIONS_PER_DAY": "sessions_per_day",
}


def sandbox_settings() -> tuple[str, int, str | None, tuple[tuple[str, int], ...]]:
    """(preset, seed, end_date, store overrides) from STEPWISE_SANDBOX_* (tests use small stores)."""
    preset = os.environ.get("STEPWISE_SANDBOX_PRESET", "demo")
    ints: dict[str, int] = {}
    for env, field_name in {"STEPWISE_SANDBOX_SEED": "seed", **_SANDBOX_INT_OVERRIDES}.items():
        raw = os.environ.get(env)
        if raw is None:
            continue
        if not raw.isdigit():
            raise StepwiseConfigError(f"environment: {env}={raw!r} must be a whole number")
        ints[field_name] = int(raw)
    end_date = os.environ.get("STEPWISE_SANDBOX_END_DATE") or None
    if end_date:
        try:
            date.fromisoformat(end_date)
        except ValueError as exc:
            raise StepwiseConfigError(
                f"environment: STEPWISE_SANDBOX_END_DATE={end_date!r} is not a date (YYYY-MM-DD)"
            ) from exc
    seed = ints.pop("seed", 7)
    return preset, seed, end_date, tuple(sorted(ints.items()))


def apply_sandbox_env(server: Any) -> None:
    """STEPWISE_SANDBOX_REVISIONS=off: GA4 days are served settled (the demo loads each day once)."""
    if os.environ.get("STEPWISE_SANDBOX_REVISIONS", "on").lower() in ("off", "0", "false", "no"):
        ga4 = getattr(server.config, "ga4", None)
        for settings in getattr(ga4, "properties", {}).values():
            settings.revisions = False


def get_sandbox() -> SandboxHandle:
    """The sandbox for this process: started on first use, stopped at exit."""
    key = sandbox_settings()
    with _SANDBOX_LOCK:
        handle = _SANDBOX.get(key)
        if handle is not None:
            return handle
        from connectors.sandbox.store import build_store

        preset, seed, end_date, overrides = key
        store_overrides: dict[str, Any] = dict(overrides)
        store = build_store(preset, seed=seed, end_date=end_date, **store_overrides)
        external = os.environ.get("STEPWISE_SANDBOX_URL")
        if external:
            handle = SandboxHandle(external.rstrip("/"), None, store, preset, seed)
        else:
            from connectors.sandbox.server import SandboxConfig, SandboxServer

            server = SandboxServer(store, SandboxConfig(seed=seed), port=0)
            apply_sandbox_env(server)
            server.start()
            atexit.register(server.stop)
            handle = SandboxHandle(server.base_url, server, store, preset, seed)
        log.warning(
            "SANDBOX MODE: no GA4/HubSpot credentials in the environment; serving synthetic data "
            "from the built-in sandbox at %s (preset=%s, seed=%s)",
            handle.base_url,
            preset,
            seed,
        )
        _SANDBOX[key] = handle
        return handle


def stop_sandboxes() -> None:
    with _SANDBOX_LOCK:
        for handle in _SANDBOX.values():
            if handle.server is not None:
                handle.server.stop()
        _SANDBOX.clear()


# --- GA4 -----------------------------------------------------------------------------------------


class Ga4Resource(dg.ConfigurableResource):
    """GA4 Data API connection. Unset `property_ids` means the sandbox serves."""

    property_ids: str | None = None  # comma separated; env STEPWISE_GA4_PROPERTY_IDS
    credentials_file: str | None = None  # env GOOGLE_APPLICATION_CREDENTIALS (else ADC)
    api_endpoint: str | None = None  # env STEPWISE_GA4_API_ENDPOINT (tests, proxies)
    lookback_days: int = 3
    page_size: int = 250_000

    @property
    def is_sandbox(self) -> bool:
        return not (self.property_ids or "").strip()

    def property_id_list(self) -> list[str]:
        if self.is_sandbox:
            return [SANDBOX_PROPERTY_ID]
        ids = [p.strip() for p in (self.property_ids or "").split(",") if p.strip()]
        bad = [p for p in ids if not p.isdigit()]
        if bad:
            raise StepwiseConfigError(
                f"environment: STEPWISE_GA4_PROPERTY_IDS has {bad!r}, which are not GA4 property ids; "
                "use the numeric ids from GA4 Admin > Property settings, comma separated"
            )
        return ids

    def check_config(self) -> None:
        if self.lookback_days < 0:
            raise StepwiseConfigError(
                f"ga4.lookback_days is {self.lookback_days}: set STEPWISE_LOOKBACK_DAYS to 0 or more"
            )
        if self.is_sandbox:
            return
        self.property_id_list()
        if self.credentials_file and not resolve_path(self.credentials_file).is_file():
            raise StepwiseConfigError(
                f"environment: GOOGLE_APPLICATION_CREDENTIALS points at {self.credentials_file}, "
                "which is not a file; set it to the service account's JSON key file"
            )

    def data_source(self) -> str:
        return "sandbox" if self.is_sandbox else "ga4"

    def make_client(self, run_id: str | None = None) -> Any:
        from connectors.ga4 import Ga4Client, Ga4Settings

        extra: dict[str, Any] = {"run_id": run_id} if run_id else {}
        self.check_config()
        if self.is_sandbox:
            sandbox = get_sandbox()
            settings = Ga4Settings(
                property_ids=[SANDBOX_PROPERTY_ID],
                api_endpoint=sandbox.base_url,
                credentials_file=None,
                lookback_days=self.lookback_days,
                page_size=self.page_size,
                **extra,
            )
        else:
            settings = Ga4Settings(
                property_ids=self.property_id_list(),
                api_endpoint=self.api_endpoint or None,
                credentials_file=str(resolve_path(self.credentials_file)) if self.credentials_file else None,
                lookback_days=self.lookback_days,
                page_size=self.page_size,
                **extra,
            )
        return Ga4Client(settings)


# --- HubSpot -------------------------------------------------------------------------------------


class HubSpotResource(dg.ConfigurableResource):
    """HubSpot CRM v3 connection (private-app token). Unset `access_token` means the sandbox serves."""

    access_token: str | None = None  # env HUBSPOT_ACCESS_TOKEN
    portal_id: str | None = None  # env HUBSPOT_PORTAL_ID (labels rows; defaults to "hubspot")
    host: str | None = None  # env STEPWISE_HUBSPOT_HOST (tests, proxies)

    @property
    def is_sandbox(self) -> bool:
        return not (self.access_token or "").strip()

    def portal(self) -> str:
        if self.is_sandbox:
            return SANDBOX_PORTAL_ID
        return (self.portal_id or "hubspot").strip()

    def check_config(self) -> None:
        if not self.is_sandbox and any(c.isspace() for c in (self.access_token or "").strip()):
            raise StepwiseConfigError(
                "environment: HUBSPOT_ACCESS_TOKEN contains whitespace; paste the private app's "
                "access token exactly (Settings > Integrations > Private apps > Auth)"
            )

    def data_source(self) -> str:
        return "sandbox" if self.is_sandbox else "hubspot"

    def make_client(self, run_id: str | None = None) -> Any:
        from connectors.hubspot import HubSpotClient, HubSpotSettings

        self.check_config()
        extra: dict[str, Any] = {"run_id": run_id} if run_id else {}
        if self.is_sandbox:
            sandbox = get_sandbox()
            settings = HubSpotSettings(
                access_token=os.environ.get("STEPWISE_SANDBOX_HUBSPOT_TOKEN", SANDBOX_TOKEN),
                host=sandbox.base_url,
                portal_id=SANDBOX_PORTAL_ID,
                rate_budget_path=rate_budget_path(sandbox=True),
                **extra,
            )
        else:
            kwargs: dict[str, Any] = {
                "access_token": (self.access_token or "").strip(),
                "portal_id": self.portal(),
                "rate_budget_path": rate_budget_path(sandbox=False),
            }
            if self.host:
                kwargs["host"] = self.host
            settings = HubSpotSettings(**kwargs)
        return HubSpotClient(settings)


DEFAULT_RATE_BUDGET = "data/state/rate-budget.sqlite"


def rate_budget_path(sandbox: bool) -> str | None:
    """STEPWISE_RATE_BUDGET: the SQLite file in which every run on this host books its HubSpot requests
    (connectors/rate_budget.py), so concurrent runs share one portal's allowance. A real portal uses
    data/state/rate-budget.sqlite unless set; "off" keeps each run to its own limiter. The in-process
    sandbox is private to its run, so it shares nothing unless the variable is set.
    """
    value = os.environ.get("STEPWISE_RATE_BUDGET", "").strip()
    if value.lower() == "off" or (sandbox and not value):
        return None
    return str(resolve_path(value or DEFAULT_RATE_BUDGET))


def data_source_label(ga4: Ga4Resource, hubspot: HubSpotResource) -> str:
    sources = {ga4.data_source(), hubspot.data_source()}
    if sources == {"sandbox"}:
        return "sandbox"
    return "+".join(sorted(sources))


def analyst_file_from_env() -> Path:
    return resolve_path(os.environ.get("STEPWISE_ANALYST_DB") or DEFAULT_ANALYST_DB)


def sandbox_from_env() -> tuple[bool, bool]:
    """(GA4 served by the sandbox, HubSpot served by the sandbox), as the resources will decide."""
    return (
        not os.environ.get("STEPWISE_GA4_PROPERTY_IDS", "").strip(),
        not os.environ.get("HUBSPOT_ACCESS_TOKEN", "").strip(),
    )


def _env_or(name: str, default: Any) -> Any:
    """`dg.EnvVar` when the variable is set (so the UI shows where a value comes from), else a default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_int_or(name: str, default: int) -> Any:
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def build_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(
            working_path=_env_or("STEPWISE_WORKING_DB", DEFAULT_WORKING_DB),
            analyst_path=_env_or("STEPWISE_ANALYST_DB", DEFAULT_ANALYST_DB),
            memory_limit=_env_or("STEPWISE_DUCKDB_MEMORY_LIMIT", "2GB"),
            threads=_env_int_or("STEPWISE_DUCKDB_THREADS", 2),
        ),
        "ga4": Ga4Resource(
            property_ids=_env_or("STEPWISE_GA4_PROPERTY_IDS", None),
            credentials_file=_env_or("GOOGLE_APPLICATION_CREDENTIALS", None),
            api_endpoint=_env_or("STEPWISE_GA4_API_ENDPOINT", None),
            lookback_days=_env_int_or("STEPWISE_LOOKBACK_DAYS", 3),
        ),
        "hubspot": HubSpotResource(
            access_token=_env_or("HUBSPOT_ACCESS_TOKEN", None),
            portal_id=_env_or("HUBSPOT_PORTAL_ID", None),
            host=_env_or("STEPWISE_HUBSPOT_HOST", None),
        ),
    }
