"""Several processes on one HubSpot portal, and what an agency's GA4 backfill costs.

HubSpot, measured: ``PROCESSES`` processes extract the contacts of one sandbox portal (one token) at
the same time, each with its own ``HubSpotClient``, as concurrent Dagster runs would, for ``DURATION``
seconds each (each process reads the contacts again and again until then). The sandbox runs in a child
process of its own (``bench.hubspot``'s server) at a limit of ``MAX_RATE`` (HubSpot's Free/Starter 100)
requests per 10 s, or less when a calibration read shows the machine cannot serve that much now: half
the pages per second one unthrottled client reads, so that the limit, not the machine, is what binds.

- ``hubspot_multiprocess_429_share``: 429 answers ÷ requests the sandbox counted, with the shared rate
  budget (``connectors.rate_budget``: one SQLite file every process books its requests in). Target <= 0.01.
- ``hubspot_rate_limit_utilisation_multiprocess``: records per second of all processes together ÷
  (configured requests per second × 100 records a page), counted after the first window (10 s, in which
  an empty rolling window lets a burst through that says nothing about the steady rate) until the
  first process stops. Target >= 0.85.
- ``hubspot_multiprocess_429_share_without_shared_budget`` (context, no target): the same run with each
  process limited on its own, adapting only from the ``X-HubSpot-RateLimit-*`` headers.

GA4, a planning figure for an agency backfilling ``AGENCY_PROPERTIES`` properties × ``AGENCY_DAYS`` days:
the connector's requests and tokens per property are measured on the sandbox (a ``demo`` store stretched
to 365 days, the default report specs; the sandbox charges ``1 + (days - 1) // 30 + rows // 10,000``
tokens a request, a model of GA4's "more days, more rows, more tokens" rule, not Google's formula) and
set against Google's documented quotas of a standard property: 200,000 core tokens per property per
day, 40,000 per property per hour, 14,000 per project per property per hour, 10 concurrent requests per
property. Both ways to backfill are priced: one run over the whole range (the assets' single-run
backfill policy) and one run per daily partition (each re-fetching its 3 lookback days). Quotas are per
property, so properties backfill side by side; the wall time is the one the tightest quota imposes on
one property, and the requests are the agency's total.

Run alone: ``.venv/bin/python -m bench.hubspot_multiprocess``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Requests per 10 s for the portal, shared by every process: HubSpot's Free/Starter 100 at most, less when
# a calibration read shows that the sandbox and the connector cannot serve that much on this machine now
# (a shared 2-core machine under load serves a few pages a second). The figures are ratios to the rate.
MAX_RATE = 100
MIN_RATE = 10
CALIBRATION_PAGES = 30
INTERVAL_MS = 10_000
SEARCH_PER_SECOND = 10
PROCESSES = 4
DURATION = 60.0
START_DELAY = 8.0  # seconds for the workers to import and connect before the common start

AGENCY_PROPERTIES = 200
AGENCY_DAYS = 365
PER_DAY_SAMPLE = 14  # daily-partition runs measured, scaled to AGENCY_DAYS
GA4_QUOTA = {  # Google's documented limits of a standard property (Data API "Limits and quotas")
    "tokens_per_property_per_day": 200_000,
    "tokens_per_property_per_hour": 40_000,
    "tokens_per_project_per_property_per_hour": 14_000,
    "concurrent_requests_per_property": 10,
}
GA4_RESERVE = 0.05  # Ga4Settings.quota_reserve_fraction: the connector leaves this share unused
END_DATE = "2026-11-22"
SEED = 7


# --- HubSpot: several processes ---------------------------------------------------------------------


def _worker(base_url: str, token: str, start_at: float, duration: float, budget: str, rate: int) -> None:
    """Child process: extract contacts again and again from ``start_at`` for ``duration`` seconds."""
    from connectors.hubspot import HubSpotClient, HubSpotSettings

    settings = HubSpotSettings(
        access_token=token,
        host=base_url,
        portal_id="sandbox",
        general_max_requests=rate,
        general_interval_seconds=INTERVAL_MS / 1000,
        search_requests_per_second=SEARCH_PER_SECOND,
        rate_budget_path=budget or None,
        # Pages are counted when they arrive: no prefetched pages carried into the measured window.
        prefetch_pages=0,
    )
    client = HubSpotClient(settings)
    time.sleep(max(start_at - time.time(), 0.0))
    stop_at = start_at + duration
    pages: list[tuple[float, int]] = []
    while time.time() < stop_at:
        for batch in client.extract("contacts"):
            # API records only: rows of merged-away ids are derived, not fetched.
            pages.append((time.time(), batch.num_rows - len(batch.column("merged_into").drop_null())))
            if time.time() >= stop_at:
                break
    requests = sum(e["requests"] for e in client.request_log)
    http_429 = sum(e["http_429"] for e in client.request_log)
    print(json.dumps({"pages": pages, "requests": requests, "http_429": http_429}), flush=True)


def _calibrate(sandbox) -> float:
    """Pages per second one unthrottled client reads from the sandbox right now."""
    from connectors.hubspot import HubSpotClient, HubSpotSettings

    settings = HubSpotSettings(
        access_token="bench-token-calibration",
        host=sandbox.base_url,
        portal_id="sandbox",
        general_max_requests=10_000,
        general_interval_seconds=INTERVAL_MS / 1000,
        search_requests_per_second=SEARCH_PER_SECOND,
    )
    client = HubSpotClient(settings)
    pages = 0
    started = time.monotonic()
    for _ in client.extract("contacts"):
        pages += 1
        if pages >= CALIBRATION_PAGES:
            break
    return pages / (time.monotonic() - started)


def _phase(sandbox, token: str, budget: str, rate: int) -> dict:
    before = sandbox.ask("counters")
    start_at = time.time() + START_DELAY
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.hubspot_multiprocess",
                "--worker",
                sandbox.base_url,
                token,
                str(start_at),
                str(DURATION),
                budget,
                str(rate),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=DURATION + 300)
        if proc.returncode != 0:
            raise RuntimeError(f"a bench worker failed (exit code {proc.returncode})")
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    after = sandbox.ask("counters")
    requests = after.get("hubspot.requests", 0) - before.get("hubspot.requests", 0)
    http_429 = after.get("hubspot.status.429", 0) - before.get("hubspot.status.429", 0)
    # Steady state: after the first window, until the first process stopped reading.
    lo = start_at + INTERVAL_MS / 1000
    hi = min(max(t for t, _ in o["pages"]) for o in outputs)
    records = sum(n for o in outputs for t, n in o["pages"] if lo < t <= hi)
    per_second = rate / (INTERVAL_MS / 1000)
    return {
        "rate": rate,
        "requests": requests,
        "http_429": http_429,
        "client_requests": sum(o["requests"] for o in outputs),
        "client_429": sum(o["http_429"] for o in outputs),
        "records_steady": records,
        "steady_seconds": round(hi - lo, 1),
        "utilisation": records / max(hi - lo, 1e-9) / (per_second * 100),
        "per_process_records": [sum(n for _, n in o["pages"]) for o in outputs],
    }


def measure_hubspot() -> dict:
    from bench.hubspot import _Sandbox

    probe = _Sandbox("demo", 10_000, INTERVAL_MS, SEARCH_PER_SECOND)
    try:
        capacity = _calibrate(probe)
    finally:
        probe.close()
    # Half of what one client reads unthrottled: four processes then keep up with the limit.
    rate = int(max(MIN_RATE, min(MAX_RATE, capacity * INTERVAL_MS / 1000 / 2)))
    sandbox = _Sandbox("demo", rate, INTERVAL_MS, SEARCH_PER_SECOND)
    try:
        with tempfile.TemporaryDirectory(prefix="stepwise-rate-budget-") as tmp:
            shared = _phase(sandbox, "bench-token-shared", str(Path(tmp) / "rate-budget.sqlite"), rate)
        # A token of its own: the server's windows of the first phase do not carry over.
        alone = _phase(sandbox, "bench-token-alone", "", rate)
    finally:
        sandbox.close()
    return {"shared": shared, "alone": alone, "calibration_pages_per_second": round(capacity, 2)}


# --- GA4: an agency's backfill ----------------------------------------------------------------------


def measure_ga4_costs() -> dict:
    """Requests and tokens of one property's backfill, both ways, on the sandbox."""
    from connectors.ga4 import Ga4Client, Ga4Settings, default_report_specs, plan_windows
    from connectors.sandbox.ga4_api import Ga4QuotaLimits
    from connectors.sandbox.server import SandboxConfig, SandboxServer
    from connectors.sandbox.store import build_store

    store = build_store("demo", seed=SEED, end_date=END_DATE, days=AGENCY_DAYS)
    server = SandboxServer(store, SandboxConfig(seed=SEED), apis=("ga4",))
    prop_id = next(iter(server.config.ga4.properties))
    for prop in server.config.ga4.properties.values():
        big = 1_000_000_000
        prop.quota = Ga4QuotaLimits(tokens_per_day=big, tokens_per_hour=big, tokens_per_project_per_hour=big)
        prop.revisions = False
    specs = default_report_specs()
    end = store.end_date
    first = end - dt.timedelta(days=AGENCY_DAYS - 1)

    def run(windows) -> tuple[int, int]:
        server.reset_counters()
        client = Ga4Client(Ga4Settings(property_ids=[prop_id], api_endpoint=server.base_url))
        for _ in client.fetch_reports(specs, windows):
            pass
        if client.failures:
            raise RuntimeError(f"GA4 bench run failed: {client.failures}")
        counters = server.counters()
        return counters.get("ga4.requests", 0), counters.get("ga4.tokens", 0)

    with server:
        single_requests, single_tokens = run(plan_windows(first, end, lookback_days=3, earliest=first))
        daily_requests = daily_tokens = 0
        for i in range(PER_DAY_SAMPLE):
            day = end - dt.timedelta(days=i)
            r, t = run(plan_windows(day, day, lookback_days=3, earliest=first))
            daily_requests += r
            daily_tokens += t
    scale = AGENCY_DAYS / PER_DAY_SAMPLE
    return {
        "reports": len(specs),
        "single_run": {"requests": single_requests, "tokens": single_tokens},
        "per_day_runs": {"requests": round(daily_requests * scale), "tokens": round(daily_tokens * scale)},
    }


