"""`python -m orchestration.demo` (what `make demo` runs).

Backfills the demo window from the built-in sandbox through the real Dagster definitions and a real
instance (DAGSTER_HOME, default .dagster_home) as one single-run backfill of `stepwise_daily`:
ingest -> staging -> marts (with their checks) -> publish. Then the summary export if it is built.
Prints progress while it runs, and at the end where the analyst file is, a few headline numbers and
the wall time. The run shows up in `make ui` afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PID_TAG = "stepwise/demo_pid"


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def follow_run(instance: Any, run_id: str, total_steps: int, stop: threading.Event) -> None:
    """Print one line per finished step, read from the instance's event log while the run goes."""
    import dagster as dg

    processed = 0
    types = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    while True:
        finished = stop.is_set()
        try:
            records = instance.all_logs(run_id, of_type=types)
        except Exception:  # the run row may not exist for the first instants
            records = []
        for record in records[processed:]:
            processed += 1
            event = record.dagster_event
            if event is None:
                continue
            status = "ok    " if event.event_type == dg.DagsterEventType.STEP_SUCCESS else "FAILED"
            say(f"  {status} {event.step_key:<48} ({processed}/{total_steps})")
        if finished:
            return
        stop.wait(0.5)


def headline(analyst_file: Path) -> list[str]:
    import duckdb

    lines: list[str] = []
    con = duckdb.connect(str(analyst_file), read_only=True)
    try:
        counts = con.execute(
            "SELECT schema_name, count(*) FROM duckdb_tables() GROUP BY 1 ORDER BY 1"
        ).fetchall()
        lines.append("tables: " + ", ".join(f"{s} {n}" for s, n in counts))
        queries = {
            "days": "SELECT min(date) || ' .. ' || max(date) || ' (' || count(DISTINCT date) || ' days)' "
            "FROM marts.web_sessions_daily",
            "sessions": "SELECT sum(sessions) FROM marts.channel_funnel_daily",
            "micro conversions": "SELECT sum(micro_conversions) FROM marts.channel_funnel_daily",
            "leads (GA4 generate_lead)": "SELECT sum(leads) FROM marts.channel_funnel_daily",
            "contacts created (HubSpot)": "SELECT sum(contacts_created) FROM marts.channel_funnel_daily",
            "customers": "SELECT sum(customers) FROM marts.channel_funnel_daily",
            "deals won / revenue": "SELECT sum(deals_won) || ' / ' || round(sum(revenue), 2) FROM marts.channel_funnel_daily",
        }
        for label, sql in queries.items():
            try:
                value = con.execute(sql).fetchall()[0][0]
            except duckdb.Error:
                continue
            lines.append(f"{label}: {value}")
        try:
            # Only rows the mart flags (q < 0.05 and the whole lift interval outside the practical band).
            rows = con.execute(
                "SELECT segment_dimension, segment_value, round(lift, 2), conversion_name FROM marts.segment_summary "
                "WHERE significant AND lift > 1 ORDER BY lift_ci_low DESC LIMIT 3"
            ).fetchall()
            if rows:
                lines.append(
                    "most receptive segments (false discovery rate within 5 % per conversion x segment "
                    "dimension; lift interval outside 0.95-1.05): "
                    + "; ".join(f"{d}={v} for {c} (lift {lift})" for d, v, lift, c in rows)
                )
        except duckdb.Error:
            pass
    finally:
        con.close()
    return lines


def run_exports(defs: Any, instance: Any) -> list[str]:
    """Materialise the export group if `orchestration.defs.exports` provides it."""
    import dagster as dg

    graph = defs.resolve_asset_graph()
    export_keys = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "export"]
    if not export_keys:
        say("summary export: not built yet (orchestration/defs/exports); skipped")
        return []
    partitions = {graph.get(k).partitions_def for k in export_keys} - {None}
    partition_key = None
    if partitions:
        pdef = next(iter(partitions))
        partition_key = pdef.get_last_partition_key()
    say(
        f"summary export: {', '.join(k.to_user_string() for k in export_keys)}"
        + (f" for {partition_key}" if partition_key else "")
    )
    result = dg.materialize(
        list(graph.assets_defs),
        selection=export_keys,
        partition_key=partition_key,
        instance=instance,
        raise_on_error=False,
        run_config=quiet_run_config(),
        tags={"stepwise/trigger": "demo", PID_TAG: str(os.getpid())},
    )
    if not result.success:
        say("summary export FAILED (see the run in `make ui`)")
        return []
    paths: list[str] = []
    for event in result.get_asset_materialization_events():
        meta = event.step_materialization_data.materialization.metadata
        for name, value in meta.items():
            if "path" in name or "dir" in name or "report" in name or "html" in name:
                paths.append(f"{name}: {getattr(value, 'value', value)}")
    return paths


