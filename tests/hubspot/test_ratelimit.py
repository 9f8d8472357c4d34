"""The shared limiter on a simulated clock, and why the SDK's own retries are switched off."""

from __future__ import annotations

import hubspot
import pytest
import urllib3

from connectors.hubspot import HubSpotFetchError, PortalRateLimiter, shared_limiter
from connectors.hubspot.ratelimit import GENERAL, SEARCH, backoff_seconds
from connectors.sandbox.server import FaultPlan


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _limiter(clock: FakeClock, **kw) -> PortalRateLimiter:
    return PortalRateLimiter(clock=clock, sleep=clock.sleep, **kw)


def test_no_rolling_window_ever_holds_more_than_the_limit():
    clock = FakeClock()
    limiter = _limiter(clock, general_max=10, general_interval=1.0, margin=0.0)
    sent = []
    for _ in range(55):
        limiter.acquire(GENERAL)
        sent.append(clock.now)
    for i in range(len(sent) - 10):
        assert sent[i + 10] - sent[i] >= 1.0  # the 11th request after any one waits out the window
    # ...and it does not wait longer than that: 55 requests take 4 windows after the first burst.
    assert sent[-1] - sent[0] == pytest.approx(5.0, abs=0.02)


def test_search_takes_a_search_slot_and_a_general_slot():
    clock = FakeClock()
    limiter = _limiter(clock, general_max=100, general_interval=10.0, search_per_second=4, margin=0.0)
    starts = []
    for _ in range(9):
        limiter.acquire(SEARCH)
        starts.append(clock.now)
    assert starts[4] - starts[0] >= 1.0 and starts[8] - starts[4] >= 1.0
    assert len(limiter._windows[GENERAL].sent) == 9


def test_headers_replace_the_window_and_book_foreign_requests():
    clock = FakeClock()
    limiter = _limiter(clock, general_max=100, general_interval=10.0, margin=0.0)
    sent_at = clock.now
    limiter.acquire(GENERAL)
    limiter.observe(
        GENERAL,
        {
            "X-HubSpot-RateLimit-Max": "190",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Remaining": "150",  # we sent 1: someone else sent 39
            "X-HubSpot-RateLimit-Daily-Remaining": "12345",
        },
        sent_at,
    )
    assert limiter.window(GENERAL) == (190, 10.0)
    assert len(limiter._windows[GENERAL].sent) == 40
    assert limiter.daily_remaining == 12345
    # A search answer that describes the ten-secondly window adjusts the general window, not search.
    limiter.observe(
        SEARCH, {"X-HubSpot-RateLimit-Max": "110", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    )
    assert limiter.window(SEARCH)[1] == 1.0 and limiter.window(GENERAL) == (110, 10.0)


def test_block_after_a_429_holds_every_sender():
    clock = FakeClock()
    limiter = _limiter(clock, general_max=100, general_interval=10.0, margin=0.0)
    limiter.block(GENERAL, 2.5)
    waited = limiter.acquire(GENERAL)
    assert waited == pytest.approx(2.5, abs=0.01)


def test_registry_shares_per_host_and_token_and_never_keys_on_the_token_in_clear():
    a = shared_limiter("http://h:1", "secret-token")
    assert shared_limiter("http://h:1/", "secret-token") is a
    assert shared_limiter("http://h:1", "other-token") is not a
    from connectors.hubspot import ratelimit

    assert all("secret-token" not in key[1] for key in ratelimit._REGISTRY)


def test_backoff_is_jittered_and_capped():
    draws = {round(backoff_seconds(3, 0.5, 30.0), 6) for _ in range(20)}
    assert len(draws) > 1 and all(0.5 <= d <= 4.0 for d in draws)
    assert all(backoff_seconds(20, 0.5, 30.0) <= 30.0 for _ in range(20))


def test_default_sdk_retries_behind_the_callers_back_ours_does_not(hs, shared_hs_store):
    """What DESIGN.md warns about, shown: left alone, urllib3 inside the SDK retries 429s that carry
    Retry-After and dropped connections three times unseen, and ends dropped connections in
    MaxRetryError. The connector switches that layer off and retries (and counts) every attempt itself."""
    from hubspot.crm.companies.exceptions import ApiException

    with hs.serve(shared_hs_store) as server:
        plain = hubspot.HubSpot(access_token="plain-sdk", host=server.base_url).crm.companies.basic_api
        server.set_faults(FaultPlan(api="hubspot", always="429", retry_after_seconds=0))
        with pytest.raises(ApiException):
            plain.get_page(limit=10)
        assert server.counters()["hubspot.requests"] == 4  # one call, four requests
        server.reset_counters()
        server.set_faults(FaultPlan(api="hubspot", always="drop"))
        with pytest.raises(urllib3.exceptions.MaxRetryError):
            plain.get_page(limit=10)
        assert server.counters()["hubspot.requests"] == 4

        server.reset_counters()
        client = hs.make_client(server, max_retries=2)
        with pytest.raises(HubSpotFetchError, match="connection failed"):
            hs.collect(client.extract("companies"))
        assert server.counters()["hubspot.requests"] == client.request_log[-1]["requests"] == 3
        server.reset_counters()
        server.set_faults(FaultPlan(api="hubspot", always="429", retry_after_seconds=0))
        client = hs.make_client(server, max_rate_limit_retries=2)
        with pytest.raises(HubSpotFetchError, match="kept answering 429"):
            hs.collect(client.extract("companies"))
        assert server.counters()["hubspot.requests"] == client.request_log[-1]["requests"] == 3
