"""A warehouse built through the REAL connectors: the sandbox HTTP server over the demo store, the GA4
and HubSpot clients (official SDKs), transforms.raw_load into a DuckDB file, then transforms.build.

Session-scoped: ingest and full build happen once; tests that change the warehouse copy the file.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from connectors.ga4 import Ga4Client, Ga4Settings, default_report_specs
from connectors.hubspot import HubSpotClient, HubSpotSettings
from connectors.sandbox.server import SandboxConfig, SandboxServer
from transforms import raw_load
from transforms.build import BuildResult, build_all
from transforms.catalog import default_catalog, default_channel_mapping

PORTAL_ID = "sandbox"
SEED = 7


@dataclass
class Warehouse:
    path: Path
    store: object
    server_base_url: str
    build: BuildResult

    def connect(self, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.path), read_only=read_only)

    def copy(self, target: Path) -> Path:
        shutil.copyfile(self.path, target)
        return target


def ga4_client(base_url: str, property_id: str) -> Ga4Client:
    return Ga4Client(
        Ga4Settings(
            property_ids=[property_id],
            api_endpoint=base_url,
            backoff_base_s=0.01,
            backoff_max_s=0.05,
            timeout_s=30.0,
            run_id="transforms-test",
        )
    )


def hubspot_client(base_url: str, general_max: int, search_per_second: int) -> HubSpotClient:
    return HubSpotClient(
        HubSpotSettings(
            access_token="transforms-test-token",
            host=base_url,
            portal_id=PORTAL_ID,
            run_id="transforms-test",
            general_max_requests=general_max,
            general_interval_seconds=10.0,
            search_requests_per_second=search_per_second,
            backoff_base_seconds=0.01,
            backoff_max_seconds=0.05,
            limiter_margin_seconds=0.05,
        )
    )


def ingest_ga4(
    con, client: Ga4Client, property_id: str, start: dt.date, end: dt.date, partition_key: str
) -> None:
    for spec in default_report_specs():
        raw_load.load_ga4_partition(
            con,
            spec.name,
            property_id,
            start,
            end,
            client.fetch_report(property_id, spec, start, end),
            partition_key,
        )


def ingest_hubspot(con, client: HubSpotClient, since: dt.datetime | None = None) -> None:
    mode = "full" if since is None else "incremental"
    for object_type in ("contacts", "deals"):
        raw_load.upsert_hubspot_objects(
            con, object_type, PORTAL_ID, client.extract(object_type, since=since), mode
        )
        if since is None:
            raw_load.upsert_hubspot_objects(
                con, object_type, PORTAL_ID, client.extract_archived(object_type), mode
            )
    for object_type in ("contacts", "deals"):
        raw_load.replace_hubspot_metadata(
            con, "properties", PORTAL_ID, [client.properties(object_type)], object_type=object_type
        )
        raw_load.replace_hubspot_metadata(
            con, "pipelines", PORTAL_ID, [client.pipelines(object_type)], object_type=object_type
        )


class Tools:
    """The ingest helpers above, handed to tests as a fixture (tests do not import conftest)."""

    ga4_client = staticmethod(ga4_client)
    hubspot_client = staticmethod(hubspot_client)
    ingest_ga4 = staticmethod(ingest_ga4)
    ingest_hubspot = staticmethod(ingest_hubspot)
    PORTAL_ID = PORTAL_ID


@pytest.fixture(scope="session")
def tools() -> type[Tools]:
    return Tools


@pytest.fixture(scope="session")
def sandbox(demo_store):
    """One sandbox server for the whole transforms session, with fast HubSpot limits."""
    server = SandboxServer(demo_store, SandboxConfig(seed=SEED))
    cfg = server.config.hubspot
    cfg.general_max, cfg.search_per_second = 5_000, 200
    with server:
        yield server


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory, demo_store, sandbox) -> Warehouse:
    path = tmp_path_factory.mktemp("warehouse") / "stepwise.duckdb"
    property_id = demo_store.property_id
    con = duckdb.connect(str(path))
    try:
        ga4 = ga4_client(sandbox.base_url, property_id)
        ingest_ga4(con, ga4, property_id, demo_store.start_date, demo_store.end_date, "initial")
        time_zone = ga4.property_time_zone(property_id)
        assert time_zone, "the GA4 responses named no time zone"
        raw_load.record_ga4_property(con, property_id, time_zone=time_zone)
        hubspot = hubspot_client(sandbox.base_url, 5_000, 200)
        ingest_hubspot(con, hubspot)
        raw_load.append_request_log(con, "transforms-test", [*ga4.request_log, *hubspot.request_log])
        result = build_all(con, default_catalog(), default_channel_mapping())
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return Warehouse(path, demo_store, sandbox.base_url, result)
