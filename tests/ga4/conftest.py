"""Fixtures for the GA4 connector tests: a client on the shared sandbox with fast backoff."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from connectors.ga4 import Ga4Client, Ga4Settings

MAIN = "123456789"
EXTRA = "987654321"


def make_client(server, property_ids=(MAIN,), **overrides) -> Ga4Client:
    settings = {
        "property_ids": list(property_ids),
        "api_endpoint": server.base_url,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "timeout_s": 10.0,
        **overrides,
    }
    return Ga4Client(Ga4Settings(**settings))


def collect(batches) -> pa.Table:
    batches = list(batches)
    assert batches, "no batch was returned"
    return pa.Table.from_batches(batches)


def sorted_rows(table: pa.Table) -> list[dict]:
    keys = [c for c in table.column_names if table.schema.field(c).type in (pa.string(), pa.date32())]
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


@pytest.fixture
def settled_window(demo_store) -> tuple[dt.date, dt.date]:
    """Two weeks that end before the days GA4 (and the sandbox) still revise."""
    end = demo_store.end_date - dt.timedelta(days=3)
    return end - dt.timedelta(days=13), end


@pytest.fixture
def main_property(sandbox_server):
    return sandbox_server.config.ga4.properties[MAIN]
