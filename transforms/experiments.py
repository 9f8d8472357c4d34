"""Experiments in the warehouse: load `raw.ga4_experiments`, build `marts.experiment_readout`.

The counts come from SQL (transforms/sql/experiments/experiment_readout.sql, run in DuckDB over raw and
the configuration registered as two small tables); the statistics from transforms.stats_sequential on the
few resulting rows (vectorised); the table and every column carry the comments of the SQL header.
One transaction: readers see the previous readout or the new one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from transforms import stats_sequential as seq
from transforms.catalog import Catalog
from transforms.experiments_config import ExperimentsConfig
from transforms.model_contracts import parse_model
from transforms.stats import wilson_interval
from transforms.write_strategies import apply_comments

__all__ = [
    "RAW_TABLE",
    "READOUT_SQL",
    "build_experiment_readout",
    "load_raw_experiments",
    "verdict",
    "windows_read",
]

RAW_TABLE = "raw.ga4_experiments"
READOUT_SQL = Path(__file__).resolve().parent / "sql" / "experiments" / "experiment_readout.sql"
RAW_DDL = f"""
CREATE TABLE IF NOT EXISTS {RAW_TABLE} (
    property_id VARCHAR, experiment VARCHAR, window_start DATE, window_end DATE, audience_name VARCHAR,
    event_name VARCHAR, total_users BIGINT, subject_to_thresholding BOOLEAN, data_loss_from_other_row BOOLEAN,
    sampled BOOLEAN, _loaded_at TIMESTAMP, _source_id VARCHAR, _partition_key VARCHAR
)
"""


def load_raw_experiments(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table,
    *,
    replaced: list[tuple[str, str]],
    partition_key: str,
    keep_only: list[str] | None = None,
) -> int:
    """Replace the rows of each (property_id, experiment) in ``replaced`` by ``table``'s, in one transaction.

    A window is read whole each time (users are not additive over days), so its rows replace the previous
    window's. ``keep_only``: experiment names still configured; rows of the others are deleted."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(RAW_DDL)
    con.execute("BEGIN TRANSACTION")
    try:
        if keep_only is not None:
            con.execute(
                f"DELETE FROM {RAW_TABLE} WHERE NOT list_contains($names, experiment)", {"names": keep_only}
            )
        for property_id, experiment in replaced:
            con.execute(
                f"DELETE FROM {RAW_TABLE} WHERE property_id = $p AND experiment = $e",
                {"p": property_id, "e": experiment},
            )
        con.register("sw_new_experiment_rows", table)
        con.execute(
            f"""
            INSERT INTO {RAW_TABLE}
            SELECT property_id, experiment, window_start, window_end, audience_name, event_name, total_users,
                subject_to_thresholding, data_loss_from_other_row, sampled,
                $loaded_at, property_id, $partition_key
            FROM sw_new_experiment_rows
            """,
            {"loaded_at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "partition_key": partition_key},
        )
        con.unregister("sw_new_experiment_rows")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return table.num_rows


def windows_read(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dt.date]:
    """(property_id, experiment) -> the last day of the window read so far ({} before the first load)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'raw' AND table_name = 'ga4_experiments'"
    ).fetchall()[0][0]
    if not exists:
        return {}
    rows = con.execute(
        f"SELECT property_id, experiment, max(window_end) FROM {RAW_TABLE} GROUP BY ALL"
    ).fetchall()
    return {(p, e): d for p, e, d in rows}


def _config_tables(config: ExperimentsConfig, catalog: Catalog) -> tuple[pa.Table, pa.Table]:
    variants: dict[str, list[Any]] = {
        k: []
        for k in ("experiment", "variant", "audience_name", "is_control", "planned_share", "variant_order")
    }
    conversions: dict[str, list[Any]] = {
        k: [] for k in ("experiment", "conversion_name", "tier", "event_name", "conversion_order")
    }
    for experiment in config.experiments:
        ordered = sorted(experiment.variants, key=lambda v: v.name != experiment.control)  # control first
        for i, variant in enumerate(ordered):
            variants["experiment"].append(experiment.name)
            variants["variant"].append(variant.name)
            variants["audience_name"].append(variant.audience)
            variants["is_control"].append(variant.name == experiment.control)
            variants["planned_share"].append(variant.planned_share)
            variants["variant_order"].append(i)
        for i, (name, tier) in enumerate(
            [(n, "micro") for n in experiment.micro] + [(n, "macro") for n in experiment.macro]
        ):
            conversions["experiment"].append(experiment.name)
            conversions["conversion_name"].append(name)
            conversions["tier"].append(tier)
            conversions["event_name"].append(catalog.by_name(name).signal)
            conversions["conversion_order"].append(i)
    return pa.table(variants), pa.table(conversions)


def _direction(significant: bool, lift: float) -> str:
    if not significant or not np.isfinite(lift):
        return "flat"
    return "up" if lift > 0 else "down"


def verdict(
    srm_flag: bool,
    micro: list[tuple[bool, float]],
    macro: list[tuple[bool, float]],
    macro_mdl: float,
    prefix: str = "",
) -> str:
    """The experiment's readout in words for one treatment variant: (significant, lift) per conversion."""
    if srm_flag:
        return "sample-ratio mismatch: do not read"

    def summary(items: list[tuple[bool, float]]) -> str:
        directions = {_direction(s, lift) for s, lift in items}
        if "up" in directions and "down" in directions:
            return "mixed"
        return "up" if "up" in directions else "down" if "down" in directions else "flat"

    micro_dir, macro_dir = summary(micro), summary(macro)
    if micro_dir == macro_dir == "flat":
        mdl = f"{macro_mdl:.0%}" if np.isfinite(macro_mdl) else "unknown"
        text = f"no detectable difference, minimum detectable lift {mdl.replace('%', ' %')}"
    elif micro_dir == macro_dir:
        text = f"both {micro_dir}"
    else:
        text = f"micro {micro_dir}, macro {macro_dir}"
    return prefix + text


def _statistics(counts: pa.Table) -> dict[str, np.ndarray]:
    """Per row: rate and its interval; against the control row of the same experiment and conversion: lift
    and its always-valid and fixed-horizon figures; per experiment: SRM and the verdict."""
    exp = np.asarray(counts["experiment"].to_pylist(), dtype=object)
    conv = np.asarray(counts["conversion_name"].to_pylist(), dtype=object)
    variant = np.asarray(counts["variant"].to_pylist(), dtype=object)
    tier = np.asarray(counts["tier"].to_pylist(), dtype=object)
    is_control = np.asarray(counts["is_control"].to_pylist(), dtype=bool)
    users = np.asarray(counts["users"].to_pylist(), dtype=np.float64)
    converters = np.asarray(counts["converters"].to_pylist(), dtype=np.float64)
    planned = np.asarray(counts["planned_share"].to_pylist(), dtype=np.float64)
    n = users.shape[0]

    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(users > 0, converters / users, np.nan)
    rate_lo, rate_hi = wilson_interval(converters, users)

    # The control row of each (experiment, conversion), by a dictionary on the few rows.
    control_index = {(e, c): i for i, (e, c, k) in enumerate(zip(exp, conv, is_control, strict=True)) if k}
    # int64 even when there are no rows (no experiment data yet), so the empty array still indexes.
    ci = np.array([control_index.get((e, c), -1) for e, c in zip(exp, conv, strict=True)], dtype=np.int64)
    has_control = ci >= 0
    safe = np.where(has_control, ci, 0)
    lift = seq.lift_statistics(converters[safe], users[safe], converters, users)
    treat = has_control & ~is_control

    def only_treat(values: np.ndarray) -> np.ndarray:
        return np.where(treat, values, np.nan)

    p_value = only_treat(lift.p_value)
    significant = np.where(treat & np.isfinite(p_value), p_value < seq.ALPHA, False)

    # SRM per experiment: users per variant (the same on every conversion row; take the first conversion).
    srm = np.full(n, np.nan)
    observed_share = np.full(n, np.nan)
    verdicts = np.empty(n, dtype=object)
    for name in dict.fromkeys(exp.tolist()):
        rows = np.flatnonzero(exp == name)
        first_conv = conv[rows[0]]
        per_variant = rows[conv[rows] == first_conv]
        total = users[per_variant].sum()
        p_srm = seq.srm_p_value(users[per_variant], planned[per_variant])
        srm[rows] = p_srm
        share_of = {variant[i]: (users[i] / total if total > 0 else np.nan) for i in per_variant}
        observed_share[rows] = [share_of[variant[i]] for i in rows]
        flag = bool(np.isfinite(p_srm) and p_srm < seq.SRM_ALPHA)
        treatments = [variant[i] for i in per_variant if not is_control[i]]
        parts = []
        for t in treatments:
            t_rows = rows[variant[rows] == t]
            micro = [(bool(significant[i]), float(lift.lift[i])) for i in t_rows if tier[i] == "micro"]
            macro = [(bool(significant[i]), float(lift.lift[i])) for i in t_rows if tier[i] == "macro"]
            macro_mdl = [float(lift.minimum_detectable_lift[i]) for i in t_rows if tier[i] == "macro"]
            prefix = f"{t}: " if len(treatments) > 1 else ""
            parts.append(verdict(flag, micro, macro, min(macro_mdl) if macro_mdl else float("nan"), prefix))
        text = "sample-ratio mismatch: do not read" if flag else "; ".join(parts)
        verdicts[rows] = text or "no treatment variant"
    srm_flag = np.isfinite(srm) & (srm < seq.SRM_ALPHA)
    return {
        "rate": rate,
        "rate_ci_lower": rate_lo,
        "rate_ci_upper": rate_hi,
        "lift": only_treat(lift.lift),
        "lift_ci_lower": only_treat(lift.ci_lower),
        "lift_ci_upper": only_treat(lift.ci_upper),
        "p_value": p_value,
        "significant": significant,
        "significant_valid": treat & np.isfinite(p_value),
        "fixed_lift_ci_lower": only_treat(lift.fixed_ci_lower),
        "fixed_lift_ci_upper": only_treat(lift.fixed_ci_upper),
        "fixed_p_value": only_treat(lift.fixed_p_value),
        "minimum_detectable_lift": only_treat(lift.minimum_detectable_lift),
        "observed_share": observed_share,
        "srm_p_value": srm,
        "srm_flag": srm_flag,
        "verdict": verdicts,
    }


COLUMN_ORDER = (
    "experiment", "variant", "is_control", "audience_name", "conversion_name", "tier", "window_start",
    "window_end", "users", "converters", "rate", "rate_ci_lower", "rate_ci_upper", "lift", "lift_ci_lower",
    "lift_ci_upper", "p_value", "significant", "fixed_lift_ci_lower", "fixed_lift_ci_upper", "fixed_p_value",
    "minimum_detectable_lift", "planned_share", "observed_share", "srm_p_value", "srm_flag", "verdict",
    "subject_to_thresholding",
)  # fmt: skip


def build_experiment_readout(
    con: duckdb.DuckDBPyConnection, config: ExperimentsConfig, catalog: Catalog
) -> int:
    """(Re)build marts.experiment_readout from raw.ga4_experiments; returns its row count."""
    model = parse_model(READOUT_SQL)
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(RAW_DDL)
    variants, conversions = _config_tables(config, catalog)
    con.register("sw_experiment_variants", variants)
    con.register("sw_experiment_conversions", conversions)
    try:
        counts = con.sql(model.select_sql).to_arrow_table()
    finally:
        con.unregister("sw_experiment_variants")
        con.unregister("sw_experiment_conversions")
    figures = _statistics(counts)

    def floats(values: np.ndarray) -> pa.Array:
        arr = np.asarray(values, dtype=np.float64)
        return pa.array(arr, mask=~np.isfinite(arr))

    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in COLUMN_ORDER:
        if name in counts.column_names:
            columns[name] = counts[name]
        elif name == "significant":
            columns[name] = pa.array(figures["significant"], mask=~figures["significant_valid"])
        elif name in ("srm_flag",):
            columns[name] = pa.array(figures[name])
        elif name == "verdict":
            columns[name] = pa.array(list(figures[name]), pa.string())
        else:
            columns[name] = floats(figures[name])
    table = pa.table(columns)
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("sw_readout_rows", table)
        con.execute(f"CREATE OR REPLACE TABLE {model.qualified} AS SELECT * FROM sw_readout_rows")
        con.unregister("sw_readout_rows")
        apply_comments(con, model)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return table.num_rows
