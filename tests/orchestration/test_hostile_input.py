"""Malformed API values planted through the sandbox stop a real Dagster run with one clear message:
nothing of the report (object type) is written, and the analyst file is not replaced."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import pytest

from connectors.sandbox.server import ApiResponse

GA4_STEPS = {
    f"raw__ga4_{s}"
    for s in ("web_sessions", "events", "key_events", "ecommerce", "landing_pages", "campaigns", "lead_forms")
}


@pytest.fixture
def planted(sandbox: Any) -> Iterator[Callable[[Callable[..., ApiResponse]], None]]:
    def plant(hook: Callable[..., ApiResponse]) -> None:
        sandbox.server.config.response_hook = hook

    yield plant
    sandbox.server.config.response_hook = None


def _body(response: ApiResponse) -> Any:
    return json.loads(response.body) if isinstance(response.body, bytes) else response.body


def _failures(result: Any) -> dict[str, str]:
    out = {}
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            out[event.step_key] = (
                data.user_failure_data.description if data.user_failure_data else data.error.message
            )
    return out


def _ga4_raw(path: Any) -> dict[str, Any]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                # the daily GA4 reports: every raw ga4_ table with a date column (not the experiments'
                # window-long audience report, nor the property list)
                "SELECT DISTINCT table_name FROM duckdb_columns() WHERE schema_name = 'raw' "
                "AND table_name LIKE 'ga4_%' AND column_name = 'date' ORDER BY 1"
            ).fetchall()
        ]
        return {
            t: con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE date IS NULL), max(_loaded_at) FROM raw.{t}"
            ).fetchall()
            for t in tables
        }
    finally:
        con.close()


def test_a_ga4_date_that_is_no_day_stops_the_run_and_writes_nothing(
    stepwise_env: Any, defs: Any, instance: Any, baseline: Any, planted: Any, run_range: Any, file_digest: Any
) -> None:
    def bad_date(api: str, route: str, response: ApiResponse) -> ApiResponse:
        if route != "ga4:runReport" or response.status != 200:
            return response
        body = _body(response)
        names = [h["name"] for h in body.get("dimensionHeaders", [])]
        if body.get("rows") and "date" in names:
            body["rows"][0]["dimensionValues"][names.index("date")]["value"] = "20261345"
        return ApiResponse(response.status, json.dumps(body).encode(), response.headers)

    planted(bad_date)
    analyst_before = file_digest(stepwise_env.analyst)
    raw_before = _ga4_raw(stepwise_env.working)
    result = run_range(defs, instance, "2026-11-13", "2026-11-13")
    assert not result.success
    failures = _failures(result)
    assert set(failures) >= GA4_STEPS, failures
    for step in GA4_STEPS:
        report = step.removeprefix("raw__ga4_")
        assert failures[step] == (
            f"GA4 ingestion stopped: Ga4ResponseError: GA4 property 123456789, report '{report}': field 'date' "
            "is '20261345' in row 1 of the response, not a day written YYYYMMDD; nothing of this report was written"
        ), failures[step]
    assert _ga4_raw(stepwise_env.working) == raw_before
    assert all(nulls == 0 for ((_, nulls, _),) in raw_before.values())
    assert file_digest(stepwise_env.analyst) == analyst_before


def test_a_hubspot_timestamp_that_is_no_instant_stops_the_run_naming_the_record(
    stepwise_env: Any, defs: Any, instance: Any, baseline: Any, planted: Any, run_range: Any, file_digest: Any
) -> None:
    seen: list[str] = []

    def bad_updated_at(api: str, route: str, response: ApiResponse) -> ApiResponse:
        if route not in ("hubspot:search", "hubspot:list") or response.status != 200:
            return response
        body = _body(response)
        if body.get("results"):
            body["results"][0]["updatedAt"] = "not-a-date"
            seen.append(str(body["results"][0]["id"]))
        return ApiResponse(response.status, json.dumps(body).encode(), response.headers)

    planted(bad_updated_at)
    analyst_before = file_digest(stepwise_env.analyst)
    objects = ("contacts", "companies", "deals")
    con = duckdb.connect(str(stepwise_env.working), read_only=True)
    before = {
        o: con.execute(f"SELECT count(*), max(_loaded_at) FROM raw.hubspot_{o}").fetchall() for o in objects
    }
    con.close()
    result = run_range(defs, instance, "2026-11-13", "2026-11-13")
    assert not result.success
    failures = _failures(result)
    failed = [o for o in objects if f"raw__hubspot_{o}" in failures]
    assert failed, failures  # every object type whose pages carried a record was planted
    con = duckdb.connect(str(stepwise_env.working), read_only=True)
    for object_type in failed:
        message = failures[f"raw__hubspot_{object_type}"]
        prefix = f"HubSpot ingestion stopped: HubSpotResponseError: HubSpot {object_type} record '"
        assert message.startswith(prefix), message
        assert message.split("record '", 1)[1].split("'", 1)[0] in seen
        assert message.endswith(
            "field 'updatedAt' is 'not-a-date', not an ISO 8601 timestamp; nothing of this object type was written"
        )
        after = con.execute(f"SELECT count(*), max(_loaded_at) FROM raw.hubspot_{object_type}").fetchall()
        assert after == before[object_type], object_type
    con.close()
    assert file_digest(stepwise_env.analyst) == analyst_before
