"""Publish group: the analyst copy of the warehouse."""

import dagster as dg

from orchestration.connections import Ga4Resource, HubSpotResource, data_source_label
from orchestration.defs.experiments import READOUT_KEY
from orchestration.defs.ingest import INGEST_ASSETS
from orchestration.model_lineage import MART_KEYS
from orchestration.settings import DUCKDB_POOL, OWNERS
from orchestration.warehouse import WarehouseResource

PUBLISH_KEY = dg.AssetKey(["publish", "analyst_duckdb"])
# Every ingest asset too, not only the ones a model reads (no model reads raw.hubspot_companies): a run
# whose ingest step failed stops before publishing, and the analyst file keeps its last good version.
INGEST_KEYS = sorted(
    {key for assets in INGEST_ASSETS for key in assets.keys}, key=lambda k: k.to_user_string()
)


@dg.asset(
    key=PUBLISH_KEY,
    group_name="publish",
    kinds={"duckdb", "python"},
    owners=OWNERS,
    pool=DUCKDB_POOL,
    deps=[*MART_KEYS, READOUT_KEY, *INGEST_KEYS],
    description=(
        "The analyst file (STEPWISE_ANALYST_DB, default data/stepwise.duckdb): after every mart is "
        "built and its blocking checks pass, the working warehouse is checkpointed, copied beside the "
        "analyst file in DuckDB storage version v1.4.0 (so DuckDB 1.4 LTS and later clients open it), "
        "checked, fsynced and renamed over it atomically. Readers see the old file or the new one, "
        "never a half-written one, and never hold a lock the pipeline needs."
    ),
)
def analyst_duckdb(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    ga4: Ga4Resource,
    hubspot: HubSpotResource,
) -> dg.MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        tables = con.execute(
            "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
            "WHERE schema_name IN ('raw', 'staging', 'marts') ORDER BY 1"
        ).fetchall()
    published = warehouse.publish()
    source = data_source_label(ga4, hubspot)
    context.log.info(f"published {len(tables)} tables to {published['analyst_file']} ({source} data)")
    marts = [name for name, _ in tables if name.startswith("marts.")]
    return dg.MaterializeResult(
        metadata={
            "analyst_file": dg.MetadataValue.path(published["analyst_file"]),
            "bytes": dg.MetadataValue.int(published["bytes"]),
            "storage_version": dg.MetadataValue.text(published["storage_version"]),
            "rows_copied": dg.MetadataValue.int(published["rows_copied"]),
            "tables": dg.MetadataValue.int(len(tables)),
            "marts": dg.MetadataValue.md("\n".join(f"- `{m}`" for m in marts) or "_none_"),
            "data_source": dg.MetadataValue.text(source),
        }
    )
