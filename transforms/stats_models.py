"""The statistics models (write strategy replace_all_statistics): the SQL gives the counts, Python adds
the comparison statistics (transforms.stats, stats_clustered; methods in transforms/STATISTICS.md).

marts.segment_summary compares each segment with the rest of its dimension; marts.micro_macro_lift
compares the macro rate of those who did a micro conversion with those who did not.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from transforms import stats, stats_clustered
from transforms.model_contracts import ContractError, Model
from transforms.write_strategies import apply_comments, replace_from_arrow


def statistics_columns(model: Model, counts: pa.Table, gate: stats.MinimumSample) -> pa.Table:
    if model.name == "segment_summary":
        a, n1 = counts.column("conversions"), counts.column("units")
        c, n2 = counts.column("rest_conversions"), counts.column("rest_units")
        fam_cols: tuple[str, ...] = ("source_system", "conversion_name", "segment_dimension")
        excluded = np.zeros(counts.num_rows, dtype=bool)
    else:
        a, n1 = counts.column("did_macro"), counts.column("did_count")
        c, n2 = counts.column("did_not_macro"), counts.column("did_not_count")
        fam_cols = ("basis",)
        excluded = np.asarray(counts.column("is_prerequisite").to_numpy(zero_copy_only=False), dtype=bool)
    family_values = list(zip(*(counts.column(col).to_pylist() for col in fam_cols), strict=True))
    # Prerequisites are their own (untested) family: they never enter the q-values or ranks of the others.
    families: list[object] = [
        ("prerequisite",) if x else f for f, x in zip(family_values, excluded, strict=True)
    ]

    def floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=float)

    crude = (floats(a), floats(n1), floats(c), floats(n2))
    mh: stats.MantelHaenszel | None = None
    if "day_counts" in counts.column_names:
        import pyarrow.compute as pc

        # GA4 rows (day lists): day-clustered inference (transforms/stats_clustered.py, STATISTICS.md);
        # HubSpot rows (NULL list) are per contact and keep the plain comparison.
        day_counts = counts.column("day_counts").combine_chunks()
        flat_days = pc.list_flatten(day_counts)
        clustered_rows = np.asarray(day_counts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        day_arrays = (
            floats(flat_days.field("conversions")),
            floats(flat_days.field("units")),
            floats(flat_days.field("rest_conversions")),
            floats(flat_days.field("rest_units")),
            np.asarray(pc.list_parent_indices(day_counts).to_numpy(zero_copy_only=False), dtype=np.int64),
        )
        # Rows without days (HubSpot, clustered_rows False) get exactly compare_against_rest's statistics.
        assert clustered_rows[np.unique(day_arrays[4])].all()
        result, _ = stats_clustered.compare_day_clustered(*crude, day_arrays, families, gate)
        counts = counts.drop_columns(["day_counts"])
    elif "strata_counts" in counts.column_names:
        import pyarrow.compute as pc

        # Basis segment_day: Mantel-Haenszel over the per-segment strata listed by the SQL (STATISTICS.md);
        # the contact basis (NULL list) keeps the crude comparison.
        strata_counts = counts.column("strata_counts").combine_chunks()
        flat = pc.list_flatten(strata_counts)
        strata = (
            floats(flat.field("did_macro")),
            floats(flat.field("did_count")),
            floats(flat.field("did_not_macro")),
            floats(flat.field("did_not_count")),
            np.asarray(pc.list_parent_indices(strata_counts).to_numpy(zero_copy_only=False), dtype=np.int64),
        )
        stratified = np.asarray(strata_counts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        # Day cells of each stratum: the test permutes the micro's occurrence across a segment's days.
        permutation = tuple(
            floats(flat.field(f)) for f in ("cells", "did_cells", "sum_m2", "sum_mn", "sum_n2")
        )
        result, mh = stats.compare_with_strata(
            *crude,
            families,
            stratified,
            strata,
            gate,
            permutation=permutation,  # type: ignore[arg-type]
        )
        counts = counts.drop_columns(["strata_counts"])
    else:
        result = stats.compare_against_rest(*crude, families, gate)
    tested = result.tested & ~excluded
    gate_reason = np.where(
        excluded, "prerequisite of the macro (a step on its funnel path)", result.gate_reason
    )

    def masked(values: np.ndarray) -> pa.Array:
        return pa.array(np.where(tested, values, np.nan), pa.float64(), from_pandas=True)

    def finite(values: np.ndarray) -> pa.Array:
        return pa.array(values, pa.float64(), from_pandas=True)

    if model.name == "segment_summary":
        extra = {
            "rate": finite(result.rate),
            "rate_ci_low": finite(result.rate_ci_low),
            "rate_ci_high": finite(result.rate_ci_high),
            "rest_rate": finite(result.rest_rate),
        }
    else:
        from transforms.stats import wilson_interval

        did_low, did_high = wilson_interval(
            a.to_numpy(zero_copy_only=False), n1.to_numpy(zero_copy_only=False)
        )
        extra = {
            "did_macro_rate": finite(result.rate),
            "did_macro_rate_ci_low": finite(did_low),
            "did_macro_rate_ci_high": finite(did_high),
            "did_not_macro_rate": finite(result.rest_rate),
        }
    extra |= {
        "lift": finite(result.lift),
        "lift_ci_low": finite(result.lift_ci_low),
        "lift_ci_high": finite(result.lift_ci_high),
        "test_method": pa.array(
            [m if t else None for m, t in zip(result.test_method, tested, strict=True)], pa.string()
        ),
        "p_value": masked(result.p_value),
        "q_value": masked(result.q_value),
        "min_detectable_lift": masked(
            result.min_detectable_lift
            if result.min_detectable_lift is not None
            else np.full(tested.shape, np.nan)
        ),
        "significant": pa.array(result.significant & tested),
        "tested": pa.array(tested),
        "gate_reason": pa.array(
            [None if t else r for r, t in zip(gate_reason, tested, strict=True)], pa.string()
        ),
        "rank": pa.array([r if t else None for r, t in zip(result.rank, tested, strict=True)], pa.int32()),
    }
    if mh is not None:
        extra |= {
            "crude_lift": finite(stats.rate_ratio_katz(*crude)[0]),
            "strata": pa.array(mh.strata, pa.int64(), mask=~stratified),
            "strata_did_count": pa.array(mh.units, pa.int64(), mask=~stratified),
            "strata_did_not_count": pa.array(mh.rest_units, pa.int64(), mask=~stratified),
            "strata_macro": pa.array(mh.conversions, pa.int64(), mask=~stratified),
        }
    table = counts
    for name, column in extra.items():
        table = table.append_column(name, column)
    return table


def write_statistics_model(con: duckdb.DuckDBPyConnection, model: Model, gate: stats.MinimumSample) -> None:
    counts = con.sql(model.select_sql).to_arrow_table()
    table = statistics_columns(model, counts, gate)
    order = [c for c in model.column_comments if c in table.column_names]
    missing = [c for c in table.column_names if c not in model.column_comments]
    if missing:
        raise ContractError(f"{model.path.name}: column '{missing[0]}' has no '-- column' comment")
    replace_from_arrow(con, model.qualified, table.select(order))
    apply_comments(con, model)
