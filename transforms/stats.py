"""Statistics for segment comparisons, vectorised over the small aggregated tables the SQL produces.

The formulas are written out in transforms/STATISTICS.md. Every function takes numpy arrays of counts
(one element per segment row) and returns arrays; nothing here reads or writes DuckDB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

__all__ = [
    "ALPHA",
    "Z95",
    "MinimumSample",
    "wilson_interval",
    "rate_ratio_katz",
    "two_proportion_p_value",
    "benjamini_hochberg",
    "compare_against_rest",
    "MantelHaenszel",
    "mantel_haenszel_risk_ratio",
    "compare_stratified",
    "compare_with_strata",
]

ALPHA = 0.05
Z95 = float(sps.norm.isf(ALPHA / 2))  # 1.959963984540054
FISHER_MIN_EXPECTED = 5.0

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class MinimumSample:
    """The gate a segment must pass to be tested: enough units on both sides and enough conversions."""

    units: int = 100
    rest_units: int = 100
    conversions: int = 10  # segment + rest conversions together
    # micro_macro_lift segment_day basis: the cells without the micro conversion must hold at least this share
    # of the units, or the comparison is of nearly all traffic against a sliver (STATISTICS.md).
    did_not_share: float = 0.10
    # Practical significance: a row is significant only when its whole lift interval lies outside this band
    # (a 2 % difference found on a year of traffic is real but not worth acting on).
    practical_low: float = 0.95
    practical_high: float = 1.05
    power: float = 0.80  # of min_detectable_lift


def _f(values: ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def wilson_interval(successes: ArrayLike, trials: ArrayLike, z: float = Z95) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for a binomial proportion; NaN where trials == 0."""
    x, n = _f(successes), _f(trials)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        z2 = z * z
        denom = 1.0 + z2 / n
        centre = (p + z2 / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    low = np.where(n > 0, centre - half, np.nan)
    high = np.where(n > 0, centre + half, np.nan)
    return low, high


def rate_ratio_katz(
    a: ArrayLike, n1: ArrayLike, c: ArrayLike, n2: ArrayLike, z: float = Z95
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rate ratio (a/n1)/(c/n2) with the Katz log interval.

    When a or c is 0 the interval adds 0.5 to each count and each total (statsmodels' 'log-adjusted')
    so it stays finite; the point estimate is always the unadjusted ratio (0, or NaN when c == 0).
    """
    a, n1, c, n2 = _f(a), _f(n1), _f(c), _f(n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((c > 0) & (n1 > 0) & (n2 > 0), (a / n1) / (c / n2), np.nan)
        zero = (a == 0) | (c == 0)
        half = np.where(zero, 0.5, 0.0)
        a_, n1_, c_, n2_ = a + half, n1 + half, c + half, n2 + half
        log_ratio = np.log((a_ / n1_) / (c_ / n2_))
        se = np.sqrt(1.0 / a_ - 1.0 / n1_ + 1.0 / c_ - 1.0 / n2_)
        low = np.exp(log_ratio - z * se)
        high = np.exp(log_ratio + z * se)
    valid = (n1 > 0) & (n2 > 0)
    return ratio, np.where(valid, low, np.nan), np.where(valid, high, np.nan)


def two_proportion_p_value(
    a: ArrayLike, n1: ArrayLike, c: ArrayLike, n2: ArrayLike, min_expected: float = FISHER_MIN_EXPECTED
) -> tuple[FloatArray, NDArray[np.str_]]:
    """Two-sided p-value for p1 == p2: pooled two-proportion z-test, or Fisher's exact test where any
    expected cell count of the 2x2 table is below `min_expected` (or the pooled variance is 0).

    Returns (p_value, method) with method 'z' or 'fisher' per row.
    """
    a, n1, c, n2 = _f(a), _f(n1), _f(c), _f(n2)
    total = n1 + n2
    successes = a + c
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = successes / total
        var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
        zstat = (a / n1 - c / n2) / np.sqrt(var)
        p_z = 2.0 * sps.norm.sf(np.abs(zstat))
        expected = np.minimum.reduce(
            [
                n1 * successes / total,
                n1 * (total - successes) / total,
                n2 * successes / total,
                n2 * (total - successes) / total,
            ]
        )
    use_fisher = (expected < min_expected) | ~(var > 0)
    p = np.array(p_z, dtype=np.float64)
    for i in np.flatnonzero(use_fisher & (n1 > 0) & (n2 > 0)):
        table = [[int(a[i]), int(n1[i] - a[i])], [int(c[i]), int(n2[i] - c[i])]]
        p[i] = float(sps.fisher_exact(table, alternative="two-sided").pvalue)
    p[(n1 <= 0) | (n2 <= 0)] = np.nan
    method = np.where(use_fisher, "fisher", "z")
    return p, method


def benjamini_hochberg(p_values: ArrayLike, families: Sequence[object] | None = None) -> FloatArray:
    """Benjamini–Hochberg adjusted p-values (q-values), computed within each family; NaN stays NaN."""
    p = _f(p_values)
    q = np.full(p.shape, np.nan)
    labels = np.zeros(p.shape[0], dtype=np.int64) if families is None else _family_codes(families)
    for family in np.unique(labels):
        idx = np.flatnonzero((labels == family) & ~np.isnan(p))
        m = idx.size
        if m == 0:
            continue
        order = idx[np.argsort(p[idx], kind="mergesort")]
        ranked = p[order] * m / np.arange(1, m + 1)
        q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q


def _family_codes(families: Sequence[object]) -> NDArray[np.int64]:
    codes: dict[object, int] = {}
    return np.array([codes.setdefault(f, len(codes)) for f in families], dtype=np.int64)


@dataclass(frozen=True)
class Comparison:
    rate: FloatArray
    rate_ci_low: FloatArray
    rate_ci_high: FloatArray
    rest_rate: FloatArray
    lift: FloatArray
    lift_ci_low: FloatArray
    lift_ci_high: FloatArray
    p_value: FloatArray
    test_method: NDArray[np.object_]
    tested: NDArray[np.bool_]
    gate_reason: NDArray[np.object_]
    q_value: FloatArray
    significant: NDArray[np.bool_]
    rank: NDArray[np.object_]
    min_detectable_lift: FloatArray | None = None


def compare_against_rest(
    conversions: ArrayLike,
    units: ArrayLike,
    rest_conversions: ArrayLike,
    rest_units: ArrayLike,
    families: Sequence[object],
    gate: MinimumSample | None = None,
    alpha: float = ALPHA,
) -> Comparison:
    """Everything a segment row needs: rate and Wilson interval, lift against the rest with the Katz
    interval, p-value, minimum-sample gate, BH q-value within the family, significance and rank.

    Rank: within each family, tested rows ordered by the lower bound of the lift interval (highest
    first; ties by lift, then input order); untested rows get no rank.
    """
    gate = gate or MinimumSample()
    a, n1, c, n2 = _f(conversions), _f(units), _f(rest_conversions), _f(rest_units)
    if np.any(a > n1) or np.any(c > n2):
        raise ValueError("conversions exceed units in a segment row: the rate would not be a proportion")
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n1 > 0, a / n1, np.nan)
        rest_rate = np.where(n2 > 0, c / n2, np.nan)
    low, high = wilson_interval(a, n1)
    lift, lift_low, lift_high = rate_ratio_katz(a, n1, c, n2)
    p, method = two_proportion_p_value(a, n1, c, n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (a + c) / (n1 + n2)
        null_se = np.sqrt((1.0 - pooled) / pooled * (1.0 / n1 + 1.0 / n2))  # se of ln(lift) at lift 1

    return _gate_test_rank(
        rate=rate,
        rate_ci=(low, high),
        rest_rate=rest_rate,
        lift=(lift, lift_low, lift_high),
        p=p,
        method=method,
        gate_counts=(n1, n2, a + c),
        reason_texts=(
            f"segment has fewer than {gate.units} units",
            f"rest has fewer than {gate.rest_units} units",
            f"fewer than {gate.conversions} conversions in segment and rest",
        ),
        families=families,
        gate=gate,
        alpha=alpha,
        log_se=null_se,
    )


def _gate_test_rank(
    *,
    rate: FloatArray,
    rate_ci: tuple[FloatArray, FloatArray],
    rest_rate: FloatArray,
    lift: tuple[FloatArray, FloatArray, FloatArray],
    p: FloatArray,
    method: NDArray[np.str_],
    gate_counts: tuple[FloatArray, FloatArray, FloatArray],
    reason_texts: tuple[str, str, str],
    families: Sequence[object],
    gate: MinimumSample,
    alpha: float,
    extra_gate: tuple[NDArray[np.bool_], str] | None = None,
    log_se: FloatArray | None = None,
    df: FloatArray | None = None,
) -> Comparison:
    """The minimum-sample gate, BH q-values within each family, significance and rank by lift_ci_low."""
    lift_point, lift_low, lift_high = lift
    units, rest_units, conversions = gate_counts
    reasons = np.full(units.shape[0], None, dtype=object)
    if extra_gate is not None:
        reasons[extra_gate[0]] = extra_gate[1]
    reasons[conversions < gate.conversions] = reason_texts[2]
    reasons[rest_units < gate.rest_units] = reason_texts[1]
    reasons[units < gate.units] = reason_texts[0]
    tested = np.array([r is None for r in reasons], dtype=bool)
    p_tested = np.where(tested, p, np.nan)
    q = benjamini_hochberg(p_tested, families)
    outside_band = (np.nan_to_num(lift_low, nan=-np.inf) > gate.practical_high) | (
        np.nan_to_num(lift_high, nan=np.inf) < gate.practical_low
    )
    significant = tested & (q < alpha) & outside_band
    mdl = None
    if log_se is not None:
        mdl = np.where(tested, min_detectable_lift(log_se, df, alpha, gate.power), np.nan)

    rank = np.full(units.shape[0], None, dtype=object)
    labels = _family_codes(families)
    for family in np.unique(labels):
        idx = np.flatnonzero((labels == family) & tested)
        if idx.size == 0:
            continue
        key_low = np.nan_to_num(lift_low[idx], nan=-np.inf)
        key_lift = np.nan_to_num(lift_point[idx], nan=-np.inf)
        order = idx[np.lexsort((np.arange(idx.size), -key_lift, -key_low))]
        for position, i in enumerate(order, start=1):
            rank[i] = position
    return Comparison(
        rate=rate,
        rate_ci_low=rate_ci[0],
        rate_ci_high=rate_ci[1],
        rest_rate=rest_rate,
        lift=lift_point,
        lift_ci_low=lift_low,
        lift_ci_high=lift_high,
        p_value=p_tested,
        test_method=np.array([m if t else None for m, t in zip(method, tested, strict=True)], dtype=object),
        tested=tested,
        gate_reason=reasons,
        q_value=q,
        significant=significant,
        rank=rank,
        min_detectable_lift=mdl,
    )


def min_detectable_lift(
    log_se: ArrayLike, df: ArrayLike | None = None, alpha: float = ALPHA, power: float = 0.80
) -> FloatArray:
    """The smallest lift above 1 that a two-sided level-alpha test with this standard error of ln(lift)
    detects with the given power: exp((q(1 - alpha/2) + q(power)) * se), q the t quantile on `df` degrees
    of freedom (normal when df is None or infinite)."""
    se = _f(log_se)
    d = np.full(se.shape, np.inf) if df is None else _f(df)
    with np.errstate(invalid="ignore"):
        quantiles = np.where(
            np.isfinite(d),
            sps.t.ppf(1 - alpha / 2, np.where(np.isfinite(d), d, 1))
            + sps.t.ppf(power, np.where(np.isfinite(d), d, 1)),
            sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power),
        )
    return np.exp(quantiles * se)


@dataclass(frozen=True)
class MantelHaenszel:
    """Per row: the Mantel-Haenszel common risk ratio over the row's strata, its Greenland-Robins interval,
    the Cochran-Mantel-Haenszel p-value, and the totals of the informative strata (units on both sides)."""

    risk_ratio: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    p_value: FloatArray
    strata: NDArray[np.int64]
    units: FloatArray
    rest_units: FloatArray
    conversions: FloatArray  # segment + rest conversions of the informative strata
    # With day cells (permutation=...): permutation variance / CMH variance of the CMH numerator; else NaN.
    dispersion: FloatArray | None = None
    log_se: FloatArray | None = None  # standard error of ln(RR_MH) behind the interval


def mantel_haenszel_risk_ratio(
    conversions: ArrayLike,
    units: ArrayLike,
    rest_conversions: ArrayLike,
    rest_units: ArrayLike,
    row: ArrayLike,
    n_rows: int,
    z: float = Z95,
    permutation: tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike, ArrayLike] | None = None,
) -> MantelHaenszel:
    """Stratified comparison of many rows at once: stratum k (a_k of n1_k against c_k of n2_k) belongs to
    row `row[k]`; every sum runs over the strata of one row (np.bincount).

    RR_MH = R / S with R = sum(a n2 / N), S = sum(c n1 / N), N = n1 + n2;
    Var(ln RR_MH) = sum((a + c) n1 n2 / N^2 - a c / N) / (R S)  (Greenland & Robins 1985);
    CMH chi-square = (sum(a - n1 (a + c) / N))^2 / sum(n1 n2 (a + c)(N - a - c) / (N^2 (N - 1))), 1 df,
    without continuity correction (statsmodels StratifiedTable.test_null_odds(correction=False)).
    Strata without units on one side carry no information and are left out. The ratio is 0 when R == 0
    and NaN when S == 0; the interval is NaN unless both are positive; p is NaN when the CMH variance is 0.

    `permutation` = (cells, did_cells, sum_m2, sum_mn, sum_n2) per stratum, where a stratum is made of day
    cells (m macro units of n units each) and the micro conversion occurred in `did_cells` of them: the test
    then uses the exact variance of the CMH numerator under permutation of the occurrence labels across the
    stratum's days (STATISTICS.md), so day-to-day swings are not mistaken for an association, and the
    Greenland-Robins interval is widened by sqrt(max(1, permutation variance / CMH variance)).
    """
    a, n1, c, n2 = _f(conversions), _f(units), _f(rest_conversions), _f(rest_units)
    rows = np.asarray(row, dtype=np.int64)
    if np.any(a > n1) or np.any(c > n2) or np.any(np.minimum.reduce([a, n1, c, n2]) < 0):
        raise ValueError("a stratum has negative counts or more conversions than units")
    informative = (n1 > 0) & (n2 > 0)
    perm = None if permutation is None else tuple(_f(x)[informative] for x in permutation)
    a, n1, c, n2, rows = a[informative], n1[informative], c[informative], n2[informative], rows[informative]
    total = n1 + n2
    converted = a + c

    def per_row(values: FloatArray) -> FloatArray:
        return np.bincount(rows, weights=values, minlength=n_rows).astype(np.float64)

    r = per_row(a * n2 / total)
    s = per_row(c * n1 / total)
    gr_numerator = per_row(converted * n1 * n2 / (total * total) - a * c / total)
    deviation = per_row(a - n1 * converted / total)
    cmh_variance = per_row(n1 * n2 * converted * (total - converted) / (total * total * (total - 1.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(s > 0, r / s, np.nan)
        se = np.sqrt(gr_numerator / (r * s))
        both = (r > 0) & (s > 0)
        low = np.where(both, np.exp(np.log(ratio) - z * se), np.nan)
        high = np.where(both, np.exp(np.log(ratio) + z * se), np.nan)
        chi2 = deviation * deviation / cmh_variance
    p = np.where(cmh_variance > 0, sps.chi2.sf(chi2, 1), np.nan)
    dispersion = None
    log_se = se
    if perm is not None:
        cells, did_cells, sum_m2, sum_mn, sum_n2 = perm
        rate = converted / total
        spread = np.maximum(sum_m2 - 2.0 * rate * sum_mn + rate * rate * sum_n2, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(cells > 1, did_cells * (cells - did_cells) / (cells * (cells - 1.0)), 0.0)
        perm_variance = per_row(share * spread)
        with np.errstate(divide="ignore", invalid="ignore"):
            dispersion = perm_variance / cmh_variance
            z_perm = deviation / np.sqrt(perm_variance)
            widen = np.sqrt(np.maximum(1.0, np.nan_to_num(dispersion, nan=1.0)))
            low = np.where(both, np.exp(np.log(ratio) - z * se * widen), np.nan)
            high = np.where(both, np.exp(np.log(ratio) + z * se * widen), np.nan)
        p = np.where(perm_variance > 0, 2.0 * sps.norm.sf(np.abs(z_perm)), np.nan)
        log_se = se * widen
    return MantelHaenszel(
        risk_ratio=ratio,
        ci_low=low,
        ci_high=high,
        p_value=p,
        strata=np.bincount(rows, minlength=n_rows).astype(np.int64),
        units=per_row(n1),
        rest_units=per_row(n2),
        conversions=per_row(converted),
        dispersion=dispersion,
        log_se=log_se,
    )


def compare_stratified(
    conversions: ArrayLike,
    units: ArrayLike,
    rest_conversions: ArrayLike,
    rest_units: ArrayLike,
    strata: tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike, ArrayLike],
    families: Sequence[object],
    gate: MinimumSample | None = None,
    alpha: float = ALPHA,
    permutation: tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike, ArrayLike] | None = None,
) -> tuple[Comparison, MantelHaenszel]:
    """compare_against_rest with the lift, interval and test stratified (Mantel-Haenszel).

    The first four arrays are the crude totals of each row (rate and Wilson interval come from them);
    `strata` is (conversions, units, rest_conversions, rest_units, row) with one element per stratum.
    The gate applies to the totals of the informative strata, the only data the test uses;
    test_method is 'cmh'.
    """
    gate = gate or MinimumSample()
    a, n1, c, n2 = _f(conversions), _f(units), _f(rest_conversions), _f(rest_units)
    if np.any(a > n1) or np.any(c > n2):
        raise ValueError("conversions exceed units in a segment row: the rate would not be a proportion")
    mh = mantel_haenszel_risk_ratio(*strata, n_rows=a.shape[0], permutation=permutation)
    extra_gate = None
    if permutation is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            sliver = ~(n2 / (n1 + n2) >= gate.did_not_share)
        extra_gate = (sliver, f"cells without it hold less than {gate.did_not_share:.0%} of units")
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n1 > 0, a / n1, np.nan)
        rest_rate = np.where(n2 > 0, c / n2, np.nan)
    comparison = _gate_test_rank(
        rate=rate,
        rate_ci=wilson_interval(a, n1),
        rest_rate=rest_rate,
        lift=(mh.risk_ratio, mh.ci_low, mh.ci_high),
        p=mh.p_value,
        method=np.full(a.shape[0], "cmh" if permutation is None else "cmh_day_permutation"),
        gate_counts=(mh.units, mh.rest_units, mh.conversions),
        reason_texts=(
            f"fewer than {gate.units} units did it in strata with units on both sides",
            f"fewer than {gate.rest_units} units did not in strata with units on both sides",
            f"fewer than {gate.conversions} conversions in strata with units on both sides",
        ),
        families=families,
        gate=gate,
        alpha=alpha,
        extra_gate=extra_gate,
        log_se=mh.log_se,
    )
    return comparison, mh


def compare_with_strata(
    conversions: ArrayLike,
    units: ArrayLike,
    rest_conversions: ArrayLike,
    rest_units: ArrayLike,
    families: Sequence[object],
    stratified: ArrayLike,
    strata: tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike, ArrayLike],
    gate: MinimumSample | None = None,
    alpha: float = ALPHA,
    permutation: tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike, ArrayLike] | None = None,
) -> tuple[Comparison, MantelHaenszel]:
    """Rows where `stratified` is True go through compare_stratified (their strata's `row` indexes the
    full input), the others through compare_against_rest. A family must not mix the two kinds of rows.

    The MantelHaenszel result covers every row (NaN, and 0 strata, for rows that are not stratified).
    """
    a, n1, c, n2 = _f(conversions), _f(units), _f(rest_conversions), _f(rest_units)
    n_rows = a.shape[0]
    is_stratified = np.asarray(stratified, dtype=bool)
    strat_idx, plain_idx = np.flatnonzero(is_stratified), np.flatnonzero(~is_stratified)
    fam = list(families)
    plain = compare_against_rest(
        a[plain_idx], n1[plain_idx], c[plain_idx], n2[plain_idx], [fam[i] for i in plain_idx], gate, alpha
    )
    s_a, s_n1, s_c, s_n2, s_row = strata
    position = np.full(n_rows, -1, dtype=np.int64)
    position[strat_idx] = np.arange(strat_idx.size)
    s_pos = position[np.asarray(s_row, dtype=np.int64)]
    keep = s_pos >= 0
    stratified_part, mh_part = compare_stratified(
        a[strat_idx],
        n1[strat_idx],
        c[strat_idx],
        n2[strat_idx],
        (_f(s_a)[keep], _f(s_n1)[keep], _f(s_c)[keep], _f(s_n2)[keep], s_pos[keep]),
        [fam[i] for i in strat_idx],
        gate,
        alpha,
        None if permutation is None else tuple(_f(x)[keep] for x in permutation),  # type: ignore[arg-type]
    )

    def merge(plain_values: np.ndarray, strat_values: np.ndarray, fill: object) -> np.ndarray:
        dtype = object if plain_values.dtype == object or strat_values.dtype == object else plain_values.dtype
        out = np.full(n_rows, fill, dtype=dtype)
        out[plain_idx] = plain_values
        out[strat_idx] = strat_values
        return out

    def part(comparison: Comparison, name: str, size: int) -> np.ndarray:
        value = getattr(comparison, name)
        return np.full(size, np.nan) if value is None else value

    merged = Comparison(
        **{
            name: merge(part(plain, name, plain_idx.size), part(stratified_part, name, strat_idx.size), None)
            for name in Comparison.__dataclass_fields__
        }
    )
    nan = np.full(plain_idx.size, np.nan)
    mh = MantelHaenszel(
        risk_ratio=merge(nan, mh_part.risk_ratio, np.nan),
        ci_low=merge(nan, mh_part.ci_low, np.nan),
        ci_high=merge(nan, mh_part.ci_high, np.nan),
        p_value=merge(nan, mh_part.p_value, np.nan),
        strata=merge(np.zeros(plain_idx.size, dtype=np.int64), mh_part.strata, 0),
        units=merge(nan, mh_part.units, np.nan),
        rest_units=merge(nan, mh_part.rest_units, np.nan),
        conversions=merge(nan, mh_part.conversions, np.nan),
        dispersion=None if mh_part.dispersion is None else merge(nan, mh_part.dispersion, np.nan),
        log_se=None if mh_part.log_se is None else merge(nan, mh_part.log_se, np.nan),
    )
    return merged, mh
