"""Fixtures shared by every test area: the demo store and a sandbox server on loopback."""

from __future__ import annotations

import datetime as dt

import pytest

# A fixed last day keeps every test's numbers the same whatever day the suite runs on.
TEST_END_DATE = dt.date(2026, 11, 22)
TEST_SEED = 7


@pytest.fixture(scope="session")
def demo_store():
    from connectors.sandbox.store import build_store

    return build_store("demo", seed=TEST_SEED, end_date=TEST_END_DATE)


@pytest.fixture
def sandbox_server(demo_store):
    """A fresh server (its own quotas, rate buckets, counters and faults) over the shared demo store."""
    from connectors.sandbox.server import SandboxConfig, SandboxServer

    with SandboxServer(demo_store, SandboxConfig(seed=TEST_SEED)) as server:
        yield server