def plan(costs: dict) -> dict:
    """Set one property's measured costs against the quotas; requests add up over the agency."""
    usable = 1 - GA4_RESERVE
    out = {}
    for way in ("single_run", "per_day_runs"):
        tokens = costs[way]["tokens"]
        hourly = min(
            GA4_QUOTA["tokens_per_property_per_hour"], GA4_QUOTA["tokens_per_project_per_property_per_hour"]
        )
        # Hours of the hourly quota, or days of the daily quota, whichever binds longer.
        hours_by_hour = math.ceil(tokens / (hourly * usable)) - 1 if tokens else 0
        days_by_day = (
            math.ceil(tokens / (GA4_QUOTA["tokens_per_property_per_day"] * usable)) - 1 if tokens else 0
        )
        wall_hours = max(hours_by_hour, days_by_day * 24)
        out[way] = {
            "requests_per_property": costs[way]["requests"],
            "requests_agency": costs[way]["requests"] * AGENCY_PROPERTIES,
            "tokens_per_property": tokens,
            "share_of_daily_quota": tokens / GA4_QUOTA["tokens_per_property_per_day"],
            "share_of_project_hourly_quota": tokens / GA4_QUOTA["tokens_per_project_per_property_per_hour"],
            # Quota refresh waits only: the time the requests themselves take comes on top.
            "quota_wait_hours": wall_hours,
        }
    return out


