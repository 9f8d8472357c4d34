"""The GA4 and HubSpot resources, real and sandbox, and `build_resources()`, the one place that picks
them (with the warehouse, orchestration/warehouse.py) from the settings.

Resource keys are fixed (`warehouse`, `ga4`, `hubspot`): the export assets use them too.

With no GA4 property ids (HubSpot token) in the settings, `ga4` (`hubspot`) is a `SandboxGa4Resource`
(`SandboxHubSpotResource`) talking to the built-in sandbox, started in this process on 127.0.0.1 (one
per process, shared by both APIs so the two views come from the same synthetic people); every asset
then reports `data_source: sandbox`. Every run validates the whole environment when the warehouse
resource is set up, before any step writes (orchestration/settings.py).
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.settings import (
    StepwiseConfigError,
    StepwiseSettings,
    load_settings,
    property_ids,
    resolve_path,
)
from orchestration.warehouse import WarehouseResource

SANDBOX_TOKEN = "sandbox-private-app-token"
SANDBOX_PORTAL_ID = "sandbox"
SANDBOX_PROPERTY_ID = "123456789"
SANDBOX_NOTICE = (
    "SANDBOX MODE: synthetic data from the built-in sandbox (no GA4/HubSpot credentials set). "
    "Set STEPWISE_GA4_PROPERTY_IDS / HUBSPOT_ACCESS_TOKEN to ingest real data."
)

log = logging.getLogger("stepwise.orchestration")


@dataclass
class SandboxHandle:
    base_url: str
    server: Any  # connectors.sandbox.server.SandboxServer, or None for an external one
    store: Any  # connectors.sandbox.store.Store
    preset: str
    seed: int
    # STEPWISE_SANDBOX_ACCOUNTS=multi: the connectors.sandbox.accounts.MultiAccountSandbox (``store`` is then
    # its first property's store); None for the single-store sandbox.
    accounts: Any = None

    @property
    def property_ids(self) -> list[str]:
        return list(self.accounts.property_ids) if self.accounts is not None else [SANDBOX_PROPERTY_ID]

    def hubspot_token(self, configured: str) -> str:
        """The token a sandbox run sends: the configured one, except that with several portals the default
        sandbox token stands for the first portal's (any other value is sent as it is, e.g. the EU
        portal's token or a revoked one)."""
        if self.accounts is not None and configured == SANDBOX_TOKEN:
            from connectors.sandbox.accounts import PORTALS

            return PORTALS[0].token
        return configured

    @property
    def start_date(self) -> date:
        return self.store.start_date  # type: ignore[no-any-return]

    @property
    def end_date(self) -> date:
        return self.store.end_date  # type: ignore[no-any-return]


_SANDBOX_LOCK = threading.Lock()
_SANDBOX: dict[tuple[Any, ...], SandboxHandle] = {}


def get_sandbox(settings: StepwiseSettings | None = None) -> SandboxHandle:
    """The sandbox for this process (per STEPWISE_SANDBOX_* settings): started on first use, stopped at exit."""
    settings = settings or load_settings()
    overrides: dict[str, Any] = dict(settings.sandbox_store_overrides())
    end_date = settings.sandbox_end_date.isoformat() if settings.sandbox_end_date else None
    key = (
        settings.sandbox_preset,
        settings.sandbox_seed,
        end_date,
        tuple(sorted(overrides.items())),
        settings.sandbox_revisions,
        settings.sandbox_url,
        settings.sandbox_accounts,
    )
    with _SANDBOX_LOCK:
        handle = _SANDBOX.get(key)
        if handle is not None:
            return handle
        if settings.sandbox_accounts == "multi":
            handle = _multi_account_sandbox(settings, end_date)
            _SANDBOX[key] = handle
            return handle
        from connectors.sandbox.store import build_store

        preset, seed = settings.sandbox_preset, settings.sandbox_seed
        store = build_store(preset, seed=seed, end_date=end_date, **overrides)
        if settings.sandbox_url:
            handle = SandboxHandle(settings.sandbox_url, None, store, preset, seed)
        else:
            from connectors.sandbox.server import SandboxConfig, SandboxServer

            server = SandboxServer(store, SandboxConfig(seed=seed), port=0)
            if not settings.sandbox_revisions:
                # GA4 days are served settled (the demo loads each day once).
                for ga4_settings in getattr(server.config.ga4, "properties", {}).values():
                    ga4_settings.revisions = False
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


