"""Vectorised generation of the synthetic store's tables (numpy draws, DuckDB SQL for typing and joins).

The model and the planted truths are documented in ``store.py``; the constants live in ``store_model.py``.
All randomness comes from one ``np.random.default_rng(seed)`` consumed in a fixed order, and sessions are
drawn in fixed chunks of days, so the same parameters give the same bytes and memory stays bounded.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa

from connectors.sandbox import (
    store_anomalies,
    store_experiments,
    store_hostile,
    store_lifecycle,
    store_merges,
    store_realism,
)
from connectors.sandbox import store_model as m

CHUNK_DAYS = 28  # fixed, part of the determinism contract: changing it changes every store

EVENT_COLUMNS = (
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "purchase",
    "sign_up",
    "file_download",
    "add_to_wishlist",
    "search",
    "generate_lead",
    "share",
    "view_size_chart",
    "write_review",
)

SESSIONS_DDL = """
CREATE TABLE sessions (
    session_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    date DATE NOT NULL,
    ts TIMESTAMP NOT NULL,
    channel VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    medium VARCHAR NOT NULL,
    campaign VARCHAR NOT NULL,
    device_category VARCHAR NOT NULL,
    country VARCHAR NOT NULL,
    new_vs_returning VARCHAR NOT NULL,
    landing_page VARCHAR NOT NULL,
    engaged BOOLEAN NOT NULL,
    page_views INTEGER NOT NULL,
    view_item INTEGER NOT NULL,
    add_to_cart INTEGER NOT NULL,
    begin_checkout INTEGER NOT NULL,
    purchase INTEGER NOT NULL,
    sign_up INTEGER NOT NULL,
    file_download INTEGER NOT NULL,
    add_to_wishlist INTEGER NOT NULL,
    search INTEGER NOT NULL,
    generate_lead INTEGER NOT NULL,
    share INTEGER NOT NULL,
    view_size_chart INTEGER NOT NULL,
    write_review INTEGER NOT NULL,
    purchase_revenue DECIMAL(18,2) NOT NULL,
    lead_form VARCHAR
)
"""

SESSIONS_INSERT = (
    "INSERT INTO sessions SELECT session_id, user_id, date, ts::TIMESTAMP, channel, source, medium, campaign, "
    "device_category, country, new_vs_returning, landing_page, engaged, page_views::INTEGER, "
    + ", ".join(f"{c}::INTEGER" for c in EVENT_COLUMNS)
    + ", CAST(revenue_cents * 0.01 AS DECIMAL(18,2)), lead_form FROM session_chunk"
)


@dataclass(frozen=True)
class GenParams:
    """Everything a generated store depends on (the cache key)."""

    seed: int
    start_date: dt.date
    end_date: dt.date
    sessions_per_day: float
    lead_rate: float
    bulk_import_contacts: int
    companies: int | None
    # Realistic variation of propensities (store_realism.py): on by default; day_effect_sd is the log-scale
    # SD of each day x segment term.
    realism: bool = True
    day_effect_sd: float = store_realism.DEFAULT_DAY_EFFECT_SD
    # The property's reporting time zone: sessions are generated in its local days and CRM instants are
    # their UTC conversions (connectors/sandbox/accounts.py builds stores in other zones).
    time_zone: str = m.TIME_ZONE


@dataclass
class _UserState:
    n_users: int
    device: np.ndarray
    country: np.ndarray
    next_session_id: int = 1
    realism: store_realism.Realism | None = None
    lead_parts: list[dict[str, np.ndarray]] = field(default_factory=list)


def _dict_array(
    codes: np.ndarray, values: tuple[str, ...] | list[str], mask: np.ndarray | None = None
) -> pa.Array:
    indices = pa.array(codes.astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(values), pa.string()))


def _choice_by_group(rng: np.random.Generator, group: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Draw one category per row from ``weights[group]`` (rows of a matrix), looping over groups only."""
    out = np.empty(group.shape[0], dtype=np.int16)
    for g in range(weights.shape[0]):
        idx = np.flatnonzero(group == g)
        if idx.size:
            out[idx] = rng.choice(weights.shape[1], size=idx.size, p=weights[g])
    return out


