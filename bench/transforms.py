"""Benchmark of the warehouse model (issue 5): full build time, peak RSS, incremental vs full.

Raw tables for the `large` preset are loaded DIRECTLY from the synthetic store into the CONTRACTS §4
shapes (through transforms.raw_load, the same writer the pipeline uses), not through the HTTP
connectors: a year of a large store over the fake APIs would take far longer than the model under test.
The shapes are the ones the sandbox APIs serve (same aggregations, same string formats).

    .venv/bin/python -m bench.transforms            # large preset
    .venv/bin/python -m bench.transforms --preset demo
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from transforms import raw_load

PORTAL_ID = "sandbox"
GA4_SEGMENT = "channel AS session_default_channel_group, device_category, country, new_vs_returning"
GA4_FLAGS = "false AS subject_to_thresholding, false AS data_loss_from_other_row, false AS sampled"
KEY_EVENTS = ("purchase", "generate_lead", "sign_up")

# One SELECT per GA4 report spec (CONTRACTS §3), over the store's sessions/events, filtered to a date range.
GA4_REPORT_SQL: dict[str, str] = {
    "web_sessions": f"""
        SELECT $pid AS property_id, date, {GA4_SEGMENT},
            count(*)::BIGINT AS sessions, count(*) FILTER (WHERE engaged)::BIGINT AS engaged_sessions,
            count(DISTINCT user_id)::BIGINT AS total_users,
            count(DISTINCT user_id) FILTER (WHERE new_vs_returning = 'new')::BIGINT AS new_users, {GA4_FLAGS}
        FROM sessions WHERE date BETWEEN $start AND $end GROUP BY ALL""",
    "events": f"""
        SELECT $pid AS property_id, date, event_name, {GA4_SEGMENT},
            sum(event_count)::BIGINT AS event_count, count(DISTINCT user_id)::BIGINT AS total_users,
            sum(event_value)::DOUBLE AS event_value, {GA4_FLAGS}
        FROM events WHERE date BETWEEN $start AND $end GROUP BY ALL""",
    "key_events": f"""
        SELECT $pid AS property_id, date, event_name, {GA4_SEGMENT},
            sum(event_count)::BIGINT AS key_events, {GA4_FLAGS}
        FROM events WHERE date BETWEEN $start AND $end AND event_name IN $key_events GROUP BY ALL""",
    "ecommerce": f"""
        SELECT $pid AS property_id, date, {GA4_SEGMENT},
            sum(purchase)::BIGINT AS ecommerce_purchases, sum(purchase_revenue)::DOUBLE AS purchase_revenue,
            count(DISTINCT user_id) FILTER (WHERE purchase > 0)::BIGINT AS total_purchasers, {GA4_FLAGS}
        FROM sessions WHERE date BETWEEN $start AND $end GROUP BY ALL""",
    "landing_pages": f"""
        SELECT $pid AS property_id, date, landing_page, channel AS session_default_channel_group,
            count(*)::BIGINT AS sessions, count(*) FILTER (WHERE engaged)::BIGINT AS engaged_sessions,
            count(DISTINCT user_id)::BIGINT AS total_users, sum(purchase)::BIGINT AS ecommerce_purchases,
            (sum(purchase) + sum(generate_lead) + sum(sign_up))::BIGINT AS key_events, {GA4_FLAGS}
        FROM sessions WHERE date BETWEEN $start AND $end GROUP BY ALL""",
    "campaigns": f"""
        SELECT $pid AS property_id, date, campaign AS session_campaign_name, source AS session_source,
            medium AS session_medium, channel AS session_default_channel_group,
            count(*)::BIGINT AS sessions, count(DISTINCT user_id)::BIGINT AS total_users,
            sum(purchase)::BIGINT AS ecommerce_purchases, sum(purchase_revenue)::DOUBLE AS purchase_revenue,
            (sum(purchase) + sum(generate_lead) + sum(sign_up))::BIGINT AS key_events, {GA4_FLAGS}
        FROM sessions WHERE date BETWEEN $start AND $end GROUP BY ALL""",
    "lead_forms": f"""
        SELECT $pid AS property_id, date, event_name, form_name AS custom_event_form_name,
            channel AS session_default_channel_group, sum(event_count)::BIGINT AS event_count, {GA4_FLAGS}
        FROM events WHERE date BETWEEN $start AND $end AND event_name = 'generate_lead' GROUP BY ALL""",
}

_ISO = "'%Y-%m-%dT%H:%M:%S.%gZ'"


def _hubspot_value_sql(column: str, duck_type: str) -> str:
    col = f'"{column}"'
    if duck_type.startswith("TIMESTAMP"):
        return f"strftime({col}, {_ISO})"
    if duck_type == "BOOLEAN":
        return f"CASE WHEN {col} THEN 'true' WHEN NOT {col} THEN 'false' END"
    return f"CAST({col} AS VARCHAR)"


def _object_sql(store_con: duckdb.DuckDBPyConnection, table: str, modified: str) -> str:
    """A SELECT giving the §3 HubSpot object batch columns for one store table."""
    skip = {"id", "archived", "merged_into", "session_id", "user_id", "contact_id"}
    columns = [(r[0], r[1]) for r in store_con.execute(f"DESCRIBE {table}").fetchall()]
    pairs = ", ".join(f"'{c}', {_hubspot_value_sql(c, t)}" for c, t in columns if c not in skip)
    pairs += ", 'hs_object_id', CAST(id AS VARCHAR)"
    merged = "CAST(merged_into AS VARCHAR)" if table == "contacts" else "NULL::VARCHAR"
    contact_ids = (
        ", to_json([CAST(contact_id AS VARCHAR)])::VARCHAR AS contact_ids" if table == "deals" else ""
    )
    where = "WHERE merged_into IS NULL" if table == "contacts" else ""  # merged records are listed nowhere
    return f"""
        SELECT $portal AS portal_id, CAST(id AS VARCHAR) AS id,
            timezone('UTC', createdate) AS created_at, timezone('UTC', {modified}) AS updated_at, archived,
            {merged} AS merged_into, json_object({pairs})::VARCHAR AS properties{contact_ids}
        FROM {table} {where} ORDER BY id"""


def _batches(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    yield from reader


def load_raw_from_store(
    store: Any,
    con: duckdb.DuckDBPyConnection,
    *,
    start_date: dt.date | None = None,
    end_date: dt.date | None = None,
    days_per_partition: int = 1,
    batch_rows: int = 100_000,
    hubspot: bool = True,
    hubspot_created_before: dt.datetime | None = None,
    hubspot_modified_since: dt.datetime | None = None,
) -> None:
    """Load raw.* (CONTRACTS §4) from a sandbox store, in the shapes the fake APIs serve.

    GA4 one partition per `days_per_partition` days; HubSpot objects upserted in one full sync (or
    only the records created before an instant, or modified since one, naive UTC, as the previous
    syncs and a daily incremental sync would bring them), plus properties, pipelines and the GA4
    property's time zone.
    """
    cur = store.cursor()
    start = start_date or store.start_date
    end = end_date or store.end_date
    property_id = store.property_id
    raw_load.record_ga4_property(
        con, property_id, time_zone=store.time_zone, currency_code=getattr(store, "currency_code", None)
    )
    day = start
    while day <= end:
        last = min(end, day + dt.timedelta(days=days_per_partition - 1))
        for spec, sql in GA4_REPORT_SQL.items():
            report_params: dict[str, Any] = {"pid": property_id, "start": day, "end": last}
            if "$key_events" in sql:
                report_params["key_events"] = list(KEY_EVENTS)
            reader = cur.sql(sql + " ORDER BY ALL", params=report_params).to_arrow_reader(batch_rows)
            raw_load.load_ga4_partition(
                con, spec, property_id, day, last, _batches(reader), partition_key=str(day)
            )
        day = last + dt.timedelta(days=1)
    if not hubspot:
        return
    for table, modified in (
        ("contacts", "lastmodifieddate"),
        ("deals", "hs_lastmodifieddate"),
        ("companies", "hs_lastmodifieddate"),
    ):
        sql = _object_sql(cur, table, modified)
        params: dict[str, Any] = {"portal": PORTAL_ID}
        conditions = []
        if hubspot_created_before is not None:
            conditions.append("createdate < $before")
            params["before"] = hubspot_created_before
        if hubspot_modified_since is not None:
            conditions.append(f"{modified} >= $since")
            params["since"] = hubspot_modified_since
        if conditions:
            where = " AND ".join(conditions)
            sql = f"SELECT * FROM ({sql}) WHERE id IN (SELECT CAST(id AS VARCHAR) FROM {table} WHERE {where})"
        reader = cur.sql(sql, params=params).to_arrow_reader(batch_rows)
        mode = "full" if hubspot_modified_since is None else "incremental"
        raw_load.upsert_hubspot_objects(con, table, PORTAL_ID, _batches(reader), mode)
    props = cur.sql(
        """
        SELECT $portal AS portal_id, table_name AS object_type, column_name AS name, column_name AS label,
            CASE WHEN data_type LIKE 'TIMESTAMP%' THEN 'datetime' WHEN data_type = 'BOOLEAN' THEN 'bool'
                 WHEN data_type IN ('BIGINT', 'INTEGER') OR data_type LIKE 'DECIMAL%' THEN 'number' ELSE 'string' END AS type,
            'text' AS field_type, 'contactinformation' AS group_name
        FROM duckdb_columns()
        WHERE database_name = current_database() AND schema_name = 'main'
          AND table_name IN ('contacts', 'deals', 'companies')
          AND column_name NOT IN ('id', 'archived', 'merged_into', 'session_id', 'user_id', 'contact_id')
        """,
        params={"portal": PORTAL_ID},
    ).to_arrow_table()
    raw_load.replace_hubspot_metadata(con, "properties", PORTAL_ID, [props])
    stages = list(store.lifecycle_stages)
    deal_stages = [
        ("appointmentscheduled", 0.2, False), ("qualifiedtobuy", 0.4, False), ("presentationscheduled", 0.6, False),
        ("decisionmakerboughtin", 0.8, False), ("contractsent", 0.9, False), ("closedwon", 1.0, True),
        ("closedlost", 0.0, True),
    ]  # fmt: skip
    pipelines = pa.table(
        {
            "portal_id": [PORTAL_ID] * (len(stages) + len(deal_stages)),
            "object_type": ["contacts"] * len(stages) + ["deals"] * len(deal_stages),
            "pipeline_id": ["contacts-lifecycle-pipeline"] * len(stages) + ["default"] * len(deal_stages),
            "pipeline_label": ["Lifecycle Stage Pipeline"] * len(stages)
            + ["Sales Pipeline"] * len(deal_stages),
            "stage_id": stages + [s[0] for s in deal_stages],
            "stage_label": stages + [s[0] for s in deal_stages],
            "display_order": list(range(len(stages))) + list(range(len(deal_stages))),
            "is_closed": [False] * len(stages) + [s[2] for s in deal_stages],
            "probability": [None] * len(stages) + [s[1] for s in deal_stages],
        }
    )
    raw_load.replace_hubspot_metadata(con, "pipelines", PORTAL_ID, [pipelines])


# ------------------------------------------------------------------------------------------ benchmark


def mart_hashes(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Per mart: row count and order-independent aggregates of every row's hash (as text for JSON)."""
    from transforms.build import MART_TABLES

    out = {}
    for table in MART_TABLES:
        if table == "data_quality":  # the request log: per run by design
            continue
        columns = [r[0] for r in con.execute(f"DESCRIBE marts.{table}").fetchall()]
        row_hash = "hash(" + ", ".join(f'"{c}"' for c in columns) + ")"
        counts = con.execute(
            f"SELECT count(*), sum({row_hash}::HUGEINT), bit_xor({row_hash}) FROM marts.{table}"
        ).fetchall()[0]
        out[table] = "/".join(str(v) for v in counts)
    return out


