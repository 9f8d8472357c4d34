"""A raw-only warehouse of the demo store, for `python -m transforms.table_hashes --build` at two commits.

    python -m bench.table_hashes /tmp/demo_raw.duckdb
    cp /tmp/demo_raw.duckdb /tmp/a.duckdb && python -m transforms.table_hashes --build /tmp/a.duckdb

Loads the demo sandbox store (seed 7, last day 2026-11-22, the tests' store) into raw at table level
(bench.transforms.load_raw_from_store: the shapes the fake APIs serve). Lives in bench/ because transforms
may not import the connectors.
"""

from __future__ import annotations

import argparse
import datetime as dt

import duckdb

DEMO_END_DATE = dt.date(2026, 11, 22)
DEMO_SEED = 7


def load_demo(path: str) -> None:
    from bench.transforms import load_raw_from_store
    from connectors.sandbox.store import build_store

    store = build_store("demo", seed=DEMO_SEED, end_date=DEMO_END_DATE)
    con = duckdb.connect(path)
    try:
        days = (store.end_date - store.start_date).days + 1
        load_raw_from_store(store, con, days_per_partition=days)
    finally:
        con.close()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", help="a new DuckDB file (its name must not be raw.duckdb)")
    load_demo(parser.parse_args().warehouse)


if __name__ == "__main__":
    main()
