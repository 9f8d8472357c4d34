"""Faults, auth errors and the shared rate limiter, against the sandbox."""

from __future__ import annotations

import threading

import pytest

from connectors.hubspot import (
    HubSpotAuthError,
    HubSpotClient,
    HubSpotFetchError,
    HubSpotQuotaError,
    HubSpotSettings,
)
from connectors.sandbox.server import FaultPlan


def test_every_transient_fault_class_is_retried_and_logged(hs, shared_hs_store):
    store = shared_hs_store
    with hs.serve(store) as server:
        client = hs.make_client(server)
        client.stage_date_properties()  # the properties call goes first, unfaulted
        server.reset_counters()
        kinds = ["429", "429_no_retry_after", "500", "502", "503", "drop", "malformed", "slow"]
        server.set_faults(FaultPlan(api="hubspot", sequence=[k for kind in kinds for k in (kind, "ok")]))
        rows = hs.collect(client.extract("contacts"))
        counters = server.counters()
    assert {r["id"] for r in rows if r["merged_into"] is None} == hs.live_ids(store)
    entry = client.request_log[-1]
    assert entry["http_429"] == 2
    assert entry["retries"] == 7  # two 429s, three 5xx, one drop, one malformed body; slow is only slow
    for kind in kinds:
        assert counters[f"hubspot.injected.{kind}"] == 1
    # Every attempt the client counted reached the server: urllib3 retried nothing behind its back.
    assert entry["requests"] == counters["hubspot.requests"]
    assert entry["error"] is None


def test_persistent_5xx_and_drops_are_reported_not_leaked(hs, shared_hs_store):
    with hs.serve(shared_hs_store) as server:
        client = hs.make_client(server, max_retries=2)
        server.set_faults(FaultPlan(api="hubspot", always="503"))
        with pytest.raises(HubSpotFetchError, match=r"failed 3 times; last: HTTP 503"):
            hs.collect(client.extract("companies"))
        assert client.request_log[-1]["error"].startswith("HubSpotFetchError")
        server.set_faults(FaultPlan(api="hubspot", always="drop"))
        with pytest.raises(HubSpotFetchError, match=r"connection failed"):
            hs.collect(client.extract("companies"))


def test_endless_429s_give_up_with_a_clear_error(hs, shared_hs_store):
    with hs.serve(shared_hs_store) as server:
        client = hs.make_client(server, max_rate_limit_retries=3)
        server.set_faults(FaultPlan(api="hubspot", always="429_no_retry_after"))
        with pytest.raises(HubSpotFetchError, match=r"kept answering 429"):
            hs.collect(client.extract("companies"))
        assert client.request_log[-1]["http_429"] == 4


def test_daily_cap_stops_the_run(hs, shared_hs_store):
    with hs.serve(shared_hs_store) as server:
        server.config.hubspot.daily_limit = 5
        client = hs.make_client(server)
        with pytest.raises(HubSpotQuotaError, match="daily request limit"):
            hs.collect(client.extract("contacts"))
        assert server.counters()["hubspot.bucket.daily.served"] == 5
        assert server.counters().get("hubspot.bucket.daily.429", 0) <= 1


def test_expired_token_is_an_auth_error(hs, shared_hs_store):
    with hs.serve(shared_hs_store) as server:
        server.config.hubspot.expired_tokens.add("expired-token")
        client = hs.make_client(server, token="expired-token")
        with pytest.raises(HubSpotAuthError, match=r"expired") as err:
            hs.collect(client.extract("companies"))
        assert err.value.status == 401
        assert server.counters()["hubspot.status.401"] == 1  # no retry of a 401


def test_missing_scope_is_an_auth_error_naming_the_scope(hs, shared_hs_store):
    with hs.serve(shared_hs_store) as server:
        server.config.hubspot.token_scopes["contacts-only"] = {
            "crm.objects.contacts.read",
            "crm.schemas.contacts.read",
        }
        client = hs.make_client(server, token="contacts-only")
        assert hs.collect(client.extract("contacts"))  # what the token may read, it reads
        with pytest.raises(HubSpotAuthError, match=r"lacks a scope.*crm\.objects\.deals\.read") as err:
            hs.collect(client.extract("deals"))
        assert err.value.status == 403 and err.value.scopes == ("crm.objects.deals.read",)


def test_older_403_shape_names_the_scopes(hs, shared_hs_store):
    with hs.serve(shared_hs_store) as server:
        server.config.hubspot.scope_error_shape = "legacy"  # errors[].context.requiredScopes, old names
        server.config.hubspot.token_scopes["deals-only"] = {
            "crm.objects.deals.read",
            "crm.schemas.contacts.read",
        }
        client = hs.make_client(server, token="deals-only")
        with pytest.raises(HubSpotAuthError) as err:
            hs.collect(client.extract("contacts"))
    text = str(err.value)
    assert err.value.status == 403 and err.value.scopes == ("contacts",)
    assert "Required scope: contacts (HubSpot's older scope name" in text
    assert "crm.objects.contacts.read" in text


