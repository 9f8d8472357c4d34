"""Experiments: the GA4 experiment reports (ingest group), `marts.experiment_readout` (marts group) and the
sample-ratio-mismatch check beside it.

The experiments file (STEPWISE_EXPERIMENTS, default transforms/config/experiments.yaml) is validated with
the conversion catalog before anything else: a bad file stops the run with one message naming the file and
line, before any GA4 call. Then the GA4 fields are checked against each property's metadata and the exact
requests against checkCompatibility, still before any report. Each run reads every running experiment's
whole window (users are not additive over days) up to the partition range's last day.
"""

import datetime as dt
from typing import Any

import dagster as dg

from connectors.ga4 import Ga4ConfigError
from connectors.ga4.experiments import ExperimentQuery, fetch_experiment, validate_experiments
from orchestration import ingest_writes
from orchestration.connections import Ga4Resource, HubSpotResource, data_source_label
from orchestration.defs.ingest import (
    CONFIG_ERRORS,
    INGEST_GROUP,
    SINGLE_RUN,
    clear_failure,
    partition_dates,
    request_metadata,
    warn_if_sandbox,
)
from orchestration.defs.models import MART_FRESHNESS, checks_for
from orchestration.model_lineage import ModelTable, load_model_config
from orchestration.settings import DAILY, DUCKDB_POOL, OWNERS
from orchestration.table_meta import table_exists, table_metadata
from orchestration.warehouse import WarehouseResource
from transforms import experiments as experiments_mart
from transforms.experiments_config import DEFAULT_EXPERIMENTS_PATH, ExperimentsConfig, load_experiments
from transforms.model_contracts import parse_model

RAW_KEY = dg.AssetKey(["raw", "ga4_experiments"])
READOUT_KEY = dg.AssetKey(["marts", "experiment_readout"])
READOUT_TABLE = ModelTable(
    "marts",
    "experiment_readout",
    experiments_mart.READOUT_SQL,
    extra={"contract": parse_model(experiments_mart.READOUT_SQL)},
)


def load_experiments_config() -> tuple[Any, ExperimentsConfig]:
    """(conversion catalog, experiments) from STEPWISE_CATALOG / STEPWISE_EXPERIMENTS or the shipped
    defaults; raises transforms' ConfigError (file, line, field, fix)."""
    from orchestration.settings import SETTINGS_BY_NAME, load_settings, resolve_path

    catalog, _mapping = load_model_config()
    chosen = load_settings().experiments_path
    # The shipped default resolves inside transforms/config wherever the repository is.
    path = (
        DEFAULT_EXPERIMENTS_PATH
        if chosen == SETTINGS_BY_NAME["STEPWISE_EXPERIMENTS"].default
        else resolve_path(chosen)
    )
    return catalog, load_experiments(path, catalog)


def experiment_queries(catalog: Any, config: ExperimentsConfig) -> list[ExperimentQuery]:
    return [
        ExperimentQuery(
            e.name,
            tuple(v.audience for v in e.variants),
            tuple(dict.fromkeys(catalog.by_name(n).signal for n in (*e.micro, *e.macro))),
        )
        for e in config.experiments
    ]


