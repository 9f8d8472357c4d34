"""``make bench``: every benchmark, figures side by side, written to data/bench-results.json.

Each area's module (bench/ga4.py, bench/hubspot.py, bench/hubspot_multiprocess.py, bench/transforms.py,
bench/stats.py, bench/alerts.py) adds entries
``{name: {"value": ..., "target": ..., "unit": ...}}`` to one results dict. Targets are written as
"<= x" or ">= x". Only ratios and medians measured in this one run are reported, because machines
here are shared and noisy. ``python -m bench ga4`` runs one area.
"""

from __future__ import annotations

import importlib
import json
import operator
import sys
import time
from pathlib import Path

AREAS = ("ga4", "hubspot", "hubspot_multiprocess", "transforms", "stats", "experiments", "alerts")
RESULTS = Path("data/bench-results.json")


# Figures where more is better; every other figure is a ceiling.
HIGHER_IS_BETTER = ("utilisation", "rows_per_s", "speedup")


def meets(value: float, target: str | float, name: str = "") -> bool:
    if isinstance(target, int | float):
        higher = any(word in name for word in HIGHER_IS_BETTER)
        return value >= target if higher else value <= target
    text = str(target).strip()
    for symbol, op in (("<=", operator.le), (">=", operator.ge)):
        if text.startswith(symbol):
            return op(float(value), float(text[len(symbol) :]))
    raise ValueError(f"target {target!r} must start with <= or >=")


def main(argv: list[str]) -> int:
    areas = argv or list(AREAS)
    results: dict[str, dict] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for area in areas:
        started = time.monotonic()
        print(f"== bench {area}", flush=True)
        module = importlib.import_module(f"bench.{area}")
        module.run(results)
        print(f"   ({time.monotonic() - started:.0f}s)", flush=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True))
    failed = 0
    print(f"\n{'figure':40} {'value':>12} {'target':>10}  unit")
    for name, entry in sorted(results.items()):
        target = entry.get("target")
        ok = meets(entry["value"], target, name) if target is not None else True
        failed += not ok
        mark = "ok " if ok else "MISS"
        print(f"{mark} {name:36} {entry['value']:>12.4g} {str(target or ''):>10}  {entry.get('unit', '')}")
    print(f"\nwritten to {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
