"""Funnel and channel funnel reconcile with the raw tables and with the store's truth.

GA4 keeps revising the store's last two days (the sandbox serves a growing share of them), so
comparisons with the store's truth use the settled days; comparisons with raw use every day.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

UNSETTLED_DAYS = 2


@pytest.fixture(scope="module")
def con(warehouse):
    return warehouse.connect()


@pytest.fixture(scope="module")
def settled_end(warehouse) -> dt.date:
    return warehouse.store.end_date - dt.timedelta(days=UNSETTLED_DAYS)


def fill0(df: pd.DataFrame) -> pd.DataFrame:
    """Missing counts after an outer join are zero counts (only numeric columns are filled)."""
    numeric = df.select_dtypes("number").columns
    return df.fillna({c: 0 for c in numeric})


def frame(con, sql: str, params=None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


def store_frame(store, sql: str, params: dict | None = None) -> pd.DataFrame:
    return store.cursor().execute(sql, params or {}).df()


def channel_map_sql() -> str:
    return "(SELECT unnest($sources) AS hs_source, unnest($channels) AS channel)"


def channel_params(store) -> dict:
    pairs = store.channel_to_hs_source
    return {"sources": list(pairs.values()), "channels": list(pairs.keys()), "tz": store.time_zone}


def test_purchase_funnel_reconciles_with_raw_and_truth(con, warehouse, settled_end):
    mart = frame(
        con,
        "SELECT date, step_index, step_name, count FROM marts.funnel_daily WHERE funnel_name = 'purchase' ORDER BY ALL",
    )
    raw = frame(
        con,
        """
        SELECT date, event_name AS step_name, sum(event_count)::BIGINT AS raw_count FROM raw.ga4_events
        WHERE event_name IN ('view_item', 'add_to_cart', 'begin_checkout', 'purchase') GROUP BY ALL
        """,
    )
    merged = mart.merge(raw, on=["date", "step_name"], how="left").pipe(fill0)
    assert len(mart) == 4 * mart["date"].nunique()
    assert (merged["count"] == merged["raw_count"]).all()

    truth = warehouse.store.truth.funnel_counts(by_date=True)
    truth["date"] = pd.to_datetime(truth["date"])
    mart["date"] = pd.to_datetime(mart["date"])
    both = mart.merge(truth, left_on=["date", "step_index"], right_on=["date", "step_order"])
    settled = both[both["date"] <= pd.Timestamp(settled_end)]
    assert len(settled) == 4 * (warehouse.store.end_date - warehouse.store.start_date).days - 4 * (
        UNSETTLED_DAYS - 1
    )
    assert (settled["count"] == settled["events"]).all()
    assert (settled["step_name"] == settled["step"]).all()
    # Rates are recomputed from counts.
    check = frame(con, "SELECT * FROM marts.funnel_daily WHERE funnel_name = 'purchase' AND step_index = 3")
    prev = frame(
        con,
        "SELECT date, count AS prev FROM marts.funnel_daily WHERE funnel_name = 'purchase' AND step_index = 2",
    )
    check = check.merge(prev, on="date")
    # Where the previous step counted no event or fewer than this one (the planted broken add_to_cart tag,
    # CONTRACTS §5.4), the rate is NULL by definition; everywhere else it is count / previous count.
    defined = (check["prev"] > 0) & (check["count"] <= check["prev"])
    assert check.loc[~defined, "rate_from_previous"].isna().all()
    ok = check[defined]
    assert ((ok["rate_from_previous"] - ok["count"] / ok["prev"]).abs() < 1e-12).all()
    assert (check["drop_off_count"] == check["prev"] - check["count"]).all()


def test_channel_funnel_web_side_reconciles(con, warehouse, settled_end):
    mart = frame(con, "SELECT date, channel, sessions, leads FROM marts.channel_funnel_daily")
    raw = frame(
        con,
        "SELECT date, session_default_channel_group AS channel, sum(sessions)::BIGINT AS raw_sessions "
        "FROM raw.ga4_web_sessions GROUP BY ALL",
    )
    both = mart.merge(raw, on=["date", "channel"], how="outer").pipe(fill0)
    assert (both["sessions"] == both["raw_sessions"]).all()

    truth = store_frame(
        warehouse.store,
        "SELECT date, channel, count(*) AS true_sessions, sum(generate_lead)::BIGINT AS true_leads "
        "FROM sessions WHERE date <= $end GROUP BY ALL",
        {"end": settled_end},
    )
    settled = mart[pd.to_datetime(mart["date"]) <= pd.Timestamp(settled_end)].merge(
        truth, on=["date", "channel"]
    )
    assert len(settled) == len(truth)
    assert (settled["sessions"] == settled["true_sessions"]).all()
    assert (settled["leads"] == settled["true_leads"]).all()


def test_cross_source_leads_equal_contacts_created(con, warehouse, settled_end):
    """Planted truth: per property-local date and channel, GA4 leads == contacts created (all of them)."""
    truth = warehouse.store.truth.contacts_created_by_day_channel()
    mart = frame(
        con, "SELECT date, channel, leads FROM marts.channel_funnel_daily WHERE date <= ?", [settled_end]
    )
    both = mart.merge(truth, on=["date", "channel"], how="outer").pipe(fill0)
    both = both[pd.to_datetime(both["date"]) <= pd.Timestamp(settled_end)]
    assert both["n"].sum() > 5_000
    assert (both["leads"] == both["n"]).all()


def test_contacts_created_reconcile_with_truth(con, warehouse):
    """HubSpot side: every contact the API still returns is counted on its local creation date; live
    ones on their channel; archived ones (the archived pass carries no source) as Unassigned; merged-away
    records, which HubSpot lists nowhere, are missing."""
    store = warehouse.store
    live = store_frame(
        store,
        f"""
        SELECT timezone($tz, timezone('UTC', c.createdate))::DATE AS date, s.channel, count(*) AS n
        FROM contacts c JOIN {channel_map_sql()} s ON s.hs_source = c.hs_analytics_source
        WHERE NOT c.archived AND c.merged_into IS NULL GROUP BY ALL
        """,
        channel_params(store),
    )
    archived = store_frame(
        store,
        "SELECT timezone($tz, timezone('UTC', createdate))::DATE AS date, count(*) AS n_archived FROM contacts "
        "WHERE archived AND merged_into IS NULL GROUP BY ALL",
        {"tz": store.time_zone},
    )
    mart = frame(
        con,
        "SELECT date, channel, contacts_created FROM marts.channel_funnel_daily WHERE contacts_created > 0",
    )
    mapped = (
        mart[mart["channel"] != "Unassigned"].merge(live, on=["date", "channel"], how="outer").pipe(fill0)
    )
    assert (mapped["contacts_created"] == mapped["n"]).all()
    unassigned = mart[mart["channel"] == "Unassigned"].merge(archived, on="date", how="outer").pipe(fill0)
    assert (unassigned["contacts_created"] == unassigned["n_archived"]).all()
    raw_total = con.execute("SELECT count(*) FROM raw.hubspot_contacts WHERE merged_into IS NULL").fetchall()[
        0
    ][0]
    assert mart["contacts_created"].sum() == raw_total


@pytest.mark.parametrize(
    ("column", "stage"),
    [
        ("crm_leads", "lead"),
        ("mqls", "marketingqualifiedlead"),
        ("sqls", "salesqualifiedlead"),
        ("opportunities", "opportunity"),
        ("customers", "customer"),
    ],
)
def test_lifecycle_columns_reconcile_with_truth(con, warehouse, column, stage):
    store = warehouse.store
    truth = store_frame(
        store,
        f"""
        SELECT timezone($tz, timezone('UTC', c.hs_v2_date_entered_{stage}))::DATE AS date, s.channel, count(*) AS n
        FROM contacts c JOIN {channel_map_sql()} s ON s.hs_source = c.hs_analytics_source
        WHERE NOT c.archived AND c.merged_into IS NULL AND c.hs_v2_date_entered_{stage} IS NOT NULL GROUP BY ALL
        """,
        channel_params(store),
    )
    mart = frame(
        con, f"SELECT date, channel, {column} AS mart_n FROM marts.channel_funnel_daily WHERE {column} > 0"
    )
    both = mart.merge(truth, on=["date", "channel"], how="outer").pipe(fill0)
    assert both["n"].sum() > 0
    assert (both["mart_n"] == both["n"]).all()


CRM_FUNNEL_STAGES = ("lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer")


def test_crm_funnel_counts_cohorts_that_reconcile_with_truth(con, warehouse):
    """The CRM funnel counts cohorts: per local creation date, the contacts that reached step k or any
    later stage of the funnel by now, straight from the store's contacts."""
    store = warehouse.store
    deepest = " ".join(
        f"WHEN hs_v2_date_entered_{stage} IS NOT NULL THEN {step}"
        for step, stage in reversed(list(enumerate(CRM_FUNNEL_STAGES, start=1)))
    )
    truth = store_frame(
        store,
        f"""
        WITH c AS (
            SELECT timezone($tz, timezone('UTC', createdate))::DATE AS date, CASE {deepest} END AS deepest
            FROM contacts WHERE NOT archived AND merged_into IS NULL
        )
        SELECT c.date, s.step AS step_index, count(*) FILTER (WHERE c.deepest >= s.step) AS n
        FROM c CROSS JOIN range(1, {len(CRM_FUNNEL_STAGES) + 1}) AS s(step)
        GROUP BY ALL HAVING n > 0
        """,
        {"tz": store.time_zone},
    )
    mart = frame(
        con,
        "SELECT date, step_index, count, count_unit, rate_from_previous, rate_from_first, drop_off, drop_off_count "
        "FROM marts.funnel_daily WHERE funnel_name = 'crm'",
    )
    both = mart[mart["count"] > 0].merge(truth, on=["date", "step_index"], how="outer").pipe(fill0)
    assert truth["n"].sum() > 1_000 and (truth["step_index"] == 5).any()
    assert (both["count"] == both["n"]).all()
    assert (mart["count_unit"] == "contacts (cohort by created date)").all()
    # A cohort only shrinks along the funnel: every rate is a proportion, no drop-off is negative.
    assert (mart["drop_off_count"].dropna() >= 0).all()
    for column in ("rate_from_previous", "rate_from_first", "drop_off"):
        rates = mart[column].dropna()
        assert len(rates) > 0 and rates.between(0, 1).all(), column
    # Step 1 is every contact of the cohort that entered the funnel (lead or any later stage).
    step1 = mart[mart["step_index"] == 1].set_index("date")["count"].sort_index()
    assert (mart.groupby("date")["count"].max().sort_index() == step1).all()