def run(results: dict) -> None:
    hs = measure_hubspot()
    shared, alone = hs["shared"], hs["alone"]
    print(
        f"   hubspot: one unthrottled client reads {hs['calibration_pages_per_second']} pages/s from the sandbox "
        f"now; portal limit set to {shared['rate']} requests per {INTERVAL_MS / 1000:.0f} s",
        flush=True,
    )
    for label, m in (("shared budget", shared), ("each process alone", alone)):
        print(
            f"   hubspot x{PROCESSES} processes, {label}: {m['requests']:,} requests, {m['http_429']} answered 429 "
            f"(clients counted {m['client_429']}); {m['records_steady']:,} records in the steady "
            f"{m['steady_seconds']} s = utilisation {m['utilisation']:.3f}; per process {m['per_process_records']}",
            flush=True,
        )
    results["hubspot_multiprocess_429_share"] = {
        "value": round(shared["http_429"] / max(shared["requests"], 1), 5),
        "target": "<= 0.01",
        "unit": f"429 answers ÷ requests, {PROCESSES} processes on one portal, shared rate budget",
    }
    results["hubspot_rate_limit_utilisation_multiprocess"] = {
        "value": round(shared["utilisation"], 4),
        "target": ">= 0.85",
        "unit": f"records/s of {PROCESSES} processes ÷ ({shared['rate'] / (INTERVAL_MS / 1000):g} requests/s × 100)",
    }
    results["hubspot_multiprocess_429_share_without_shared_budget"] = {
        "value": round(alone["http_429"] / max(alone["requests"], 1), 5),
        "target": None,
        "unit": f"429 answers ÷ requests, {PROCESSES} processes each limited alone (baseline, context)",
    }

    costs = measure_ga4_costs()
    figures = plan(costs)
    print(
        f"   GA4 agency backfill plan: {AGENCY_PROPERTIES} properties × {AGENCY_DAYS} days, "
        f"{costs['reports']} default reports (sandbox token costs; Google's standard-property quotas)",
        flush=True,
    )
    for way, f in figures.items():
        print(
            f"     {way:13} requests {f['requests_per_property']:,}/property, {f['requests_agency']:,} in all; "
            f"tokens {f['tokens_per_property']:,}/property = {f['share_of_daily_quota']:.1%} of the "
            f"200,000/day and {f['share_of_project_hourly_quota']:.1%} of the 14,000/project-hour quota; "
            f"quota waits {f['quota_wait_hours']} h (properties in parallel, ≤ "
            f"{GA4_QUOTA['concurrent_requests_per_property']} requests at once each)",
            flush=True,
        )
    for way, f in figures.items():
        results[f"ga4_agency_backfill_{way}_requests"] = {
            "value": f["requests_agency"],
            "target": None,
            "unit": f"GA4 requests, {AGENCY_PROPERTIES} properties × {AGENCY_DAYS} days (plan)",
        }
        results[f"ga4_agency_backfill_{way}_tokens_per_property"] = {
            "value": f["tokens_per_property"],
            "target": None,
            "unit": "GA4 core tokens per property (sandbox costs; quota 200,000/day, 14,000/project-hour)",
        }
        results[f"ga4_agency_backfill_{way}_quota_wait_hours"] = {
            "value": f["quota_wait_hours"],
            "target": None,
            "unit": "hours the GA4 token quotas impose (plan)",
        }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        base_url, token, start_at, duration = argv[1], argv[2], float(argv[3]), float(argv[4])
        _worker(base_url, token, start_at, duration, argv[5], int(argv[6]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.hubspot_multiprocess")
    parser.add_argument("--ga4-only", action="store_true")
    parser.add_argument("--hubspot-only", action="store_true")
    args = parser.parse_args(argv)
    if args.hubspot_only:
        print(json.dumps(measure_hubspot(), indent=2))
        return 0
    if args.ga4_only:
        costs = measure_ga4_costs()
        print(json.dumps({"costs": costs, "plan": plan(costs)}, indent=2))
        return 0
    results: dict = {}
    run(results)
    print(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