def _multi_account_sandbox(settings: StepwiseSettings, end_date: str | None) -> SandboxHandle:
    """STEPWISE_SANDBOX_ACCOUNTS=multi: three properties and two portals (connectors/sandbox/accounts.py).
    STEPWISE_SANDBOX_DAYS, _END_DATE, _SEED and _REVISIONS apply; _SESSIONS_PER_DAY scales the first
    property to it and the others in proportion."""
    from connectors.sandbox.accounts import PROPERTIES, MultiAccountSandbox

    per_day = settings.sandbox_sessions_per_day
    sandbox = MultiAccountSandbox(
        seed=settings.sandbox_seed,
        days=settings.sandbox_days or 90,
        end_date=end_date,
        scale=per_day / PROPERTIES[0].sessions_per_day if per_day else 1.0,
        revisions=settings.sandbox_revisions,
    )
    base_url = settings.sandbox_url or sandbox.base_url
    if not settings.sandbox_url:
        sandbox.start()
        atexit.register(sandbox.stop)
    log.warning(
        "SANDBOX MODE: serving synthetic data for %d GA4 properties and %d HubSpot portals from the built-in "
        "sandbox at %s (seed=%s)",
        len(sandbox.property_ids),
        len(sandbox.portal_ids),
        base_url,
        settings.sandbox_seed,
    )
    server = None if settings.sandbox_url else sandbox.server
    first = sandbox.store(sandbox.property_ids[0])
    return SandboxHandle(base_url, server, first, "multi", settings.sandbox_seed, accounts=sandbox)


def stop_sandboxes() -> None:
    with _SANDBOX_LOCK:
        for handle in _SANDBOX.values():
            if handle.server is not None:
                handle.server.stop()
        _SANDBOX.clear()


# --- GA4 -----------------------------------------------------------------------------------------


class Ga4Resource(dg.ConfigurableResource):
    """GA4 Data API connection to real properties (STEPWISE_GA4_PROPERTY_IDS)."""

    property_ids: str = ""  # comma separated ASCII digits
    credentials_file: str | None = None  # GOOGLE_APPLICATION_CREDENTIALS (else ADC)
    api_endpoint: str | None = None  # STEPWISE_GA4_API_ENDPOINT (tests, proxies)
    lookback_days: int = 3
    page_size: int = 250_000

    def property_id_list(self) -> list[str]:
        try:
            return list(property_ids(self.property_ids))
        except ValueError:
            raise StepwiseConfigError(
                f"environment: STEPWISE_GA4_PROPERTY_IDS={self.property_ids[:60]!r} must be numeric GA4 "
                "property ids (ASCII digits, from GA4 Admin > Property settings), comma separated"
            ) from None

    def _check_lookback(self) -> None:
        if not 0 <= self.lookback_days <= 30:
            raise StepwiseConfigError(
                f"ga4.lookback_days is {self.lookback_days}: set STEPWISE_LOOKBACK_DAYS to 0..30"
            )

    def check_config(self) -> None:
        self._check_lookback()
        self.property_id_list()
        if self.credentials_file and not resolve_path(self.credentials_file).is_file():
            raise StepwiseConfigError(
                f"environment: GOOGLE_APPLICATION_CREDENTIALS points at {self.credentials_file}, "
                "which is not a file; set it to the service account's JSON key file"
            )

    def data_source(self) -> str:
        return "ga4"

    def sandbox_notice(self) -> str | None:
        """What an ingest step warns about its data; None: real data."""
        return None

    def rate_budget(self) -> str | None:
        return rate_budget_path(shared_by_default=True)

    def connection(self) -> tuple[list[str], str | None, str | None]:
        """(property ids, API endpoint, credentials file) this resource talks to."""
        credentials = str(resolve_path(self.credentials_file)) if self.credentials_file else None
        return self.property_id_list(), self.api_endpoint or None, credentials

    def make_client(self, run_id: str | None = None) -> Any:
        from connectors.ga4 import Ga4Client, Ga4Settings

        self.check_config()
        ids, endpoint, credentials = self.connection()
        extra: dict[str, Any] = {"run_id": run_id} if run_id else {}
        settings = Ga4Settings(
            property_ids=ids,
            api_endpoint=endpoint,
            credentials_file=credentials,
            lookback_days=self.lookback_days,
            page_size=self.page_size,
            rate_budget_path=self.rate_budget(),
            **extra,
        )
        return Ga4Client(settings)


