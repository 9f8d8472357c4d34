"""Runs account jobs of the Stepwise definitions in a fresh process (test_many_accounts.py).

The definitions read STEPWISE_ACCOUNTS when their modules are imported, so a test that needs the
per-account shape loads them here rather than in the pytest process (whose definitions are the
shorthand's). Runs go to the real Dagster instance at DAGSTER_HOME. Argument: a JSON list of
{"job", "start", "end", "assets"?}; prints one JSON line per run after RESULT.
"""

from __future__ import annotations

import json
import sys

import dagster as dg

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def _error_text(error: object) -> str:
    """The failure's message and its causes' (Dagster wraps a step's exception in its own)."""
    parts = []
    while error is not None and len(parts) < 4:
        parts.append(str(getattr(error, "message", "")).strip())
        error = getattr(error, "cause", None)
    return " <- ".join(p for p in parts if p)


def main(plan: list[dict]) -> None:
    from orchestration.definitions import defs

    with dg.DagsterInstance.get() as instance:
        for item in plan:
            job = defs.resolve_job_def(item["job"])
            selection = [dg.AssetKey.from_user_string(a) for a in item.get("assets", [])] or None
            result = job.execute_in_process(
                instance=instance,
                tags={RANGE_START_TAG: item["start"], RANGE_END_TAG: item["end"]},
                asset_selection=selection,
                raise_on_error=False,
            )
            failures = {
                e.step_key: _error_text(e.step_failure_data.error)
                for e in result.all_events
                if e.is_step_failure
            }
            done = sorted(
                e.asset_key.to_user_string()
                for e in result.all_events
                if e.is_step_materialization and e.asset_key
            )
            print(
                "RESULT "
                + json.dumps(
                    {
                        "job": item["job"],
                        "run_id": result.run_id,
                        "success": result.success,
                        "failures": failures,
                        "materialized": done,
                    }
                ),
                flush=True,
            )


def describe(instants: list[str]) -> None:
    """The per-account shape: each job's partitions zone, each schedule's zone, and what each schedule
    requests at the given UTC instants."""
    import datetime as dt

    from orchestration.definitions import defs

    jobs = {
        j.name: getattr(j.partitions_def, "timezone", None)
        for j in defs.resolve_all_job_defs()
        if j.name.startswith("stepwise_")
    }
    schedules: dict[str, dict] = {}
    with dg.instance_for_test() as instance:
        for schedule in defs.get_repository_def().schedule_defs:
            if not schedule.name.startswith("stepwise_"):
                continue
            requests = {}
            for instant in instants:
                when = dt.datetime.fromisoformat(instant)
                context = dg.build_schedule_context(
                    instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
                )
                data = schedule.evaluate_tick(context)
                requests[instant] = [(r.partition_key, r.run_key) for r in data.run_requests or []]
            schedules[schedule.name] = {
                "job": schedule.job_name,
                "cron": schedule.cron_schedule,
                "zone": schedule.execution_timezone,
                "requests": requests,
            }
    keys = sorted(k.to_user_string() for k in defs.resolve_all_asset_keys())
    print("RESULT " + json.dumps({"jobs": jobs, "schedules": schedules, "keys": keys}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "describe":
        describe(sys.argv[2:])
    else:
        main(json.loads(sys.argv[1]))
