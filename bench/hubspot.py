"""HubSpot connector benchmark: rate-limit utilisation, 429 share, incremental request share.

The sandbox serves the ``large`` preset (about a million contacts) from a child process, so the
server's work does not compete with the connector for this interpreter's GIL, at a request rate well
above a real private app's (``BENCH_RATE`` requests per ``BENCH_INTERVAL_MS``; HubSpot's Free/Starter
default is 100 per 10 s, at which the same full load would take about 17 minutes instead of minutes).
The connector's limiter is configured with the same numbers; the figures are ratios, so they do not
depend on the chosen rate as long as the server keeps up.

- ``hubspot_rate_limit_utilisation``: records per second of a full load of the contacts ÷ (configured
  requests per second × 100 records a page). Target >= 0.90.
- ``hubspot_429_share``: 429 answers ÷ requests over the full and the incremental load. Target <= 0.01.
- ``hubspot_incremental_request_share``: requests of an incremental run after 1 % of the contacts changed
  ÷ requests of the full load. Target <= 0.03.

Production behaviours stay on (issue #12): the sandbox's search index lags (its default
``search_lag_seconds``), the 1 % are edited in the last minute of real time (``touch_contacts(at="now")``,
so a few are still unindexed when the incremental run reads), and the incremental run starts from the
data cursor (the largest ``updated_at`` of the full load) minus the connector's default overlap window
(300 s). Reported besides: the records the overlap re-read, and the edits the lag held back from this run
(the next run's overlap reads them).

Run alone: ``.venv/bin/python -m bench.hubspot`` (``--preset demo`` for a quick look).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time

BENCH_RATE = 500  # requests per interval: 50 requests/s
BENCH_INTERVAL_MS = 10_000
BENCH_SEARCH_PER_SECOND = 10
END_DATE = "2026-11-22"
SEED = 7
CACHE_DIR = "data/sandbox-cache"


def _serve(preset: str, rate: int, interval_ms: int, search_per_second: int) -> None:
    """Child process: build the store, serve it, obey 'touch <fraction>' / 'stop' on stdin."""
    from connectors.sandbox.server import SandboxConfig, SandboxServer
    from connectors.sandbox.store import build_store

    store = build_store(preset, seed=SEED, end_date=END_DATE, cache_dir=CACHE_DIR)
    server = SandboxServer(store, SandboxConfig(seed=SEED), apis=("hubspot",))
    cfg = server.config.hubspot
    cfg.general_max, cfg.general_interval_ms, cfg.search_per_second = rate, interval_ms, search_per_second
    cfg.daily_limit = 10_000_000
    server.start()
    end = store.end_instant_utc.replace(tzinfo=dt.UTC).isoformat()
    print(json.dumps({"base_url": server.base_url, "end_instant": end}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "stop":
            break
        if command[0] == "touch":
            # Edits of the last minute of real time: the search index has not caught up with all of them.
            now = dt.datetime.now(dt.UTC)
            touched = store.touch_contacts(
                fraction=float(command[1]), at=now - dt.timedelta(seconds=60), spread=dt.timedelta(seconds=60)
            )
            lag = server.config.hubspot.search_lag_seconds
            print(json.dumps({"touched": len(touched), "search_lag_seconds": lag}), flush=True)
        elif command[0] == "counters":
            import resource

            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(json.dumps({**server.counters(), "sandbox_peak_rss_mb": round(peak_mb)}), flush=True)
    server.stop()


class _Sandbox:
    def __init__(self, preset: str, rate: int, interval_ms: int, search_per_second: int) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.hubspot",
                "--serve",
                "--preset",
                preset,
                "--rate",
                str(rate),
                "--interval-ms",
                str(interval_ms),
                "--search-per-second",
                str(search_per_second),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        hello = self._read()
        self.base_url = hello["base_url"]
        self.end_instant = dt.datetime.fromisoformat(hello["end_instant"])

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the sandbox process ended (exit code {self.proc.poll()})")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, command: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def measure(preset: str = "large", rate: int = BENCH_RATE, interval_ms: int = BENCH_INTERVAL_MS) -> dict:
    from connectors.hubspot import HubSpotClient, HubSpotSettings

    started = time.monotonic()
    sandbox = _Sandbox(preset, rate, interval_ms, BENCH_SEARCH_PER_SECOND)
    build_seconds = time.monotonic() - started
    try:
        settings = HubSpotSettings(
            access_token="bench-token",
            host=sandbox.base_url,
            portal_id="sandbox",
            general_max_requests=rate,
            general_interval_seconds=interval_ms / 1000,
            search_requests_per_second=BENCH_SEARCH_PER_SECOND,
        )
        client = HubSpotClient(settings)
        t0 = time.monotonic()
        records = 0
        for batch in client.extract("contacts"):
            # API records only: rows of merged-away ids are derived, not fetched.
            records += batch.num_rows - batch.column("merged_into").drop_null().__len__()
        full_seconds = time.monotonic() - t0
        full_log = [e for e in client.request_log if e["mode"] in ("full", "metadata")]
        full_requests = sum(e["requests"] for e in full_log)
        full_429 = sum(e["http_429"] for e in full_log)

        cursor = client.max_updated_at["contacts"]  # the data cursor, as the ingest asset takes it
        touch = sandbox.ask("touch 0.01")
        touched = touch["touched"]
        inc_client = HubSpotClient(settings)
        inc_client._property_cache = client._property_cache  # a later run keeps the metadata it read
        changed = 0
        for batch in inc_client.extract("contacts", since=cursor):
            changed += batch.num_rows - batch.column("merged_into").drop_null().__len__()
        inc_log = [e for e in inc_client.request_log if e["mode"] == "incremental"]
        overlap_rows = sum(int(e.get("overlap_rows") or 0) for e in inc_log)
        inc_requests = sum(e["requests"] for e in inc_log)
        inc_429 = sum(e["http_429"] for e in inc_log)
        counters = sandbox.ask("counters")
    finally:
        sandbox.close()
    per_second = rate / (interval_ms / 1000)
    return {
        "preset": preset,
        "sandbox_build_seconds": round(build_seconds, 1),
        "rate_requests_per_second": per_second,
        "full_records": records,
        "full_seconds": round(full_seconds, 1),
        "full_requests": full_requests,
        "utilisation": (records / full_seconds) / (per_second * 100),
        "touched": touched,
        "search_lag_seconds": touch.get("search_lag_seconds"),
        "overlap_seconds": settings.incremental_overlap_seconds,
        "overlap_rows": overlap_rows,
        "lagging_not_yet_read": max(touched - (changed - overlap_rows), 0),
        "incremental_records": changed,
        "incremental_requests": inc_requests,
        "incremental_splits": sum(e["splits"] for e in inc_log),
        "http_429": full_429 + inc_429,
        "server_429": counters.get("hubspot.status.429", 0),
        "server_requests": counters.get("hubspot.requests", 0),
        "limiter_wait_seconds": round(sum(e["wait_seconds"] for e in full_log), 1),
        "sandbox_peak_rss_mb": counters.get("sandbox_peak_rss_mb"),
    }


def run(results: dict) -> None:
    m = measure()
    print(
        f"   hubspot: {m['full_records']:,} contacts in {m['full_seconds']}s with {m['full_requests']:,} requests "
        f"at a sandbox rate of {m['rate_requests_per_second']:.0f} requests/s ({BENCH_RATE} per "
        f"{BENCH_INTERVAL_MS / 1000:.0f} s); incremental after touching {m['touched']:,}: "
        f"{m['incremental_records']:,} records, {m['incremental_requests']} requests, "
        f"{m['incremental_splits']} splits; overlap window {m['overlap_seconds']:.0f} s re-read "
        f"{m['overlap_rows']:,} records, search lag {m['search_lag_seconds']} s held back "
        f"{m['lagging_not_yet_read']:,} edits for the next run; 429s {m['http_429']} (server counted {m['server_429']}); "
        f"sandbox built in {m['sandbox_build_seconds']}s, peak RSS {m['sandbox_peak_rss_mb']} MB",
        flush=True,
    )
    total_requests = m["full_requests"] + m["incremental_requests"]
    results["hubspot_rate_limit_utilisation"] = {
        "value": round(m["utilisation"], 4),
        "target": ">= 0.90",
        "unit": f"records/s ÷ ({m['rate_requests_per_second']:.0f} requests/s × 100)",
    }
    results["hubspot_429_share"] = {
        "value": round(m["http_429"] / max(total_requests, 1), 5),
        "target": "<= 0.01",
        "unit": "429 answers ÷ requests",
    }
    results["hubspot_overlap_rows_per_incremental_run"] = {
        "value": m["overlap_rows"],  # reported, no target
        "unit": f"records re-read by the {m['overlap_seconds']:.0f} s overlap window (one incremental run)",
    }
    results["hubspot_incremental_request_share"] = {
        "value": round(m["incremental_requests"] / max(m["full_requests"], 1), 5),
        "target": "<= 0.03",
        "unit": "incremental requests ÷ full-load requests (1 % of contacts changed)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hubspot")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", default="large", choices=["demo", "large"])
    parser.add_argument("--rate", type=int, default=BENCH_RATE)
    parser.add_argument("--interval-ms", type=int, default=BENCH_INTERVAL_MS)
    parser.add_argument("--search-per-second", type=int, default=BENCH_SEARCH_PER_SECOND)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.preset, args.rate, args.interval_ms, args.search_per_second)
        return 0
    if args.preset != "large" or args.rate != BENCH_RATE or args.interval_ms != BENCH_INTERVAL_MS:
        print(json.dumps(measure(args.preset, args.rate, args.interval_ms), indent=2))
        return 0
    results: dict = {}
    run(results)
    print(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
