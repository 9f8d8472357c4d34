"""The synthetic store: schema, determinism, cross-source agreement, planted truths, CRM invariants."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from connectors.sandbox.store import PRESETS, Preset, build_store

END = dt.date(2026, 11, 22)
SEED = 7

SESSIONS_SCHEMA = {
    "session_id": "BIGINT",
    "user_id": "BIGINT",
    "date": "DATE",
    "ts": "TIMESTAMP",
    "channel": "VARCHAR",
    "source": "VARCHAR",
    "medium": "VARCHAR",
    "campaign": "VARCHAR",
    "device_category": "VARCHAR",
    "country": "VARCHAR",
    "new_vs_returning": "VARCHAR",
    "landing_page": "VARCHAR",
    "engaged": "BOOLEAN",
    "page_views": "INTEGER",
    **{
        e: "INTEGER"
        for e in [
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
        ]
    },
    "purchase_revenue": "DECIMAL(18,2)",
    "lead_form": "VARCHAR",
}
STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
CONTACTS_SCHEMA = {
    "id": "BIGINT",
    "email": "VARCHAR",
    "firstname": "VARCHAR",
    "lastname": "VARCHAR",
    "phone": "VARCHAR",
    "country": "VARCHAR",
    "createdate": "TIMESTAMP",
    "lastmodifieddate": "TIMESTAMP",
    "lifecyclestage": "VARCHAR",
    **{f"hs_v2_date_entered_{s}": "TIMESTAMP" for s in STAGES},
    "hs_analytics_source": "VARCHAR",
    "hs_analytics_source_data_1": "VARCHAR",
    "hs_analytics_source_data_2": "VARCHAR",
    "first_conversion_event_name": "VARCHAR",
    "recent_conversion_event_name": "VARCHAR",
    "first_conversion_date": "TIMESTAMP",
    "recent_conversion_date": "TIMESTAMP",
    "num_conversion_events": "INTEGER",
    "archived": "BOOLEAN",
    "merged_into": "BIGINT",
    "hs_merged_object_ids": "VARCHAR",
    "associatedcompanyid": "BIGINT",
    "session_id": "BIGINT",
    "user_id": "BIGINT",
}
DEALS_SCHEMA = {
    "id": "BIGINT",
    "contact_id": "BIGINT",
    "dealname": "VARCHAR",
    "pipeline": "VARCHAR",
    "dealstage": "VARCHAR",
    "amount": "DECIMAL(18,2)",
    "createdate": "TIMESTAMP",
    "closedate": "TIMESTAMP",
    "hs_is_closed_won": "BOOLEAN",
    "hs_lastmodifieddate": "TIMESTAMP",
    "archived": "BOOLEAN",
    "merged_into": "BIGINT",  # store_merges: merged-away duplicates point at their survivor
    "hs_merged_object_ids": "VARCHAR",
}
COMPANIES_SCHEMA = {
    "id": "BIGINT",
    "name": "VARCHAR",
    "domain": "VARCHAR",
    "country": "VARCHAR",
    "createdate": "TIMESTAMP",
    "hs_lastmodifieddate": "TIMESTAMP",
    "archived": "BOOLEAN",
    "merged_into": "BIGINT",
    "hs_merged_object_ids": "VARCHAR",
}
EVENTS_COLUMNS = [
    "session_id",
    "user_id",
    "date",
    "channel",
    "device_category",
    "country",
    "new_vs_returning",
    "landing_page",
    "campaign",
    "source",
    "medium",
    "event_name",
    "event_count",
    "event_value",
    "form_name",
]


@pytest.fixture(scope="module")
def store():
    return build_store("demo", seed=SEED, end_date=END)


def q(store, sql, params=None):
    return store.cursor().execute(sql, params or {}).fetchall()


def scalar(store, sql, params=None):
    return q(store, sql, params)[0][0]


def test_schema_matches_contract(store):
    for table, expected in [
        ("sessions", SESSIONS_SCHEMA),
        ("contacts", CONTACTS_SCHEMA),
        ("deals", DEALS_SCHEMA),
        ("companies", COMPANIES_SCHEMA),
    ]:
        got = {name: typ for name, typ, *_ in q(store, f"DESCRIBE {table}")}
        assert got == expected, table
    assert [r[0] for r in q(store, "DESCRIBE events")] == EVENTS_COLUMNS
    assert store.time_zone == "America/New_York" and store.property_id == "123456789"
    assert tuple(store.lifecycle_stages) == STAGES


def test_demo_scale_and_marginals(store):
    counts = store.row_counts()
    days = PRESETS["demo"].days
    assert scalar(store, "SELECT count(DISTINCT date) FROM sessions") == days
    assert (
        scalar(store, "SELECT min(date) FROM sessions"),
        scalar(store, "SELECT max(date) FROM sessions"),
    ) == (
        END - dt.timedelta(days=days - 1),
        END,
    )
    assert 0.9 * 2_000 * days < counts["sessions"] < 1.1 * 2_000 * days
    assert 0.05 < counts["contacts"] / counts["sessions"] < 0.06  # lead rate ~5.5 %
    assert 0.08 < counts["deals"] / counts["contacts"] < 0.12  # ~10 % reach opportunity
    assert 10 <= counts["companies"] < counts["contacts"] / 20
    assert scalar(store, "SELECT count(DISTINCT channel) FROM sessions") == 8
    assert scalar(store, "SELECT count(DISTINCT country) FROM sessions") == 8
    assert {r[0] for r in q(store, "SELECT DISTINCT device_category FROM sessions")} == {
        "desktop",
        "mobile",
        "tablet",
    }
    # 20 pages, plus the hostile one the store plants (CONTRACTS §5, hostile public values).
    assert (
        scalar(store, "SELECT count(DISTINCT landing_page) FROM sessions WHERE landing_page NOT LIKE '%<%'")
        == 20
    )
    assert q(store, "SELECT DISTINCT campaign FROM sessions WHERE channel = 'Direct'") == [("(direct)",)]
    assert q(store, "SELECT DISTINCT campaign FROM sessions WHERE channel = 'Organic Search'") == [
        ("(organic)",)
    ]
    # Paid channels carry several named campaigns each.
    assert scalar(store, "SELECT count(DISTINCT campaign) FROM sessions WHERE channel = 'Paid Search'") >= 2
    assert scalar(store, "SELECT count(*) FROM sessions WHERE generate_lead NOT IN (0, 1)") == 0
    assert (
        scalar(store, "SELECT count(*) FROM sessions WHERE (generate_lead = 1) != (lead_form IS NOT NULL)")
        == 0
    )
    assert scalar(store, "SELECT count(*) - count(DISTINCT session_id) FROM sessions") == 0
    revenue_ok = scalar(
        store,
        "SELECT bool_and((purchase > 0) = (purchase_revenue > 0)) AND min(purchase_revenue) >= 0 FROM sessions",
    )
    assert revenue_ok


def test_returning_visitors(store):
    share_returning = scalar(store, "SELECT avg((new_vs_returning = 'returning')::INT) FROM sessions")
    assert 0.25 < share_returning < 0.4
    # A visitor has at most one 'new' session, and it is their first session in the store.
    bad = scalar(
        store,
        """
        SELECT count(*) FROM (
            SELECT user_id, count(*) FILTER (new_vs_returning = 'new') AS n_new,
                arg_min(new_vs_returning, (ts, session_id)) AS first_kind
            FROM sessions GROUP BY user_id
        ) WHERE n_new > 1 OR (n_new = 1 AND first_kind != 'new')
        """,
    )
    assert bad == 0
    assert (
        scalar(store, "SELECT count(*) FROM (SELECT user_id FROM sessions GROUP BY 1 HAVING count(*) >= 3)")
        > 1000
    )


def test_same_seed_same_bytes_other_seed_differs():
    kwargs = {"end_date": END, "days": 10, "sessions_per_day": 800, "cache": False}
    first = build_store("demo", seed=3, **kwargs)
    again = build_store("demo", seed=3, **kwargs)
    other = build_store("demo", seed=4, **kwargs)
    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint() != other.fingerprint()
    # The fingerprint really covers content: one changed value changes it.
    again.con.execute("UPDATE companies SET name = name || 'x' WHERE id = (SELECT min(id) FROM companies)")
    assert first.fingerprint() != again.fingerprint()
    # Same bytes, row by row (not only the hash).
    for table in ("sessions", "contacts", "deals", "companies"):
        a = first.cursor().sql(f"SELECT * FROM {table} ORDER BY 1").to_arrow_table()
        b = (
            build_store("demo", seed=3, **kwargs)
            .cursor()
            .sql(f"SELECT * FROM {table} ORDER BY 1")
            .to_arrow_table()
        )
        assert a.equals(b), table


def test_cached_builds_are_independent_connections(store):
    twin = build_store("demo", seed=SEED, end_date=END)
    assert twin.con is not store.con
    assert twin.fingerprint() == store.fingerprint()
    twin.touch_contacts(fraction=0.05)
    assert twin.fingerprint() != store.fingerprint()


def test_cursors_per_thread_and_bare_cursors(store):
    from concurrent.futures import ThreadPoolExecutor

    expected = store.row_counts()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: store.row_counts(), range(8)))
    assert all(r == expected for r in results)
    # A bare cursor of the connection (default catalog) sees the same tables and the events view.
    bare = store.con.cursor()
    assert bare.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == expected["sessions"]
    assert (
        bare.execute("SELECT count(*) FROM events WHERE event_name = 'session_start'").fetchall()[0][0]
        == (expected["sessions"])
    )


def test_cross_source_agreement_exact(store):
    ga4 = store.truth.ga4_leads_by_day_channel()
    crm = store.truth.contacts_created_by_day_channel()
    assert len(ga4) > 500
    assert ga4.equals(crm)
    # Every contact comes from one lead session, created at that session's start in the property time zone.
    mismatched = scalar(
        store,
        """
        SELECT count(*) FROM contacts c LEFT JOIN sessions s USING (session_id)
        WHERE s.session_id IS NULL OR s.generate_lead != 1 OR s.user_id != c.user_id
           OR timezone($tz, timezone('UTC', c.createdate))::TIMESTAMP != s.ts
           OR c.first_conversion_event_name != CASE s.lead_form WHEN 'contact_us' THEN 'Contact us'
                WHEN 'brochure_request' THEN 'Brochure request' WHEN 'newsletter_signup' THEN 'Newsletter signup'
                WHEN 'demo_request' THEN 'Demo request' WHEN $hostile_form THEN $hostile_form END
        """,
        {"tz": store.time_zone, "hostile_form": store.truth.planted["hostile_values"]["forms"][0]},
    )
    assert mismatched == 0
    assert scalar(store, "SELECT count(DISTINCT session_id) FROM contacts") == store.row_counts()["contacts"]
    # Archived and merged contacts count among the created ones.
    assert scalar(store, "SELECT count(*) FROM contacts WHERE archived OR merged_into IS NOT NULL") > 0


def test_crm_funnel_truth(store):
    funnel = store.truth.crm_funnel_by_day_channel()
    counts = store.row_counts()
    assert (funnel["ga4_leads"] == funnel["contacts_created"]).all()
    assert (funnel["customers"] == funnel["deals_won"]).all()  # customer date == close date of the won deal
    assert (
        funnel["sessions"].sum() == counts["sessions"]
        and funnel["contacts_created"].sum() == counts["contacts"]
    )
    # Merged-away duplicate deals (store_merges) are the same deal as their survivor.
    assert funnel["opportunities"].sum() == scalar(
        store, "SELECT count(*) FROM deals WHERE merged_into IS NULL"
    )
    totals = funnel[["leads_entered", "mql", "sql", "opportunities", "customers"]].sum()
    assert totals.is_monotonic_decreasing and totals["customers"] > 100
    won = scalar(store, "SELECT sum(amount) FROM deals WHERE dealstage = 'closedwon' AND merged_into IS NULL")
    assert abs(float(funnel["won_amount"].sum()) - float(won)) < 0.01


def test_hs_analytics_source_is_bijective_with_channel(store):
    pairs = q(
        store,
        "SELECT DISTINCT s.channel, c.hs_analytics_source FROM contacts c JOIN sessions s USING (session_id)",
    )
    mapping = dict(pairs)
    assert len(pairs) == 8 and len(set(mapping.values())) == 8
    assert mapping["Display"] == "OTHER_CAMPAIGNS" and mapping["Email"] == "EMAIL_MARKETING"
    assert mapping == store.channel_to_hs_source


def _rate_vs_rest(store, condition):
    (a_yes, a_n, b_yes, b_n) = q(
        store,
        f"""
        SELECT count(*) FILTER ({condition} AND purchase > 0), count(*) FILTER ({condition}),
               count(*) FILTER (NOT ({condition}) AND purchase > 0), count(*) FILTER (NOT ({condition}))
        FROM sessions
        """,
    )[0]
    table = np.array([[a_yes, a_n - a_yes], [b_yes, b_n - b_yes]])
    return (a_yes / a_n) / (b_yes / b_n), chi2_contingency(table)[1]


def _independence_p(store, dimension, outcome="purchase > 0", table="sessions"):
    rows = q(
        store,
        f"SELECT {dimension}, count(*) FILTER ({outcome}), count(*) FILTER (NOT ({outcome})) FROM {table} GROUP BY 1",
    )
    return chi2_contingency(np.array([[r[1], r[2]] for r in rows]))[1]


def test_planted_segments_hold(store):
    planted = store.truth.planted
    assert planted["better_segment"] == ("channel", "Email")
    assert planted["worse_segment"] == ("channel", "Display")
    lift, p = _rate_vs_rest(store, "channel = 'Email'")
    assert lift > 1.6 and p < 1e-20
    lift, p = _rate_vs_rest(store, "channel = 'Display'")
    assert lift < 0.6 and p < 1e-8
    # The channel differences are real, and the null dimensions show none.
    assert _independence_p(store, "channel") < 1e-20
    for dimension in planted["null_dimensions"]:
        assert _independence_p(store, dimension) > 0.01, dimension
        for value, *_ in q(store, f"SELECT DISTINCT {dimension} FROM sessions"):
            lift, _p = _rate_vs_rest(store, f"{dimension} = '{value}'")
            assert 0.8 < lift < 1.25, (dimension, value, lift)


def test_planted_session_micro_conversions(store):
    planted = store.truth.planted
    assert (planted["leading_micro_session"], planted["non_leading_micro_session"]) == (
        "add_to_wishlist",
        "share",
    )
    lift, p = _rate_vs_rest(store, "add_to_wishlist > 0")
    assert lift > 3 and p < 1e-50
    lift, p = _rate_vs_rest(store, "share > 0")
    assert 0.75 < lift < 1.3 and p > 0.01
    # share is independent of the segment too (so no indirect link through channel).
    assert _independence_p(store, "channel", outcome="share > 0") > 0.01


def test_planted_contact_micro_conversions(store):
    rates = store.truth.customer_rate_by_form().set_index("form")
    demo = rates.loc["Demo request"]
    rest = rates.drop(index="Demo request")
    rest_rate = rest["customers"].sum() / rest["contacts"].sum()
    assert demo["rate"] > 4 * rest_rate
    table = np.array(
        [[demo["customers"], demo["contacts"] - demo["customers"]],
         [rest["customers"].sum(), rest["contacts"].sum() - rest["customers"].sum()]]
    )  # fmt: skip
    assert chi2_contingency(table)[1] < 1e-30
    # Newsletter signup converts like all the other contacts together (planted null against the rest):
    # its contacts progress like a random contact of the other forms, Demo request included.
    newsletter = rates.loc["Newsletter signup"]
    others = rates.drop(index="Newsletter signup")
    table = np.array(
        [[newsletter["customers"], newsletter["contacts"] - newsletter["customers"]],
         [others["customers"].sum(), others["contacts"].sum() - others["customers"].sum()]]
    )  # fmt: skip
    assert chi2_contingency(table)[1] > 0.01
    # ... and so clearly better than the non-demo forms alone (it is not their twin).
    non_demo = rates.loc[["Contact us", "Brochure request"]]
    assert newsletter["rate"] > 1.5 * non_demo["customers"].sum() / non_demo["contacts"].sum()
    assert store.truth.planted["leading_micro_contact"] == "Demo request"
    assert store.truth.planted["non_leading_micro_contact"] == "Newsletter signup"


def test_funnel_is_monotone(store):
    # The planted broken tag (CONTRACTS §5.4) drops add_to_cart on one day: nesting holds on every other day.
    zero = store.truth.planted["anomaly_zero"]
    violations = scalar(
        store,
        """
        SELECT count(*) FROM sessions WHERE NOT (view_item >= add_to_cart AND add_to_cart >= begin_checkout
            AND begin_checkout >= purchase
            AND (purchase = 0 OR begin_checkout > 0) AND (begin_checkout = 0 OR add_to_cart > 0)
            AND (add_to_cart = 0 OR view_item > 0) AND (add_to_wishlist = 0 OR view_item > 0))
            AND date IS DISTINCT FROM $zero_date
        """,
        {"zero_date": zero[1] if zero else None},
    )
    assert violations == 0
    funnel = store.truth.funnel_counts()
    assert list(funnel["step"]) == ["view_item", "add_to_cart", "begin_checkout", "purchase"]
    assert funnel["sessions"].is_monotonic_decreasing and funnel["events"].is_monotonic_decreasing
    assert funnel["sessions"].iloc[-1] > 1000
    by_date = store.truth.funnel_counts(by_date=True)
    assert len(by_date) == 4 * PRESETS["demo"].days


def test_events_view_matches_session_columns(store):
    totals = dict(q(store, "SELECT event_name, sum(event_count)::BIGINT FROM events GROUP BY 1"))
    for event in store.event_names:
        assert totals[event] == scalar(store, f"SELECT sum({event})::BIGINT FROM sessions"), event
    assert totals["session_start"] == store.row_counts()["sessions"]
    assert totals["page_view"] == scalar(store, "SELECT sum(page_views)::BIGINT FROM sessions")
    assert scalar(store, "SELECT sum(event_value) FROM events") == scalar(
        store, "SELECT sum(purchase_revenue) FROM sessions"
    )
    forms = q(
        store, "SELECT event_name, count(form_name) > 0 FROM events GROUP BY 1 HAVING count(form_name) > 0"
    )
    assert forms == [("generate_lead", True)]
    assert scalar(store, "SELECT min(event_count) FROM events") >= 1


def test_lifecycle_stage_dates_are_ordered_and_bounded(store):
    end = store.end_instant_utc
    cols = [f"hs_v2_date_entered_{s}" for s in STAGES[:6]]
    # Non-null stage dates strictly increase along the path; none reaches the store's end.
    ordered = " AND ".join(
        f"({a} IS NULL OR {b} IS NULL OR {a} < {b})" for i, a in enumerate(cols) for b in cols[i + 1 :]
    )
    # store_lifecycle's variants break the textbook path on purpose (see test_lifecycle_variants).
    moved_back = "(lifecyclestage = 'salesqualifiedlead' AND hs_v2_date_entered_opportunity IS NOT NULL)"
    skipped = "(hs_v2_date_entered_marketingqualifiedlead IS NULL AND hs_v2_date_entered_salesqualifiedlead IS NOT NULL)"
    reentered = (
        "(lifecyclestage = 'marketingqualifiedlead' AND hs_v2_date_entered_subscriber IS NULL "
        "AND hs_v2_date_entered_lead != createdate)"
    )
    assert scalar(store, f"SELECT count(*) FROM contacts WHERE NOT ({ordered}) AND NOT {moved_back}") == 0
    bounded = " AND ".join(f"coalesce({c} < $end, true)" for c in cols)
    assert scalar(store, f"SELECT count(*) FROM contacts WHERE NOT ({bounded})", {"end": end}) == 0
    assert scalar(store, "SELECT max(lastmodifieddate) < $end FROM contacts", {"end": end})
    # No gaps: entering a stage means having entered every earlier one (from lead on).
    gaps = " OR ".join(f"({b} IS NOT NULL AND {a} IS NULL)" for a, b in zip(cols[1:], cols[2:], strict=False))
    assert scalar(store, f"SELECT count(*) FROM contacts WHERE ({gaps}) AND NOT {skipped}") == 0
    # lastmodifieddate >= every stage and conversion date; createdate is the first stage date.
    later = " AND ".join(f"coalesce(lastmodifieddate >= {c}, true)" for c in cols)
    assert (
        scalar(
            store,
            f"SELECT count(*) FROM contacts WHERE NOT ({later}) OR lastmodifieddate < recent_conversion_date",
        )
        == 0
    )
    assert (
        scalar(
            store,
            "SELECT count(*) FROM contacts WHERE coalesce(hs_v2_date_entered_subscriber, hs_v2_date_entered_lead) "
            f"!= createdate AND NOT {reentered}",
        )
        == 0
    )
    # subscriber only for newsletter signups; the current stage is the last one entered.
    assert (
        scalar(
            store,
            "SELECT count(*) FROM contacts WHERE (hs_v2_date_entered_subscriber IS NOT NULL) "
            "!= (first_conversion_event_name = 'Newsletter signup')",
        )
        == 0
    )
    last_entered = (
        "CASE "
        + " ".join(
            f"WHEN {c} IS NOT NULL THEN '{s}'" for s, c in reversed(list(zip(STAGES[:6], cols, strict=True)))
        )
        + " END"
    )
    assert (
        scalar(
            store,
            f"SELECT count(*) FROM contacts WHERE lifecyclestage != {last_entered} AND NOT {moved_back}",
        )
        == 0
    )
    stages = {r[0] for r in q(store, "SELECT DISTINCT lifecyclestage FROM contacts")}
    assert {"lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"} <= stages


def test_deals_follow_opportunities(store):
    end = store.end_instant_utc
    assert (
        scalar(
            store,
            """
        SELECT count(*) FROM contacts c FULL JOIN (SELECT * FROM deals WHERE merged_into IS NULL) d
            ON d.contact_id = c.id
        WHERE (c.hs_v2_date_entered_opportunity IS NULL) != (d.id IS NULL)
           OR d.createdate != c.hs_v2_date_entered_opportunity
        """,
        )
        == 0
    )
    assert (
        scalar(store, "SELECT count(*) - count(DISTINCT contact_id) FROM deals WHERE merged_into IS NULL")
        == 0
    )
    # Customers are exactly the contacts whose deal is closed won, on the close date.
    assert (
        scalar(
            store,
            """
        SELECT count(*) FROM contacts c LEFT JOIN (SELECT * FROM deals WHERE merged_into IS NULL) d
            ON d.contact_id = c.id
        WHERE (c.hs_v2_date_entered_customer IS NOT NULL) != coalesce(d.dealstage = 'closedwon', false)
           OR (d.dealstage = 'closedwon' AND c.hs_v2_date_entered_customer != d.closedate)
        """,
        )
        == 0
    )
    assert q(store, "SELECT DISTINCT pipeline FROM deals") == [("default",)]
    assert {r[0] for r in q(store, "SELECT DISTINCT dealstage FROM deals")} == set(store.deal_stages)
    assert (
        scalar(store, "SELECT count(*) FROM deals WHERE hs_is_closed_won != (dealstage = 'closedwon')") == 0
    )
    # Closed deals closed inside the store; open ones expect to close later.
    assert (
        scalar(
            store,
            "SELECT count(*) FROM deals WHERE (dealstage IN ('closedwon', 'closedlost')) != (closedate < $end) "
            "OR closedate <= createdate OR hs_lastmodifieddate < createdate OR hs_lastmodifieddate >= $end",
            {"end": end},
        )
        == 0
    )
    assert scalar(store, "SELECT min(amount) > 0 FROM deals")


def test_archived_and_merged_contacts(store):
    n = store.row_counts()["contacts"]
    archived = scalar(store, "SELECT count(*) FROM contacts WHERE archived")
    merged = scalar(store, "SELECT count(*) FROM contacts WHERE merged_into IS NOT NULL")
    assert 0.002 * n < archived < 0.009 * n
    assert 0.002 * n < merged < 0.009 * n
    assert scalar(store, "SELECT count(*) FROM contacts WHERE archived AND merged_into IS NOT NULL") == 0
    # Survivors are live contacts and list exactly the ids merged into them.
    assert (
        scalar(
            store,
            """
        SELECT count(*) FROM contacts m LEFT JOIN contacts s ON s.id = m.merged_into
        WHERE m.merged_into IS NOT NULL AND (s.id IS NULL OR s.archived OR s.merged_into IS NOT NULL
            OR NOT list_contains(string_split(s.hs_merged_object_ids, ';'), m.id::VARCHAR))
        """,
        )
        == 0
    )
    listed = scalar(store, "SELECT sum(len(string_split(hs_merged_object_ids, ';'))) FROM contacts")
    assert listed == merged


def test_personal_data_is_synthetic(store):
    assert (
        scalar(
            store,
            "SELECT count(*) FROM contacts WHERE email != lower(firstname) || '.' || lower(lastname) || '.' "
            "|| id::VARCHAR || '@example.com' OR NOT regexp_full_match(phone, '\\+1-555-[0-9]{7}')",
        )
        == 0
    )
    assert scalar(store, "SELECT count(DISTINCT email) = count(*) FROM contacts")


def test_bulk_import_block(store):
    bulk_at = store.end_instant_utc - dt.timedelta(hours=6)
    assert scalar(store, "SELECT count(*) FROM contacts WHERE lastmodifieddate = $t", {"t": bulk_at}) == (
        PRESETS["demo"].bulk_import_contacts
    )
    assert (
        q(store, "SELECT lastmodifieddate, count(*) FROM contacts GROUP BY 1 ORDER BY 2 DESC LIMIT 1")[0][0]
        == bulk_at
    )


def test_bulk_import_block_over_search_cap():
    big = build_store(
        "demo", seed=SEED, end_date=END, days=20, sessions_per_day=12_000, bulk_import_contacts=10_500
    )
    bulk_at = big.end_instant_utc - dt.timedelta(hours=6)
    n = scalar(
        big,
        "SELECT count(*) FROM contacts WHERE lastmodifieddate = $t AND NOT archived AND merged_into IS NULL",
        {"t": bulk_at},
    )
    assert n == 10_500 > 10_000
    assert big.row_counts()["contacts"] > n


def test_touch_contacts():
    kwargs = {"end_date": END, "days": 14, "sessions_per_day": 1_500}
    a = build_store("demo", seed=SEED, **kwargs)
    b = build_store("demo", seed=SEED, **kwargs)
    live = scalar(a, "SELECT count(*) FROM contacts WHERE NOT archived AND merged_into IS NULL")
    before = dict(q(a, "SELECT lifecyclestage, count(*) FROM contacts GROUP BY 1"))
    at = a.end_instant_utc + dt.timedelta(days=1)
    touched = a.touch_contacts(fraction=0.01, at=at)
    assert len(touched) == round(0.01 * live) > 0
    assert touched == b.touch_contacts(fraction=0.01, at=at)  # deterministic
    assert a.fingerprint() == b.fingerprint()
    rows = q(
        a,
        "SELECT min(lastmodifieddate), max(lastmodifieddate), count(*), bool_or(archived OR merged_into IS NOT NULL) "
        "FROM contacts WHERE id IN (SELECT unnest($ids))",
        {"ids": touched},
    )[0]
    assert rows[0] >= at and rows[1] < at + dt.timedelta(hours=1) and rows[2] == len(touched) and not rows[3]
    assert scalar(a, "SELECT count(*) FROM contacts WHERE lastmodifieddate >= $at", {"at": at}) == len(
        touched
    )
    after = dict(q(a, "SELECT lifecyclestage, count(*) FROM contacts GROUP BY 1"))
    assert after["marketingqualifiedlead"] > before["marketingqualifiedlead"]
    assert (
        scalar(
            a,
            "SELECT count(*) FROM contacts WHERE hs_v2_date_entered_marketingqualifiedlead > lastmodifieddate",
        )
        == 0
    )
    # A second touch picks a different subset; an earlier instant than the data is refused.
    second = a.touch_contacts(fraction=0.01, at=at + dt.timedelta(days=1))
    assert set(second) != set(touched)
    with pytest.raises(ValueError, match="precedes"):
        a.touch_contacts(fraction=0.5, at=a.end_instant_utc - dt.timedelta(days=30))


def test_presets_and_overrides():
    assert PRESETS["demo"] == Preset(name="demo", days=90, sessions_per_day=2_000, bulk_import_contacts=2_000)
    assert PRESETS["large"].days == 365 and PRESETS["large"].sessions_per_day == 50_000
    assert PRESETS["large"].bulk_import_contacts > 10_000
    tiny = build_store("demo", seed=SEED, end_date="2026-11-22", days=3, sessions_per_day=300)
    assert (tiny.start_date, tiny.end_date) == (dt.date(2026, 11, 20), END)
    assert tiny.preset.days == 3 and 600 < tiny.row_counts()["sessions"] < 1200
    with pytest.raises(ValueError, match="unknown store preset"):
        build_store("huge")
    with pytest.raises(TypeError, match="unknown build_store override"):
        build_store("demo", sessions=5)


def test_default_end_date_is_yesterday_utc():
    s = build_store("demo", seed=SEED, days=2, sessions_per_day=200)
    assert s.end_date == dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def test_disk_cache_roundtrip(tmp_path):
    kwargs = {"end_date": END, "days": 5, "sessions_per_day": 400}
    fresh = build_store("demo", seed=SEED, cache=False, **kwargs)
    first = build_store("demo", seed=SEED, cache_dir=tmp_path, **kwargs)
    files = list(tmp_path.glob("*.duckdb"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    second = build_store("demo", seed=SEED, cache_dir=tmp_path, **kwargs)
    assert files[0].stat().st_mtime_ns == mtime  # reused, not regenerated
    assert fresh.fingerprint() == first.fingerprint() == second.fingerprint()
    assert second.truth.ga4_leads_by_day_channel().equals(second.truth.contacts_created_by_day_channel())
    assert (
        scalar(second, "SELECT sum(event_count) FROM events WHERE event_name = 'generate_lead'")
        == (second.row_counts()["contacts"])
    )
    # Writes go to a private copy: the cache file stays as generated.
    second.touch_contacts(fraction=0.1)
    third = build_store("demo", seed=SEED, cache_dir=tmp_path, **kwargs)
    assert third.fingerprint() == fresh.fingerprint() != second.fingerprint()
    for store in (first, second, third):
        store.close()


def test_daylight_saving_days():
    # 2026-03-08 skips 02:00-03:00 local, 2026-11-01 repeats 01:00-02:00.
    for end in (dt.date(2026, 3, 9), dt.date(2026, 11, 2)):
        s = build_store("demo", seed=SEED, end_date=end, days=3, sessions_per_day=4_000, lead_rate=0.3)
        day = end - dt.timedelta(days=1)
        assert scalar(s, "SELECT count(*) FROM sessions WHERE date = $d", {"d": day}) > 3_000
        # Every contact's createdate converts back to its session's exact local start.
        assert (
            scalar(
                s,
                "SELECT count(*) FROM contacts c JOIN sessions s USING (session_id) "
                "WHERE timezone($tz, timezone('UTC', c.createdate))::TIMESTAMP != s.ts",
                {"tz": s.time_zone},
            )
            == 0
        )
        assert s.truth.ga4_leads_by_day_channel().equals(s.truth.contacts_created_by_day_channel())
    spring = build_store("demo", seed=SEED, end_date=dt.date(2026, 3, 9), days=3, sessions_per_day=4_000)
    assert scalar(spring, "SELECT count(*) FROM sessions WHERE date = '2026-03-08' AND hour(ts) = 2") == 0
    assert scalar(spring, "SELECT count(*) FROM sessions WHERE date = '2026-03-07' AND hour(ts) = 2") > 0


@pytest.mark.skipif(
    not os.environ.get("STEPWISE_TEST_LARGE"), reason="large preset: set STEPWISE_TEST_LARGE=1"
)
def test_large_preset_scale():
    large = build_store("large", seed=SEED, end_date=END, cache=False)
    counts = large.row_counts()
    assert counts["sessions"] > 0.95 * 365 * 50_000
    assert counts["contacts"] >= 1_000_000 and counts["deals"] >= 100_000
    assert large.truth.ga4_leads_by_day_channel().equals(large.truth.contacts_created_by_day_channel())
    bulk_at = large.end_instant_utc - dt.timedelta(hours=6)
    assert scalar(large, "SELECT count(*) FROM contacts WHERE lastmodifieddate = $t", {"t": bulk_at}) > 10_000
    lift, p = _rate_vs_rest(large, "channel = 'Email'")
    assert lift > 1.6 and p < 1e-100
    for dimension in large.truth.planted["null_dimensions"]:
        assert _independence_p(large, dimension) > 0.001
    assert len(large.touch_contacts(fraction=0.01)) > 10_000
    large.close()


def test_lifecycle_variants(store):
    """store_lifecycle: skipped, moved-back and re-entered stages, with the portal's date semantics."""
    skipped = scalar(
        store,
        "SELECT count(*) FROM contacts WHERE hs_v2_date_entered_marketingqualifiedlead IS NULL "
        "AND hs_v2_date_entered_salesqualifiedlead IS NOT NULL",
    )
    # Moved back from opportunity to SQL: the SQL date is the move (after the opportunity date, kept).
    moved_back = scalar(
        store,
        "SELECT count(*) FROM contacts WHERE lifecyclestage = 'salesqualifiedlead' "
        "AND hs_v2_date_entered_opportunity < hs_v2_date_entered_salesqualifiedlead",
    )
    assert (
        scalar(
            store,
            "SELECT count(*) FROM contacts WHERE lifecyclestage = 'salesqualifiedlead' "
            "AND hs_v2_date_entered_opportunity IS NOT NULL",
        )
        == moved_back
    )
    # Re-entered MQL (non-newsletter contacts): lead rewritten to the move back, after createdate.
    reentered = scalar(
        store,
        "SELECT count(*) FROM contacts WHERE lifecyclestage = 'marketingqualifiedlead' "
        "AND hs_v2_date_entered_subscriber IS NULL AND hs_v2_date_entered_lead > createdate "
        "AND hs_v2_date_entered_lead < hs_v2_date_entered_marketingqualifiedlead",
    )
    opportunities_open = scalar(
        store,
        "SELECT count(*) FROM contacts WHERE hs_v2_date_entered_opportunity IS NOT NULL "
        "AND hs_v2_date_entered_customer IS NULL",
    )
    assert 0 < moved_back < 0.2 * opportunities_open
    assert skipped > 0 and reentered > 0
    # No variant touches customers, and no date passes the last modification.
    cols = [f"hs_v2_date_entered_{s}" for s in STAGES[:6]]
    later = " AND ".join(f"coalesce(lastmodifieddate >= {c}, true)" for c in cols)
    assert scalar(store, f"SELECT count(*) FROM contacts WHERE NOT ({later})") == 0
    assert (
        scalar(
            store,
            "SELECT count(*) FROM contacts WHERE hs_v2_date_entered_customer IS NOT NULL AND ("
            "hs_v2_date_entered_marketingqualifiedlead IS NULL OR lifecyclestage != 'customer')",
        )
        == 0
    )


def test_merged_deals_and_companies(store):
    """store_merges: duplicates merged away into survivors that list them."""
    dups = q(
        store,
        "SELECT x.id, x.merged_into, x.contact_id = s.contact_id, x.dealstage = s.dealstage, "
        "list_contains(string_split(s.hs_merged_object_ids, ';'), x.id::VARCHAR), s.merged_into IS NULL "
        "FROM deals x JOIN deals s ON s.id = x.merged_into",
    )
    assert dups and all(all(r[2:]) for r in dups)
    companies = q(
        store,
        "SELECT x.id, list_contains(string_split(s.hs_merged_object_ids, ';'), x.id::VARCHAR) "
        "FROM companies x JOIN companies s ON s.id = x.merged_into",
    )
    assert companies and all(r[1] for r in companies)
    # Some contact was associated with a merged-away company (the API follows it to the survivor).
    assert scalar(
        store,
        "SELECT count(*) FROM contacts c JOIN companies x ON x.id = c.associatedcompanyid "
        "WHERE x.merged_into IS NOT NULL",
    )