def test_injected_401_and_403_are_auth_errors(hs, shared_hs_store):
    with hs.serve(shared_hs_store) as server:
        client = hs.make_client(server)
        server.set_faults(FaultPlan(api="hubspot", always="401"))
        with pytest.raises(HubSpotAuthError, match="expired"):
            hs.collect(client.extract("companies"))
        server.set_faults(FaultPlan(api="hubspot", always="403"))
        with pytest.raises(HubSpotAuthError, match="crm.objects.contacts.read"):
            hs.collect(client.extract("companies"))


def test_missing_token_fails_before_any_call():
    with pytest.raises(HubSpotAuthError, match="token is missing"):
        HubSpotClient(HubSpotSettings(access_token="", host="http://127.0.0.1:9"))


def test_two_extractions_at_once_share_one_limiter_and_stay_within_the_limit(hs, shared_hs_store):
    store = shared_hs_store
    max_requests, interval_ms = 40, 2_000
    with hs.serve(store, general_max=max_requests, interval_ms=interval_ms) as server:
        # A generous margin: on a loaded test machine send-to-arrival delays vary by tenths of a second.
        first = hs.make_client(server, token="one-portal-token", limiter_margin_seconds=0.4)
        second = hs.make_client(server, token="one-portal-token", limiter_margin_seconds=0.4)
        assert first.limiter is second.limiter
        results: dict[str, list] = {}
        errors: list[BaseException] = []

        def run(name: str, client: HubSpotClient, object_type: str) -> None:
            try:
                results[name] = hs.collect(client.extract(object_type))
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=("contacts", first, "contacts")),
            threading.Thread(target=run, args=("deals", second, "deals")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        counters = server.counters()
        events = [e for e in server.ctx.counters.events() if e[1] == "hubspot"]
    assert not errors, errors
    assert {r["id"] for r in results["contacts"] if r["merged_into"] is None} == hs.live_ids(store)
    assert {r["id"] for r in results["deals"] if r["merged_into"] is None} == hs.live_ids(store, "deals")
    assert counters.get("hubspot.bucket.general.429", 0) == 0
    assert counters.get("hubspot.status.429", 0) == 0
    # The server's own rolling window (on arrival times) never had to refuse one: together they kept
    # within the limit, while asking for well over one window's worth.
    assert len(events) > 2 * max_requests
    waited = sum(e["wait_seconds"] for c in (first, second) for e in c.request_log)
    assert waited > 0  # the limiter, not the server, held them back


def test_limiter_adopts_the_portal_limits_from_headers(hs, shared_hs_store):
    with hs.serve(shared_hs_store, general_max=30, interval_ms=2_000) as server:
        # Configured far above what the portal allows: the first answer's headers correct it.
        client = hs.make_client(server, general_max_requests=1_000, general_interval_seconds=10.0)
        rows = hs.collect(client.extract("contacts"))
        counters = server.counters()
    assert {r["id"] for r in rows if r["merged_into"] is None} == hs.live_ids(shared_hs_store)
    assert client.limiter.window("general") == (30, 2.0)
    assert counters.get("hubspot.bucket.general.429", 0) <= 1


def test_another_process_on_the_same_token_is_accounted_from_remaining(hs, shared_hs_store):
    from connectors.hubspot import PortalRateLimiter

    with hs.serve(shared_hs_store, general_max=40, interval_ms=2_000) as server:
        # Separate limiters, as two processes would have: each learns of the other from Remaining.
        clients = [hs.make_client(server, token="shared-token", limiter_margin_seconds=0.2) for _ in range(2)]
        clients[1].limiter = PortalRateLimiter(40, 2.0, 100, margin=0.2)
        results: dict[int, list] = {}

        def run(i: int) -> None:
            results[i] = hs.collect(clients[i].extract("contacts"))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        counters = server.counters()
    live = hs.live_ids(shared_hs_store)
    for i in range(2):
        assert {r["id"] for r in results[i] if r["merged_into"] is None} == live
    assert clients[0].limiter.stats.adjustments + clients[1].limiter.stats.adjustments > 0
    served = counters["hubspot.bucket.general.served"]
    # Two processes only learn of each other after the fact, so some 429s remain (observed 2-6 % here,
    # 7.5 % in one trial with the header adjustment switched off); they are retried, and the loads are
    # complete. The guarantee of no 429 at all holds within one process (the test above).
    assert counters.get("hubspot.bucket.general.429", 0) <= 0.15 * served
