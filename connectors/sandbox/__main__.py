"""Run the sandbox: ``python -m connectors.sandbox --port 8765 --preset demo --seed 7``.

``--accounts multi`` serves three GA4 properties (New York, Berlin, Tokyo) and two HubSpot portals instead
(connectors/sandbox/accounts.py; ``--days`` sets their length, ``--preset`` does not apply).

Serves the fake GA4 Data API and HubSpot CRM API on 127.0.0.1 until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--preset", choices=["demo", "large"], default="demo")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--accounts", choices=["single", "multi"], default="single")
    parser.add_argument("--days", type=int, default=90, help="days of data with --accounts multi")
    parser.add_argument(
        "--end-date",
        type=dt.date.fromisoformat,
        default=None,
        help="last day with data (YYYY-MM-DD); default yesterday",
    )
    args = parser.parse_args(argv)

    from connectors.sandbox.server import SandboxConfig, SandboxServer
    from connectors.sandbox.store import DEFAULT_CACHE_DIR, build_store

    started = time.monotonic()
    if args.accounts == "multi":
        return _serve_multi(args, started)
    print(f"building the {args.preset} store (seed {args.seed}) ...", flush=True)
    # The large store takes tens of seconds to generate: keep it on disk between runs.
    cache_dir = DEFAULT_CACHE_DIR if args.preset == "large" else None
    store = build_store(args.preset, seed=args.seed, end_date=args.end_date, cache_dir=cache_dir)
    server = SandboxServer(store, SandboxConfig(seed=args.seed), port=args.port)
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    print(
        f"sandbox serving on {server.base_url} after {time.monotonic() - started:.1f}s\n"
        f"  GA4 Data API:  {server.base_url}/v1beta/properties/{store.property_id}:runReport\n"
        f"  HubSpot CRM:   {server.base_url}/crm/v3/objects/contacts\n"
        f"  sandbox data only; stop with SIGTERM or Ctrl-C",
        flush=True,
    )
    stopping.wait()
    server.stop()
    print("sandbox stopped", flush=True)
    return 0


def _serve_multi(args: argparse.Namespace, started: float) -> int:
    from connectors.sandbox.accounts import PORTALS, PROPERTIES, MultiAccountSandbox

    print(f"building the multi-account sandbox (seed {args.seed}, {args.days} days) ...", flush=True)
    sandbox = MultiAccountSandbox(seed=args.seed, days=args.days, end_date=args.end_date, port=args.port)
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sandbox.start()
    lines = [f"sandbox serving on {sandbox.base_url} after {time.monotonic() - started:.1f}s"]
    lines += [f"  GA4 property {p.property_id} ({p.label}, {p.time_zone})" for p in PROPERTIES]
    lines += [
        f"  HubSpot portal {p.portal_id} ({p.label}, {p.time_zone}): Bearer {p.token}, property {p.property_id}"
        for p in PORTALS
    ]
    print("\n".join([*lines, "  sandbox data only; stop with SIGTERM or Ctrl-C"]), flush=True)
    stopping.wait()
    sandbox.stop()
    print("sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
