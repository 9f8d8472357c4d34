"""Realistic variation of the synthetic store's conversion propensities (issue 11; CONTRACTS §5.1).

Real traffic is not a string of independent coin flips: a segment's daily conversion rate swings with the
weekday, campaigns, sales and outages far more than binomial noise, and the same visitors return with their
own propensity. This module makes the store behave like that while keeping every planted truth:

- a day x segment random effect on propensities: per day, independent log-normal terms for the day itself,
  each channel, device category, country and visitor type (each with ``day_effect_sd`` standard deviation
  on the log scale, default 0.15), every term with mean one;
- weekday seasonality of the shopping funnel's propensity (``WEEKDAY_PROPENSITY``, mean one over a week);
- a few campaign bursts and dips (a channel or device, 3 to 10 days, x1.5 or x0.6), renormalised so each
  channel's and device's multiplier averages one over the store's days;
- per-visitor heterogeneity: a log-normal propensity per visitor (``VISITOR_SD``) drawn from a hash of the
  visitor id, so a returning visitor keeps it on every day they come back.

Every propensity *group* (the purchase funnel; each secondary action) gets its own independent effects, so
actions that carry no term in the purchase propensity (share, search, file_download) stay unrelated to it in
expectation, and the planted nulls (device, country) stay null: every multiplier has mean one whatever the
segment. On the CRM side, some customers fill a "Newsletter signup" form after they became customers
(``POST_MACRO_NEWSLETTER_SHARE``): a micro conversion after the macro, which must not count as leading to it.

Randomness: a stream of its own, ``np.random.default_rng([seed, REALISM_STREAM])``, and a hash of the visitor
id; the store's main stream draws exactly what it drew before, and the realism only moves the thresholds the
main stream's uniform draws are compared with.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from connectors.sandbox import store_model as m

REALISM_STREAM = 11
DEFAULT_DAY_EFFECT_SD = 0.15
VISITOR_SD = 0.5  # log-normal SD of a visitor's own propensity
# Monday .. Sunday, mean one: weekend visitors browse more and buy less.
WEEKDAY_PROPENSITY = np.array([1.06, 1.05, 1.03, 1.01, 0.97, 0.92, 0.96])
WEEKDAY_PROPENSITY = WEEKDAY_PROPENSITY / WEEKDAY_PROPENSITY.mean()
CAMPAIGNS_PER_90_DAYS = 4.0
CAMPAIGN_BURST, CAMPAIGN_DIP = 1.5, 0.6
POST_MACRO_NEWSLETTER_SHARE = 0.5  # of customers with time left, a newsletter signup after becoming customer

# Propensity groups: each has independent day/segment/visitor effects. "funnel" covers view_item, add_to_cart,
# begin_checkout and purchase together (one shopping intent); the others are one secondary action each.
GROUPS = (
    "funnel",
    "add_to_wishlist",
    "search",
    "view_size_chart",
    "sign_up",
    "file_download",
    "share",
    "review",
)
_VISITOR_SALT = np.array([0x9E3779B97F4A7C15 * (k + 1) % 2**64 for k in range(len(GROUPS))], dtype=np.uint64)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@dataclass
class Realism:
    """Per-day and per-visitor propensity multipliers of one store (all ones when disabled)."""

    seed: int
    start_date: dt.date
    n_days: int
    day_effect_sd: float
    enabled: bool
    # log multipliers per group: [group, day, value] for each dimension
    _log_day: np.ndarray | None = None
    _log_channel: np.ndarray | None = None
    _log_device: np.ndarray | None = None
    _log_country: np.ndarray | None = None
    _log_visitor_type: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.enabled:
            return
        rng = np.random.default_rng([self.seed, REALISM_STREAM])
        g, d, s = len(GROUPS), self.n_days, self.day_effect_sd

        def effect(values: int) -> np.ndarray:
            # log-normal with mean one: exp(s Z - s^2 / 2)
            return s * rng.standard_normal((g, d, values)) - s * s / 2

        self._log_day = effect(1)[:, :, 0]
        self._log_channel = effect(len(m.CHANNELS))
        self._log_device = effect(len(m.DEVICES))
        self._log_country = effect(len(m.COUNTRIES))
        self._log_visitor_type = effect(2)
        weekday = (np.datetime64(self.start_date, "D").astype(np.int64) + np.arange(d) + 3) % 7
        # Weekday seasonality of the shopping intent only: a common weekly rhythm in every action would make
        # the secondary actions co-occur with purchases (the planted nulls share, search, file_download).
        self._log_day[0] += np.log(WEEKDAY_PROPENSITY[weekday])
        # Campaign bursts and dips on the funnel (channels) and outages (devices), then renormalised so that
        # every value's multiplier averages one over the days: the planted channel sizes are kept.
        n_campaigns = int(rng.poisson(CAMPAIGNS_PER_90_DAYS * d / 90.0))
        for _ in range(n_campaigns):
            on_device = rng.random() < 0.25
            table = self._log_device if on_device else self._log_channel
            value = int(rng.integers(0, table.shape[2]))
            start = int(rng.integers(0, d))
            length = int(rng.integers(3, 11))
            factor = CAMPAIGN_DIP if on_device or rng.random() < 0.4 else CAMPAIGN_BURST
            table[0, start : start + length, value] += np.log(factor)
        for table in (self._log_channel, self._log_device, self._log_country, self._log_visitor_type):
            table -= np.log(np.exp(table).mean(axis=1, keepdims=True))
        self._log_day -= np.log(np.exp(self._log_day).mean(axis=1, keepdims=True))

    def calm_day(self, day: int) -> None:
        """Give day ``day`` of the store its weekday's typical multipliers and no day x segment shock: every
        channel, device, country and visitor-type term at one (their mean over the days) and the day term at
        the mean of the same weekday's days. For a plant whose contract is "normal rates that day" (the
        traffic surge of store_anomalies), so that nothing but the plant sets that day apart."""
        if not self.enabled:
            return
        assert self._log_day is not None and self._log_channel is not None and self._log_device is not None
        assert self._log_country is not None and self._log_visitor_type is not None
        weekday = (np.datetime64(self.start_date, "D").astype(np.int64) + np.arange(self.n_days) + 3) % 7
        same = np.flatnonzero(weekday == weekday[day])
        self._log_day[:, day] = np.log(np.exp(self._log_day[:, same]).mean(axis=1))
        for table in (self._log_channel, self._log_device, self._log_country, self._log_visitor_type):
            table[:, day, :] = 0.0

    def multipliers(
        self,
        day: np.ndarray,
        channel: np.ndarray,
        device: np.ndarray,
        country: np.ndarray,
        returning: np.ndarray,
        user_id: np.ndarray,
    ) -> np.ndarray:
        """Propensity multipliers, shape (len(GROUPS), sessions); ``day`` indexes the store's days."""
        n = day.shape[0]
        if not self.enabled:
            return np.ones((len(GROUPS), n))
        assert self._log_day is not None and self._log_channel is not None and self._log_device is not None
        assert self._log_country is not None and self._log_visitor_type is not None
        vt = returning.astype(np.int64)
        log_mult = (
            self._log_day[:, day]
            + self._log_channel[:, day, channel]
            + self._log_device[:, day, device]
            + self._log_country[:, day, country]
            + self._log_visitor_type[:, day, vt]
        )
        # The visitor's own propensity: a hash of (seed, visitor, group) -> uniform -> log-normal, mean one.
        key = _splitmix64(user_id.astype(np.uint64) ^ np.uint64(self.seed * 0x2545F4914F6CDD1D % 2**64))
        u = (_splitmix64(key[None, :] ^ _VISITOR_SALT[:, None]) >> np.uint64(11)).astype(np.float64)
        u = (u + 0.5) / float(2**53)
        log_mult += VISITOR_SD * ndtri(u) - VISITOR_SD * VISITOR_SD / 2
        return np.exp(log_mult)

    def group(self, mult: np.ndarray, name: str) -> np.ndarray:
        return mult[GROUPS.index(name)]