def test_ga4_funnel_rates_are_proportions_or_null(con):
    rows = frame(
        con,
        "SELECT step_index, count, rate_from_previous, rate_from_first, drop_off, drop_off_count "
        "FROM marts.funnel_daily WHERE source_system = 'ga4'",
    )
    assert len(rows) > 0
    for column in ("rate_from_previous", "rate_from_first", "drop_off"):
        assert rows[column].dropna().between(0, 1).all(), column
    later = rows[rows["step_index"] > 1]
    # Where a step counted more events than its predecessor the rate is NULL, never capped at 1.
    above = later[later["drop_off_count"] < 0]
    assert above["rate_from_previous"].isna().all() and above["drop_off"].isna().all()
    assert later[later["drop_off_count"] >= 0]["rate_from_previous"].notna().sum() > 0


def test_ga4_step_above_its_predecessor_gets_null_rates_not_a_cap(warehouse, tmp_path):
    """Real GA4 data can count more add_to_cart than view_item events on a day (events are not nested)."""
    import duckdb

    from transforms.build import build_all
    from transforms.catalog import default_catalog, default_channel_mapping

    con = duckdb.connect(str(warehouse.copy(tmp_path / "bumped.duckdb")))
    try:
        day = warehouse.store.start_date + dt.timedelta(days=3)
        views = con.execute(
            "SELECT sum(event_count) FROM raw.ga4_events WHERE date = ? AND event_name = 'view_item'", [day]
        ).fetchall()[0][0]
        con.execute(
            "UPDATE raw.ga4_events SET event_count = event_count + ? WHERE rowid = "
            "(SELECT min(rowid) FROM raw.ga4_events WHERE date = ? AND event_name = 'add_to_cart')",
            [views, day],
        )
        build_all(con, default_catalog(), default_channel_mapping(), dates=[day])
        rows = {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT step_index, count, rate_from_previous, rate_from_first, drop_off, drop_off_count "
                "FROM marts.funnel_daily WHERE funnel_name = 'purchase' AND date = ?",
                [day],
            ).fetchall()
        }
    finally:
        con.close()
    count, rate_prev, rate_first, drop_off, drop_off_count = rows[2]
    assert count > rows[1][0] and drop_off_count == rows[1][0] - count < 0
    assert rate_prev is None and rate_first is None and drop_off is None
    assert rows[3][1] is not None and 0 <= rows[3][1] <= 1  # the next step is a proportion again


