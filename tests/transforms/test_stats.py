"""transforms.stats against the libraries as oracles (statsmodels, scipy), on generated and on mart counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import fisher_exact
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

from transforms import stats


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(11)
    n1 = rng.integers(20, 5_000, 300)
    n2 = rng.integers(20, 50_000, 300)
    a = rng.binomial(n1, rng.uniform(0.001, 0.3, 300))
    c = rng.binomial(n2, rng.uniform(0.001, 0.3, 300))
    # Edge cases: zero conversions on either side, tiny groups (Fisher), all converted.
    a[:3], c[3:6], n1[6:9], a[6:9] = 0, 0, 12, [1, 2, 0]
    a[9], n1[9] = n1[9], n1[9]
    return a, n1, c, n2


def test_wilson_equals_statsmodels(counts):
    a, n1, _, _ = counts
    low, high = stats.wilson_interval(a, n1)
    ref_low, ref_high = proportion_confint(a, n1, alpha=0.05, method="wilson")
    np.testing.assert_allclose(low, ref_low, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(high, ref_high, rtol=1e-12, atol=1e-15)


def test_katz_interval_equals_statsmodels(counts):
    a, n1, c, n2 = counts
    ratio, low, high = stats.rate_ratio_katz(a, n1, c, n2)
    for i in range(a.size):
        zero = a[i] == 0 or c[i] == 0
        ref = confint_proportions_2indep(
            a[i], n1[i], c[i], n2[i], method="log-adjusted" if zero else "log", compare="ratio", alpha=0.05
        )
        assert low[i] == pytest.approx(ref[0], rel=1e-10), i
        assert high[i] == pytest.approx(ref[1], rel=1e-10), i
        if c[i] > 0:
            assert ratio[i] == pytest.approx((a[i] / n1[i]) / (c[i] / n2[i]), rel=1e-12)


def test_p_values_equal_ztest_or_fisher(counts):
    a, n1, c, n2 = counts
    p, method = stats.two_proportion_p_value(a, n1, c, n2)
    n_fisher = 0
    for i in range(a.size):
        table = np.array([[a[i], n1[i] - a[i]], [c[i], n2[i] - c[i]]])
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        if expected.min() < 5:
            assert method[i] == "fisher"
            assert p[i] == pytest.approx(fisher_exact(table).pvalue, rel=1e-9, abs=1e-300), i
            n_fisher += 1
        else:
            assert method[i] == "z"
            _, ref = proportions_ztest([a[i], c[i]], [n1[i], n2[i]])
            assert p[i] == pytest.approx(ref, rel=1e-9, abs=1e-300), i
    assert 0 < n_fisher < a.size, "the sample must exercise both tests"


def test_benjamini_hochberg_equals_multipletests(counts):
    a, n1, c, n2 = counts
    p, _ = stats.two_proportion_p_value(a, n1, c, n2)
    families = [i % 4 for i in range(p.size)]
    q = stats.benjamini_hochberg(p, families)
    for family in range(4):
        idx = [i for i in range(p.size) if families[i] == family]
        ref = multipletests(p[idx], alpha=0.05, method="fdr_bh")[1]
        np.testing.assert_allclose(q[idx], ref, rtol=1e-12)


def test_gate_and_rank():
    # Three segments of one family; the smallest fails the gate and gets no p, q or rank.
    result = stats.compare_against_rest(
        conversions=[90, 40, 1],
        units=[1_000, 1_000, 50],
        rest_conversions=[41, 91, 130],
        rest_units=[1_050, 1_050, 2_000],
        families=["f", "f", "f"],
        gate=stats.MinimumSample(units=100, rest_units=100, conversions=10),
    )
    assert list(result.tested) == [True, True, False]
    assert result.rank[0] == 1 and result.rank[1] == 2 and result.rank[2] is None
    assert np.isnan(result.p_value[2]) and np.isnan(result.q_value[2])
    assert "fewer than 100 units" in result.gate_reason[2]
    with pytest.raises(ValueError, match="exceed units"):
        stats.compare_against_rest([5], [4], [1], [10], ["f"])


def test_mart_statistics_equal_the_oracles(warehouse):
    """Every tested row of segment_summary and micro_macro_lift recomputed from its own counts."""
    con = warehouse.connect()
    rows = con.execute(
        """
        SELECT 'segment' AS t, source_system || conversion_name || segment_dimension AS family, conversions, units,
            rest_conversions, rest_units, rate_ci_low, rate_ci_high, lift_ci_low, lift_ci_high, p_value, q_value, tested
        FROM marts.segment_summary
        UNION ALL
        SELECT 'lift', basis, did_macro, did_count, did_not_macro, did_not_count, did_macro_rate_ci_low,
            did_macro_rate_ci_high, lift_ci_low, lift_ci_high, p_value, q_value, tested
        FROM marts.micro_macro_lift
        """
    ).fetchall()
    assert len(rows) > 100
    by_family: dict[tuple, list] = {}
    for t, family, a, n1, c, n2, rlo, rhi, llo, lhi, p, q, tested in rows:
        assert a <= n1 and c <= n2, "conversions never exceed units"
        ref_lo, ref_hi = proportion_confint(a, n1, method="wilson")
        assert rlo == pytest.approx(ref_lo, rel=1e-9, abs=1e-12) and rhi == pytest.approx(ref_hi, rel=1e-9)
        zero = a == 0 or c == 0
        ref = confint_proportions_2indep(
            a, n1, c, n2, method="log-adjusted" if zero else "log", compare="ratio"
        )
        assert llo == pytest.approx(ref[0], rel=1e-9) and lhi == pytest.approx(ref[1], rel=1e-9)
        if tested:
            table = np.array([[a, n1 - a], [c, n2 - c]])
            expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
            ref_p = (
                fisher_exact(table).pvalue if expected.min() < 5 else proportions_ztest([a, c], [n1, n2])[1]
            )
            assert p == pytest.approx(ref_p, rel=1e-9, abs=1e-300)
            by_family.setdefault((t, family), []).append((p, q))
        else:
            assert p is None and q is None
    for pairs in by_family.values():
        ref_q = multipletests([p for p, _ in pairs], method="fdr_bh")[1]
        np.testing.assert_allclose([q for _, q in pairs], ref_q, rtol=1e-9)