class SandboxGa4Resource(Ga4Resource):
    """GA4 served by the built-in sandbox (no STEPWISE_GA4_PROPERTY_IDS set)."""

    def property_id_list(self) -> list[str]:
        if load_settings().sandbox_accounts == "multi":
            return get_sandbox().property_ids
        return [SANDBOX_PROPERTY_ID]  # without starting the sandbox

    def check_config(self) -> None:
        # No property ids or credentials to check: the sandbox serves its own.
        self._check_lookback()

    def data_source(self) -> str:
        return "sandbox"

    def sandbox_notice(self) -> str | None:
        return SANDBOX_NOTICE

    def rate_budget(self) -> str | None:
        # The in-process sandbox is private to its run: it shares a budget only when one is set.
        return rate_budget_path(shared_by_default=False)

    def connection(self) -> tuple[list[str], str | None, str | None]:
        handle = get_sandbox()
        return handle.property_ids, handle.base_url, None


# --- HubSpot -------------------------------------------------------------------------------------


class HubSpotResource(dg.ConfigurableResource):
    """HubSpot CRM v3 connection with a private-app token (HUBSPOT_ACCESS_TOKEN)."""

    access_token: str = ""  # a dg.EnvVar, so the UI never shows the token
    portal_id: str = "hubspot"  # HUBSPOT_PORTAL_ID (labels rows)
    host: str | None = None  # STEPWISE_HUBSPOT_HOST (tests, proxies)

    def portal(self) -> str:
        return self.portal_id.strip() or "hubspot"

    def check_config(self) -> None:
        token = self.access_token.strip()
        if not token or any(c.isspace() for c in token):
            raise StepwiseConfigError(
                "environment: HUBSPOT_ACCESS_TOKEN is empty or contains whitespace; paste the private app's "
                "access token exactly (Settings > Integrations > Private apps > Auth)"
            )

    def data_source(self) -> str:
        return "hubspot"

    def sandbox_notice(self) -> str | None:
        """What an ingest step warns about its data; None: real data."""
        return None

    def rate_budget(self) -> str | None:
        return rate_budget_path(shared_by_default=True)

    def connection(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "access_token": self.access_token.strip(),
            "portal_id": self.portal(),
            "rate_budget_path": self.rate_budget(),
        }
        if self.host:
            kwargs["host"] = self.host
        return kwargs

    def make_client(self, run_id: str | None = None) -> Any:
        from connectors.hubspot import HubSpotClient, HubSpotSettings

        self.check_config()
        extra: dict[str, Any] = {"run_id": run_id} if run_id else {}
        extra["incremental_overlap_seconds"] = load_settings().hubspot_incremental_overlap_seconds
        return HubSpotClient(HubSpotSettings(**self.connection(), **extra))


