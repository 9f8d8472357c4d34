"""GA4 rows whose date or metrics do not parse stop the load with one message, and nothing is written.

The sandbox serves a real runReport body; its test-only response hook plants one bad value in it.
Before: `20261345` became a NULL date that no slice DELETE removes (rows piled up with every
lookback); a non-numeric or a missing metric raised a bare ArrowInvalid / IndexError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import duckdb
import pytest

from connectors.ga4 import Ga4FetchError
from connectors.ga4.errors import Ga4ResponseError
from connectors.ga4.specs import default_report_specs
from connectors.sandbox.server import ApiResponse
from transforms.raw_load import load_ga4_partition

from .conftest import MAIN, make_client

WEB = next(s for s in default_report_specs() if s.name == "web_sessions")


def plant(server: Any, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the first row of every runReport response with `change`."""

    def hook(api: str, route: str, response: ApiResponse) -> ApiResponse:
        if route != "ga4:runReport" or response.status != 200:
            return response
        body = json.loads(response.body) if isinstance(response.body, bytes) else response.body
        if body.get("rows"):
            change(body)
        return ApiResponse(response.status, json.dumps(body).encode(), response.headers)

    server.config.response_hook = hook


def _index(body: dict[str, Any], kind: str, name: str) -> int:
    return [h["name"] for h in body[f"{kind}Headers"]].index(name)


def bad_date(body: dict[str, Any]) -> None:
    body["rows"][0]["dimensionValues"][_index(body, "dimension", "date")]["value"] = "20261345"


def bad_metric(body: dict[str, Any]) -> None:
    body["rows"][0]["metricValues"][_index(body, "metric", "sessions")]["value"] = "12abc"


def full_width_metric(body: dict[str, Any]) -> None:
    body["rows"][0]["metricValues"][_index(body, "metric", "sessions")]["value"] = "１２"


def missing_metric(body: dict[str, Any]) -> None:
    body["rows"][0]["metricValues"].pop()


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        (bad_date, "date", "'20261345'"),
        (bad_metric, "sessions", "'12abc'"),
        (full_width_metric, "sessions", "'１２'"),
        (missing_metric, None, "missing"),
    ],
)
def test_a_bad_row_stops_the_load_naming_report_field_value_and_property(
    sandbox_server: Any, settled_window: Any, tmp_path: Any, change: Any, field: str | None, value: str
) -> None:
    start, end = settled_window
    db = tmp_path / "working.duckdb"
    con = duckdb.connect(str(db))
    # A slice already loaded for the window: a failed reload must leave it as it was.
    clean = make_client(sandbox_server).fetch_report(MAIN, WEB, start, end)
    load_ga4_partition(con, "web_sessions", MAIN, start, end, clean, "p")
    before = con.execute("SELECT count(*), sum(sessions) FROM raw.ga4_web_sessions").fetchall()

    plant(sandbox_server, change)
    with pytest.raises(Ga4ResponseError) as err:
        batches = make_client(sandbox_server).fetch_report(MAIN, WEB, start, end)
        load_ga4_partition(con, "web_sessions", MAIN, start, end, batches, "p")
    message = str(err.value)
    assert isinstance(err.value, Ga4FetchError)
    assert message.startswith(f"GA4 property {MAIN}, report 'web_sessions': field '")
    if field is not None:
        assert f"field '{field}' is {value} in row 1" in message
    else:
        assert "is missing in row 1" in message
    assert "nothing of this report was written" in message and "\n" not in message
    assert con.execute("SELECT count(*), sum(sessions) FROM raw.ga4_web_sessions").fetchall() == before
    assert con.execute("SELECT count(*) FROM raw.ga4_web_sessions WHERE date IS NULL").fetchall() == [(0,)]
    con.close()


def test_a_long_hostile_value_is_quoted_short(sandbox_server: Any, settled_window: Any) -> None:
    def huge(body: dict[str, Any]) -> None:
        body["rows"][0]["dimensionValues"][_index(body, "dimension", "date")]["value"] = "<b>" * 10_000

    plant(sandbox_server, huge)
    with pytest.raises(Ga4ResponseError) as err:
        list(make_client(sandbox_server).fetch_report(MAIN, WEB, *settled_window))
    assert len(str(err.value)) < 300


def test_the_other_row_keeps_its_null_date(sandbox_server: Any, settled_window: Any) -> None:
    """GA4's folded "(other)" row has no day of its own: it is still accepted, with its flag."""

    def other(body: dict[str, Any]) -> None:
        for value in body["rows"][0]["dimensionValues"]:
            value["value"] = "(other)"
        body.setdefault("metadata", {})["dataLossFromOtherRow"] = True

    plant(sandbox_server, other)
    client = make_client(sandbox_server, split_incomplete=False)  # no re-fetch by single days
    batches = list(client.fetch_report(MAIN, WEB, *settled_window))
    dates = [d for b in batches for d in b.column("date").to_pylist()]
    assert dates.count(None) == 1