def _combo_weights() -> np.ndarray:
    w = np.zeros((len(m.CHANNELS), len(m.SOURCE_COMBOS)))
    for k, (ci, _s, _m, _c, weight) in enumerate(m.SOURCE_COMBOS):
        w[ci, k] = weight
    return w / w.sum(axis=1, keepdims=True)


def _lead_norm() -> float:
    mix = (1 - m.RETURNING_SHARE) * m.CHANNEL_WEIGHTS_NEW / m.CHANNEL_WEIGHTS_NEW.sum()
    mix = mix + m.RETURNING_SHARE * m.CHANNEL_WEIGHTS_RETURNING / m.CHANNEL_WEIGHTS_RETURNING.sum()
    return float(mix @ m.LEAD_CHANNEL_MULT)


def _unique_lookup(values: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    uniq = tuple(dict.fromkeys(values))
    return np.array([uniq.index(v) for v in values], dtype=np.int32), uniq


_COMBO_SOURCE, _SOURCES = _unique_lookup([c[1] for c in m.SOURCE_COMBOS])
_COMBO_MEDIUM, _MEDIUMS = _unique_lookup([c[2] for c in m.SOURCE_COMBOS])
_COMBO_CAMPAIGN, _CAMPAIGNS = _unique_lookup([c[3] for c in m.SOURCE_COMBOS])


def _sessions_chunk(
    rng: np.random.Generator, dates: np.ndarray, params: GenParams, state: _UserState
) -> pa.Table:
    n_days = dates.shape[0]
    weekday = (dates.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    n_per_day = rng.poisson(params.sessions_per_day * m.WEEKDAY_FACTOR[weekday])
    n = int(n_per_day.sum())
    day_idx = np.repeat(np.arange(n_days), n_per_day)
    hour = rng.choice(24, size=n, p=m.HOUR_WEIGHTS / m.HOUR_WEIGHTS.sum())
    # The hour that a spring-forward day skips has no sessions: they start an hour later, as clocks do.
    skipped = _skipped_local_hours(dates, params.time_zone)
    hour = np.where(hour == skipped[day_idx], hour + 1, hour)
    sec = hour * 3600 + rng.integers(0, 3600, size=n)
    sec = sec[np.lexsort((sec, day_idx))]  # day_idx is already sorted, so it stays aligned

    # Visitors: a returning session picks a visitor who existed before its day (recent ones more often),
    # so a visitor's first session in the store is always their 'new' one.
    returning = rng.random(n) < m.RETURNING_SHARE
    new = ~returning
    new_per_day = np.bincount(day_idx, weights=new, minlength=n_days).astype(np.int64)
    users_before_day = state.n_users + np.concatenate([[0], np.cumsum(new_per_day)[:-1]])
    user_idx = np.empty(n, dtype=np.int64)
    user_idx[new] = state.n_users + np.arange(int(new.sum()))
    nb = users_before_day[day_idx[returning]]
    picks = np.floor(nb * (1.0 - rng.random(nb.shape[0]) ** 2)).astype(np.int64)
    user_idx[returning] = np.minimum(picks, nb - 1)
    n_new = int(new.sum())
    state.device = np.concatenate(
        [state.device, rng.choice(len(m.DEVICES), size=n_new, p=m.DEVICE_WEIGHTS).astype(np.int8)]
    )
    state.country = np.concatenate(
        [state.country, rng.choice(len(m.COUNTRIES), size=n_new, p=m.COUNTRY_WEIGHTS).astype(np.int8)]
    )
    state.n_users += n_new
    device = state.device[user_idx]
    country = state.country[user_idx]

    channel = np.where(
        returning,
        rng.choice(
            len(m.CHANNELS), size=n, p=m.CHANNEL_WEIGHTS_RETURNING / m.CHANNEL_WEIGHTS_RETURNING.sum()
        ),
        rng.choice(len(m.CHANNELS), size=n, p=m.CHANNEL_WEIGHTS_NEW / m.CHANNEL_WEIGHTS_NEW.sum()),
    ).astype(np.int16)
    combo = _choice_by_group(rng, channel, _combo_weights())
    landing = _choice_by_group(rng, channel, m.LANDING_WEIGHTS)

    # Funnel drawn from the bottom up so that purchase's propensity is exactly the planted one and
    # purchase => begin_checkout => add_to_cart => view_item holds in every session.
    # Realism (store_realism.py): multipliers of the propensities below, from the realism's own stream; the
    # main stream's draws are unchanged, only the thresholds they are compared with move.
    assert state.realism is not None
    day_of_store = (dates[day_idx] - np.datetime64(params.start_date, "D")).astype(np.int64)
    mult = state.realism.multipliers(day_of_store, channel, device, country, returning, user_idx + 1)

    def prob(base: float | np.ndarray, group: str) -> np.ndarray:
        return np.minimum(base * state.realism.group(mult, group), 0.95)  # type: ignore[union-attr]

    wish = rng.random(n) < prob(m.WISHLIST_RATE, "add_to_wishlist")
    p_purchase = (
        m.PURCHASE_BASE
        * m.PURCHASE_CHANNEL_MULT[channel]
        * np.where(returning, m.PURCHASE_RETURNING_MULT, 1.0)
        * np.where(wish, m.WISHLIST_PURCHASE_MULT, 1.0)
    )
    purchase_ind = rng.random(n) < prob(p_purchase, "funnel")
    checkout_ind = purchase_ind | (rng.random(n) < prob(m.CHECKOUT_EXTRA, "funnel"))
    cart_ind = checkout_ind | (rng.random(n) < prob(m.CART_EXTRA, "funnel"))
    view_ind = cart_ind | wish | (rng.random(n) < prob(m.VIEW_EXTRA, "funnel"))

    purchase = purchase_ind * (1 + (rng.random(n) < 0.03))
    begin_checkout = checkout_ind * (np.maximum(purchase, 1) + (rng.random(n) < 0.1))
    add_to_cart = cart_ind * (np.maximum(begin_checkout, 1) + rng.poisson(0.4, size=n))
    view_item = view_ind * (np.maximum(add_to_cart, 1) + rng.poisson(1.5, size=n))
    add_to_wishlist = wish * (1 + (rng.random(n) < 0.15))
    search = (rng.random(n) < prob(m.SEARCH_RATE, "search")) * (1 + rng.poisson(0.8, size=n))
    view_size_chart = (view_ind & (rng.random(n) < prob(m.SIZE_CHART_RATE, "view_size_chart"))) * (
        1 + rng.poisson(0.3, size=n)
    )
    sign_up = (rng.random(n) < prob(m.SIGN_UP_RATE, "sign_up")).astype(np.int64)
    file_download = (rng.random(n) < prob(m.FILE_DOWNLOAD_RATE, "file_download")) * (
        1 + rng.poisson(0.2, size=n)
    )
    write_review = (rng.random(n) < prob(m.WRITE_REVIEW_RATE, "review")).astype(np.int64)
    share = (rng.random(n) < prob(m.SHARE_RATE, "share")) * (1 + rng.poisson(0.2, size=n))
    p_lead = params.lead_rate * m.LEAD_CHANNEL_MULT[channel] / _lead_norm()
    lead = rng.random(n) < p_lead
    lead_form = rng.choice(len(m.LEAD_FORMS), size=n, p=m.LEAD_FORM_WEIGHTS).astype(np.int8)
    unit_cents = np.round(np.exp(rng.normal(m.REVENUE_LOG_MEAN, m.REVENUE_LOG_SD, size=n)) * 100).astype(
        np.int64
    )
    revenue_cents = purchase * unit_cents
    any_action = view_ind | (search > 0) | lead | (sign_up > 0) | (file_download > 0) | (share > 0)
    engaged = any_action | (rng.random(n) < m.ENGAGED_BASE)
    page_views = 1 + engaged * rng.poisson(2.5, size=n) + view_item

    session_id = state.next_session_id + np.arange(n, dtype=np.int64)
    state.next_session_id += n
    user_id = user_idx + 1
    date = dates[day_idx]
    ts = date.astype("datetime64[s]") + sec.astype("timedelta64[s]")

    lead_idx = np.flatnonzero(lead)
    state.lead_parts.append(
        {
            "session_id": session_id[lead_idx],
            "user_id": user_id[lead_idx],
            "ts": ts[lead_idx],
            "channel": channel[lead_idx],
            "combo": combo[lead_idx],
            "country": country[lead_idx],
            "form": lead_form[lead_idx],
        }
    )

    cols: dict[str, Any] = {
        "session_id": session_id,
        "user_id": user_id,
        "date": pa.array(date.astype("datetime64[D]"), pa.date32()),
        "ts": pa.array(ts, pa.timestamp("s")),
        "channel": _dict_array(channel, m.CHANNELS),
        "source": _dict_array(_COMBO_SOURCE[combo], _SOURCES),
        "medium": _dict_array(_COMBO_MEDIUM[combo], _MEDIUMS),
        "campaign": _dict_array(_COMBO_CAMPAIGN[combo], _CAMPAIGNS),
        "device_category": _dict_array(device, m.DEVICES),
        "country": _dict_array(country, m.COUNTRIES),
        "new_vs_returning": _dict_array(returning.astype(np.int8), ("new", "returning")),
        "landing_page": _dict_array(landing, m.LANDING_PAGES),
        "engaged": engaged,
        "page_views": page_views.astype(np.int32),
        "view_item": view_item,
        "add_to_cart": add_to_cart,
        "begin_checkout": begin_checkout,
        "purchase": purchase,
        "sign_up": sign_up,
        "file_download": file_download,
        "add_to_wishlist": add_to_wishlist,
        "search": search,
        "generate_lead": lead.astype(np.int8),
        "share": share,
        "view_size_chart": view_size_chart,
        "write_review": write_review,
        "revenue_cents": revenue_cents,
        "lead_form": _dict_array(lead_form, m.LEAD_FORMS, mask=~lead),
    }
    return pa.table({k: (v if isinstance(v, pa.Array) else pa.array(v)) for k, v in cols.items()})


def _skipped_local_hours(dates: np.ndarray, time_zone: str = m.TIME_ZONE) -> np.ndarray:
    """Per date, the local hour that does not exist (DST spring-forward), or -1."""
    tz = ZoneInfo(time_zone)
    out = np.full(dates.shape[0], -1, dtype=np.int64)
    for i, day in enumerate(dates.astype("datetime64[D]").tolist()):
        start = dt.datetime.combine(day, dt.time(), tzinfo=tz)
        if start.utcoffset() == (start + dt.timedelta(days=1)).utcoffset():
            continue
        for hour in range(24):
            local = start.replace(hour=hour, minute=30)
            if local.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
                out[i] = hour
    return out


def end_instant_utc(end_date: dt.date, time_zone: str = m.TIME_ZONE) -> dt.datetime:
    """The first instant after the store (local midnight after ``end_date``), as a naive UTC datetime."""
    local = dt.datetime.combine(end_date + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(time_zone))
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def _epoch_s(value: dt.datetime) -> int:
    return int(value.replace(tzinfo=dt.UTC).timestamp())


def _ts_array(seconds: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    arr = pa.array(seconds.astype(np.int64), pa.int64(), mask=None if valid is None else ~valid)
    return arr.cast(pa.timestamp("s"))


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def populate(con: duckdb.DuckDBPyConnection, params: GenParams) -> None:
    """Generate every table of the store into ``con`` (an empty DuckDB database)."""
    rng = np.random.default_rng(params.seed)
    n_prior = int(round(m.PRIOR_USERS_DAYS * params.sessions_per_day))
    state = _UserState(
        n_users=n_prior,
        device=rng.choice(len(m.DEVICES), size=n_prior, p=m.DEVICE_WEIGHTS).astype(np.int8),
        country=rng.choice(len(m.COUNTRIES), size=n_prior, p=m.COUNTRY_WEIGHTS).astype(np.int8),
    )
    all_dates = np.arange(
        np.datetime64(params.start_date, "D"), np.datetime64(params.end_date, "D") + 1, dtype="datetime64[D]"
    )
    state.realism = store_realism.Realism(
        params.seed, params.start_date, int(all_dates.shape[0]), params.day_effect_sd, params.realism
    )
    store_anomalies.calm_surge_day(state.realism, params)  # the planted surge day's rates are normal ones
    con.execute(SESSIONS_DDL)
    # The insert of chunk k (DuckDB, GIL released) overlaps the draws of chunk k+1 (numpy); the draws stay
    # in one thread and one order, so the bytes do not depend on the overlap. At most two chunks in memory.
    writer = con.cursor()
    writer.execute(f"USE {_identifier(con.execute('SELECT current_database()').fetchall()[0][0])}")

    def insert(chunk: pa.Table) -> None:
        writer.register("session_chunk", chunk)
        writer.execute(SESSIONS_INSERT)
        writer.unregister("session_chunk")

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-insert") as pool:
        pending: Future[None] | None = None
        for lo in range(0, all_dates.shape[0], CHUNK_DAYS):
            chunk = _sessions_chunk(rng, all_dates[lo : lo + CHUNK_DAYS], params, state)
            if pending is not None:
                pending.result()
            pending = pool.submit(insert, chunk)
            del chunk
        if pending is not None:
            pending.result()
    writer.close()
    store_anomalies.add_surge_sessions(con, params, state)  # planted traffic surge, own RNG stream
    # Planted A/B experiments: their own RNG stream; they flip a few funnel events of treated visitors (after
    # the surge, so the campaign's visitors are exposed and treated like the day's other visitors).
    store_experiments.plant(con, params.seed, params.start_date)
    state.device = state.country = np.empty(0, dtype=np.int8)
    _populate_crm(con, rng, params, state)
    # Planted anomalies (own RNG stream (seed, 15)) before the hostile labels, which then relabel final rows.
    store_anomalies.apply(con, params.seed, params.start_date, params.end_date, params.time_zone)
    # A few hostile public values (UTM campaigns, a landing page, a form name); own RNG stream (seed, 13).
    store_hostile.plant(con, params.seed, params.start_date, params.end_date)
    # Realism that draws from its own RNG streams (the main stream above is untouched by them).
    store_lifecycle.apply_lifecycle_variants(con, params.seed)
    store_merges.apply_merges(con, params.seed)
    create_events_view(con)


def _populate_crm(
    con: duckdb.DuckDBPyConnection, rng: np.random.Generator, params: GenParams, state: _UserState
) -> None:
    leads = {k: np.concatenate([p[k] for p in state.lead_parts]) for k in state.lead_parts[0]}
    state.lead_parts.clear()
    n = int(leads["session_id"].shape[0])
    end_s = _epoch_s(end_instant_utc(params.end_date, params.time_zone))

    # Local session start -> UTC with DuckDB's ICU rules, the same ones the truth helpers invert.
    con.register("lead_ts", pa.table({"ts": pa.array(leads["ts"], pa.timestamp("s"))}))
    created: np.ndarray = np.asarray(
        con.execute(
            "SELECT epoch(timezone('UTC', timezone($tz, ts::TIMESTAMP)))::BIGINT AS s FROM lead_ts",
            {"tz": params.time_zone},
        ).fetchnumpy()["s"],
        dtype=np.int64,
    )
    con.unregister("lead_ts")

    form = leads["form"].astype(np.int64)
    newsletter = form == m.FORM_NEWSLETTER
    # Newsletter signups take the progression of a random other-form contact (the planted null against the
    # rest), drawn from a separate stream so the main stream, and with it every other draw, is unchanged.
    intent_rng = np.random.default_rng([params.seed, m.NEWSLETTER_INTENT_STREAM])
    intent = intent_rng.choice(len(m.LEAD_FORMS), size=n, p=m.NEWSLETTER_INTENT_WEIGHTS)
    prog = m.PROGRESSION[np.where(newsletter, intent, form)]
    u = rng.random((n, 4))
    reach_mql = u[:, 0] < prog[:, 0]
    reach_sql = reach_mql & (u[:, 1] < prog[:, 1])
    reach_opp = reach_sql & (u[:, 2] < prog[:, 2])
    wins = reach_opp & (u[:, 3] < prog[:, 3])
    d = rng.exponential(1.0, size=(n, 5))
    t_lead = created + np.where(newsletter, 60 + (d[:, 0] * m.NEWSLETTER_TO_LEAD_MEAN).astype(np.int64), 0)
    # Planted time-to-convert truth: Email contacts move faster, Paid Social ones slower (same draws, scaled).
    pace = store_anomalies.stage_duration_scale(leads["channel"])
    t_mql = t_lead + 3600 + (d[:, 1] * m.LEAD_TO_MQL_MEAN * pace).astype(np.int64)
    t_sql = t_mql + 600 + (d[:, 2] * m.MQL_TO_SQL_MEAN * pace).astype(np.int64)
    t_opp = t_sql + 600 + (d[:, 3] * m.SQL_TO_OPP_MEAN * pace).astype(np.int64)
    t_close = t_opp + m.DAY + (d[:, 4] * m.OPP_TO_CLOSE_MEAN * pace).astype(np.int64)

    # Stages are entered only if their time falls inside the store (times increase along the path).
    in_lead = t_lead < end_s
    in_mql = reach_mql & (t_mql < end_s)
    in_sql = reach_sql & (t_sql < end_s)
    in_opp = reach_opp & (t_opp < end_s)
    closed = in_opp & (t_close < end_s)
    in_customer = closed & wins
    stage_idx = np.select([in_customer, in_opp, in_sql, in_mql, in_lead], [5, 4, 3, 2, 1], default=0).astype(
        np.int8
    )
    last_stage_s = np.select(
        [in_customer, in_opp, in_sql, in_mql, in_lead],
        [t_close, t_opp, t_sql, t_mql, t_lead],
        default=created,
    )

    n_conv = 1 + rng.poisson(0.3, size=n)
    lm_base = np.minimum(
        last_stage_s + (rng.exponential(1.0, size=n) * m.LASTMOD_AFTER_MEAN).astype(np.int64), end_s - 1
    )
    recent_s = np.where(n_conv > 1, created + (rng.random(n) * (lm_base - created)).astype(np.int64), created)
    recent_form = np.where(n_conv > 1, rng.choice(len(m.LEAD_FORMS), size=n, p=m.LEAD_FORM_WEIGHTS), form)
    recent_s, recent_form, n_conv, lm_base = store_realism.post_macro_newsletter(
        params.seed, end_s, in_customer, t_close, recent_s, recent_form, n_conv, lm_base, params.realism
    )
    lastmod = lm_base

    # Archived and merged contacts are disjoint; a merged contact points at a live survivor.
    flag = rng.random(n)
    archived = flag < m.ARCHIVED_SHARE
    merged = (flag >= m.ARCHIVED_SHARE) & (flag < m.ARCHIVED_SHARE + m.MERGED_SHARE)
    ids = 10_000_001 + np.arange(n, dtype=np.int64)
    live = np.flatnonzero(~archived & ~merged)
    merged_into = np.zeros(n, dtype=np.int64)
    merged_into[merged] = ids[live[rng.integers(0, live.size, size=int(merged.sum()))]]

    # A bulk import touched a block of live contacts at one instant (exercises the 10,000 search cap).
    bulk_s = end_s - 6 * 3600
    eligible = np.flatnonzero(~archived & ~merged & (lastmod <= bulk_s))
    n_bulk = min(params.bulk_import_contacts, eligible.size)
    bulk = rng.choice(eligible, size=n_bulk, replace=False) if n_bulk else np.empty(0, dtype=np.int64)
    lastmod[bulk] = bulk_s
    # lastmodifieddate never precedes a stage date; the bulk block was chosen among contacts already at rest.
    lastmod = np.maximum(lastmod, np.maximum(last_stage_s, recent_s))

    first = rng.integers(0, len(m.FIRST_NAMES), size=n)
    last = rng.integers(0, len(m.LAST_NAMES), size=n)
    n_comp = params.companies if params.companies is not None else int(np.clip(n // 150, 20, 5_000))
    has_company = rng.random(n) < m.COMPANY_SHARE
    company = 30_000_001 + rng.integers(0, n_comp, size=n)

    sub_valid = newsletter
    contacts = pa.table(
        {
            "id": ids,
            "firstname": _dict_array(first, m.FIRST_NAMES),
            "lastname": _dict_array(last, m.LAST_NAMES),
            "country": _dict_array(leads["country"], m.COUNTRIES),
            "createdate": _ts_array(created),
            "lastmodifieddate": _ts_array(lastmod),
            "lifecyclestage": _dict_array(stage_idx, m.LIFECYCLE_STAGES),
            "d_subscriber": _ts_array(created, sub_valid),
            "d_lead": _ts_array(t_lead, in_lead),
            "d_mql": _ts_array(t_mql, in_mql),
            "d_sql": _ts_array(t_sql, in_sql),
            "d_opp": _ts_array(t_opp, in_opp),
            "d_customer": _ts_array(t_close, in_customer),
            "hs_analytics_source": _dict_array(leads["channel"], m.HS_SOURCES),
            "source_data_1": _dict_array(_COMBO_SOURCE[leads["combo"]], _SOURCES),
            "source_data_2": _dict_array(_COMBO_CAMPAIGN[leads["combo"]], _CAMPAIGNS),
            "first_form": _dict_array(form, m.HS_FORM_NAMES),
            "recent_form": _dict_array(recent_form, m.HS_FORM_NAMES),
            "recent_s": _ts_array(recent_s),
            "num_conversion_events": n_conv.astype(np.int32),
            "archived": archived,
            "merged_into": pa.array(merged_into, mask=~merged),
            "associatedcompanyid": pa.array(company, mask=~has_company),
            "session_id": leads["session_id"],
            "user_id": leads["user_id"],
        }
    )
    con.register("contact_src", contacts)
    con.execute(
        """
        CREATE TABLE contacts AS
        WITH merged AS (
            SELECT merged_into AS survivor, string_agg(id::VARCHAR, ';' ORDER BY id) AS merged_ids
            FROM contact_src WHERE merged_into IS NOT NULL GROUP BY merged_into
        )
        SELECT
            c.id,
            lower(c.firstname) || '.' || lower(c.lastname) || '.' || c.id::VARCHAR || '@example.com' AS email,
            c.firstname::VARCHAR AS firstname,
            c.lastname::VARCHAR AS lastname,
            printf('+1-555-%07d', c.id % 10000000) AS phone,
            c.country::VARCHAR AS country,
            c.createdate::TIMESTAMP AS createdate,
            c.lastmodifieddate::TIMESTAMP AS lastmodifieddate,
            c.lifecyclestage::VARCHAR AS lifecyclestage,
            c.d_subscriber::TIMESTAMP AS hs_v2_date_entered_subscriber,
            c.d_lead::TIMESTAMP AS hs_v2_date_entered_lead,
            c.d_mql::TIMESTAMP AS hs_v2_date_entered_marketingqualifiedlead,
            c.d_sql::TIMESTAMP AS hs_v2_date_entered_salesqualifiedlead,
            c.d_opp::TIMESTAMP AS hs_v2_date_entered_opportunity,
            c.d_customer::TIMESTAMP AS hs_v2_date_entered_customer,
            NULL::TIMESTAMP AS hs_v2_date_entered_evangelist,
            NULL::TIMESTAMP AS hs_v2_date_entered_other,
            c.hs_analytics_source::VARCHAR AS hs_analytics_source,
            c.source_data_1::VARCHAR AS hs_analytics_source_data_1,
            c.source_data_2::VARCHAR AS hs_analytics_source_data_2,
            c.first_form::VARCHAR AS first_conversion_event_name,
            c.recent_form::VARCHAR AS recent_conversion_event_name,
            c.createdate::TIMESTAMP AS first_conversion_date,
            c.recent_s::TIMESTAMP AS recent_conversion_date,
            c.num_conversion_events::INTEGER AS num_conversion_events,
            c.archived,
            c.merged_into,
            mg.merged_ids AS hs_merged_object_ids,
            c.associatedcompanyid,
            c.session_id,
            c.user_id
        FROM contact_src c LEFT JOIN merged mg ON mg.survivor = c.id
        ORDER BY c.id
        """
    )
    con.unregister("contact_src")

    # Deals: one per contact that entered opportunity.
    opp = np.flatnonzero(in_opp)
    k = int(opp.size)
    frac = np.clip((end_s - t_opp[opp]) / np.maximum(t_close[opp] - t_opp[opp], 1), 0.0, 0.999)
    open_stage = (frac * len(m.DEAL_OPEN_STAGES)).astype(np.int8)
    deal_stage = np.where(
        closed[opp], np.where(wins[opp], len(m.DEAL_OPEN_STAGES), len(m.DEAL_OPEN_STAGES) + 1), open_stage
    ).astype(np.int8)
    amount_cents = np.round(
        np.exp(rng.normal(m.DEAL_AMOUNT_LOG_MEAN, m.DEAL_AMOUNT_LOG_SD, size=k)) * 100
    ).astype(np.int64)
    deal_lm = np.where(
        closed[opp],
        np.minimum(t_close[opp] + (rng.exponential(1.0, size=k) * 3600).astype(np.int64), end_s - 1),
        t_opp[opp] + (rng.random(k) * (end_s - 1 - t_opp[opp])).astype(np.int64),
    )
    deals = pa.table(
        {
            "id": 20_000_001 + np.arange(k, dtype=np.int64),
            "contact_id": ids[opp],
            "lastname": _dict_array(last[opp], m.LAST_NAMES),
            "dealstage": _dict_array(deal_stage, m.DEAL_STAGES),
            "amount_cents": amount_cents,
            "createdate": _ts_array(t_opp[opp]),
            "closedate": _ts_array(t_close[opp]),
            "won": closed[opp] & wins[opp],
            "lm": _ts_array(deal_lm),
            "archived": rng.random(k) < m.DEAL_ARCHIVED_SHARE,
        }
    )
    con.register("deal_src", deals)
    con.execute(
        """
        CREATE TABLE deals AS
        SELECT id, contact_id,
            lastname::VARCHAR || ' - order #' || id::VARCHAR AS dealname,
            $pipeline AS pipeline,
            dealstage::VARCHAR AS dealstage,
            CAST(amount_cents * 0.01 AS DECIMAL(18,2)) AS amount,
            createdate::TIMESTAMP AS createdate,
            closedate::TIMESTAMP AS closedate,
            won AS hs_is_closed_won,
            lm::TIMESTAMP AS hs_lastmodifieddate,
            archived
        FROM deal_src ORDER BY id
        """,
        {"pipeline": m.DEAL_PIPELINE},
    )
    con.unregister("deal_src")

    # Companies: a small table, created up to a year before the window.
    start_s = _epoch_s(dt.datetime.combine(params.start_date, dt.time()))
    c_created = (
        start_s - 365 * m.DAY + (rng.random(n_comp) * (end_s - 1 - (start_s - 365 * m.DAY))).astype(np.int64)
    )
    c_lm = c_created + (rng.random(n_comp) * (end_s - 1 - c_created)).astype(np.int64)
    word = rng.integers(0, len(m.COMPANY_WORDS), size=n_comp)
    suffix = rng.integers(0, len(m.COMPANY_SUFFIXES), size=n_comp)
    companies = pa.table(
        {
            "id": 30_000_001 + np.arange(n_comp, dtype=np.int64),
            "word": _dict_array(word, m.COMPANY_WORDS),
            "suffix": _dict_array(suffix, m.COMPANY_SUFFIXES),
            "country": _dict_array(
                rng.choice(len(m.COUNTRIES), size=n_comp, p=m.COUNTRY_WEIGHTS), m.COUNTRIES
            ),
            "createdate": _ts_array(c_created),
            "lm": _ts_array(c_lm),
            "archived": rng.random(n_comp) < 0.01,
        }
    )
    con.register("company_src", companies)
    con.execute(
        """
        CREATE TABLE companies AS
        SELECT id,
            word::VARCHAR || ' ' || suffix::VARCHAR || ' ' || (id - 30000000)::VARCHAR AS name,
            lower(word::VARCHAR) || '-' || (id - 30000000)::VARCHAR || '.example.com' AS domain,
            country::VARCHAR AS country,
            createdate::TIMESTAMP AS createdate,
            lm::TIMESTAMP AS hs_lastmodifieddate,
            archived
        FROM company_src ORDER BY id
        """
    )
    con.unregister("company_src")


def create_events_view(con: duckdb.DuckDBPyConnection) -> None:
    common = (
        "session_id, user_id, date, channel, device_category, country, new_vs_returning, landing_page, "
        "campaign, source, medium"
    )
    parts = [
        f"SELECT {common}, 'session_start' AS event_name, 1 AS event_count, "
        "0::DECIMAL(18,2) AS event_value, NULL::VARCHAR AS form_name FROM sessions",
        f"SELECT {common}, 'page_view', page_views, 0::DECIMAL(18,2), NULL FROM sessions",
    ]
    for col in EVENT_COLUMNS:
        value = "purchase_revenue" if col == "purchase" else "0::DECIMAL(18,2)"
        form = "lead_form" if col == "generate_lead" else "NULL"
        parts.append(f"SELECT {common}, '{col}', {col}, {value}, {form} FROM sessions WHERE {col} > 0")
    con.execute("CREATE VIEW events AS\n" + "\nUNION ALL\n".join(parts))
