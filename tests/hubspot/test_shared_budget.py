"""One rate budget per portal across processes: the SQLite store, and real processes on the sandbox."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connectors.hubspot import PortalRateLimiter
from connectors.hubspot.ratelimit import GENERAL, SEARCH, shared_limiter
from connectors.rate_budget import RateBudgetError, SharedRateBudget

from .conftest import serve

ROOT = Path(__file__).resolve().parents[2]

_BOOKER = textwrap.dedent(
    """
    import sys, time
    from connectors.rate_budget import SharedRateBudget
    path, start_at, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    budget = SharedRateBudget(path)
    time.sleep(max(start_at - time.time(), 0))
    # "audit" never fills and keeps every booking for an hour: the parent reads the send times there.
    windows = [("general", 10, 0.5), ("audit", 10**6, 3600.0)]
    for _ in range(n):
        while (wait := budget.try_take("portal-a", windows)) > 0:
            time.sleep(wait)
    """
)


def test_processes_booking_in_one_store_never_overfill_a_window(tmp_path):
    path = tmp_path / "budget.sqlite"
    SharedRateBudget(path).close()
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen([sys.executable, "-c", _BOOKER, str(path), str(start_at), "15"], cwd=ROOT)
        for _ in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    with sqlite3.connect(path) as con:
        times = [r[0] for r in con.execute("SELECT at FROM sent WHERE bucket = 'audit' ORDER BY at")]
    assert len(times) == 60
    # Any 11 consecutive bookings of all four processes span at least the window: never 11 in 0.5 s.
    assert min(times[i + 10] - times[i] for i in range(len(times) - 10)) >= 0.5
    # ...and the store did not hold them back beyond that: 60 bookings need 5 windows after the first 10.
    assert times[-1] - times[0] < 5 * 0.5 + 2.0


def test_limiters_sharing_a_store_split_the_window_and_a_block(tmp_path):
    # Two limiters on one file stand for two processes (each has its own connection and windows).
    a = PortalRateLimiter(
        general_max=5, general_interval=1.0, margin=0.0, budget=SharedRateBudget(tmp_path / "b")
    )
    b = PortalRateLimiter(
        general_max=5, general_interval=1.0, margin=0.0, budget=SharedRateBudget(tmp_path / "b")
    )
    a.account = b.account = "portal"
    t0 = time.time()
    for limiter in (a, b, a, b, a):
        assert limiter.acquire(GENERAL) == 0.0  # five free slots, whoever takes them
    assert b.acquire(GENERAL) > 0.5  # the sixth waits for the window, though b alone sent two
    assert time.time() - t0 >= 1.0
    # A 429 seen by one blocks the other.
    a.block(SEARCH, 0.6)
    t1 = time.time()
    b.acquire(SEARCH)
    assert time.time() - t1 >= 0.55


def test_headers_book_only_what_no_process_booked(tmp_path):
    budget = SharedRateBudget(tmp_path / "b")
    a = PortalRateLimiter(general_max=100, general_interval=10.0, margin=0.0, budget=budget, account="p")
    for _ in range(3):
        a.acquire(GENERAL)
    headers = {"X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    # The portal saw 3 requests: all ours, nothing foreign.
    a.observe(GENERAL, {**headers, "X-HubSpot-RateLimit-Remaining": "97"}, time.monotonic())
    assert budget.count_since("p", GENERAL, time.time() - 60) == 3
    # The portal saw 10: another app on the token sent 7, booked as sent now.
    a.observe(GENERAL, {**headers, "X-HubSpot-RateLimit-Remaining": "90"}, time.monotonic())
    assert budget.count_since("p", GENERAL, time.time() - 60) == 10


def test_an_unusable_store_path_fails_before_any_request(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(RateBudgetError, match="rate budget store"):
        shared_limiter("http://127.0.0.1:9", "tok", budget_path=str(tmp_path / "file" / "budget.sqlite"))


def test_leases_bound_concurrent_requests_across_handles(tmp_path):
    one, two = SharedRateBudget(tmp_path / "b"), SharedRateBudget(tmp_path / "b")
    held = [one.lease("ga4:1", 3), two.lease("ga4:1", 3), one.lease("ga4:1", 3)]
    assert all(held) and two.lease("ga4:1", 3) is None
    one.release("ga4:1", held[0])
    assert two.lease("ga4:1", 3) is not None
    # The lease of a process killed before it released expires after its ttl.
    assert one.lease("ga4:2", 1, ttl=0.2) is not None and two.lease("ga4:2", 1) is None
    time.sleep(0.3)
    assert two.lease("ga4:2", 1) is not None


_EXTRACTOR = textwrap.dedent(
    """
    import json, sys, time
    from connectors.hubspot import HubSpotClient, HubSpotSettings
    base_url, budget = sys.argv[1], sys.argv[2] or None
    settings = HubSpotSettings(
        access_token=sys.argv[3], host=base_url, portal_id="sandbox", general_max_requests=8,
        general_interval_seconds=1.0, search_requests_per_second=10, limiter_margin_seconds=0.3,
        rate_budget_path=budget, prefetch_pages=0,
    )
    client = HubSpotClient(settings)
    print("ready", flush=True)
    sys.stdin.readline()  # "go": both processes start at once, whatever their import times were
    pages = 0
    for batch in client.extract("contacts"):
        pages += 1
        if pages >= 30:
            break
    print(json.dumps({"pages": pages}))
    """
)


def _extract_in_processes(server, token: str, budget: str) -> tuple[int, int]:
    before = server.counters()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _EXTRACTOR, server.base_url, budget, token],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert all(json.loads(o.strip().splitlines()[-1])["pages"] == 30 for o in outs)
    after = server.counters()
    return (
        after.get("hubspot.requests", 0) - before.get("hubspot.requests", 0),
        after.get("hubspot.status.429", 0) - before.get("hubspot.status.429", 0),
    )


def test_two_processes_on_one_portal_meet_429s_alone_and_none_with_the_shared_budget(
    shared_hs_store, tmp_path
):
    with serve(shared_hs_store, general_max=8, interval_ms=1_000, search_per_second=10) as server:
        requests, shared_429 = _extract_in_processes(server, "token-shared", str(tmp_path / "budget.sqlite"))
        assert requests >= 60
        alone_requests, alone_429 = _extract_in_processes(server, "token-alone", "")
    # Each process alone believes the whole window is its own: the pair sends twice the allowance.
    assert alone_429 >= 3, (alone_requests, alone_429)
    # One budget in the store: at most a stray 429 from a request delayed past the margin.
    assert shared_429 <= 1, (requests, shared_429)