def post_macro_newsletter(
    seed: int,
    end_s: int,
    in_customer: np.ndarray,
    t_close: np.ndarray,
    recent_s: np.ndarray,
    recent_form: np.ndarray,
    n_conv: np.ndarray,
    lm_base: np.ndarray,
    enabled: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Some customers sign up to the newsletter after they became customers: their most recent conversion
    is then a Newsletter signup dated after the customer date (a micro conversion that follows the macro).
    Returns new (recent_s, recent_form, n_conv, lm_base)."""
    if not enabled:
        return recent_s, recent_form, n_conv, lm_base
    rng = np.random.default_rng([seed, REALISM_STREAM, 1])
    n = recent_s.shape[0]
    u = rng.random(n)
    delay = np.asarray(m.DAY + rng.exponential(10 * m.DAY, size=n)).astype(np.int64)
    chosen = in_customer & (u < POST_MACRO_NEWSLETTER_SHARE) & (t_close + delay < end_s - 1)
    recent_s = np.where(chosen, t_close + delay, recent_s)
    recent_form = np.where(chosen, m.FORM_NEWSLETTER, recent_form)
    n_conv = np.where(chosen, n_conv + 1, n_conv)
    lm_base = np.where(chosen, np.maximum(lm_base, recent_s), lm_base)
    return recent_s, recent_form, n_conv, lm_base