def test_deals_won_and_revenue_reconcile_with_truth(con, warehouse):
    store = warehouse.store
    truth = store_frame(
        store,
        "SELECT timezone($tz, timezone('UTC', closedate))::DATE AS date, count(*) AS n, sum(amount)::DOUBLE AS amount "
        "FROM deals WHERE hs_is_closed_won AND NOT archived AND merged_into IS NULL GROUP BY ALL",  # a merged-away duplicate is the same deal
        {"tz": store.time_zone},
    )
    mart = frame(
        con,
        "SELECT date, sum(deals_won) AS deals_won, sum(revenue) AS revenue FROM marts.channel_funnel_daily "
        "GROUP BY ALL HAVING sum(deals_won) > 0",
    )
    both = mart.merge(truth, on="date", how="outer").pipe(fill0)
    assert both["n"].sum() > 100
    assert (both["deals_won"] == both["n"]).all()
    assert ((both["revenue"] - both["amount"]).abs() < 0.005).all()
    macro = con.execute(
        "SELECT sum(conversions), sum(value) FROM marts.macro_conversions_daily WHERE conversion_name = 'deal_closed_won'"
    ).fetchall()[0]
    assert macro[0] == both["n"].sum() and abs(macro[1] - both["amount"].sum()) < 0.01


def test_hubspot_dates_are_in_the_property_time_zone(con, warehouse):
    """A contact created at 02:30 UTC lands on the previous local day in America/New_York."""
    store = warehouse.store
    row = store_frame(
        store,
        "SELECT id, createdate FROM contacts WHERE NOT archived AND merged_into IS NULL "
        "AND hour(createdate) < 4 ORDER BY id LIMIT 1",
    ).iloc[0]
    staged = con.execute(
        "SELECT created_at_utc, created_date FROM staging.hubspot_contacts WHERE contact_id = ?",
        [str(row["id"])],
    ).fetchall()[0]
    assert staged[0] == row["createdate"].to_pydatetime()
    assert (
        staged[1] == (row["createdate"] - pd.Timedelta(hours=5)).date()
        or staged[1] == (row["createdate"] - pd.Timedelta(hours=4)).date()
    )
    assert staged[1] < row["createdate"].date()
    assert con.execute("SELECT time_zone FROM staging.build_state").fetchall()[0][0] == store.time_zone
