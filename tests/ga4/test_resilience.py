"""Retries, permanent errors and the quota budget, against faults the sandbox injects."""

from __future__ import annotations

import threading

import pytest

from connectors.ga4 import (
    DateWindow,
    Ga4FetchError,
    Ga4QuotaDeferred,
    Ga4QuotaExhausted,
    default_report_specs,
)
from connectors.sandbox.ga4_api import Ga4QuotaLimits
from connectors.sandbox.server import FaultPlan

from .conftest import EXTRA, MAIN, collect, make_client, sorted_rows

SPECS = {s.name: s for s in default_report_specs()}
WEB = SPECS["web_sessions"]


@pytest.fixture
def clean_rows(sandbox_server, settled_window):
    return sorted_rows(collect(make_client(sandbox_server).fetch_report(MAIN, WEB, *settled_window)))


@pytest.mark.parametrize("fault", ["429", "429_no_retry_after", "500", "502", "503", "drop", "malformed"])
def test_each_transient_fault_is_retried(sandbox_server, settled_window, clean_rows, fault):
    client = make_client(sandbox_server, page_size=1000)
    client.validate([WEB])
    sandbox_server.set_faults(FaultPlan(api="ga4", sequence=[fault, "ok", fault]))
    rows = sorted_rows(collect(client.fetch_report(MAIN, WEB, *settled_window)))
    assert rows == clean_rows
    entry = client.request_log[-1]
    assert entry["retries"] == 2
    assert entry["http_429"] == (2 if fault.startswith("429") else 0)
    assert sandbox_server.counters()[f"ga4.injected.{fault}"] == 2


def test_timeouts_are_retried(sandbox_server, settled_window, clean_rows):
    client = make_client(sandbox_server, timeout_s=0.5)
    client.validate([WEB])
    sandbox_server.set_faults(FaultPlan(api="ga4", sequence=["slow"], slow_seconds=1.5))
    assert sorted_rows(collect(client.fetch_report(MAIN, WEB, *settled_window))) == clean_rows
    assert client.request_log[-1]["retries"] == 1


def test_retry_after_is_honoured(sandbox_server, settled_window):
    client = make_client(sandbox_server)
    client.validate([WEB])
    sandbox_server.set_faults(FaultPlan(api="ga4", sequence=["429"], retry_after_seconds=1))
    collect(client.fetch_report(MAIN, WEB, *settled_window))
    entry = client.request_log[-1]
    assert entry["http_429"] == 1 and entry["retries"] == 1
    assert entry["wait_seconds"] >= 1.0  # the backoff alone is at most 0.05 s here


def test_retries_give_up_with_a_clear_message(sandbox_server, settled_window):
    client = make_client(sandbox_server, max_retries=2)
    client.validate([WEB])
    sandbox_server.set_faults(FaultPlan(api="ga4", sequence=["503"] * 5))
    with pytest.raises(Ga4FetchError) as info:
        list(client.fetch_report(MAIN, WEB, *settled_window))
    message = str(info.value)
    assert message.startswith("GA4 property 123456789, report 'web_sessions': gave up after 2 retries")
    assert "503" in message


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("401", "GA4 property 123456789, report 'web_sessions': 401 authentication failed"),
        ("403", "GA4 property 123456789, report 'web_sessions': 403 permission denied"),
    ],
)
def test_permanent_errors_name_the_property_and_cause(sandbox_server, settled_window, fault, expected):
    client = make_client(sandbox_server)
    client.validate([WEB])
    sandbox_server.set_faults(FaultPlan(api="ga4", always=fault))
    with pytest.raises(Ga4FetchError) as info:
        list(client.fetch_report(MAIN, WEB, *settled_window))
    _assert_plain(info.value, expected)
    assert client.request_log[-1]["retries"] == 0
    assert sandbox_server.counters()["route.ga4:runReport"] == 1


def test_bad_request_is_permanent(sandbox_server):
    import datetime as dt

    client = make_client(sandbox_server)
    with pytest.raises(Ga4FetchError) as info:
        list(client.fetch_report(MAIN, WEB, dt.date(2010, 1, 1), dt.date(2010, 1, 2)))
    _assert_plain(info.value, "GA4 property 123456789, report 'web_sessions': 400 invalid request")
    assert "2015-08-14" in str(info.value)


def test_unknown_property_and_missing_endpoint(sandbox_server):
    client = make_client(sandbox_server, property_ids=("111",))
    with pytest.raises(Ga4FetchError) as info:
        client.validate([WEB])
    _assert_plain(info.value, "GA4 property 111, report 'metadata': 403 permission denied")
    lost = make_client(sandbox_server, api_endpoint=sandbox_server.base_url + "/no-such-api")
    with pytest.raises(Ga4FetchError) as info:
        lost.validate([WEB])
    _assert_plain(info.value, "GA4 property 123456789, report 'metadata': 404 not found")


def _assert_plain(exc: Exception, expected_start: str) -> None:
    message = str(exc)
    assert message.startswith(expected_start), message
    assert "Traceback" not in message and "google.api_core" not in message
    assert exc.__cause__ is None and exc.__suppress_context__  # no chain of SDK internals


# -- quota -------------------------------------------------------------------------------------


def test_hourly_budget_stops_short_and_defers(sandbox_server, settled_window, main_property):
    main_property.quota = Ga4QuotaLimits(tokens_per_hour=10, tokens_per_project_per_hour=10)
    client = make_client(sandbox_server, page_size=200, quota_reserve_fraction=0.1)  # 21 pages, 1 token each
    with pytest.raises(Ga4QuotaDeferred) as info:
        list(client.fetch_report(MAIN, WEB, *settled_window))
    assert "GA4 property 123456789: hourly token budget reached" in str(info.value)
    assert "deferred" in str(info.value)
    counters = sandbox_server.counters()
    assert counters.get("ga4.status.429", 0) == 0  # stopped before the API had to refuse
    assert 10 - counters["ga4.tokens"] >= 1  # the 10 % reserve is left


