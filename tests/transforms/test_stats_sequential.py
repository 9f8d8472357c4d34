"""transforms.stats_sequential against independent computations, and the peeking simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from transforms import stats_sequential as seq


def _mixture_lr(lift: float, var: float, theta0: float, tau: float) -> float:
    """Mixture likelihood ratio by numerical integration over the mixing distribution (no closed form)."""

    def integrand(theta: float) -> float:
        return sps.norm.pdf(lift, loc=theta0 + theta, scale=math.sqrt(var)) * sps.norm.pdf(theta, scale=tau)

    # The product peaks at the posterior mean of theta; integrate around it and over the prior's mass.
    peak = tau * tau * (lift - theta0) / (tau * tau + var)
    numerator, _ = integrate.quad(
        integrand, -12 * tau, 12 * tau, points=[peak], limit=400, epsabs=0, epsrel=1e-10
    )
    return numerator / sps.norm.pdf(lift, loc=theta0, scale=math.sqrt(var))


CASES = [(120, 1000, 150, 1000), (2170, 10_000, 2480, 10_050), (40, 600, 38, 590), (5, 300, 9, 310)]


@pytest.mark.parametrize(("xc", "nc", "xt", "nt"), CASES)
def test_lift_and_variance_match_numeric_delta_method(xc: int, nc: int, xt: int, nt: int) -> None:
    lift, var = seq.relative_lift([xc], [nc], [xt], [nt])
    pc, pt = xc / nc, xt / nt
    # Gradient of g(pc, pt) = pt / pc - 1 by central differences; Var = grad' diag(var_c, var_t) grad.
    h = 1e-7
    d_pc = ((pt / (pc + h) - 1) - (pt / (pc - h) - 1)) / (2 * h)
    d_pt = (((pt + h) / pc - 1) - ((pt - h) / pc - 1)) / (2 * h)
    expected_var = d_pc**2 * pc * (1 - pc) / nc + d_pt**2 * pt * (1 - pt) / nt
    assert lift[0] == pytest.approx(pt / pc - 1, rel=1e-12)
    assert var[0] == pytest.approx(expected_var, rel=1e-6)


@pytest.mark.parametrize(("xc", "nc", "xt", "nt"), CASES)
def test_msprt_p_value_equals_numerically_integrated_mixture(xc: int, nc: int, xt: int, nt: int) -> None:
    lift, var = seq.relative_lift([xc], [nc], [xt], [nt])
    p = seq.msprt_p_value(lift, var)[0]
    lr = _mixture_lr(float(lift[0]), float(var[0]), 0.0, seq.MIXTURE_SD)
    assert p == pytest.approx(min(1.0, 1.0 / lr), rel=1e-6)


@pytest.mark.parametrize(("xc", "nc", "xt", "nt"), CASES)
def test_confidence_sequence_edges_are_where_the_mixture_ratio_reaches_one_over_alpha(
    xc: int, nc: int, xt: int, nt: int
) -> None:
    lift, var = seq.relative_lift([xc], [nc], [xt], [nt])
    half = seq.msprt_half_width(var)[0]
    for edge in (lift[0] - half, lift[0] + half):
        assert _mixture_lr(float(lift[0]), float(var[0]), float(edge), seq.MIXTURE_SD) == pytest.approx(
            1 / seq.ALPHA, rel=1e-5
        )
    # The always-valid interval is wider than the fixed-horizon one, and both are centred on the lift.
    stats = seq.lift_statistics([xc], [nc], [xt], [nt])
    assert stats.ci_upper[0] - stats.ci_lower[0] > stats.fixed_ci_upper[0] - stats.fixed_ci_lower[0]
    # significant (p < alpha) exactly when the sequence excludes 0
    assert (stats.p_value[0] < seq.ALPHA) == (stats.ci_lower[0] > 0 or stats.ci_upper[0] < 0)


def test_fixed_horizon_p_value_is_the_wald_test_of_the_log_free_ratio() -> None:
    lift, var = seq.relative_lift([2170], [10_000], [2480], [10_050])
    z = lift[0] / math.sqrt(var[0])
    assert seq.fixed_p_value(lift, var)[0] == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-12)


def test_srm_p_value_equals_scipy_chisquare() -> None:
    observed = [5480, 4520]
    expected = sps.chisquare(observed, f_exp=[5000, 5000]).pvalue
    assert seq.srm_p_value(observed, [0.5, 0.5]) == pytest.approx(expected, rel=1e-9)
    assert seq.srm_p_value([3050, 2950, 4000], [0.3, 0.3, 0.4]) == pytest.approx(
        sps.chisquare([3050, 2950, 4000], f_exp=[3000, 3000, 4000]).pvalue, rel=1e-9
    )


def test_minimum_detectable_lift_is_detected_with_about_80_percent_power() -> None:
    rng = np.random.default_rng([7, 14, 1])
    p, n = 0.2, 20_000
    mdl = float(seq.minimum_detectable_lift([p], [n], [n])[0])
    sims = 4000
    xc = rng.binomial(n, p, size=sims)
    xt = rng.binomial(n, p * (1 + mdl), size=sims)
    power = float(
        np.mean(seq.lift_statistics(xc, np.full(sims, n), xt, np.full(sims, n)).p_value < seq.ALPHA)
    )
    print(f"minimum detectable lift {mdl:.3%}: simulated power {power:.3f}")
    assert 0.74 < power < 0.86


def test_undefined_inputs_give_nan_not_errors() -> None:
    stats = seq.lift_statistics([0, 5], [0, 100], [3, 0], [100, 0])
    assert np.isnan(stats.lift).all() and np.isnan(stats.p_value).all()
    assert math.isnan(seq.srm_p_value([0, 0], [0.5, 0.5]))


def test_daily_peeking_at_an_aa_test_always_valid_keeps_false_positives_at_or_below_alpha() -> None:
    """2,000 A/A experiments read every day for 28 days; a false positive is ANY day with p < 0.05."""
    rng = np.random.default_rng([7, 14, 2])
    sims, days, per_day, p = 2000, 28, 400, 0.08
    xc = rng.binomial(per_day, p, size=(sims, days)).cumsum(axis=1)
    xt = rng.binomial(per_day, p, size=(sims, days)).cumsum(axis=1)
    n = np.broadcast_to(per_day * np.arange(1, days + 1), (sims, days))
    lift, var = seq.relative_lift(xc, n, xt, n)
    always_valid = (seq.msprt_p_value(lift, var) < seq.ALPHA).any(axis=1).mean()
    fixed = (seq.fixed_p_value(lift, var) < seq.ALPHA).any(axis=1).mean()
    fixed_last_day = (seq.fixed_p_value(lift[:, -1], var[:, -1]) < seq.ALPHA).mean()
    print(
        f"A/A, {sims} experiments x {days} daily looks: false-positive rate always-valid {always_valid:.3f}, "
        f"fixed-horizon read daily {fixed:.3f} (fixed-horizon read once at the end {fixed_last_day:.3f})"
    )
    assert always_valid <= seq.ALPHA
    assert fixed > 2 * seq.ALPHA
