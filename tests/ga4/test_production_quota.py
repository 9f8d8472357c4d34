"""GA4 production behaviours (issue #12): the potentially-thresholded-requests quota, sub-quotas the
API leaves out, 429 kinds told apart by their fields, and the SERVICE_DISABLED 403."""

from __future__ import annotations

import pytest
from google.analytics.data_v1beta.types import PropertyQuota, QuotaStatus

from connectors.ga4 import Ga4FetchError, Ga4QuotaDeferred, Ga4Settings, default_report_specs
from connectors.ga4.client import PropertyBudget
from connectors.sandbox.ga4_api import Ga4QuotaLimits
from connectors.sandbox.server import FaultPlan

from .conftest import MAIN, collect, make_client, sorted_rows

SPECS = {s.name: s for s in default_report_specs()}
WEB = SPECS["web_sessions"]  # totalUsers, newUsers: potentially thresholded on a property with signals
KEY_EVENTS = SPECS["key_events"]  # no user metric


def test_thresholded_quota_reported_and_its_429(sandbox_server, settled_window, main_property):
    main_property.thresholding = True
    main_property.quota = Ga4QuotaLimits(potentially_thresholded_requests_per_hour=2)
    # Two requests spend the allowance; a third (from a client that has not seen the quota) is refused.
    for _ in range(2):
        collect(make_client(sandbox_server, page_size=250_000).fetch_report(MAIN, WEB, *settled_window))
    client = make_client(sandbox_server)
    client.validate([WEB])
    with pytest.raises(Ga4QuotaDeferred) as deferred:
        list(client.fetch_report(MAIN, WEB, *settled_window))
    assert "potentially thresholded requests (120 an hour)" in str(deferred.value)
    assert client.request_log[-1]["http_429"] == 1 and client.request_log[-1]["retries"] == 0
    counters = sandbox_server.counters()
    assert counters["ga4.status.429"] == 1
    # Requests without user metrics do not need that allowance.
    assert collect(make_client(sandbox_server).fetch_report(MAIN, KEY_EVENTS, *settled_window)).num_rows > 0


def test_thresholded_quota_is_budgeted_before_the_api_refuses(sandbox_server, settled_window, main_property):
    main_property.thresholding = True
    main_property.quota = Ga4QuotaLimits(potentially_thresholded_requests_per_hour=4)
    client = make_client(sandbox_server, page_size=5, quota_reserve_fraction=0.25)  # many pages
    with pytest.raises(Ga4QuotaDeferred, match="potentially thresholded"):
        list(client.fetch_report(MAIN, WEB, *settled_window))
    assert sandbox_server.counters().get("ga4.status.429", 0) == 0  # stopped short, as for tokens
    budget = client.budget(MAIN)
    assert budget.quota["thresholded"].limit == 4 and budget.quota["thresholded"].remaining == 1


def test_a_missing_sub_quota_is_unknown_not_zero():
    budget = PropertyBudget(MAIN, Ga4Settings(property_ids=[MAIN]))
    # proto3 JSON: a sub-quota the API did not send is absent (here only the daily one is reported).
    cost = budget.observe(PropertyQuota(tokens_per_day=QuotaStatus(consumed=5, remaining=24_995)))
    assert cost == 1 and set(budget.quota) == {"day"}
    assert budget.check("web_sessions", potentially_thresholded=True) is None
    # Reported and spent: now it stops.
    budget.observe(
        PropertyQuota(
            tokens_per_day=QuotaStatus(consumed=6, remaining=24_994),
            potentially_thresholded_requests_per_hour=QuotaStatus(consumed=120, remaining=0),
        )
    )
    assert budget.check("web_sessions", potentially_thresholded=True) == "thresholded"
    assert budget.check("key_events", potentially_thresholded=False) is None


def test_project_rate_429_is_told_apart_by_its_reason_and_retried(sandbox_server, settled_window):
    clean = sorted_rows(collect(make_client(sandbox_server).fetch_report(MAIN, WEB, *settled_window)))
    client = make_client(sandbox_server)
    client.validate([WEB])
    # Its text says "Quota exceeded ... per minute": the ErrorInfo reason decides, not the words.
    sandbox_server.set_faults(FaultPlan(api="ga4", sequence=["429_project_rate", "ok"]))
    assert sorted_rows(collect(client.fetch_report(MAIN, WEB, *settled_window))) == clean
    entry = client.request_log[-1]
    assert entry["http_429"] == 1 and entry["retries"] == 1 and entry["error"] is None


def test_service_disabled_403_says_to_enable_the_api(sandbox_server, settled_window):
    sandbox_server.set_faults(FaultPlan(api="ga4", always="403_service_disabled"))
    client = make_client(sandbox_server)
    with pytest.raises(Ga4FetchError) as err:
        list(client.fetch_report(MAIN, WEB, *settled_window))
    text = str(err.value)
    assert "the Google Analytics Data API is not enabled in the Cloud project" in text
    assert "projects/123456789012" in text and "analyticsdata.googleapis.com" in text
