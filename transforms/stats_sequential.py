"""A/B statistics for `marts.experiment_readout`: always-valid (sequential) by default, fixed-horizon beside.

The readout is rebuilt every day from the cumulative counts, so an analyst who looks daily and stops at the
first "significant" reading would see far more than 5 % false positives with a fixed-horizon test. The
default figures here are the mixture sequential probability ratio test (mSPRT, Johari, Pekelis & Walsh
2017; Optimizely's Stats Engine) on the relative lift, with a normal mixing distribution N(0, tau^2):

    Lambda_n = sqrt(V / (V + tau^2)) * exp(tau^2 * r^2 / (2 V (V + tau^2)))

where r is the estimated relative lift (treatment rate / control rate - 1) and V its delta-method variance.
By Ville's inequality, P(Lambda_n >= 1/alpha at ANY look) <= alpha under the null, so the always-valid p-value
min(1, 1/Lambda_n) and the confidence sequence r +/- sqrt(V (V + tau^2) / tau^2 * (2 ln(1/alpha) +
ln((V + tau^2) / V))) may be read after every refresh. The fixed-horizon Wald figures (valid only for one
planned look) sit beside them. Formulas and caveats: transforms/STATISTICS.md, "Experiments".

Every function takes numpy arrays (one element per comparison) and returns arrays; nothing reads DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

__all__ = [
    "ALPHA",
    "MIXTURE_SD",
    "SRM_ALPHA",
    "POWER_Z",
    "LiftStats",
    "relative_lift",
    "msprt_p_value",
    "msprt_half_width",
    "fixed_p_value",
    "lift_statistics",
    "srm_p_value",
    "minimum_detectable_lift",
]

ALPHA = 0.05
# Standard deviation of the mixing distribution of the relative lift: effects of about +/-10 % are what
# conversion-rate tests typically see, and the test is most sensitive around that size.
MIXTURE_SD = 0.10
# A sample-ratio mismatch is flagged at p < 0.001, the threshold GrowthBook and Optimizely use: with daily
# looks at a test that has no effect to find, a strict threshold keeps false alarms rare.
SRM_ALPHA = 0.001
POWER_Z = float(sps.norm.isf(0.2))  # 80 % power
Z_FIXED = float(sps.norm.isf(ALPHA / 2))

FloatArray = NDArray[np.float64]


def _f(values: ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def relative_lift(
    control_converters: ArrayLike,
    control_users: ArrayLike,
    treatment_converters: ArrayLike,
    treatment_users: ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """(relative lift, its delta-method variance); NaN where a rate is undefined or the control rate is 0.

    r = p_t / p_c - 1;  Var(r) ~= p_t (1 - p_t) / (n_t p_c^2) + p_t^2 p_c (1 - p_c) / (n_c p_c^4).
    """
    xc, nc, xt, nt = _f(control_converters), _f(control_users), _f(treatment_converters), _f(treatment_users)
    with np.errstate(divide="ignore", invalid="ignore"):
        pc = xc / nc
        pt = xt / nt
        lift = pt / pc - 1.0
        var = pt * (1.0 - pt) / (nt * pc**2) + pt**2 * pc * (1.0 - pc) / (nc * pc**4)
    bad = ~((nc > 0) & (nt > 0) & (pc > 0))
    return np.where(bad, np.nan, lift), np.where(bad, np.nan, var)


def msprt_p_value(lift: ArrayLike, variance: ArrayLike, tau: float = MIXTURE_SD) -> FloatArray:
    """Always-valid p-value min(1, 1/Lambda) of the normal-mixture SPRT of H0: lift = 0.

    Computed on the log scale (Lambda overflows for large samples); a zero variance with a non-zero lift
    (a rate of 0 or 1 on one side) is treated as no evidence: NaN.
    """
    r, v = _f(lift), _f(variance)
    t2 = tau * tau
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lambda = 0.5 * np.log(v / (v + t2)) + t2 * r * r / (2.0 * v * (v + t2))
        p = np.exp(-np.maximum(log_lambda, 0.0))
    return np.where(np.isfinite(log_lambda) & (v > 0), np.minimum(p, 1.0), np.nan)


def msprt_half_width(variance: ArrayLike, tau: float = MIXTURE_SD, alpha: float = ALPHA) -> FloatArray:
    """Half-width of the always-valid (1 - alpha) confidence sequence for the lift: the values theta0 for
    which the mixture likelihood ratio of H0: lift = theta0 stays below 1/alpha."""
    v = _f(variance)
    t2 = tau * tau
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.sqrt(v * (v + t2) / t2 * (2.0 * np.log(1.0 / alpha) + np.log((v + t2) / v)))
    return np.where(v > 0, half, np.nan)


def fixed_p_value(lift: ArrayLike, variance: ArrayLike) -> FloatArray:
    """Two-sided fixed-horizon Wald p-value of the relative lift (valid for ONE planned look only)."""
    r, v = _f(lift), _f(variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(r) / np.sqrt(v)
    return np.where(v > 0, 2.0 * sps.norm.sf(z), np.nan)


def minimum_detectable_lift(
    control_rate: ArrayLike,
    control_users: ArrayLike,
    treatment_users: ArrayLike,
    tau: float = MIXTURE_SD,
    alpha: float = ALPHA,
) -> FloatArray:
    """The relative lift the always-valid test would call significant with 80 % power at today's sample:
    (always-valid boundary + z_0.8) x the standard error of the lift under the null (p_t = p_c)."""
    p, nc, nt = _f(control_rate), _f(control_users), _f(treatment_users)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (1.0 - p) / p * (1.0 / nt + 1.0 / nc)
        se = np.sqrt(v)
        boundary = msprt_half_width(v, tau, alpha) / se
        mdl = (boundary + POWER_Z) * se
    return np.where((p > 0) & (p < 1) & (nc > 0) & (nt > 0), mdl, np.nan)


@dataclass(frozen=True)
class LiftStats:
    lift: FloatArray
    variance: FloatArray
    p_value: FloatArray  # always-valid (mSPRT)
    ci_lower: FloatArray  # always-valid confidence sequence
    ci_upper: FloatArray
    fixed_p_value: FloatArray
    fixed_ci_lower: FloatArray
    fixed_ci_upper: FloatArray
    minimum_detectable_lift: FloatArray


def lift_statistics(
    control_converters: ArrayLike,
    control_users: ArrayLike,
    treatment_converters: ArrayLike,
    treatment_users: ArrayLike,
    tau: float = MIXTURE_SD,
    alpha: float = ALPHA,
) -> LiftStats:
    """Every lift figure of the readout for treatment-vs-control pairs (arrays of equal length)."""
    lift, var = relative_lift(control_converters, control_users, treatment_converters, treatment_users)
    half = msprt_half_width(var, tau, alpha)
    fixed_half = Z_FIXED * np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        pc = _f(control_converters) / _f(control_users)
    return LiftStats(
        lift=lift,
        variance=var,
        p_value=msprt_p_value(lift, var, tau),
        ci_lower=lift - half,
        ci_upper=lift + half,
        fixed_p_value=fixed_p_value(lift, var),
        fixed_ci_lower=lift - fixed_half,
        fixed_ci_upper=lift + fixed_half,
        minimum_detectable_lift=minimum_detectable_lift(pc, control_users, treatment_users, tau, alpha),
    )


def srm_p_value(observed: ArrayLike, planned_shares: ArrayLike) -> float:
    """Pearson chi-square goodness-of-fit p-value of the users per variant against the planned split."""
    obs = _f(observed)
    shares = _f(planned_shares)
    total = obs.sum()
    if total <= 0 or obs.size < 2:
        return float("nan")
    expected = total * shares / shares.sum()
    chi2 = float(((obs - expected) ** 2 / expected).sum())
    return float(sps.chi2.sf(chi2, obs.size - 1))
