"""marts.time_to_convert and its curve table against an independent Kaplan-Meier (statsmodels' SurvfuncRight),
on every row, with subjects rebuilt here in pandas from the staged CRM records; and the planted truth
(CONTRACTS §5.4): Email contacts reach customer faster than Paid Social contacts.

(lifelines, the issue's suggestion, cannot be installed beside pandas 3: every lifelines release pins
pandas < 3. statsmodels implements the same estimator, Greenwood's variance and the SAS quantile interval.)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.duration.survfunc import SurvfuncRight

ALL = "All channels"
Z = 1.959963984540054


@pytest.fixture(scope="module")
def con(warehouse):
    return warehouse.connect()


@pytest.fixture(scope="module")
def subjects(con) -> pd.DataFrame:
    """(channel, from_step, to_step, t_days, converted) per contact and step pair, built without the SQL model."""
    catalog = con.execute(
        "SELECT conversion_name, signal_type, signal, funnel_name, funnel_step FROM staging.conversion_catalog "
        "WHERE source_system = 'hubspot'"
    ).df()
    funnel = catalog[catalog.signal_type == "lifecycle_stage"].dropna(subset=["funnel_name"])
    assert funnel.funnel_name.nunique() == 1
    funnel = funnel.sort_values("funnel_step")
    stage_step = dict(zip(funnel.signal, funnel.funnel_step, strict=True))
    step_name = dict(zip(funnel.funnel_step, funnel.conversion_name, strict=True))
    won_names = list(catalog[catalog.signal_type == "deal_won"].conversion_name)
    contacts = con.execute(
        """
        SELECT portal_id, contact_id, channel, created_at_utc, stage_entries FROM staging.hubspot_contacts c
        WHERE merged_into IS NULL AND created_at_utc IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM staging.hubspot_merges m WHERE m.portal_id = c.portal_id AND m.merged_id = c.contact_id)
        """
    ).df()
    censor = con.execute("SELECT max(updated_at_utc) FROM staging.hubspot_contacts").fetchall()[0][0]
    won = con.execute(
        "SELECT portal_id, contact_id, min(closed_at_utc) AS won_at FROM staging.hubspot_deals "
        "WHERE is_closed_won AND contact_id IS NOT NULL GROUP BY ALL"
    ).df()
    won_at = {(p, c): t for p, c, t in won.itertuples(index=False)}
    steps = sorted(step_name)
    rows = []
    for portal, contact, channel, created, entries in contacts.itertuples(index=False):
        first: dict[int, pd.Timestamp] = {}
        for entry in entries if entries is not None else []:
            step = stage_step.get(entry["stage"])
            if step is not None and entry["entered_at_utc"] is not None:
                at = pd.Timestamp(entry["entered_at_utc"])
                first[step] = min(first.get(step, at), at)
        reached = {}
        for k in steps:  # first entry into step k or any later one
            later = [first[j] for j in steps if j >= k and j in first]
            if later:
                reached[step_name[k]] = min(later)
        points = {"contact_created": pd.Timestamp(created), **reached}
        order = {"contact_created": 0, **{step_name[k]: k for k in steps}}
        for from_step, from_at in points.items():
            if from_at > censor:
                continue
            targets = [(step_name[k], reached.get(step_name[k])) for k in steps if k > order[from_step]]
            if order[from_step] < max(steps):
                targets += [(name, won_at.get((portal, contact))) for name in won_names]
            for to_step, to_at in targets:
                converted = to_at is not None and to_at <= censor
                end = to_at if converted else censor
                t_days = max(0.0, (pd.Timestamp(end) - from_at).total_seconds() / 86400.0)
                for ch in (channel, ALL):
                    rows.append((ch, from_step, to_step, t_days, converted))
    return pd.DataFrame(rows, columns=["channel", "from_step", "to_step", "t_days", "converted"])


def _close(a, b, tol=1e-9) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and (math.isnan(b) or math.isinf(b)))
    return b is not None and abs(float(a) - float(b)) <= tol * max(1.0, abs(float(b)))


def _quantile(sf: SurvfuncRight, p: float) -> float:
    """statsmodels' quantile rule (survival strictly below 1 - p) with exact-arithmetic ties: a survival that
    equals 1 - p in exact arithmetic (n divisible by 4 with no censoring yet) can come out a hair below it in
    a float product, which would move the quantile to the previous event time in one implementation only."""
    ii = np.flatnonzero(sf.surv_prob < 1 - p - 1e-12)
    return float(sf.surv_times[ii[0]]) if len(ii) else float("nan")


def _share_by(sf: SurvfuncRight, days: float, follow_up: float) -> float | None:
    if follow_up < days:
        return None
    idx = np.searchsorted(sf.surv_times, days, side="right") - 1
    return 1.0 - (sf.surv_prob[idx] if idx >= 0 else 1.0)


def test_every_row_equals_an_independent_kaplan_meier(con, subjects):
    mart = con.execute("SELECT * FROM marts.time_to_convert").df()
    groups = dict(tuple(subjects.groupby(["channel", "from_step", "to_step"])))
    assert len(mart) == len(groups) > 100
    for row in mart.itertuples(index=False):
        g = groups[(row.channel, row.from_step, row.to_step)]
        key = (row.channel, row.from_step, row.to_step)
        assert row.contacts_at_risk == len(g), key
        assert row.events == int(g.converted.sum()), key
        assert row.censored == len(g) - int(g.converted.sum()), key
        assert _close(row.max_follow_up_days, g.t_days.max()), key
        if not g.converted.any():
            assert all(
                pd.isna(v) for v in (row.median_days, row.p25_days, row.p75_days, row.median_ci_low_days)
            ), key
            continue
        sf = SurvfuncRight(g.t_days.to_numpy(), g.converted.astype(float).to_numpy())
        assert _close(row.median_days, _quantile(sf, 0.5)), (key, row.median_days, _quantile(sf, 0.5))
        assert _close(row.p25_days, _quantile(sf, 0.25)), key
        assert _close(row.p75_days, _quantile(sf, 0.75)), key
        with np.errstate(divide="ignore", invalid="ignore"):  # log(-log S) at S = 1 or 0, as statsmodels does
            low, high = sf.quantile_ci(0.5)
        assert _close(row.median_ci_low_days, low), (key, row.median_ci_low_days, low)
        assert _close(row.median_ci_high_days, high), (key, row.median_ci_high_days, high)
        for days, value in ((7, row.converted_by_7d), (30, row.converted_by_30d), (90, row.converted_by_90d)):
            expected = _share_by(sf, days, g.t_days.max())
            assert _close(value, expected), (key, days, value, expected)


def test_curve_points_equal_the_independent_estimate(con, subjects):
    curve = con.execute("SELECT * FROM marts.time_to_convert_curve").df()
    checked = 0
    for (channel, from_step, to_step), g in subjects.groupby(["channel", "from_step", "to_step"]):
        points = curve[
            (curve.channel == channel) & (curve.from_step == from_step) & (curve.to_step == to_step)
        ]
        assert list(points.day) == list(range(0, min(int(g.t_days.max()), 365) + 1))
        if not g.converted.any():
            assert (points.share_converted == 0).all()
            continue
        sf = SurvfuncRight(g.t_days.to_numpy(), g.converted.astype(float).to_numpy())
        for p in points.itertuples(index=False):
            idx = np.searchsorted(sf.surv_times, p.day, side="right") - 1
            s = sf.surv_prob[idx] if idx >= 0 else 1.0
            assert _close(p.share_converted, 1 - s), (channel, from_step, to_step, p.day)
            assert p.events_to_date == int((g.converted & (g.t_days <= p.day)).sum())
            if 0 < s < 1 and idx >= 0 and np.isfinite(sf.surv_prob_se[idx]):
                half = (
                    Z * sf.surv_prob_se[idx] / (s * math.log(s))
                )  # cloglog: se(log(-log S)) = se(S)/(S |log S|)
                lo, hi = (
                    1 - math.exp(-math.exp(math.log(-math.log(s)) + half)),
                    1 - math.exp(-math.exp(math.log(-math.log(s)) - half)),
                )
                assert _close(p.share_converted_ci_low, lo, 1e-7) and _close(
                    p.share_converted_ci_high, hi, 1e-7
                )
                assert p.share_converted_ci_low <= p.share_converted <= p.share_converted_ci_high
            checked += 1
    assert checked > 50


def test_censored_contacts_are_kept_not_dropped(con):
    total, censored = con.execute(
        "SELECT contacts_at_risk, censored FROM marts.time_to_convert "
        "WHERE channel = 'All channels' AND from_step = 'contact_created' AND to_step = 'lifecycle_customer'"
    ).fetchall()[0]
    contacts = con.execute(
        "SELECT count(*) FROM staging.hubspot_contacts c WHERE merged_into IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM staging.hubspot_merges m WHERE m.portal_id = c.portal_id AND m.merged_id = c.contact_id)"
    ).fetchall()[0][0]
    assert total == contacts and censored > total / 2


def test_email_contacts_reach_customer_faster_than_paid_social(con, warehouse):
    planted = warehouse.store.truth.planted
    fast, slow = planted["faster_to_customer_channel"], planted["slower_to_customer_channel"]
    rows = {
        (r[0], r[1], r[2]): r[3:]
        for r in con.execute(
            "SELECT channel, from_step, to_step, converted_by_30d, p25_days, events FROM marts.time_to_convert "
            "WHERE channel IN (?, ?)",
            [fast, slow],
        ).fetchall()
    }
    for from_step in ("contact_created", "lifecycle_lead"):
        f, s = rows[(fast, from_step, "lifecycle_customer")], rows[(slow, from_step, "lifecycle_customer")]
        assert f[0] > 1.5 * s[0], (from_step, f, s)  # share that became customer within 30 days
    # Where a quartile exists (lead -> MQL), the Email quartile is far shorter, its interval clear of Paid Social's.
    f, s = rows[(fast, "lifecycle_lead", "lifecycle_mql")], rows[(slow, "lifecycle_lead", "lifecycle_mql")]
    assert f[1] * 2 < s[1]
    curve = dict(
        con.execute(
            "SELECT channel, share_converted_ci_low FROM marts.time_to_convert_curve WHERE from_step = "
            "'lifecycle_lead' AND to_step = 'lifecycle_mql' AND day = 3 AND channel = ?",
            [fast],
        ).fetchall()
    )
    high = con.execute(
        "SELECT share_converted_ci_high FROM marts.time_to_convert_curve WHERE from_step = 'lifecycle_lead' "
        "AND to_step = 'lifecycle_mql' AND day = 3 AND channel = ?",
        [slow],
    ).fetchall()[0][0]
    assert curve[fast] > high
