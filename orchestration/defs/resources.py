"""Resources and the executor for the whole code location."""

import dagster as dg

from orchestration.connections import build_resources


@dg.definitions
def resources() -> dg.Definitions:
    # In-process execution: every writing step is serialised by the "duckdb" pool anyway, and one
    # process per run means one in-process sandbox per run instead of one per step.
    return dg.Definitions(resources=build_resources(), executor=dg.in_process_executor)