class SandboxHubSpotResource(HubSpotResource):
    """HubSpot served by the built-in sandbox (no HUBSPOT_ACCESS_TOKEN set)."""

    def portal(self) -> str:
        return SANDBOX_PORTAL_ID

    def check_config(self) -> None:
        return None

    def data_source(self) -> str:
        return "sandbox"

    def sandbox_notice(self) -> str | None:
        return SANDBOX_NOTICE

    def rate_budget(self) -> str | None:
        # The in-process sandbox is private to its run: it shares a budget only when one is set.
        return rate_budget_path(shared_by_default=False)

    def connection(self) -> dict[str, Any]:
        # The token is read per run: tests set STEPWISE_SANDBOX_HUBSPOT_TOKEN to an expired one.
        handle = get_sandbox()
        token = handle.hubspot_token(load_settings().sandbox_hubspot_token)
        return {
            "access_token": token,
            "host": handle.base_url,
            "portal_id": SANDBOX_PORTAL_ID,
            "rate_budget_path": self.rate_budget(),
        }


DEFAULT_RATE_BUDGET = "data/state/rate-budget.sqlite"


def rate_budget_path(*, shared_by_default: bool) -> str | None:
    """STEPWISE_RATE_BUDGET: the SQLite file in which every run on this host books its HubSpot requests
    and GA4 concurrent-request slots (connectors/rate_budget.py), so concurrent runs share one portal's
    allowance and one property's concurrency quota. A real portal uses
    data/state/rate-budget.sqlite unless set; "off" keeps each run to its own limiter. The in-process
    sandbox is private to its run, so it shares nothing unless the variable is set.
    """
    value = load_settings().rate_budget or ""
    if value.lower() == "off" or (not shared_by_default and not value):
        return None
    return str(resolve_path(value or DEFAULT_RATE_BUDGET))


def data_source_label(ga4: Ga4Resource, hubspot: HubSpotResource) -> str:
    sources = {ga4.data_source(), hubspot.data_source()}
    if sources == {"sandbox"}:
        return "sandbox"
    return "+".join(sorted(sources))


def analyst_file_from_env() -> Path:
    return load_settings().analyst_file


def _file_property_ids(settings: StepwiseSettings) -> tuple[str, ...]:
    from orchestration.accounts import configured_accounts

    return (
        tuple(p.property_id for p in configured_accounts(settings).properties)
        if settings.accounts_path
        else ()
    )


def api_resources(settings: StepwiseSettings | None = None) -> tuple[Ga4Resource, HubSpotResource]:
    """The GA4 and HubSpot resources: the one place that picks the sandbox or the real APIs."""
    settings = settings or load_settings()
    ga4: Ga4Resource
    if settings.ga4_is_sandbox:
        ga4 = SandboxGa4Resource(lookback_days=settings.lookback_days)
    else:
        ga4 = Ga4Resource(
            property_ids=",".join(settings.ga4_property_ids or _file_property_ids(settings)),
            credentials_file=settings.ga4_credentials_file,
            api_endpoint=settings.ga4_api_endpoint,
            lookback_days=settings.lookback_days,
        )
    hubspot: HubSpotResource
    if settings.hubspot_is_sandbox:
        hubspot = SandboxHubSpotResource()
    elif settings.accounts_path:
        # Each portal's steps read the token its accounts-file entry names (orchestration/defs/ingest.py).
        hubspot = HubSpotResource(access_token="", host=settings.hubspot_host)
    else:
        hubspot = HubSpotResource(
            # An EnvVar, not the value: the Dagster UI shows a resource's configuration.
            access_token=dg.EnvVar("HUBSPOT_ACCESS_TOKEN"),
            portal_id=settings.hubspot_portal_id,
            host=settings.hubspot_host,
        )
    return ga4, hubspot


def build_resources(settings: StepwiseSettings | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location, built from the settings."""
    settings = settings or load_settings()
    ga4, hubspot = api_resources(settings)
    return {
        "warehouse": WarehouseResource(
            working_path=settings.working_db,
            analyst_path=settings.analyst_db,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
        ),
        "ga4": ga4,
        "hubspot": hubspot,
    }
