"""Fixtures of the HubSpot connector tests: private stores (tests touch them) and sandbox servers."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools

import pytest

from connectors.hubspot import HubSpotClient, HubSpotSettings
from connectors.sandbox.server import SandboxConfig, SandboxServer
from connectors.sandbox.store import build_store

END_DATE = dt.date(2026, 11, 22)
SEED = 7
# Fast sandbox limits for tests that are not about rate limiting (the limiter still applies them).
FAST_GENERAL = 2_000
FAST_SEARCH = 100
_tokens = itertools.count()


@pytest.fixture
def hs_store():
    """A demo store of this test's own: ``touch_contacts`` changes it."""
    return build_store("demo", seed=SEED, end_date=END_DATE)


@pytest.fixture(scope="session")
def shared_hs_store():
    """A demo store for tests that only read."""
    return build_store("demo", seed=SEED, end_date=END_DATE)


@contextlib.contextmanager
def serve(
    store, general_max: int = FAST_GENERAL, interval_ms: int = 10_000, search_per_second: int = FAST_SEARCH
):
    server = SandboxServer(store, SandboxConfig(seed=SEED), apis=("hubspot",))
    cfg = server.config.hubspot
    cfg.general_max, cfg.general_interval_ms, cfg.search_per_second = (
        general_max,
        interval_ms,
        search_per_second,
    )
    with server:
        yield server


def make_client(server, token: str | None = None, **overrides) -> HubSpotClient:
    """A client whose limiter starts from the server's configured limits (a fresh token per client
    unless given, so tests never share a limiter by accident)."""
    cfg = server.config.hubspot
    fields = {
        "access_token": token or f"test-token-{next(_tokens)}",
        "host": server.base_url,
        "portal_id": "sandbox",
        "general_max_requests": cfg.general_max,
        "general_interval_seconds": cfg.general_interval_ms / 1000,
        "search_requests_per_second": cfg.search_per_second,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "limiter_margin_seconds": 0.05,
    }
    fields.update(overrides)
    return HubSpotClient(HubSpotSettings(**fields))


def live_ids(store, table: str = "contacts") -> set[str]:
    merged = "AND merged_into IS NULL"  # every object type records merges
    rows = store.cursor().execute(f"SELECT id FROM {table} WHERE NOT archived {merged}").fetchall()
    return {str(r[0]) for r in rows}


def collect(batches) -> list[dict]:
    out: list[dict] = []
    for batch in batches:
        out.extend(batch.to_pylist())
    return out


class Tools:
    """The helpers above, handed to tests as a fixture (importlib mode: tests cannot import conftest)."""

    serve = staticmethod(serve)
    make_client = staticmethod(make_client)
    live_ids = staticmethod(live_ids)
    collect = staticmethod(collect)
    FAST_GENERAL = FAST_GENERAL
    FAST_SEARCH = FAST_SEARCH


@pytest.fixture(scope="session")
def hs():
    return Tools
