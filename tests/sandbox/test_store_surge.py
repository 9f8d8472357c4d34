"""The planted traffic surge (CONTRACTS §5.4): the campaign's extra sessions are the day's visitor mix, so
every conversion rate per session on that day is the day's own, and GA4 leads still match HubSpot contacts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from connectors.sandbox import store_model as m
from connectors.sandbox.store import build_store

TEST_END_DATE = dt.date(2026, 11, 22)  # the suite's fixed last day (tests/conftest.py)
SEEDS = [7, 1, 2, 3, 4, 5]  # the tests' seed 7 and five others
EVENTS = ("view_item", "add_to_cart", "purchase", "search", "add_to_wishlist", "sign_up", "generate_lead")


@pytest.fixture(scope="module")
def stores():
    built = {seed: build_store("demo", seed=seed, end_date=TEST_END_DATE) for seed in SEEDS}
    yield built
    for store in built.values():
        store.close()


def _split(store):
    """(surge day, first surge session id): surge sessions are appended after every other session."""
    day = store.truth.planted["anomaly_surge_date"]
    first = store.con.execute("SELECT max(session_id) + 1 FROM sessions WHERE date != ?", [day]).fetchall()[
        0
    ][0]
    return day, first


@pytest.mark.parametrize("seed", SEEDS)
def test_surge_visitors_are_the_days_visitor_mix(stores, seed):
    store = stores[seed]
    day, first = _split(store)
    con = store.con
    n_surge, n_own, returning_share, returning_visitors = con.execute(
        """SELECT count(*) FILTER (session_id >= $first), count(*) FILTER (session_id < $first),
                avg((new_vs_returning = 'returning')::INT) FILTER (session_id >= $first),
                count(DISTINCT user_id) FILTER (session_id >= $first AND new_vs_returning = 'returning')
           FROM sessions WHERE date = $day""",
        {"first": first, "day": day},
    ).fetchall()[0]
    # Sessions triple: twice the day's own sessions more (Poisson around twice the weekday's mean).
    assert 1.7 < n_surge / n_own < 2.3, (n_surge, n_own)
    assert abs(returning_share - m.RETURNING_SHARE) < 0.03, returning_share
    # Returning sessions are many distinct earlier visitors (not one placeholder visitor for all of them) ...
    assert returning_visitors > 0.8 * returning_share * n_surge, returning_visitors
    # ... each first seen before the surge day, with the device and country of its earlier sessions.
    bad_returning = con.execute(
        """SELECT count(*) FROM sessions AS s
           WHERE s.session_id >= $first AND s.new_vs_returning = 'returning' AND (
               s.user_id >= (SELECT min(user_id) FROM sessions WHERE date = $day AND new_vs_returning = 'new'
                             AND session_id < $first)
               OR EXISTS (SELECT 1 FROM sessions AS e WHERE e.user_id = s.user_id AND e.date < $day
                          AND (e.device_category != s.device_category OR e.country != s.country)))""",
        {"first": first, "day": day},
    ).fetchall()[0][0]
    assert bad_returning == 0
    # New visitors get ids of their own, after every visitor of the store: their first session is this one.
    bad_new = con.execute(
        """SELECT count(*) - count(DISTINCT user_id)
                + count(*) FILTER (user_id <= (SELECT max(user_id) FROM sessions WHERE session_id < $first))
           FROM sessions WHERE session_id >= $first AND new_vs_returning = 'new'""",
        {"first": first},
    ).fetchall()[0][0]
    assert bad_new == 0
    # The campaign tag is the only label the surge adds; untagged traffic keeps GA4's '(...)' campaigns (the
    # store's hostile labels, planted afterwards on a few sessions of every day, may cover either).
    campaigns = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT campaign FROM sessions WHERE session_id >= ?", [first]
        ).fetchall()
    }
    hostile = set(store.truth.planted["hostile_values"]["campaigns"])  # relabelled later (store_hostile)
    assert "flash_sale" in campaigns
    assert all(c == "flash_sale" or c.startswith("(") or c in hostile for c in campaigns), campaigns
    # GA4 leads and HubSpot contacts still agree per day and channel (every lead copies a same-day contact).
    assert store.truth.ga4_leads_by_day_channel().equals(store.truth.contacts_created_by_day_channel())


def test_surge_sessions_convert_at_the_days_own_rates(stores):
    """Pooled over the seeds, each action's share of sessions among the surge's sessions is the day's own
    sessions' share (the same day effects, the same kind of visitors): a ratio near one for every action."""
    surge_n = own_n = 0
    surge_k = dict.fromkeys(EVENTS, 0)
    own_k = dict.fromkeys(EVENTS, 0)
    for store in stores.values():
        day, first = _split(store)
        counts = ", ".join(
            f"count(*) FILTER ({e} > 0 AND session_id >= $first), count(*) FILTER ({e} > 0 AND session_id < $first)"
            for e in EVENTS
        )
        row = store.con.execute(
            f"SELECT count(*) FILTER (session_id >= $first), count(*) FILTER (session_id < $first), {counts} "
            "FROM sessions WHERE date = $day",
            {"first": first, "day": day},
        ).fetchall()[0]
        surge_n += row[0]
        own_n += row[1]
        for i, e in enumerate(EVENTS):
            surge_k[e] += row[2 + 2 * i]
            own_k[e] += row[3 + 2 * i]
    for e in EVENTS:
        ratio = (surge_k[e] / surge_n) / (own_k[e] / own_n)
        # Rare actions (purchase, sign_up: ~200 own sessions pooled) get a wider band than frequent ones.
        band = 0.25 if own_k[e] < 400 else 0.15
        assert abs(ratio - 1) < band, (e, ratio, surge_k[e], own_k[e])


def test_the_surge_day_carries_no_day_by_segment_shock():
    """The surge's contract is normal rates: on that day every channel, device, country and visitor type has
    multiplier one (a visitor's own propensity stays), and the day term is its weekday's mean, so an alert on
    that day could only come from the surge itself."""
    from connectors.sandbox import store_realism

    start = dt.date(2026, 8, 25)
    realism = store_realism.Realism(7, start, 90, store_realism.DEFAULT_DAY_EFFECT_SD, True)
    day = 74
    before = realism.multipliers(
        np.full(3, day - 7), np.array([0, 1, 2]), np.array([0, 1, 2]), np.array([0, 1, 2]),
        np.array([False, True, False]), np.full(3, 42),
    )  # fmt: skip
    assert np.ptp(before, axis=1).max() > 0.05  # an ordinary day: segments differ
    assert realism._log_day is not None
    weekday_mean = np.exp(realism._log_day[:, np.arange(day % 7, 90, 7)]).mean(axis=1)
    realism.calm_day(day)
    mult = realism.multipliers(
        np.full(3, day), np.array([0, 1, 2]), np.array([0, 1, 2]), np.array([0, 1, 2]),
        np.array([False, True, False]), np.full(3, 42),
    )  # fmt: skip
    assert np.ptp(mult, axis=1).max() < 1e-12  # same visitor, any segment: the same multiplier
    assert np.allclose(np.exp(realism._log_day[:, day]), weekday_mean)  # the weekday's mean before
