"""Staging and marts groups: one asset per table of the SQL model, checks beside them.

Each asset rebuilds its whole table from the layer below (DuckDB does this in well under a second
at daily-report sizes), so a backfill of any range ends with consistent marts. Lineage comes from
the SQL files (see orchestration/model.py).
"""

import datetime as dt

import dagster as dg

from orchestration import model
from orchestration.defs.ingest import INGEST_ASSETS
from orchestration.model import ModelTable
from orchestration.resources import Ga4Resource, HubSpotResource, WarehouseResource, data_source_label
from orchestration.settings import DUCKDB_POOL, OWNERS, schedule_hour
from orchestration.table_meta import table_metadata

MODEL_KINDS = {"duckdb", "sql"}
_INGEST_KEYS = {a.key for a in INGEST_ASSETS}

# Marts must be rebuilt every day: warn two hours after the scheduled run should have finished,
# fail once a whole day has been missed.
MART_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=26), warn_window=dt.timedelta(hours=25)
)


def _dep_keys(table: ModelTable) -> list[dg.AssetKey]:
    keys = []
    for ref in table.inputs:
        schema, name = ref.split(".", 1)
        key = dg.AssetKey([schema, name])
        if schema != "raw" or key in _INGEST_KEYS:
            keys.append(key)
    return keys


def build_model_asset(table: ModelTable) -> dg.AssetsDefinition:
    is_mart = table.layer == "marts"

    @dg.asset(
        key=table.key,
        group_name=table.layer,
        kinds=MODEL_KINDS,
        owners=OWNERS,
        pool=DUCKDB_POOL,
        deps=_dep_keys(table),
        description=table.description
        or f"{table.fqn}, built by transforms/sql/{table.layer}/{table.name}.sql",
        freshness_policy=MART_FRESHNESS if is_mart else None,
        metadata={
            "dagster/table_name": f"stepwise.{table.fqn}",
            "sql_file": dg.MetadataValue.path(str(table.sql_path)) if table.sql_path else "",
            "schedule_hour": schedule_hour(),
        },
    )
    def model_asset(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        ga4: Ga4Resource,
        hubspot: HubSpotResource,
    ) -> dg.MaterializeResult:
        source = data_source_label(ga4, hubspot)
        if source == "sandbox":
            context.log.warning(f"SANDBOX MODE: {table.fqn} is built from synthetic sandbox data")
        with warehouse.connect() as con:
            model.build_table(con, table)
            meta = table_metadata(con, table.layer, table.name, data_source=source)
        return dg.MaterializeResult(metadata=meta)

    return model_asset


MODEL_ASSETS = [build_model_asset(t) for t in model.model_tables()]