@dg.asset(
    key=RAW_KEY,
    group_name=INGEST_GROUP,
    kinds={"ga4", "duckdb"},
    owners=OWNERS,
    pool=DUCKDB_POOL,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    description=(
        "Per configured experiment (STEPWISE_EXPERIMENTS) and GA4 property: users of each variant's audience "
        "over the experiment's window, and those of them who fired each read-out conversion (GA4 audienceName "
        "[+ eventName] x totalUsers, one window-long request each, replaced whole on every run)."
    ),
    metadata={"dagster/table_name": "stepwise.raw.ga4_experiments", "ga4_report": "experiments"},
)
def ga4_experiments(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, ga4: Ga4Resource
) -> dg.MaterializeResult:
    _start, end = partition_dates(context)
    warn_if_sandbox(context, ga4)
    fetched = []
    try:
        warehouse.check_config()
        catalog, config = load_experiments_config()  # a bad file stops here, before any API call
        queries = experiment_queries(catalog, config)
        with warehouse.connect() as con:  # (the working file may not exist yet: not read-only)
            read_through = experiments_mart.windows_read(con)
        client = ga4.make_client(run_id=context.run.run_id)
        if queries:
            validate_experiments(client, queries, source=str(config.path))
        for property_id in ga4.property_id_list():
            for experiment, query in zip(config.experiments, queries, strict=True):
                # Re-running an older partition must not shrink a window already read further: read up to
                # the later of this range's last day and the last day read before.
                through = max(end, read_through.get((property_id, experiment.name), end))
                window = experiment.window(through + dt.timedelta(days=1))
                if window is None:
                    context.log.info(f"experiment {experiment.name}: not started by {end}")
                    continue
                context.log.info(
                    f"GA4 experiment {experiment.name}: property {property_id}, {window[0]}..{window[1]}"
                )
                fetched.append(
                    (property_id, experiment.name, fetch_experiment(client, property_id, query, *window))
                )
    except (*CONFIG_ERRORS, Ga4ConfigError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except Exception as exc:
        raise clear_failure(exc, "GA4 experiments") from exc
    import pyarrow as pa

    from connectors.ga4.experiments import experiment_schema

    table = pa.concat_tables([t for _, _, t in fetched]) if fetched else experiment_schema().empty_table()
    with warehouse.connect() as con:
        rows = experiments_mart.load_raw_experiments(
            con,
            table,
            replaced=[(p, e) for p, e, _ in fetched],
            partition_key=f"{_start}..{end}",
            keep_only=[e.name for e in config.experiments],
        )
        ingest_writes.append_request_log(con, list(client.request_log), run_id=context.run.run_id)
        meta = table_metadata(
            con,
            "raw",
            "ga4_experiments",
            data_source=ga4.data_source(),
            extra={
                **request_metadata(list(client.request_log)),
                "rows_loaded": dg.MetadataValue.int(rows),
                "experiments_read": dg.MetadataValue.json(sorted({e for _, e, _ in fetched})),
                "through": dg.MetadataValue.text(str(end)),
            },
        )
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    key=READOUT_KEY,
    group_name="marts",
    kinds={"duckdb", "python"},
    owners=OWNERS,
    pool=DUCKDB_POOL,
    deps=[RAW_KEY, dg.AssetKey(["marts", "conversion_catalog"])],
    freshness_policy=MART_FRESHNESS,
    description=(
        "marts.experiment_readout: per experiment x variant x conversion, exposed users, converters, rate with "
        "interval, lift vs control with its ALWAYS-VALID interval and p-value (fixed-horizon beside), SRM "
        "p-value and flag, and the verdict in words. Built by transforms.experiments from "
        "transforms/sql/experiments/experiment_readout.sql."
    ),
    metadata={
        "dagster/table_name": "stepwise.marts.experiment_readout",
        "sql_file": dg.MetadataValue.path("transforms/sql/experiments/experiment_readout.sql"),
    },
)
def experiment_readout(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    ga4: Ga4Resource,
    hubspot: HubSpotResource,
) -> dg.MaterializeResult:
    try:
        catalog, config = load_experiments_config()
    except CONFIG_ERRORS as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    with warehouse.connect() as con:
        rows = experiments_mart.build_experiment_readout(con, config, catalog)
        verdicts = con.execute(
            "SELECT experiment, any_value(verdict) FROM marts.experiment_readout GROUP BY 1 ORDER BY 1"
        ).fetchall()
        meta = table_metadata(
            con,
            "marts",
            "experiment_readout",
            data_source=data_source_label(ga4, hubspot),
            extra={"verdicts": dg.MetadataValue.json({e: v for e, v in verdicts})},
        )
    context.log.info(f"experiment_readout: {rows} rows; " + "; ".join(f"{e}: {v}" for e, v in verdicts))
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(
    asset=READOUT_KEY,
    name="no_sample_ratio_mismatch",
    blocking=False,
    pool=DUCKDB_POOL,
    description=(
        "FAILS (severity ERROR) when an experiment's users per variant differ from its planned split beyond "
        "chance (chi-square p < 0.001): assignment or tracking is broken and its lifts must not be read. Not "
        "blocking: the readout still publishes, with the experiment's verdict saying 'do not read'."
    ),
)
def no_sample_ratio_mismatch(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        if not table_exists(con, "marts", "experiment_readout"):
            return dg.AssetCheckResult(passed=False, description="marts.experiment_readout does not exist")
        rows = con.execute(
            """
            SELECT experiment, any_value(srm_p_value), bool_or(srm_flag),
                list(DISTINCT variant || ': ' || users::VARCHAR || ' users (planned ' || round(planned_share * 100, 1)::VARCHAR || ' %)' ORDER BY variant || ': ' || users::VARCHAR || ' users (planned ' || round(planned_share * 100, 1)::VARCHAR || ' %)')
            FROM marts.experiment_readout GROUP BY experiment ORDER BY experiment
            """
        ).fetchall()
    flagged = {e: {"srm_p_value": p, "variants": v} for e, p, f, v in rows if f}
    return dg.AssetCheckResult(
        passed=not flagged,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "experiments_checked": len(rows),
            "mismatched": dg.MetadataValue.json(flagged),
            "srm_p_values": dg.MetadataValue.json({e: p for e, p, _f, _v in rows}),
        },
        description=None
        if not flagged
        else "sample-ratio mismatch in " + ", ".join(sorted(flagged)) + ": do not read their lifts",
    )


READOUT_CHECKS = checks_for(READOUT_TABLE)
