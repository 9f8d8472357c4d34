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

    reasons = np.full(a.shape[0], None, dtype=object)
    reasons[(a + c) < gate.conversions] = f"fewer than {gate.conversions} conversions in segment and rest"
    reasons[n2 < gate.rest_units] = f"rest has fewer than {gate.rest_units} units"
    reasons[n1 < gate.units] = f"segment has fewer than {gate.units} units"
    tested = np.array([r is None for r in reasons], dtype=bool)
    p_tested = np.where(tested, p, np.nan)
    q = benjamini_hochberg(p_tested, families)
    significant = tested & (q < alpha)

    rank = np.full(a.shape[0], None, dtype=object)
    labels = _family_codes(families)
    for family in np.unique(labels):
        idx = np.flatnonzero((labels == family) & tested)
        if idx.size == 0:
            continue
        key_low = np.nan_to_num(lift_low[idx], nan=-np.inf)
        key_lift = np.nan_to_num(lift[idx], nan=-np.inf)
        order = idx[np.lexsort((np.arange(idx.size), -key_lift, -key_low))]
        for position, i in enumerate(order, start=1):
            rank[i] = position
    return Comparison(
        rate=rate,
        rate_ci_low=low,
        rate_ci_high=high,
        rest_rate=rest_rate,
        lift=lift,
        lift_ci_low=lift_low,
        lift_ci_high=lift_high,
        p_value=p_tested,
        test_method=np.array([m if t else None for m, t in zip(method, tested, strict=True)], dtype=object),
        tested=tested,
        gate_reason=reasons,
        q_value=q,
        significant=significant,
        rank=rank,
    )
