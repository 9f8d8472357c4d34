"""Staging and marts groups: one asset per table of the SQL model, checks beside them.

One run builds every table in one transaction. By default the build is incremental: the GA4 dates
and HubSpot records loaded since the last build are rebuilt, and a changed catalog, mapping, time
zone or model SQL turns it into a full build by itself (transforms.build). `full_rebuild: true` in
the run config (the `rebuild_models` job sets it) rebuilds everything. Lineage comes from the SQL
files (see orchestration/model_lineage.py).
"""

import datetime as dt
import re
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from orchestration import model_lineage
from orchestration.connections import Ga4Resource, HubSpotResource, data_source_label
from orchestration.defs.ingest import INGEST_ASSETS, RAW_TABLE_KEYS
from orchestration.model_lineage import ModelTable
from orchestration.settings import DUCKDB_POOL, OWNERS, PROJECT_ROOT, load_settings
from orchestration.table_meta import columns, ident, qualified, row_count, table_exists, table_metadata
from orchestration.warehouse import WarehouseResource
from transforms.catalog import ConfigError
from transforms.model_contracts import Model

MODEL_KINDS = {"duckdb", "sql"}
_INGEST_KEYS = {a.key for a in INGEST_ASSETS}

# Marts must be rebuilt every day: warn two hours after the scheduled run should have finished,
# fail once a whole day has been missed.
MART_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=26), warn_window=dt.timedelta(hours=25)
)


_MODEL_KEYS = {t.key for t in model_lineage.model_tables()}


def _dep_keys(table: ModelTable) -> list[dg.AssetKey]:
    """Inputs that are assets: raw tables and other model tables. Tables the runner writes from
    configuration (catalog, channel mapping) are part of every build, not separate assets."""
    keys = []
    for ref in table.inputs:
        schema, name = ref.split(".", 1)
        key = dg.AssetKey([schema, name])
        if key in _INGEST_KEYS or key in _MODEL_KEYS:
            keys.append(key)
        elif schema == "raw":  # one asset per account writes the table (STEPWISE_ACCOUNTS)
            keys.extend(RAW_TABLE_KEYS.get(name, []))
    return keys


def model_spec(table: ModelTable) -> dg.AssetSpec:
    is_mart = table.layer == "marts"
    return dg.AssetSpec(
        key=table.key,
        group_name=table.layer,
        kinds=MODEL_KINDS,
        owners=OWNERS,
        deps=_dep_keys(table),
        description=table.description or f"{table.fqn}, built by {table.sql_path}",
        freshness_policy=MART_FRESHNESS if is_mart else None,
        metadata={
            "dagster/table_name": f"stepwise.{table.fqn}",
            "sql_file": dg.MetadataValue.path(
                str(table.sql_path.relative_to(PROJECT_ROOT)) if table.sql_path else ""
            ),
            "write_strategy": table.extra.get("write", ""),
        },
    )


class ModelBuildConfig(dg.Config):
    full_rebuild: bool = Field(
        default=False,
        description="Rebuild every staging table and mart from raw, not only what was loaded since the last build.",
    )


@dg.multi_asset(
    name="warehouse_model",
    specs=[model_spec(t) for t in model_lineage.model_tables()],
    pool=DUCKDB_POOL,
    can_subset=False,
    description=(
        "Every staging table and mart, built by transforms.build.build_all from the SQL files in one "
        "transaction (readers of the working file see the previous build or this one)."
    ),
)
def warehouse_model(
    context: dg.AssetExecutionContext,
    config: ModelBuildConfig,
    warehouse: WarehouseResource,
    ga4: Ga4Resource,
    hubspot: HubSpotResource,
) -> Iterator[dg.MaterializeResult]:
    source = data_source_label(ga4, hubspot)
    if source == "sandbox":
        context.log.warning("SANDBOX MODE: staging and marts are built from synthetic sandbox data")
    try:
        with warehouse.connect() as con:
            result = model_lineage.build_models(con, dates=None if config.full_rebuild else "changed")
            context.log.info(f"{result.mode} build ({result.reason}) in {sum(result.seconds.values()):.2f}s")
            metadata = {
                t: table_metadata(
                    con,
                    t.layer,
                    t.name,
                    data_source=source,
                    extra={
                        "build_mode": result.mode,
                        "build_seconds": dg.MetadataValue.float(round(result.seconds.get(t.fqn, 0.0), 4)),
                    },
                )
                for t in model_lineage.model_tables()
            }
    except ConfigError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    for table, meta in metadata.items():
        yield dg.MaterializeResult(asset_key=table.key, metadata=meta)


