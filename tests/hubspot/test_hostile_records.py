"""HubSpot records whose timestamps or ids do not parse stop the load with one message naming object
type, record id, field and value, and nothing of the object type is written.

The sandbox serves real list pages; its test-only response hook plants the bad value. Before, an
`updatedAt: "not-a-date"` raised a bare ArrowInvalid naming neither field nor record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import duckdb
import pytest

from connectors.hubspot import HubSpotFetchError, HubSpotResponseError
from connectors.sandbox.server import ApiResponse
from transforms.raw_load import upsert_hubspot_objects

from .conftest import make_client, serve


def plant(server: Any, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the first record of every list page with `change`."""

    def hook(api: str, route: str, response: ApiResponse) -> ApiResponse:
        if route != "hubspot:list" or response.status != 200:
            return response
        body = json.loads(response.body) if isinstance(response.body, bytes) else response.body
        if body.get("results"):
            change(body["results"][0])
        return ApiResponse(response.status, json.dumps(body).encode(), response.headers)

    server.config.response_hook = hook


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("updatedAt", "not-a-date", "'not-a-date'"),
        ("createdAt", "2026-13-45T00:00:00Z", "'2026-13-45T00:00:00Z'"),
        ("updatedAt", "x" * 5_000, "'" + "x" * 40 + "…'"),
    ],
)
def test_a_bad_timestamp_stops_the_load_naming_object_id_field_and_value(
    shared_hs_store: Any, tmp_path: Any, field: str, value: str, shown: str
) -> None:
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    with serve(shared_hs_store) as server:
        loaded = upsert_hubspot_objects(
            con, "companies", "sandbox", make_client(server).extract("companies"), "full"
        )
        assert loaded > 0
        before = con.execute(
            "SELECT count(*), max(updated_at), max(_loaded_at) FROM raw.hubspot_companies"
        ).fetchall()
        planted: dict[str, str] = {}

        def change(record: dict[str, Any]) -> None:
            record[field] = value
            planted["id"] = str(record["id"])

        plant(server, change)
        with pytest.raises(HubSpotResponseError) as err:
            upsert_hubspot_objects(
                con, "companies", "sandbox", make_client(server).extract("companies"), "full"
            )
    message = str(err.value)
    assert isinstance(err.value, HubSpotFetchError)
    assert message == (
        f"HubSpot companies record {planted['id']!r}: field '{field}' is {shown}, not an ISO 8601 timestamp; "
        "nothing of this object type was written"
    )
    after = con.execute(
        "SELECT count(*), max(updated_at), max(_loaded_at) FROM raw.hubspot_companies"
    ).fetchall()
    assert after == before
    con.close()


def test_a_record_without_an_id_is_refused(shared_hs_store: Any) -> None:
    with serve(shared_hs_store) as server:
        plant(server, lambda record: record.update(id=None))
        with pytest.raises(HubSpotResponseError, match="HubSpot companies: a record has id 'None'"):
            list(make_client(server).extract("companies"))
