"""The store's hostile public values (issue 13): present by default, served as-is through the official
SDKs, the same form string on the GA4 and the HubSpot side, and nothing but labels changed."""

from __future__ import annotations

import datetime as dt

import hubspot
import pytest
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import RunReportRequest
from google.auth.credentials import AnonymousCredentials
from urllib3.util.retry import Retry

from connectors.sandbox import store_hostile as h
from connectors.sandbox.store import build_store

END = dt.date(2026, 11, 22)
SMALL = {"days": 21, "sessions_per_day": 300}


def scalar(store, sql, params=None):
    return store.cursor().execute(sql, params or []).fetchall()[0][0]


def test_every_hostile_value_is_in_the_demo_store(demo_store):
    blocks = -(-demo_store.preset.days // 7)  # 90 days: 13 blocks
    for column, value, per_block in h.SESSION_VALUES:
        assert (
            scalar(demo_store, f"SELECT count(*) FROM sessions WHERE {column} = ?", [value])
            == per_block * blocks
        )
    assert scalar(demo_store, "SELECT count(*) FROM sessions WHERE lead_form = ?", [h.FORMULA_FORM]) == blocks
    assert demo_store.truth.planted["hostile_values"]["campaigns"] == [
        h.SLACK_CAMPAIGN,
        h.FORMULA_CAMPAIGN,
        h.EMAIL_CAMPAIGN,
    ]


def test_the_formula_form_is_the_same_on_both_sides_and_leads_reconcile(demo_store):
    # GA4: generate_lead events with the form, per date; HubSpot: contacts created from those sessions.
    ga4 = (
        demo_store.cursor()
        .execute(
            "SELECT date, sum(generate_lead) FROM sessions WHERE lead_form = ? GROUP BY 1 ORDER BY 1",
            [h.FORMULA_FORM],
        )
        .fetchall()
    )
    crm = (
        demo_store.cursor()
        .execute(
            "SELECT timezone(?, timezone('UTC', createdate))::DATE AS d, count(*) FROM contacts "
            "WHERE first_conversion_event_name = ? GROUP BY 1 ORDER BY 1",
            [demo_store.time_zone, h.FORMULA_FORM],
        )
        .fetchall()
    )
    assert ga4 == crm and sum(n for _, n in ga4) == 13
    # The cross-source truth of CONTRACTS §5 holds exactly with the hostile values in place.
    truth = demo_store.truth
    ga4_leads = truth.ga4_leads_by_day_channel().reset_index(drop=True)
    created = truth.contacts_created_by_day_channel().reset_index(drop=True)
    assert ga4_leads.equals(created)


def test_served_as_is_through_the_official_sdks(sandbox_server, demo_store):
    client = BetaAnalyticsDataClient(
        transport="rest",
        client_options={"api_endpoint": sandbox_server.base_url},
        credentials=AnonymousCredentials(),
    )

    def values(dimension: str, **extra) -> set[str]:
        response = client.run_report(
            request=RunReportRequest(
                property="properties/123456789",
                dimensions=[{"name": dimension}],
                metrics=[{"name": "eventCount"}],
                date_ranges=[{"start_date": "2026-08-25", "end_date": "2026-11-22"}],
                **extra,
            )
        )
        return {r.dimension_values[0].value for r in response.rows}

    campaigns = values("sessionCampaignName")
    assert {h.SLACK_CAMPAIGN, h.FORMULA_CAMPAIGN, h.EMAIL_CAMPAIGN} <= campaigns
    assert h.HTML_LANDING_PAGE in values("landingPage")
    assert h.FORMULA_FORM in values("customEvent:form_name")

    contact_id = scalar(
        demo_store,
        "SELECT min(id) FROM contacts WHERE first_conversion_event_name = ? AND NOT archived AND merged_into IS NULL",
        [h.FORMULA_FORM],
    )
    api = hubspot.HubSpot(
        access_token="sandbox-token", host=sandbox_server.base_url, retry=Retry(total=0)
    ).crm.contacts.basic_api
    contact = api.get_by_id(str(contact_id), properties=["first_conversion_event_name"])
    assert contact.properties["first_conversion_event_name"] == h.FORMULA_FORM


@pytest.mark.parametrize("seed", [7, 1, 2, 3, 4, 5])
def test_only_labels_change_and_the_main_stream_is_untouched(seed, monkeypatch):
    with_values = build_store("demo", seed=seed, end_date=END, cache=False, **SMALL)
    monkeypatch.setattr(h, "plant", lambda *args, **kwargs: {})
    without = build_store("demo", seed=seed, end_date=END, cache=False, **SMALL)
    labels = {"campaign", "landing_page", "lead_form"}
    for table, key, relabelled in (
        ("sessions", "session_id", labels),
        (
            "contacts",
            "id",
            {"hs_analytics_source_data_2", "first_conversion_event_name", "recent_conversion_event_name"},
        ),
        ("deals", "id", set()),
    ):
        columns = [r[0] for r in with_values.cursor().execute(f"DESCRIBE {table}").fetchall()]
        kept = ", ".join(c for c in columns if c not in relabelled)
        a = with_values.cursor().execute(f"SELECT {kept} FROM {table} ORDER BY {key}").fetchall()
        b = without.cursor().execute(f"SELECT {kept} FROM {table} ORDER BY {key}").fetchall()
        assert a == b, table
    changed = scalar(
        with_values,
        "SELECT count(*) FROM sessions WHERE campaign IN ? OR landing_page = ? OR lead_form = ?",
        [h.HOSTILE_VALUES["campaigns"], h.HTML_LANDING_PAGE, h.FORMULA_FORM],
    )
    assert changed == 3 * (4 * 2 + 1)  # 21 days: 3 blocks of 8 relabelled sessions and 1 form
    # The planted truths' figures (CONTRACTS §5) are the same with and without the hostile values.
    for dimension in ("channel", "country", "device_category", "new_vs_returning"):
        assert with_values.truth.purchase_rate_by(dimension).equals(without.truth.purchase_rate_by(dimension))
    planted_forms = ["Demo request", "Newsletter signup", "Brochure request"]
    forms_a = with_values.truth.customer_rate_by_form().set_index("form").loc[planted_forms]
    forms_b = without.truth.customer_rate_by_form().set_index("form").loc[planted_forms]
    assert forms_a.equals(forms_b)
    assert with_values.truth.ga4_leads_by_day_channel().equals(
        with_values.truth.contacts_created_by_day_channel()
    )
    assert with_values.truth.crm_funnel_by_day_channel().equals(without.truth.crm_funnel_by_day_channel())
    with_values.close()
    without.close()
