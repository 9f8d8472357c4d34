"""GA4's concurrent-request quota shared across processes: leases in the rate budget store."""

from __future__ import annotations

import threading

from connectors.ga4 import default_report_specs
from connectors.rate_budget import SharedRateBudget

from .conftest import MAIN, collect, make_client


def test_a_property_whose_slots_another_process_holds_waits_for_them(
    sandbox_server, settled_window, tmp_path
):
    path = tmp_path / "budget.sqlite"
    other = SharedRateBudget(path)  # stands for another process: its own connection to the file
    client = make_client(sandbox_server, rate_budget_path=str(path))
    spec = default_report_specs()[0]
    client.validate([spec])  # metadata first
    served_before = sandbox_server.counters().get("ga4.requests", 0)
    # A standard property allows 10 concurrent requests; the connector keeps one free for other tools.
    held = [other.lease(f"ga4:{MAIN}", 9) for _ in range(9)]
    assert all(held)
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(table=collect(client.fetch_report(MAIN, spec, *settled_window)))
    )
    worker.start()
    worker.join(timeout=1.5)
    # Blocked on the other process's leases: nothing reached the API.
    assert worker.is_alive()
    assert sandbox_server.counters().get("ga4.requests", 0) == served_before
    other.release(f"ga4:{MAIN}", held[0])
    worker.join(timeout=60)
    assert not worker.is_alive() and result["table"].num_rows > 0
    assert sandbox_server.counters().get("ga4.requests", 0) > served_before