def _measure(path: str, mode: str, last_day: str, memory_limit: str) -> dict[str, Any]:
    """Runs in a fresh process so its peak RSS is the build's alone (not the store's)."""
    from transforms.build import build_all
    from transforms.catalog import default_catalog, default_channel_mapping

    con = duckdb.connect(path, config={"memory_limit": memory_limit})
    # pyarrow's first table construction costs ~0.7 s once per process (a long-lived Dagster worker pays
    # it once): pay it before timing, so the figures measure the build.
    pa.table({"warm_up": [1]})
    out: dict[str, Any] = {}
    if mode == "full":
        t0 = time.perf_counter()
        result = build_all(con, default_catalog(), default_channel_mapping())
        out["build_s"] = time.perf_counter() - t0
    elif mode == "rebuild":  # the reference the incremental result is compared with
        t0 = time.perf_counter()
        result = build_all(con, default_catalog(), default_channel_mapping())
        out["build_s"] = time.perf_counter() - t0
        out["mart_hashes"] = mart_hashes(con)
    else:
        t0 = time.perf_counter()
        result = build_all(
            con, default_catalog(), default_channel_mapping(), dates=[dt.date.fromisoformat(last_day)]
        )
        out["build_s"] = time.perf_counter() - t0
        out["dates_rebuilt"] = len(result.dates)
        out["contacts_restaged"] = result.contacts
        out["mart_hashes"] = mart_hashes(con)
    out["mode"] = result.mode
    out["slowest"] = sorted(result.seconds.items(), key=lambda kv: -kv[1])[:6]
    con.close()
    # VmHWM: this process image's peak RSS (ru_maxrss would include the forking parent's, with the store).
    status = Path("/proc/self/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    out["peak_rss_mb"] = hwm_kb / 1024
    return out


def _measure_in_child(path: Path, mode: str, last_day: dt.date, memory_limit: str) -> dict[str, Any]:
    import subprocess
    import sys

    code = (
        "import json, sys; from bench.transforms import _measure; "
        "print('RESULT' + json.dumps(_measure(*sys.argv[1:])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), mode, last_day.isoformat(), memory_limit],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench child ({mode}) failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    return dict(json.loads(line[len("RESULT") :]))


def _fresh_copy(source: Path, target: Path) -> Path:
    """A copy of a warehouse file, flushed to disk before it is timed: otherwise the build's first commit
    (an fsync) would also pay for writing back the copy's hundreds of MB of dirty pages."""
    shutil.copyfile(source, target)
    os.sync()
    return target


def run(
    results: dict[str, Any],
    preset: str = "large",
    workdir: str | None = None,
    memory_limit: str = "1500MB",
    repeats: int = 3,
) -> None:
    """Full build time, peak RSS of the build process, incremental vs full.

    Raw tables are loaded straight from the store (see the module docstring). The initial load is every
    GA4 day but the last and the HubSpot records created before the last day; the "new daily partition"
    is the last GA4 day plus every HubSpot record modified since the last day began (an incremental
    sync's share: the day's new contacts and deals, the bulk-import block, the day's stage changes).
    The store holds only final states, so a record that existed before is re-delivered unchanged.
    DuckDB runs with memory_limit=`memory_limit` (the setting the pipeline's DuckDB resource uses).
    Each build runs `repeats` times, each in a fresh process on a fresh copy of the same file; the
    figures are medians (this machine is shared and noisy)."""
    from connectors.sandbox.store import build_store

    cache_dir = Path("data/sandbox-cache") if preset == "large" else None
    store = build_store(preset, seed=7, end_date=dt.date(2026, 11, 22), cache_dir=cache_dir)
    last_day = store.end_date
    cutoff = store.end_instant_utc - dt.timedelta(days=1)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        raw_path = Path(tmp) / "bench-raw.duckdb"
        con = duckdb.connect(str(raw_path))
        t0 = time.perf_counter()
        load_raw_from_store(
            store,
            con,
            end_date=last_day - dt.timedelta(days=1),
            days_per_partition=31,
            hubspot_created_before=cutoff,
        )
        con.execute("CHECKPOINT")
        counts = dict(
            con.execute(
                "SELECT table_name, estimated_size FROM duckdb_tables() WHERE schema_name = 'raw'"
            ).fetchall()
        )
        con.close()
        print(
            f"   raw loaded from the store in {time.perf_counter() - t0:.0f}s: {json.dumps(counts)}",
            flush=True,
        )
        gc.collect()

        fulls = []
        for attempt in range(repeats):
            work = _fresh_copy(raw_path, Path(tmp) / f"bench-full-{attempt}.duckdb")
            fulls.append(_measure_in_child(work, "full", last_day, memory_limit))
            print(f"   full {attempt + 1}/{repeats}: {json.dumps(fulls[-1])}", flush=True)
            if attempt:
                work.unlink()  # the first one is kept: the incremental runs start from it

        # The new daily partition lands on the first fully built copy; every incremental run starts there.
        built_path = Path(tmp) / "bench-full-0.duckdb"
        con = duckdb.connect(str(built_path))
        load_raw_from_store(store, con, start_date=last_day, end_date=last_day, hubspot_modified_since=cutoff)
        con.execute("CHECKPOINT")
        con.close()
        incrementals = []
        for attempt in range(repeats):
            work = _fresh_copy(built_path, Path(tmp) / "bench-incremental.duckdb")
            incrementals.append(_measure_in_child(work, "incremental", last_day, memory_limit))
            hashes = incrementals[-1].pop("mart_hashes")
            print(f"   incremental {attempt + 1}/{repeats}: {json.dumps(incrementals[-1])}", flush=True)
            work.unlink()
        # What the incremental build did must be what a full build of the same raw data gives.
        reference = _measure_in_child(
            _fresh_copy(built_path, Path(tmp) / "bench-rebuild.duckdb"), "rebuild", last_day, memory_limit
        )
        differing = sorted(
            t for t in reference["mart_hashes"] if reference["mart_hashes"][t] != hashes.get(t)
        )
        print(f"   incremental marts equal a full rebuild's: {not differing} {differing or ''}", flush=True)

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    full_s = median(fulls, "build_s")
    results["transform_peak_rss_mb"] = {
        "value": max(r["peak_rss_mb"] for r in fulls),
        "target": "<= 2000",
        "unit": "MB (the highest of the full builds)",
    }
    results["transform_incremental_over_full"] = {
        "value": median(incrementals, "build_s") / full_s,
        "target": "<= 0.10",
        "unit": f"ratio of medians ({repeats} runs each)",
    }
    results["transform_incremental_marts_differing"] = {
        "value": len(differing),
        "target": "<= 0",
        "unit": "marts whose content differs from a full rebuild of the same raw data",
    }
    results["transform_full_build_s"] = {"value": full_s, "target": None, "unit": "s (median)"}
    results["transform_incremental_build_s"] = {
        "value": median(incrementals, "build_s"),
        "target": None,
        "unit": "s (median)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="large", choices=("demo", "large"))
    args = parser.parse_args()
    results: dict[str, Any] = {}
    run(results, preset=args.preset)
    for name, entry in results.items():
        print(f"{name:36} {entry['value']:>10.4g}  target {entry['target']}  {entry['unit']}")


if __name__ == "__main__":
    main()
