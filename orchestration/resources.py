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
        """Checkpoint the working file and atomically replace the analyst file with a copy of it.

        The copy is written in ANALYST_STORAGE_VERSION (not copied byte for byte): the working file
        stays on the newest storage format, while the analyst file opens in DuckDB 1.4 (the LTS
        release) and every later one, which is what the CLI packages, JDBC/ODBC drivers, R and BI
        tools that analysts use ship. The temporary file beside the target is fsynced, verified and
        renamed over the old one, so a reader sees the old file or the new one, never a partial one.
        """
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
        leftovers = (tmp, tmp.with_name(tmp.name + ".wal"))
        try:
            for path in leftovers:  # a publish killed half-way leaves these; ATTACH would reuse them
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            copied = copy_in_storage_version(
                working, tmp, ANALYST_STORAGE_VERSION, memory_limit=self.memory_limit, threads=self.threads
            )
            if leftovers[1].exists() and leftovers[1].stat().st_size > 0:
                raise RuntimeError(f"{leftovers[1]} still holds changes after the copy was closed")
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            # Open the copy before it goes live: a file DuckDB cannot read is never published.
            check = duckdb.connect(str(tmp), read_only=True)
            check.close()
            os.replace(tmp, analyst)
            _fsync_dir(analyst.parent)
        finally:
            for path in leftovers:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return {
            "analyst_file": str(analyst),
            "bytes": analyst.stat().st_size,
            "storage_version": ANALYST_STORAGE_VERSION,
            **copied,
        }


# DuckDB 1.4 is the long-term-support release: files in its storage version open in 1.4.0 and later.
ANALYST_STORAGE_VERSION = "v1.4.0"


def _sql_string(value: str) -> str:
    # ATTACH takes no prepared parameters for its path; a quoted literal with quotes doubled is exact.
    return "'" + value.replace("'", "''") + "'"


def _catalog(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, Any]:
    """Every table, view and comment of one attached database (DuckDB's internal objects left out)."""
    tables = con.execute(
        "SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE database_name = ? AND NOT internal",
        [database],
    ).fetchall()
    views = con.execute(
        "SELECT schema_name, view_name, comment FROM duckdb_views() WHERE database_name = ? AND NOT internal",
        [database],
    ).fetchall()
    columns = con.execute(
        "SELECT c.schema_name, c.table_name, c.column_name, c.comment FROM duckdb_columns() c "
        "WHERE c.database_name = ? AND NOT c.internal",
        [database],
    ).fetchall()
    return {
        "tables": {(s, t): c for s, t, c in tables},
        "views": {(s, v): c for s, v, c in views},
        "columns": {(s, t, col): c for s, t, col, c in columns},
    }


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def reapply_comments(
    con: duckdb.DuckDBPyConnection, want: dict[str, Any], got: dict[str, Any], database: str
) -> int:
    """COMMENT ON every table, view and column of `database` whose comment differs from `want`'s."""
    # COMMENT ON takes no prepared parameter: the comment goes in as a quoted literal (quotes doubled).
    statements = []
    for kind, part in (("TABLE", "tables"), ("VIEW", "views")):
        for (schema, name), comment in want[part].items():
            if comment is not None and got[part].get((schema, name)) != comment:
                statements.append(
                    f"COMMENT ON {kind} {_ident(database)}.{_ident(schema)}.{_ident(name)}"
                    f" IS {_sql_string(comment)}"
                )
    for (schema, table, column), comment in want["columns"].items():
        if comment is not None and got["columns"].get((schema, table, column)) != comment:
            statements.append(
                f"COMMENT ON COLUMN {_ident(database)}.{_ident(schema)}.{_ident(table)}.{_ident(column)}"
                f" IS {_sql_string(comment)}"
            )
    for statement in statements:
        con.execute(statement)
    return len(statements)


def copy_in_storage_version(
    source: Path, target: Path, storage_version: str, *, memory_limit: str = "2GB", threads: int = 2
) -> dict[str, Any]:
    """Copy every schema, table, view, macro and COMMENT of `source` into a new file `target` written
    in `storage_version`, and check that nothing was lost (objects, comments, row counts).

    COPY FROM DATABASE carries comments in DuckDB 2.0; any it drops (older or newer releases) are
    re-applied from the source's catalog, so the check below holds either way.
    """
    con = duckdb.connect(":memory:", config={"memory_limit": memory_limit, "threads": threads})
    try:
        con.execute(f"ATTACH {_sql_string(str(source))} AS stepwise_working (READ_ONLY)")
        con.execute(
            f"ATTACH {_sql_string(str(target))} AS stepwise_published "
            f"(STORAGE_VERSION {_sql_string(storage_version)})"
        )
        con.execute("COPY FROM DATABASE stepwise_working TO stepwise_published")
        want = _catalog(con, "stepwise_working")
        got = _catalog(con, "stepwise_published")
        reapplied = reapply_comments(con, want, got, "stepwise_published")
        got = _catalog(con, "stepwise_published")
        for part in ("tables", "views", "columns"):
            if got[part] != want[part]:
                missing = sorted(set(want[part].items()) - set(got[part].items()), key=str)[:5]
                raise RuntimeError(f"publish: the {storage_version} copy lost {part}: {missing}")
        rows = 0
        for schema, table in want["tables"]:
            counts = [
                con.execute(f"SELECT count(*) FROM {db}.{_ident(schema)}.{_ident(table)}").fetchall()[0][0]
                for db in ("stepwise_working", "stepwise_published")
            ]
            if counts[0] != counts[1]:
                raise RuntimeError(
                    f"publish: {schema}.{table} has {counts[1]} rows in the copy, {counts[0]} in the source"
                )
            rows += counts[0]
        con.execute("DETACH stepwise_published")  # checkpoints the copy into its file
    finally:
        con.close()
    return {
        "tables_copied": len(want["tables"]),
        "views_copied": len(want["views"]),
        "rows_copied": rows,
        "comments_reapplied": reapplied,
    }


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
                rate_budget_path=rate_budget_path(sandbox=True),
                **extra,
            )
        else:
            settings = Ga4Settings(
                property_ids=self.property_id_list(),
                api_endpoint=self.api_endpoint or None,
                credentials_file=str(resolve_path(self.credentials_file)) if self.credentials_file else None,
                lookback_days=self.lookback_days,
                page_size=self.page_size,
                rate_budget_path=rate_budget_path(sandbox=False),
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
        from orchestration.settings import hubspot_incremental_overlap_seconds  # here: settings imports us

        self.check_config()
        extra: dict[str, Any] = {"run_id": run_id} if run_id else {}
        extra["incremental_overlap_seconds"] = hubspot_incremental_overlap_seconds()
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
    and GA4 concurrent-request slots (connectors/rate_budget.py), so concurrent runs share one portal's
    allowance and one property's concurrency quota. A real portal uses
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
