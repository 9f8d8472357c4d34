"""The multi-account sandbox (connectors/sandbox/accounts.py), driven through the official SDKs.

Three GA4 properties in three zones and two HubSpot portals on one server: each property answers its own
rows in its own local days; each portal's token sees its own contacts, limits and time zone; revoking one
account refuses that account only; the single-store default is unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import hubspot
import pytest
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import GetMetadataRequest, RunReportRequest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from hubspot.crm.contacts.exceptions import ApiException
from urllib3.util.retry import Retry

from connectors.sandbox.accounts import PORTALS, PROPERTIES, MultiAccountSandbox, portal_for_property
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import build_store

END = dt.date(2026, 3, 31)  # the window holds both spring-forward days: US 2026-03-08, EU 2026-03-29
DAYS = 28
US, DE, JP = (p.property_id for p in PROPERTIES)
PORTAL_US, PORTAL_EU = (p.portal_id for p in PORTALS)


@pytest.fixture(scope="module")
def multi():
    sandbox = MultiAccountSandbox(seed=7, days=DAYS, end_date=END, scale=0.25, revisions=False)
    with sandbox:
        yield sandbox
    sandbox.close()


def _ga4(sandbox) -> BetaAnalyticsDataClient:
    return BetaAnalyticsDataClient(
        transport="rest",
        client_options={"api_endpoint": sandbox.base_url},
        credentials=AnonymousCredentials(),
    )


def _hubspot(sandbox, token: str) -> hubspot.HubSpot:
    return hubspot.HubSpot(
        access_token=token, host=sandbox.base_url, retry=Retry(total=0, respect_retry_after_header=False)
    )


def _account_info(sandbox, token: str):
    # The SDK has no account-info API: its generic request (the host goes in the options for it).
    return _hubspot(sandbox, token).api_request(
        {"method": "GET", "path": "/account-info/v3/details", "base_url": sandbox.base_url}
    )


def _daily(client, property_id: str, metric: str, event: str | None = None) -> tuple[dict[dt.date, int], str]:
    request = RunReportRequest(
        property=f"properties/{property_id}",
        dimensions=[{"name": "date"}],
        metrics=[{"name": metric}],
        date_ranges=[{"start_date": "2015-08-14", "end_date": "today"}],
        limit=100_000,
    )
    if event:
        request.dimension_filter = {"filter": {"field_name": "eventName", "string_filter": {"value": event}}}
        request.dimensions = [{"name": "date"}, {"name": "eventName"}]
    response = client.run_report(request=request)
    out = {
        dt.datetime.strptime(r.dimension_values[0].value, "%Y%m%d").date(): int(r.metric_values[0].value)
        for r in response.rows
    }
    return out, response.metadata.time_zone


def _all_contacts(api, archived: bool) -> dict[str, dict]:
    seen: dict[str, dict] = {}
    after = None
    while True:
        page = api.get_page(limit=100, after=after, properties=["email", "createdate"], archived=archived)
        seen.update({c.id: c.properties for c in page.results})
        if page.paging is None:
            return seen
        after = page.paging.next.after


def test_each_property_answers_its_own_sessions_in_its_own_local_days(multi):
    client = _ga4(multi)
    totals = {}
    for spec in PROPERTIES:
        served, zone = _daily(client, spec.property_id, "sessions")
        assert zone == spec.time_zone
        truth = multi.truth(spec.property_id).sessions_by_day()
        expected = {
            d.date() if isinstance(d, dt.datetime) else d: int(n)
            for d, n in zip(truth.date, truth.sessions, strict=True)
        }
        assert served == expected, spec.property_id
        assert min(served) == END - dt.timedelta(days=DAYS - 1) and max(served) == END
        totals[spec.property_id] = sum(served.values())
        meta = client.get_metadata(request=GetMetadataRequest(name=f"properties/{spec.property_id}/metadata"))
        assert meta.name == f"properties/{spec.property_id}/metadata"
    # Different sizes: US 2,000, DE 800, JP 400 sessions a day (times the scale).
    assert totals[US] > 2 * totals[DE] > 2 * totals[JP] > 0


def test_stores_generate_their_days_in_their_own_zone(multi):
    for spec in PROPERTIES:
        store = multi.store(spec.property_id)
        assert store.time_zone == spec.time_zone and store.property_id == spec.property_id
        cur = store.cursor()
        # Every contact is created at its session's local start, converted with the property's own zone.
        mismatched, contacts = cur.execute(
            """
            SELECT count(*) FILTER (c.createdate <> timezone('UTC', timezone($tz, s.ts::TIMESTAMP))), count(*)
            FROM contacts c JOIN sessions s ON s.session_id = c.session_id
            """,
            {"tz": spec.time_zone},
        ).fetchall()[0]
        assert contacts > 0 and mismatched == 0, spec.property_id
        # GA4 leads == contacts created, per property-local date and channel, in each store.
        truth = multi.truth(spec.property_id)
        assert truth.ga4_leads_by_day_channel().equals(truth.contacts_created_by_day_channel())
        # The store ends at the local midnight after its last day.
        local_end = dt.datetime.combine(END + dt.timedelta(days=1), dt.time(), tzinfo=_zone(spec.time_zone))
        assert store.end_instant_utc == local_end.astimezone(dt.UTC).replace(tzinfo=None)
    # The spring-forward hour has no sessions in Berlin (02:00 on 2026-03-29) and New York (2026-03-08).
    for pid, day in ((DE, dt.date(2026, 3, 29)), (US, dt.date(2026, 3, 8))):
        n = (
            multi.store(pid)
            .cursor()
            .execute("SELECT count(*) FROM sessions WHERE date = ? AND hour(ts) = 2", [day])
            .fetchall()[0][0]
        )
        assert n == 0
    # The planted lead rates differ by property (DE 8 %, US 5.5 %, JP 3 %).
    rate = {
        pid: multi.store(pid).cursor().execute("SELECT avg(generate_lead) FROM sessions").fetchall()[0][0]
        for pid in (US, DE, JP)
    }
    assert rate[DE] > rate[US] > rate[JP]


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def test_unknown_and_revoked_property_are_refused_alone(multi):
    client = _ga4(multi)
    with pytest.raises(gexc.Forbidden) as caught:
        _daily(client, "999999999", "sessions")
    assert caught.value.response.json()["error"]["status"] == "PERMISSION_DENIED"
    multi.revoke_property(JP)
    try:
        with pytest.raises(gexc.Forbidden):
            _daily(client, JP, "sessions")
        with pytest.raises(gexc.Forbidden):
            client.get_metadata(request=GetMetadataRequest(name=f"properties/{JP}/metadata"))
        assert _daily(client, DE, "sessions")[0]  # the others still answer
    finally:
        multi.restore_property(JP)
    assert _daily(client, JP, "sessions")[0]


def test_each_portal_token_sees_only_its_own_contacts_paired_with_its_property(multi):
    client = _ga4(multi)
    for portal in PORTALS:
        store = multi.portal_store(portal.portal_id)
        assert store is multi.store(portal.property_id)
        api = _hubspot(multi, portal.token).crm.contacts.basic_api
        live = _all_contacts(api, archived=False)
        archived = _all_contacts(api, archived=True)
        expected = dict(
            store.cursor()
            .execute("SELECT id::VARCHAR, email FROM contacts WHERE NOT archived AND merged_into IS NULL")
            .fetchall()
        )
        assert {k: v["email"] for k, v in live.items()} == expected, portal.label
        # Contacts created per portal-local date == that property's GA4 leads per local date, less the
        # contacts merged away (listed nowhere, yet counted by GA4 when their lead happened).
        merged = Counter(
            d
            for (d,) in store.cursor()
            .execute(
                "SELECT timezone($tz, timezone('UTC', createdate))::DATE FROM contacts WHERE merged_into IS NOT NULL",
                {"tz": portal.time_zone},
            )
            .fetchall()
        )
        listed = Counter(
            dt.datetime.fromisoformat(p["createdate"].replace("Z", "+00:00"))
            .astimezone(_zone(portal.time_zone))
            .date()
            for p in (*live.values(), *archived.values())
        )
        leads, _ = _daily(client, portal.property_id, "eventCount", event="generate_lead")
        assert {d: listed[d] + merged[d] for d in leads} == leads and sum(listed.values()) + sum(
            merged.values()
        ) == sum(leads.values())
    # The two portals' contact sets are different records (ids and e-mails from different stores).
    us = _all_contacts(_hubspot(multi, PORTALS[0].token).crm.contacts.basic_api, archived=False)
    eu = _all_contacts(_hubspot(multi, PORTALS[1].token).crm.contacts.basic_api, archived=False)
    assert len(us) > len(eu) > 0
    assert {v["email"] for v in us.values()}.isdisjoint({v["email"] for v in eu.values()})
    assert portal_for_property(JP) is None


def test_account_info_answers_each_portals_zone_and_limits(multi):
    for portal in PORTALS:
        response = _account_info(multi, portal.token)
        assert response.status_code == 200
        body = response.json()
        assert body["portalId"] == portal.portal_id
        assert body["timeZone"] == portal.time_zone
        assert body["companyCurrency"] == portal.company_currency
        assert body["dataHostingLocation"] == portal.data_hosting_location
        assert body["uiDomain"] == portal.ui_domain
        assert isinstance(body["utcOffsetMilliseconds"], int) and body["utcOffset"][0] in "+-"
        # Each portal's own rate limit, in HubSpot's headers.
        assert int(response.headers["X-HubSpot-RateLimit-Max"]) == portal.general_max
    assert {p.general_max for p in PORTALS} == {100, 190}


def test_revoked_portal_token_is_refused_for_that_portal_only(multi):
    us_api = _hubspot(multi, PORTALS[0].token).crm.contacts.basic_api
    eu_api = _hubspot(multi, PORTALS[1].token).crm.contacts.basic_api
    with pytest.raises(ApiException) as unknown:
        _hubspot(multi, "not-a-sandbox-token").crm.contacts.basic_api.get_page(limit=1)
    assert unknown.value.status == 401
    multi.revoke_portal(PORTAL_US)
    try:
        with pytest.raises(ApiException) as caught:
            us_api.get_page(limit=1)
        assert caught.value.status == 401
        assert '"EXPIRED_AUTHENTICATION"' in caught.value.body
        assert eu_api.get_page(limit=1).results
    finally:
        multi.restore_portal(PORTAL_US)
    assert us_api.get_page(limit=1).results


def test_single_store_default_is_unchanged():
    small = {"end_date": END, "days": 20, "sessions_per_day": 300}
    default = build_store("demo", seed=7, **small)
    explicit = build_store("demo", seed=7, time_zone="America/New_York", property_id="123456789", **small)
    berlin = build_store("demo", seed=7, time_zone="Europe/Berlin", **small)
    assert default.fingerprint() == explicit.fingerprint() != berlin.fingerprint()
    assert default.time_zone == "America/New_York" and default.property_id == "123456789"
    # At scale 1 the US property of the multi-account sandbox is the demo store (same seed and sizes).
    multi = MultiAccountSandbox(seed=7, days=20, end_date=END)
    demo = build_store("demo", seed=7, end_date=END, days=20)
    assert multi.store(US).fingerprint() == demo.fingerprint() != multi.store(DE).fingerprint()
    multi.close()
    with SandboxServer(default) as server:
        client = _ga4(server)
        for property_id in ("123456789", "987654321"):  # the main property and its 40 % share property
            served, zone = _daily(client, property_id, "sessions")
            assert zone == "America/New_York" and served
        body = _account_info(server, "any-token").json()
        assert body["timeZone"] == "America/New_York" and body["portalId"] == 1234567
    with pytest.raises(ValueError, match="unknown time zone"):
        build_store("demo", seed=7, time_zone="Mars/Olympus", **small)


def test_pipeline_setting_starts_the_multi_account_sandbox():
    from orchestration import connections as resources
    from orchestration.settings import StepwiseConfigError, load_settings

    with pytest.raises(StepwiseConfigError, match="STEPWISE_SANDBOX_ACCOUNTS"):
        load_settings({"STEPWISE_SANDBOX_ACCOUNTS": "several"})
    settings = load_settings(
        {
            "STEPWISE_SANDBOX_ACCOUNTS": "multi",
            "STEPWISE_SANDBOX_DAYS": "5",
            "STEPWISE_SANDBOX_SESSIONS_PER_DAY": "200",
            "STEPWISE_SANDBOX_END_DATE": END.isoformat(),
        }
    )
    handle = resources.get_sandbox(settings)
    try:
        assert handle.property_ids == [US, DE, JP] and handle.accounts is not None
        assert handle.hubspot_token(resources.SANDBOX_TOKEN) == PORTALS[0].token
        assert handle.hubspot_token(PORTALS[1].token) == PORTALS[1].token
        assert handle.store.time_zone == "America/New_York" and handle.end_date == END
        served, zone = _daily(_ga4(handle.accounts), DE, "sessions")
        assert zone == "Europe/Berlin" and len(served) == 5
    finally:
        handle.accounts.stop()
        with resources._SANDBOX_LOCK:
            for key in [k for k, h in resources._SANDBOX.items() if h is handle]:
                del resources._SANDBOX[key]
        handle.accounts.close()


@pytest.mark.parametrize("seed", [7, 11, 23, 42, 99, 123])
def test_pair_truths_hold_on_several_seeds(seed):
    """Per property-local date and channel, GA4 leads == contacts created, in each store's own zone, and the
    stores differ (their own seeds), on seed 7 and five others."""
    sandbox = MultiAccountSandbox(seed=seed, days=10, end_date=END, scale=0.1)
    try:
        fingerprints = set()
        for spec in PROPERTIES:
            store = sandbox.store(spec.property_id)
            assert store.seed == seed + spec.seed_offset and store.time_zone == spec.time_zone
            truth = sandbox.truth(spec.property_id)
            leads = truth.ga4_leads_by_day_channel()
            assert leads["n"].sum() > 0
            assert leads.equals(truth.contacts_created_by_day_channel()), (seed, spec.property_id)
            fingerprints.add(store.fingerprint())
        assert len(fingerprints) == len(PROPERTIES)
    finally:
        sandbox.close()
