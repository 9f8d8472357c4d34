"""Day-clustered comparison of a segment against the rest, for GA4 aggregate rows (issue 11).

GA4 rows of marts.segment_summary sum units and conversions over the window's days. Real traffic makes a
segment's daily rate swing far more than binomial noise (weekdays, campaigns, outages, returning visitors),
so the binomial variance of a pooled ratio is far too small on a busy property. Here the lift is the same
ratio of pooled rates, but its variance is the cluster-robust (sandwich) variance with days as clusters, the
reference distribution a t on D - 1 degrees of freedom, and it is never taken below the binomial (Katz)
variance. Formulas: transforms/STATISTICS.md ("Day-clustered inference"). The tests compare every mart row
with statsmodels' Poisson GLM (log link, offset ln units) with cluster covariance by day.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from transforms import stats
from transforms.stats import Comparison, FloatArray, MinimumSample

__all__ = ["DayClustered", "day_clustered_log_ratio", "compare_day_clustered"]


class DayClustered:
    """Per row: the pieces behind the clustered statistics (for tests and the bench)."""

    def __init__(
        self, log_lift: FloatArray, var_cluster: FloatArray, var_binomial: FloatArray, days: NDArray[np.int64]
    ):
        self.log_lift = log_lift
        self.var_cluster = var_cluster
        self.var_binomial = var_binomial
        self.days = days
        self.variance = np.fmax(var_cluster, var_binomial)
        self.df = np.maximum(days - 1, 1).astype(np.float64)


def _f(values: ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def day_clustered_log_ratio(
    day_a: ArrayLike, day_n1: ArrayLike, day_c: ArrayLike, day_n2: ArrayLike, row: ArrayLike, n_rows: int
) -> tuple[DayClustered, FloatArray, FloatArray]:
    """ln(lift) of each row from its days (a_d of n1_d in the segment, c_d of n2_d in the rest on day d), with
    the day-clustered variance

        u_d = (a_d - p1 n1_d) / A - (c_d - p2 n2_d) / C,   V = D / (D - 1) * sum_d u_d^2

    (A, C, N1, N2 the window's sums, p1 = A / N1, p2 = C / N2, D the days with units), i.e. the sandwich
    variance of the segment coefficient of a Poisson log-linear model with offset ln(units), clusters = days,
    with the usual D / (D - 1) small-sample factor. Also returns the clustered variances of ln(p1) and
    ln(p2) alone (for the rate intervals)."""
    a, n1, c, n2 = _f(day_a), _f(day_n1), _f(day_c), _f(day_n2)
    rows = np.asarray(row, dtype=np.int64)

    def per_row(values: FloatArray) -> FloatArray:
        return np.bincount(rows, weights=values, minlength=n_rows).astype(np.float64)

    big_a, big_n1, big_c, big_n2 = per_row(a), per_row(n1), per_row(c), per_row(n2)
    days = np.bincount(rows, weights=((n1 + n2) > 0).astype(np.float64), minlength=n_rows).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = big_a / big_n1, big_c / big_n2
        r1 = (a - p1[rows] * n1) / big_a[rows]
        r2 = (c - p2[rows] * n2) / big_c[rows]
        factor = np.where(days > 1, days / (days - 1.0), np.nan)
        var_cluster = factor * per_row((r1 - r2) ** 2)
        var_rate1 = factor * per_row(r1**2)
        var_rate2 = factor * per_row(r2**2)
        log_lift = np.log(p1 / p2)
        var_binomial = 1.0 / big_a - 1.0 / big_n1 + 1.0 / big_c - 1.0 / big_n2
    return DayClustered(log_lift, var_cluster, var_binomial, days), var_rate1, var_rate2


def compare_day_clustered(
    conversions: ArrayLike,
    units: ArrayLike,
    rest_conversions: ArrayLike,
    rest_units: ArrayLike,
    days: tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike, ArrayLike],
    families: Sequence[object],
    gate: MinimumSample | None = None,
    alpha: float = stats.ALPHA,
) -> tuple[Comparison, DayClustered]:
    """compare_against_rest for rows summed over days, with day-clustered inference:

    - lift = (A / N1) / (C / N2), unchanged;
    - variance of ln(lift) = max(day-clustered sandwich variance, binomial Katz variance);
    - p from t = ln(lift) / se on D - 1 degrees of freedom; lift interval exp(ln(lift) +- t_{0.975, D-1} se);
    - rate interval: Wilson on the effective sample size N1 / deff, deff = max(1, clustered / binomial
      variance of ln(p1));
    - rows with no conversion on one side (ln(lift) undefined) keep compare_against_rest's statistics
      (Katz interval with 0.5 added, Fisher's exact test).

    `days` = (a_d, n1_d, c_d, n2_d, row) with one element per row and day. The gate, BH q-values,
    practical band and rank are those of compare_against_rest.
    """
    gate = gate or MinimumSample()
    a, n1, c, n2 = _f(conversions), _f(units), _f(rest_conversions), _f(rest_units)
    if np.any(a > n1) or np.any(c > n2):
        raise ValueError("conversions exceed units in a segment row: the rate would not be a proportion")
    n_rows = a.shape[0]
    clustered, var_rate1, _ = day_clustered_log_ratio(*days, n_rows=n_rows)
    plain = stats.compare_against_rest(a, n1, c, n2, families, gate, alpha)
    usable = (a > 0) & (c > 0) & (clustered.days > 1)
    se = np.sqrt(clustered.variance)
    df = clustered.df
    t_crit = sps.t.ppf(1 - alpha / 2, df)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_stat = clustered.log_lift / se
        p = np.where(usable, 2.0 * sps.t.sf(np.abs(t_stat), df), plain.p_value)
        low = np.where(usable, np.exp(clustered.log_lift - t_crit * se), plain.lift_ci_low)
        high = np.where(usable, np.exp(clustered.log_lift + t_crit * se), plain.lift_ci_high)
        rate1 = a / n1
        var_rate1_binomial = (1.0 - rate1) / a
        deff = np.where(usable, np.fmax(1.0, var_rate1 / var_rate1_binomial), 1.0)
    n_eff = n1 / deff
    rate_low, rate_high = stats.wilson_interval(rate1 * n_eff, n_eff)
    raw_p, raw_method = stats.two_proportion_p_value(a, n1, c, n2)
    method = np.where(usable, "t_day_cluster", raw_method)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (a + c) / (n1 + n2)
        null_se = np.sqrt((1.0 - pooled) / pooled * (1.0 / n1 + 1.0 / n2))
    log_se = np.where(usable, se, null_se)
    comparison = stats._gate_test_rank(
        rate=plain.rate,
        rate_ci=(np.where(n1 > 0, rate_low, np.nan), np.where(n1 > 0, rate_high, np.nan)),
        rest_rate=plain.rest_rate,
        lift=(plain.lift, low, high),
        p=np.where(np.isnan(p), raw_p, p),
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
        log_se=log_se,
        df=np.where(usable, df, np.inf),
    )
    return comparison, clustered