# --- checks ---------------------------------------------------------------------------------------

NUMERIC_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "REAL",
)
_RATE_COLUMN = re.compile(r"(^|_)rate(_|$)")


def _is_measure(dtype: str) -> bool:
    upper = dtype.upper()
    return upper.startswith(NUMERIC_TYPES) or upper.startswith("DECIMAL") or upper == "BOOLEAN"


def contract(table: ModelTable) -> Model:
    """The table's model contract (transforms.model_contracts): its key, not-null and accepted values."""
    found = table.extra.get("contract")
    if not isinstance(found, Model):
        raise TypeError(f"{table.fqn} has no model contract")
    return found


def key_columns(table: ModelTable) -> list[str]:
    """The grain: the key its contract declares."""
    return list(contract(table).key)


def _missing(table: ModelTable) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, description=f"{table.fqn} does not exist in the warehouse")


def build_not_empty_check(table: ModelTable) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=table.key,
        name="not_empty",
        blocking=table.layer == "marts",
        pool=DUCKDB_POOL,
        description=f"{table.fqn} has at least one row (blocks the publish when a mart is empty).",
    )
    def not_empty(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=True) as con:
            if not table_exists(con, table.layer, table.name):
                return _missing(table)
            rows = row_count(con, table.layer, table.name)
        return dg.AssetCheckResult(passed=rows > 0, metadata={"rows": rows})

    return not_empty


def build_unique_keys_check(table: ModelTable) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=table.key,
        name="unique_keys",
        blocking=table.layer == "marts",
        pool=DUCKDB_POOL,
        description=f"No two rows of {table.fqn} share its key ({', '.join(key_columns(table))}), from its contract.",
    )
    def unique_keys(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=True) as con:
            if not table_exists(con, table.layer, table.name):
                return _missing(table)
            keys = key_columns(table)
            key_list = ", ".join(ident(k) for k in keys)
            duplicates, example = con.execute(
                f"SELECT count(*), any_value(k) FROM (SELECT CAST(struct_pack({key_list}) AS VARCHAR) AS k "
                f"FROM {qualified(table.layer, table.name)} GROUP BY ALL HAVING count(*) > 1)"
            ).fetchall()[0]
        return dg.AssetCheckResult(
            passed=duplicates == 0,
            metadata={
                "key_columns": dg.MetadataValue.json(keys),
                "duplicated_keys": int(duplicates),
                "example": dg.MetadataValue.text(str(example or "")),
            },
        )

    return unique_keys


def build_not_null_check(table: ModelTable) -> dg.AssetChecksDefinition:
    names = contract(table).not_null

    @dg.asset_check(
        asset=table.key,
        name="not_null",
        blocking=False,
        pool=DUCKDB_POOL,
        description=f"The columns {table.fqn}'s contract declares NOT NULL hold no NULL: {', '.join(names)}.",
    )
    def not_null(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=True) as con:
            if not table_exists(con, table.layer, table.name):
                return _missing(table)
            counts = con.execute(
                "SELECT "
                + ", ".join(f"count(*) FILTER (WHERE {ident(n)} IS NULL)" for n in names)
                + f" FROM {qualified(table.layer, table.name)}"
            ).fetchall()[0]
        bad = {n: int(c) for n, c in zip(names, counts, strict=True) if c}
        return dg.AssetCheckResult(
            passed=not bad,
            metadata={"columns": dg.MetadataValue.json(names), "null_rows": dg.MetadataValue.json(bad)},
            description=None if not bad else f"NULLs in NOT NULL columns: {bad}",
        )

    return not_null