def release_abandoned_runs(instance: Any) -> None:
    """Runs of an earlier demo that was killed (kill -9, power loss) still hold their "duckdb" pool
    slot and would block this one forever; mark them failed and free their slots."""
    import psutil

    for run_id in instance.event_log_storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        if run is None:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            continue
        pid = run.tags.get(PID_TAG)
        if pid is None or (pid.isdigit() and psutil.pid_exists(int(pid)) and int(pid) != os.getpid()):
            continue  # not a demo run, or its process is alive
        if not run.is_finished:
            instance.report_run_failed(run, "the demo process running it is gone (killed); slot released")
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        say(f"released run {run_id[:8]} of a demo that was killed")


def quiet_run_config() -> dict[str, Any]:
    return {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.demo", description=__doc__)
    parser.add_argument("--days", type=int, default=None, help="only the last N days of the sandbox window")
    parser.add_argument("--no-export", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()

    from orchestration.instance import open_instance
    from orchestration.settings import StepwiseConfigError, load_settings, set_environ

    # GA4 keeps revising its last days; the sandbox models that per request. The demo loads each day
    # once, so it asks for settled days, which makes the marts equal the sandbox's truth.
    set_environ("STEPWISE_SANDBOX_REVISIONS", "off", only_if_unset=True)
    try:
        # Every setting is checked before the instance, the sandbox or any file is touched.
        load_settings()
    except StepwiseConfigError as exc:
        say(f"configuration error: {exc}")
        say("nothing was written; fix the setting above and run `make demo` again")
        return 2
    # Created (or migrated) under the first-start lock: two first demos on one home both succeed.
    instance = open_instance()
    say(f"Dagster instance: {instance.root_directory}")

    from orchestration.connections import analyst_file_from_env, api_resources, data_source_label, get_sandbox

    # The resources the runs will use (api_resources picks sandbox or real): both sandbox means the
    # sandbox's own date range, else the last four weeks.
    sandbox_mode = data_source_label(*api_resources()) == "sandbox"
    if sandbox_mode:
        say("starting the built-in sandbox (synthetic GA4 + HubSpot; no credentials in the environment)")
        sandbox = get_sandbox()
        first, last = sandbox.start_date, sandbox.end_date
        say(f"SANDBOX MODE: serving on {sandbox.base_url}, data {first} .. {last}")
    else:
        last = dt.date.today() - dt.timedelta(days=1)
        first = last - dt.timedelta(days=27)
        say(f"real APIs configured: backfilling {first} .. {last}")
    if first is None or last is None:
        say("the sandbox store does not say its date range")
        return 2
    if args.days:
        first = max(first, last - dt.timedelta(days=args.days - 1))

    say("loading the Dagster definitions")
    from orchestration.definitions import defs
    from orchestration.settings import DAILY

    partition_keys = DAILY.get_partition_keys()
    if first.isoformat() not in partition_keys or last.isoformat() not in partition_keys:
        say(
            f"the window {first} .. {last} is outside the daily partitions ({DAILY.start:%Y-%m-%d} ..); "
            "set STEPWISE_START_DATE earlier"
        )
        return 2
    job = defs.resolve_job_def("stepwise_daily")
    release_abandoned_runs(instance)
    run_id = str(uuid.uuid4())
    total_steps = len(job.graph.node_defs) if hasattr(job, "graph") else 0
    say(f"backfill {first} .. {last} as one run of `stepwise_daily` ({total_steps} steps), run {run_id[:8]}")
    stop = threading.Event()
    follower = threading.Thread(target=follow_run, args=(instance, run_id, total_steps, stop), daemon=True)
    follower.start()
    try:
        result = job.execute_in_process(
            instance=instance,
            run_id=run_id,
            tags={
                RANGE_START_TAG: first.isoformat(),
                RANGE_END_TAG: last.isoformat(),
                "stepwise/trigger": "demo",
                PID_TAG: str(os.getpid()),
            },
            raise_on_error=False,
            run_config=quiet_run_config(),
        )
    finally:
        stop.set()
        follower.join(timeout=10)
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        for event in failures:
            data = event.step_failure_data
            message = data.user_failure_data.description if data and data.user_failure_data else None
            say(
                f"FAILED {event.step_key}: {message or (data.error.message.strip() if data and data.error else '')}"
            )
        say("the analyst file was not replaced; fix the error above and run `make demo` again")
        return 1

    checks = result.get_asset_check_evaluations()
    failed_checks = [c for c in checks if not c.passed]
    say(f"asset checks: {len(checks) - len(failed_checks)}/{len(checks)} passed")
    for check in failed_checks:
        say(f"  check {check.asset_key.to_user_string()}:{check.check_name} -> {check.severity.value}")

    export_paths: list[str] = []
    if not args.no_export:
        export_paths = run_exports(defs, instance)

    analyst_file = analyst_file_from_env()
    wall = time.monotonic() - started
    print("", flush=True)
    say(f"analyst file: {analyst_file}")
    say(f"open it with: make sql   (or duckdb.connect({str(analyst_file)!r}, read_only=True))")
    for line in headline(analyst_file):
        say(f"  {line}")
    if sandbox_mode:
        say("  (sandbox data: synthetic, not from a real GA4 property or HubSpot portal)")
    for path in export_paths:
        say(f"export {path}")
    say(f"wall time: {wall:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