def test_hourly_exhaustion_waits_for_the_refresh(sandbox_server, settled_window, main_property, clean_rows):
    main_property.quota = Ga4QuotaLimits(tokens_per_hour=8, tokens_per_project_per_hour=8, hour_seconds=1.0)
    client = make_client(
        sandbox_server, page_size=200, quota_reserve_fraction=0.1, max_quota_wait_s=20, quota_poll_s=0.5
    )
    assert sorted_rows(collect(client.fetch_report(MAIN, WEB, *settled_window))) == clean_rows
    assert client.request_log[-1]["wait_seconds"] >= 0.5


def test_hourly_429_from_the_api_defers(sandbox_server, settled_window, main_property):
    # Another tool spent the hour: the first answer is already a refusal.
    main_property.quota = Ga4QuotaLimits(tokens_per_hour=1)
    collect(make_client(sandbox_server).fetch_report(MAIN, WEB, *settled_window))
    client = make_client(sandbox_server)
    client.validate([WEB])
    with pytest.raises(Ga4QuotaDeferred, match="hourly token budget reached"):
        list(client.fetch_report(MAIN, WEB, *settled_window))
    assert client.request_log[-1]["http_429"] == 1


def test_daily_exhaustion_fails_that_property_and_the_others_go_on(
    sandbox_server, settled_window, main_property
):
    main_property.quota = Ga4QuotaLimits(tokens_per_day=1)
    collect(make_client(sandbox_server).fetch_report(MAIN, WEB, *settled_window))  # spends the day
    client = make_client(sandbox_server, property_ids=(MAIN, EXTRA))
    got = {}
    for property_id, _spec, _window, batch in client.fetch_reports([WEB], [DateWindow(*settled_window)]):
        got[property_id] = got.get(property_id, 0) + batch.num_rows
    assert set(got) == {EXTRA} and got[EXTRA] > 0
    assert MAIN in client.failures
    assert client.failures[MAIN].startswith("GA4 property 123456789: daily token quota exhausted")
    failed = [e for e in client.request_log if e["source_id"] == MAIN and e["request"] == "web_sessions"]
    assert failed[-1]["error"] and failed[-1]["http_429"] == 1


def test_daily_budget_stops_short(sandbox_server, settled_window, main_property):
    main_property.quota = Ga4QuotaLimits(tokens_per_day=15)
    client = make_client(sandbox_server, page_size=200, quota_reserve_fraction=0.1)
    with pytest.raises(Ga4QuotaExhausted, match="daily token budget reached"):
        list(client.fetch_report(MAIN, WEB, *settled_window))
    assert sandbox_server.counters().get("ga4.status.429", 0) == 0


def test_concurrency_stays_under_the_property_limit(sandbox_server, settled_window, main_property):
    main_property.quota = Ga4QuotaLimits(concurrent_requests=2)
    client = make_client(sandbox_server, page_size=300, max_concurrent_requests=3)
    collect(client.fetch_report(MAIN, WEB, *settled_window))  # learns the limit from propertyQuota
    sandbox_server.reset_counters()
    errors = []

    def fetch(spec):
        try:
            collect(client.fetch_report(MAIN, spec, *settled_window))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=fetch, args=(SPECS[n],)) for n in ("web_sessions", "events", "landing_pages")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counters = sandbox_server.counters()
    assert counters["ga4.max_in_flight"] == 1
    assert counters.get("ga4.status.429", 0) == 0


def test_server_errors_count_against_the_hourly_allowance(sandbox_server, settled_window, main_property):
    main_property.quota = Ga4QuotaLimits(server_errors_per_project_per_hour=4)
    client = make_client(sandbox_server, page_size=500)
    client.validate([WEB])
    sandbox_server.set_faults(FaultPlan(api="ga4", sequence=["ok", "503", "500", "502", "503"]))
    with pytest.raises(Ga4QuotaDeferred, match="server-error allowance reached"):
        list(client.fetch_report(MAIN, WEB, *settled_window))
    counters = sandbox_server.counters()
    assert counters.get("ga4.status.429", 0) == 0
    assert counters["ga4.injected"] == 3  # stopped at limit - 1 errors


def test_a_run_with_transient_faults_gives_the_same_rows(
    sandbox_server, demo_store, settled_window, main_property
):
    specs = [SPECS[n] for n in ("web_sessions", "events", "lead_forms", "campaigns")]
    window = DateWindow(*settled_window)

    def run(plan):
        client = make_client(sandbox_server, property_ids=(MAIN, EXTRA), page_size=2000, max_retries=8)
        sandbox_server.set_faults(plan)
        out = {}
        for property_id, spec, _w, batch in client.fetch_reports(specs, [window]):
            out.setdefault((property_id, spec.name), []).append(batch)
        sandbox_server.set_faults(None)
        assert client.failures == {}
        return {k: sorted_rows(collect(v)) for k, v in out.items()}, client

    for prop in sandbox_server.config.ga4.properties.values():
        prop.quota = Ga4QuotaLimits(server_errors_per_project_per_hour=1000)
    clean, _ = run(None)
    faulty, client = run(FaultPlan(api="ga4", seed=11, p_429=0.15, p_5xx=0.15, p_drop=0.1, p_malformed=0.05))
    assert faulty == clean
    injected = sandbox_server.counters()["ga4.injected"]
    assert injected >= 5
    assert sum(e["retries"] for e in client.request_log) == injected