def build_accepted_values_check(table: ModelTable) -> dg.AssetChecksDefinition:
    accepted = contract(table).accepted_values

    @dg.asset_check(
        asset=table.key,
        name="accepted_values",
        blocking=False,
        pool=DUCKDB_POOL,
        description=f"Columns of {table.fqn} hold only the values its contract accepts: "
        + "; ".join(f"{c}: {' | '.join(v)}" for c, v in accepted.items()),
    )
    def accepted_values(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        unexpected: dict[str, list[str]] = {}
        with warehouse.connect(read_only=True) as con:
            if not table_exists(con, table.layer, table.name):
                return _missing(table)
            for column, values in accepted.items():
                found = con.execute(
                    f"SELECT DISTINCT CAST({ident(column)} AS VARCHAR) AS v FROM {qualified(table.layer, table.name)} "
                    f"WHERE {ident(column)} IS NOT NULL AND v NOT IN (SELECT unnest(?::VARCHAR[])) ORDER BY 1 LIMIT 10",
                    [list(values)],
                ).fetchall()
                if found:
                    unexpected[column] = [r[0] for r in found]
        return dg.AssetCheckResult(
            passed=not unexpected,
            metadata={"unexpected_values": dg.MetadataValue.json(unexpected)},
            description=None if not unexpected else f"values outside the contract: {unexpected}",
        )

    return accepted_values


RATE_EPSILON = 1e-9  # floating-point noise of interval formulas, not a real excursion


def build_rates_check(table: ModelTable) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=table.key,
        name="rates_within_0_1",
        blocking=True,
        pool=DUCKDB_POOL,
        description=(
            f"Every rate column of {table.fqn} and its interval lies in [0, 1]; rates documented as "
            "events per session ('can exceed 1') must be non-negative."
        ),
    )
    def rates_within_0_1(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=True) as con:
            if not table_exists(con, table.layer, table.name):
                return _missing(table)
            rate_cols = [
                (name, "can exceed 1" not in (comment or ""))
                for name, dtype, comment in columns(con, table.layer, table.name)
                if _RATE_COLUMN.search(name) and "lift" not in name and _is_measure(dtype)
            ]
            bad: dict[str, int] = {}
            for name, bounded in rate_cols:
                col = ident(name)
                upper = f" OR {col} > 1 + {RATE_EPSILON}" if bounded else ""
                n = con.execute(
                    f"SELECT count(*) FROM {qualified(table.layer, table.name)} "
                    f"WHERE {col} < -{RATE_EPSILON}{upper} OR isnan({col}::DOUBLE)"
                ).fetchall()[0][0]
                if n:
                    bad[name] = int(n)
        return dg.AssetCheckResult(
            passed=not bad,
            metadata={
                "proportions": dg.MetadataValue.json([n for n, b in rate_cols if b]),
                "per_session_rates": dg.MetadataValue.json([n for n, b in rate_cols if not b]),
                "rows_out_of_range": dg.MetadataValue.json(bad),
            },
            description=None if not bad else f"rates out of range: {bad}",
        )

    return rates_within_0_1


def _tolerance(env: str, default: float) -> float:
    settings = load_settings()
    return {
        "STEPWISE_RECONCILE_TOLERANCE": settings.reconcile_tolerance,
        "STEPWISE_LEADS_TOLERANCE": settings.leads_tolerance,
    }[env]


