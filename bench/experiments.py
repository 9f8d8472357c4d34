"""Experiment readouts over many seeds (``python -m bench experiments``).

For each seed: the demo store (90 days), served by the sandbox, read through the GA4 SDK with the shipped
experiments file, and marts.experiment_readout built in DuckDB. Figures: how many planted verdicts come out
wrong, how often purchase is falsely "significant" for checkout_button, and the A/A false-positive rates of
the always-valid and the fixed-horizon p-value read daily (simulation).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np

SEEDS = (7, 1, 2, 3, 4, 5, 6, 8, 9, 10)
END = dt.date(2026, 11, 22)


def _readout(seed: int) -> list[dict[str, Any]]:
    import duckdb
    import pyarrow as pa

    from connectors.ga4 import Ga4Client, Ga4Settings
    from connectors.ga4.experiments import ExperimentQuery, fetch_experiment, validate_experiments
    from connectors.sandbox.server import SandboxConfig, SandboxServer
    from connectors.sandbox.store import build_store
    from transforms.catalog import default_catalog
    from transforms.experiments import build_experiment_readout, load_raw_experiments
    from transforms.experiments_config import load_experiments

    catalog = default_catalog()
    config = load_experiments(catalog=catalog)
    store = build_store("demo", seed=seed, end_date=END, cache=False)
    con = duckdb.connect()
    try:
        with SandboxServer(store, SandboxConfig(seed=seed)) as server:
            client = Ga4Client(Ga4Settings(property_ids=["123456789"], api_endpoint=server.base_url))
            queries = [
                ExperimentQuery(
                    e.name,
                    tuple(v.audience for v in e.variants),
                    tuple(catalog.by_name(n).signal for n in (*e.micro, *e.macro)),
                )
                for e in config.experiments
            ]
            validate_experiments(client, queries)
            today = END + dt.timedelta(days=1)
            tables = []
            for e, q in zip(config.experiments, queries, strict=True):
                window = e.window(today)
                assert window is not None
                tables.append(fetch_experiment(client, "123456789", q, *window))
        load_raw_experiments(
            con,
            pa.concat_tables(tables),
            replaced=[("123456789", e.name) for e in config.experiments],
            partition_key="bench",
        )
        build_experiment_readout(con, config, catalog)
        cur = con.execute("SELECT * FROM marts.experiment_readout")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
        store.close()


def _aa_rates(sims: int = 4000, days: int = 28, per_day: int = 400, p: float = 0.08) -> tuple[float, float]:
    from transforms import stats_sequential as seq

    rng = np.random.default_rng([7, 14, 99])
    xc = rng.binomial(per_day, p, size=(sims, days)).cumsum(axis=1)
    xt = rng.binomial(per_day, p, size=(sims, days)).cumsum(axis=1)
    n = np.broadcast_to(per_day * np.arange(1, days + 1), (sims, days))
    lift, var = seq.relative_lift(xc, n, xt, n)
    return (
        float((seq.msprt_p_value(lift, var) < seq.ALPHA).any(axis=1).mean()),
        float((seq.fixed_p_value(lift, var) < seq.ALPHA).any(axis=1).mean()),
    )


def run(results: dict[str, dict]) -> None:
    expected = {
        "checkout_button": "micro up, macro flat",
        "free_shipping_banner": "both up",
        "hero_video": "sample-ratio mismatch: do not read",
    }
    wrong = 0
    false_purchase = 0
    lifts: dict[str, list[float]] = {}
    started = time.monotonic()
    for seed in SEEDS:
        rows = _readout(seed)
        verdicts = {r["experiment"]: r["verdict"] for r in rows}
        misses = {e: verdicts.get(e) for e, v in expected.items() if verdicts.get(e) != v}
        wrong += len(misses)
        for r in rows:
            if (
                r["experiment"] == "checkout_button"
                and r["conversion_name"] == "purchase"
                and r["significant"]
            ):
                false_purchase += 1
            if not r["is_control"]:
                lifts.setdefault(f"{r['experiment']}/{r['conversion_name']}", []).append(r["lift"])
        print(f"   seed {seed}: {verdicts}{' MISSES ' + str(misses) if misses else ''}", flush=True)
    always_valid, fixed = _aa_rates()
    n = len(SEEDS)
    results["experiments_planted_verdicts_wrong"] = {
        "value": wrong,
        "target": "<= 0",
        "unit": f"verdicts of 3 experiments x {n} seeds",
    }
    results["experiments_purchase_false_significant"] = {
        "value": false_purchase,
        "target": "<= 0",
        "unit": f"checkout_button purchase called significant, of {n} seeds",
    }
    results["experiments_aa_false_positive_always_valid"] = {
        "value": always_valid,
        "target": "<= 0.05",
        "unit": "share of A/A tests ever significant, read daily for 28 days",
    }
    results["experiments_aa_false_positive_fixed_daily"] = {
        "value": fixed,
        "target": None,
        "unit": "same, fixed-horizon p-value read daily (context: why always-valid is the default)",
    }
    for key, values in sorted(lifts.items()):
        print(
            f"   median lift {key}: {np.median(values):+.3f} (min {min(values):+.3f}, max {max(values):+.3f})"
        )
    print(
        f"   {n} seeds in {time.monotonic() - started:.0f}s; A/A always-valid {always_valid:.3f}, fixed daily {fixed:.3f}"
    )
