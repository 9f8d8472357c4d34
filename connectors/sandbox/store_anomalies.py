"""Planted conversion anomalies and the planted time-to-convert truth of the synthetic store.

Positioned relative to the store's end date so that they land in every demo store (CONTRACTS §5.4):

- ``add_to_cart`` events stop completely on one day, ten days before the end (a broken tag: the sessions
  still view items, check out and purchase; only the add_to_cart event is missing);
- ``purchase`` per session halves for two days, twenty and nineteen days before the end (a checkout bug:
  half of the purchasing sessions lose their purchase and its revenue, begin_checkout stays);
- sessions triple on one day, fifteen days before the end, from a campaign (``flash_sale`` on tagged traffic):
  twice a day's sessions more, drawn by the store's own session model from this module's stream out of the
  day's visitor mix (returning visitors seen before that day with their device, country and own propensity;
  new visitors with new ids), so every conversion rate per session stays the day's; and the day carries no
  day x segment shock of the store's realism (``calm_surge_day``): normal rates, so this must NOT raise a
  conversion alert. A surge session with a lead gets a copy of a same-day, same-channel contact (and its
  deal) and takes that lead's time and form, so GA4 leads and HubSpot contacts still reconcile per day and
  channel (the copy takes the session's country);
- time to convert: every stage-to-stage duration of an Email contact is scaled by ``EMAIL_DURATION_SCALE``
  and of a Paid Social contact by ``PAID_SOCIAL_DURATION_SCALE`` (no new draws: the same exponential
  draws, stretched), so Email contacts reach customer faster than Paid Social contacts.

Randomness: only ``np.random.default_rng([seed, ANOMALY_STREAM])``, never the store's main stream.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, cast
from zoneinfo import ZoneInfo

import duckdb
import numpy as np

from connectors.sandbox import store_model as m
from connectors.sandbox import store_realism

ANOMALY_STREAM = 15
ZERO_EVENT = "add_to_cart"
ZERO_DAYS_BEFORE_END = 10
HALVED_EVENT = "purchase"
HALVED_DAYS_BEFORE_END = (20, 19)
SURGE_DAYS_BEFORE_END = 15
SURGE_FACTOR = 3  # sessions on the surge day: the day's own sessions plus two resampled copies of them
SURGE_CAMPAIGN = "flash_sale"
EMAIL_DURATION_SCALE = 0.5
PAID_SOCIAL_DURATION_SCALE = 1.8
CH_PAID_SOCIAL = m.CHANNELS.index("Paid Social")


def plant_dates(end_date: dt.date) -> dict[str, Any]:
    """The dates of the planted anomalies of a store ending on ``end_date`` (whether inside the store or not)."""
    return {
        "zero_event": ZERO_EVENT,
        "zero_date": end_date - dt.timedelta(days=ZERO_DAYS_BEFORE_END),
        "halved_event": HALVED_EVENT,
        "halved_dates": [end_date - dt.timedelta(days=k) for k in HALVED_DAYS_BEFORE_END],
        "surge_date": end_date - dt.timedelta(days=SURGE_DAYS_BEFORE_END),
        "surge_factor": SURGE_FACTOR,
        "surge_campaign": SURGE_CAMPAIGN,
    }


def planted(start_date: dt.date, end_date: dt.date) -> dict[str, Any]:
    """``store.truth.planted`` entries: the anomalies inside this store, and the time-to-convert truth."""
    dates = plant_dates(end_date)
    inside = lambda d: start_date <= d <= end_date  # noqa: E731
    return {
        "anomaly_zero": (ZERO_EVENT, dates["zero_date"]) if inside(dates["zero_date"]) else None,
        "anomaly_halved": (HALVED_EVENT, [d for d in dates["halved_dates"] if inside(d)]),
        "anomaly_surge_date": dates["surge_date"] if inside(dates["surge_date"]) else None,
        "faster_to_customer_channel": "Email",
        "slower_to_customer_channel": "Paid Social",
        "stage_duration_scale": {"Email": EMAIL_DURATION_SCALE, "Paid Social": PAID_SOCIAL_DURATION_SCALE},
    }


def _end_instant_utc(end_date: dt.date, time_zone: str = m.TIME_ZONE) -> dt.datetime:
    local = dt.datetime.combine(end_date + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(time_zone))
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def stage_duration_scale(channel: np.ndarray) -> np.ndarray:
    """Per contact (channel index), the factor applied to its stage-to-stage durations."""
    scale = np.ones(channel.shape[0], dtype=np.float64)
    scale[channel == m.CH_EMAIL] = EMAIL_DURATION_SCALE
    scale[channel == CH_PAID_SOCIAL] = PAID_SOCIAL_DURATION_SCALE
    return scale


def apply(
    con: duckdb.DuckDBPyConnection,
    seed: int,
    start_date: dt.date,
    end_date: dt.date,
    time_zone: str = m.TIME_ZONE,
) -> None:
    """Plant the anomalies into the generated ``sessions``, ``contacts`` and ``deals`` tables of ``con``
    (``time_zone``: the store's zone, whose local midnight ends the store)."""
    rng = np.random.default_rng([seed, ANOMALY_STREAM])
    dates = plant_dates(end_date)
    inside = lambda d: start_date <= d <= end_date  # noqa: E731

    if inside(dates["zero_date"]):
        con.execute(f"UPDATE sessions SET {ZERO_EVENT} = 0 WHERE date = ?", [dates["zero_date"]])

    for day in dates["halved_dates"]:
        if not inside(day):
            continue
        ids = np.array(
            [
                r[0]
                for r in con.execute(
                    f"SELECT session_id FROM sessions WHERE date = ? AND {HALVED_EVENT} > 0 ORDER BY session_id",
                    [day],
                ).fetchall()
            ],
            dtype=np.int64,
        )
        if ids.size:
            lost = np.sort(rng.choice(ids, size=ids.size // 2, replace=False))
            con.execute(
                f"UPDATE sessions SET {HALVED_EVENT} = 0, purchase_revenue = 0 "
                "WHERE session_id IN (SELECT unnest(?::BIGINT[]))",
                [lost.tolist()],
            )

    if inside(dates["surge_date"]):
        _surge_contacts(con, rng, dates["surge_date"], time_zone)


class _SurgeVisitorIds:
    """The store's realism seen through the surge's visitor numbering. ``_sessions_chunk`` numbers the surge's
    new visitors right after the visitors seen before the surge day, but those numbers belong to the day's own
    (and later) new visitors; the surge's new visitors get ids after every visitor of the store instead, and
    their propensity must be that of the id they end up with (a visitor's propensity is a hash of its id)."""

    def __init__(self, realism: store_realism.Realism, users_before_day: int, new_id_offset: int) -> None:
        self.realism = realism
        self.users_before_day = users_before_day
        self.new_id_offset = new_id_offset

    def multipliers(
        self,
        day: np.ndarray,
        channel: np.ndarray,
        device: np.ndarray,
        country: np.ndarray,
        returning: np.ndarray,
        user_id: np.ndarray,
    ) -> np.ndarray:
        final_id = np.where(user_id > self.users_before_day, user_id + self.new_id_offset, user_id)
        return self.realism.multipliers(day, channel, device, country, returning, final_id)

    def group(self, mult: np.ndarray, name: str) -> np.ndarray:
        return self.realism.group(mult, name)


def calm_surge_day(realism: store_realism.Realism, params: Any) -> None:
    """The surge day's contract is normal conversion rates: it carries no day x segment shock of the store's
    realism (store_realism.Realism.calm_day), so an alert on that day could only come from the surge itself.
    Called by ``store_gen.populate`` before any session is drawn (it moves thresholds, never draws)."""
    day = plant_dates(params.end_date)["surge_date"]
    if params.start_date <= day <= params.end_date:
        realism.calm_day((day - params.start_date).days)


def add_surge_sessions(con: duckdb.DuckDBPyConnection, params: Any, state: Any) -> None:
    """Draw the surge day's extra sessions from the store's own session model with this module's stream and
    insert them after every other session. Called by ``store_gen.populate`` once all chunks are in (``state``
    then knows every visitor's device and country); their contacts come in ``apply``.

    The surge's visitors are the day's visitor mix: the model's new/returning share and channel mix; a
    returning visitor is one seen before the surge day (picked as the model picks them, recent ones more
    often), with that visitor's device, country and own propensity (store_realism); a new visitor gets a new
    id after every visitor of the store. So the campaign's sessions convert like the day's own sessions."""
    from connectors.sandbox import store_gen as g  # imported here: store_gen imports this module

    day = plant_dates(params.end_date)["surge_date"]
    if not params.start_date <= day <= params.end_date:
        return
    rng = np.random.default_rng([params.seed, ANOMALY_STREAM, 1])
    extra = dataclasses.replace(params, sessions_per_day=params.sessions_per_day * (SURGE_FACTOR - 1))
    # Visitors are numbered in order of their first session: the prior visitors, then each new session's.
    n_prior = int(round(m.PRIOR_USERS_DAYS * params.sessions_per_day))
    new_before = con.execute(
        "SELECT count(*) FROM sessions WHERE date < ? AND new_vs_returning = 'new'", [day]
    ).fetchall()[0][0]
    users_before_day = n_prior + int(new_before)
    new_id_offset = int(state.n_users) - users_before_day
    scratch = g._UserState(
        n_users=users_before_day,
        device=state.device[:users_before_day].copy(),
        country=state.country[:users_before_day].copy(),
        next_session_id=state.next_session_id,
        # the same day effects as the day's own sessions and each visitor's own propensity (store_realism)
        realism=cast(store_realism.Realism, _SurgeVisitorIds(state.realism, users_before_day, new_id_offset)),
    )
    chunk = g._sessions_chunk(rng, np.array([np.datetime64(day, "D")]), extra, scratch)
    first_id = state.next_session_id
    con.register("session_chunk", chunk)
    con.execute(g.SESSIONS_INSERT)
    con.unregister("session_chunk")
    con.execute(
        """
        UPDATE sessions SET
            user_id = CASE WHEN new_vs_returning = 'new' THEN user_id + $offset ELSE user_id END,
            -- GA4's '(direct)' / '(organic)' / '(not set)' stay: only tagged traffic carries a campaign name
            campaign = CASE WHEN starts_with(campaign, '(') THEN campaign ELSE $campaign END
        WHERE session_id >= $first
        """,
        {"offset": new_id_offset, "campaign": SURGE_CAMPAIGN, "first": first_id},
    )
    con.execute("CREATE OR REPLACE TEMP TABLE sw_surge AS SELECT ?::BIGINT AS first_session_id", [first_id])


def _surge_contacts(
    con: duckdb.DuckDBPyConnection, rng: np.random.Generator, day: dt.date, time_zone: str = m.TIME_ZONE
) -> None:
    """Each surge session with a lead gets a contact: a copy of a contact created the same day from the same
    channel (its progression), and the session takes that contact's lead time and form, so the contact is
    created at the session's start as for every lead. Without such a template the session keeps no lead."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = 'sw_surge'"
    ).fetchall()[0][0]
    if not exists:
        return
    first = con.execute("SELECT first_session_id FROM sw_surge").fetchall()[0][0]
    leads = con.execute(
        "SELECT session_id, channel FROM sessions WHERE session_id >= ? AND generate_lead > 0 ORDER BY session_id",
        [first],
    ).fetchall()
    templates = con.execute(
        """
        SELECT s.channel, list(c.id ORDER BY c.id) FROM contacts AS c JOIN sessions AS s ON s.session_id = c.session_id
        WHERE s.date = ? AND s.session_id < ? GROUP BY 1
        """,
        [day, first],
    ).fetchall()
    by_channel = {channel: ids for channel, ids in templates}
    pairs, dropped = [], []
    for session_id, channel in leads:
        ids = by_channel.get(channel)
        if ids:
            pairs.append((session_id, ids[int(rng.integers(0, len(ids)))]))
        else:
            dropped.append(session_id)
    if dropped:
        con.execute(
            "UPDATE sessions SET generate_lead = 0, lead_form = NULL WHERE session_id IN (SELECT unnest(?::BIGINT[]))",
            [dropped],
        )
    con.execute(
        "CREATE TEMP TABLE surge_pairs AS SELECT unnest(?::BIGINT[]) AS session_id, unnest(?::BIGINT[]) AS template_id",
        [[p[0] for p in pairs], [p[1] for p in pairs]],
    )
    con.execute(
        """
        UPDATE sessions SET ts = t.ts, lead_form = t.lead_form
        FROM surge_pairs AS p JOIN contacts AS c ON c.id = p.template_id JOIN sessions AS t ON t.session_id = c.session_id
        WHERE sessions.session_id = p.session_id
        """
    )
    con.execute(
        """
        CREATE TEMP TABLE surge_contacts AS
        WITH base AS (SELECT max(id) AS max_id FROM contacts)
        SELECT c.* REPLACE (
                base.max_id + row_number() OVER (ORDER BY s.session_id) AS id,
                s.session_id AS session_id,
                s.user_id AS user_id,
                s.country AS country,  -- the person's country, as for every lead (GA4 and HubSpot agree)
                CASE WHEN starts_with(s.campaign, '(') THEN c.hs_analytics_source_data_2 ELSE s.campaign END
                    AS hs_analytics_source_data_2,
                false AS archived,
                -- one second later (still before the store's end), so a copy never joins the bulk-import instant
                CASE WHEN c.lastmodifieddate + INTERVAL 1 SECOND < $end_instant
                    THEN c.lastmodifieddate + INTERVAL 1 SECOND ELSE c.lastmodifieddate END AS lastmodifieddate,
                NULL::BIGINT AS merged_into,
                NULL::VARCHAR AS hs_merged_object_ids
            ),
            c.id AS original_contact_id
        FROM surge_pairs AS p JOIN contacts AS c ON c.id = p.template_id JOIN sessions AS s ON s.session_id = p.session_id, base
        """,
        {"end_instant": _end_instant_utc(day + dt.timedelta(days=SURGE_DAYS_BEFORE_END), time_zone)},
    )
    con.execute(
        """
        INSERT INTO contacts BY NAME
        SELECT * EXCLUDE (original_contact_id) REPLACE (
            lower(firstname) || '.' || lower(lastname) || '.' || id::VARCHAR || '@example.com' AS email,
            printf('+1-555-%07d', id % 10000000) AS phone
        ) FROM surge_contacts
        """
    )
    con.execute(
        """
        INSERT INTO deals BY NAME
        WITH base AS (SELECT max(id) AS max_id FROM deals)
        SELECT d.* REPLACE (
            base.max_id + row_number() OVER (ORDER BY sc.id, d.id) AS id,
            sc.id AS contact_id,
            sc.lastname || ' - order #' || (base.max_id + row_number() OVER (ORDER BY sc.id, d.id))::VARCHAR AS dealname,
            false AS archived
        )
        FROM surge_contacts AS sc JOIN deals AS d ON d.contact_id = sc.original_contact_id, base
        """
    )
    for table in ("surge_pairs", "surge_contacts", "sw_surge"):
        con.execute(f"DROP TABLE {table}")