@dg.asset_check(
    asset=dg.AssetKey(["marts", "web_sessions_daily"]),
    name="sessions_reconcile_with_total",
    blocking=True,
    pool=DUCKDB_POOL,
    additional_deps=RAW_TABLE_KEYS.get("ga4_landing_pages", []),
    description=(
        "Per day and property, sessions summed over every segment equal the property's total sessions "
        "(from the unsegmented-by-device GA4 landing-page report) within STEPWISE_RECONCILE_TOLERANCE "
        "(default 1 %). Sessions are additive across segments; users are not and are not checked."
    ),
)
def sessions_reconcile_with_total(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    tolerance = _tolerance("STEPWISE_RECONCILE_TOLERANCE", 0.01)
    table = ModelTable("marts", "web_sessions_daily", None)
    with warehouse.connect(read_only=True) as con:
        if not table_exists(con, "marts", "web_sessions_daily"):
            return _missing(table)
        if not table_exists(con, "raw", "ga4_landing_pages"):
            return dg.AssetCheckResult(passed=False, description="raw.ga4_landing_pages is missing")
        cols = {name for name, _, _ in columns(con, "marts", "web_sessions_daily")}
        # Long layout (one row per segment dimension and value): every dimension must add up on its own.
        per = "segment_dimension" if "segment_dimension" in cols else "'all segments'"
        rows = con.execute(
            f"""
            WITH seg AS (
                SELECT date, property_id, {per} AS dimension, sum(sessions) AS sessions
                FROM marts.web_sessions_daily GROUP BY ALL
            ), total AS (
                SELECT date, property_id, sum(sessions) AS sessions FROM raw.ga4_landing_pages GROUP BY ALL
            )
            SELECT seg.date, seg.property_id, seg.dimension, seg.sessions, total.sessions
            FROM seg FULL JOIN total USING (date, property_id)
            WHERE coalesce(seg.sessions, 0) <> coalesce(total.sessions, 0)
            ORDER BY 1, 2, 3
            """
        ).fetchall()
        days = con.execute(
            "SELECT count(DISTINCT (date, property_id)) FROM marts.web_sessions_daily"
        ).fetchall()[0][0]
    off = [
        {"date": str(d), "property_id": p, "dimension": dim, "segments": s, "total": t}
        for d, p, dim, s, t in rows
        if abs((s or 0) - (t or 0)) > tolerance * max(s or 0, t or 0, 1)
    ]
    return dg.AssetCheckResult(
        passed=not off,
        metadata={
            "days_checked": int(days),
            "days_off": len(off),
            "tolerance": tolerance,
            "examples": dg.MetadataValue.json(off[:10]),
        },
        description=None if not off else f"{len(off)} day(s) where segments do not add up to the total",
    )


@dg.asset_check(
    asset=dg.AssetKey(["marts", "channel_funnel_daily"]),
    name="ga4_leads_match_hubspot_contacts",
    blocking=False,
    pool=DUCKDB_POOL,
    description=(
        "Per day and channel, GA4 generate_lead events and HubSpot contacts created agree within "
        "STEPWISE_LEADS_TOLERANCE (default 10 %, and at least 2): the two sources see the same people."
    ),
)
def ga4_leads_match_hubspot_contacts(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    tolerance = _tolerance("STEPWISE_LEADS_TOLERANCE", 0.10)
    table = ModelTable("marts", "channel_funnel_daily", None)
    with warehouse.connect(read_only=True) as con:
        if not table_exists(con, "marts", "channel_funnel_daily"):
            return _missing(table)
        # One row per property (and its paired portal): a portal's contacts are compared with its own
        # property's leads, each on its own local days; a web-only property has no contacts to compare.
        rows = con.execute(
            "SELECT date, channel, property_id, coalesce(leads, 0), coalesce(contacts_created, 0) "
            "FROM marts.channel_funnel_daily WHERE date IS NOT NULL AND (portal_id IS NOT NULL OR NOT EXISTS "
            "(SELECT 1 FROM marts.channel_funnel_daily WHERE portal_id IS NOT NULL)) ORDER BY 1, 2, 3"
        ).fetchall()
        # Records without a creation date (merged-away contacts HubSpot only names) have no day to
        # compare on; they are counted, not compared.
        undated = con.execute(
            "SELECT coalesce(sum(contacts_created), 0) FROM marts.channel_funnel_daily WHERE date IS NULL"
        ).fetchall()[0][0]
    off = [
        {"date": str(d), "channel": c, "ga4_leads": int(lead), "hubspot_contacts": int(n)}
        | {"property_id": prop}
        for d, c, prop, lead, n in rows
        if abs(lead - n) > max(2.0, tolerance * max(lead, n))
    ]
    exact = sum(1 for _, _, _, lead, n in rows if lead == n)
    return dg.AssetCheckResult(
        passed=not off,
        metadata={
            "day_channels": len(rows),
            "exactly_equal": exact,
            "undated_contacts": int(undated),
            "outside_tolerance": len(off),
            "tolerance": tolerance,
            "examples": dg.MetadataValue.json(off[:10]),
        },
        description=None if not off else f"{len(off)} day/channel pairs disagree beyond the tolerance",
    )


# Tables that are empty when all is well: no anomaly is good news, and no day can be scored before the
# warehouse holds 28 baseline days. No not_empty check on them.
MAY_BE_EMPTY = {"marts.conversion_anomalies", "staging.conversion_anomaly_scores"}


def checks_for(table: ModelTable) -> list[dg.AssetChecksDefinition]:
    checks = [build_unique_keys_check(table)]
    if table.fqn not in MAY_BE_EMPTY:
        checks.insert(0, build_not_empty_check(table))
    if contract(table).not_null:
        checks.append(build_not_null_check(table))
    if contract(table).accepted_values:
        checks.append(build_accepted_values_check(table))
    if table.layer == "marts":
        checks.append(build_rates_check(table))
    return checks


MODEL_CHECKS = [check for t in model_lineage.model_tables() for check in checks_for(t)]
