"""The fake HubSpot CRM v3 API, driven through the official SDK (``hubspot-api-client``) only."""

from __future__ import annotations

import datetime as dt
import json

import hubspot
import pytest
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from urllib3.util.retry import Retry

RATE_HEADERS = (
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
)


def sdk(server, token: str = "sandbox-token") -> hubspot.HubSpot:
    # urllib3's own retries off, so every answer (429s included) reaches the test as the server sent it.
    return hubspot.HubSpot(
        access_token=token, host=server.base_url, retry=Retry(total=0, respect_retry_after_header=False)
    )


def rows(store, sql: str, params=None):
    return store.cursor().execute(sql, params or []).fetchall()


def iso(ts) -> str | None:
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def test_list_contacts_pages_every_live_contact_with_store_values(sandbox_server, demo_store):
    sandbox_server.config.hubspot.general_max = 10_000
    api = sdk(sandbox_server).crm.contacts.basic_api
    props = [
        "lifecyclestage",
        "createdate",
        "hs_analytics_source",
        "num_conversion_events",
        "hs_v2_date_entered_lead",
    ]
    seen: dict[str, dict] = {}
    after = None
    pages = 0
    while True:
        page = api.get_page(limit=100, after=after, properties=props)
        pages += 1
        assert len(page.results) <= 100
        for obj in page.results:
            seen[obj.id] = obj.properties
            assert obj.archived is False
        if page.paging is None:
            break
        nxt = page.paging.next
        assert nxt.link.startswith(sandbox_server.base_url + "/crm/v3/objects/contacts?")
        assert f"after={nxt.after}" in nxt.link
        after = nxt.after
    live = rows(
        demo_store,
        "SELECT id, lifecyclestage, createdate, hs_analytics_source, num_conversion_events, hs_v2_date_entered_lead "
        "FROM contacts WHERE NOT archived AND merged_into IS NULL ORDER BY id",
    )
    assert set(seen) == {str(r[0]) for r in live}
    assert pages == -(-len(live) // 100)
    for cid, stage, created, source, n_conv, lead_at in live[:: max(len(live) // 200, 1)]:
        p = seen[str(cid)]
        assert p["lifecyclestage"] == stage
        assert p["createdate"] == iso(created)
        assert p["hs_analytics_source"] == source
        assert p["num_conversion_events"] == (None if n_conv is None else str(n_conv))
        assert p["hs_v2_date_entered_lead"] == iso(lead_at)
        assert p["hs_object_id"] == str(cid)
        assert set(p) >= {"lastmodifieddate", "hs_object_id"}


def test_list_limit_above_100_is_a_400(sandbox_server):
    with pytest.raises(ContactsApiException) as err:
        sdk(sandbox_server).crm.contacts.basic_api.get_page(limit=101)
    assert err.value.status == 400
    body = json.loads(err.value.body)
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]


def test_archived_listing_and_merged_survivors(sandbox_server, demo_store):
    api = sdk(sandbox_server).crm.contacts.basic_api
    page = api.get_page(limit=100, archived=True)
    archived = {
        str(r[0]) for r in rows(demo_store, "SELECT id FROM contacts WHERE archived AND merged_into IS NULL")
    }
    assert archived and {o.id for o in page.results} <= archived
    assert all(o.archived and o.archived_at is not None for o in page.results)
    survivor, merged = rows(
        demo_store,
        "SELECT merged_into, string_agg(id::VARCHAR, ';' ORDER BY id) FROM contacts WHERE merged_into IS NOT NULL "
        "GROUP BY 1 ORDER BY 1 LIMIT 1",
    )[0]
    got = api.get_by_id(str(survivor), properties=["hs_merged_object_ids"])
    assert got.properties["hs_merged_object_ids"] == merged


def test_deals_list_carries_contact_associations(sandbox_server, demo_store):
    sandbox_server.config.hubspot.general_max = 10_000
    api = sdk(sandbox_server).crm.deals.basic_api
    page = api.get_page(
        limit=50, associations=["contacts"], properties=["dealstage", "amount", "hs_is_closed_won"]
    )
    truth = {
        str(d): (str(c), stage, amount, won)
        for d, c, stage, amount, won in rows(
            demo_store,
            "SELECT d.id, COALESCE(c.merged_into, d.contact_id), dealstage, amount, hs_is_closed_won "
            "FROM deals d JOIN contacts c ON c.id = d.contact_id",
        )
    }
    assert len(page.results) == 50
    for deal in page.results:
        contact, stage, amount, won = truth[deal.id]
        assert [a.id for a in deal.associations["contacts"].results] == [contact]
        assert deal.associations["contacts"].results[0].type == "deal_to_contact"
        assert deal.properties["dealstage"] == stage
        assert float(deal.properties["amount"]) == float(amount)
        assert deal.properties["hs_is_closed_won"] == ("true" if won else "false")


def test_search_window_total_sort_and_limits(sandbox_server, demo_store):
    api = sdk(sandbox_server).crm.contacts.search_api
    lo, hi = "2026-11-01T00:00:00.000Z", "2026-11-15T00:00:00.000Z"
    body = {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "lastmodifieddate", "operator": "GTE", "value": lo},
                    {"propertyName": "lastmodifieddate", "operator": "LT", "value": hi},
                ]
            }
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["lastmodifieddate", "lifecyclestage"],
        "limit": 200,
    }
    res = api.do_search(public_object_search_request=body)
    expected = rows(
        demo_store,
        "SELECT count(*) FROM contacts WHERE NOT archived AND merged_into IS NULL "
        "AND lastmodifieddate >= '2026-11-01' AND lastmodifieddate < '2026-11-15'",
    )[0][0]
    assert res.total == expected > 200
    assert len(res.results) == 200 and res.paging.next.after == "200"
    stamps = [r.properties["lastmodifieddate"] for r in res.results]
    assert stamps == sorted(stamps) and lo <= stamps[0] and stamps[-1] < hi
    assert set(res.results[0].properties) >= {"lastmodifieddate", "lifecyclestage", "hs_object_id"}

    # BETWEEN (inclusive) with epoch milliseconds, which HubSpot accepts as well as ISO strings.
    lo_ms = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp() * 1000)
    hi_ms = int(dt.datetime(2026, 11, 15, tzinfo=dt.UTC).timestamp() * 1000)
    between = {
        "filterGroups": [
            {
                "filters": [
                    {
                        "propertyName": "lastmodifieddate",
                        "operator": "BETWEEN",
                        "value": str(lo_ms),
                        "highValue": str(hi_ms),
                    }
                ]
            }
        ],
        "limit": 1,
    }
    expected_between = rows(
        demo_store,
        "SELECT count(*) FROM contacts WHERE NOT archived AND merged_into IS NULL "
        "AND lastmodifieddate BETWEEN '2026-11-01' AND '2026-11-15'",
    )[0][0]
    assert api.do_search(public_object_search_request=between).total == expected_between >= expected

    with pytest.raises(ContactsApiException) as too_big:
        api.do_search(public_object_search_request={**body, "limit": 201})
    assert too_big.value.status == 400
    with pytest.raises(ContactsApiException) as past_cap:
        api.do_search(public_object_search_request={**body, "after": "10000"})
    assert past_cap.value.status == 400
    assert json.loads(past_cap.value.body)["category"] == "VALIDATION_ERROR"


def test_search_eq_on_bulk_import_instant(sandbox_server, demo_store):
    instant, n = rows(
        demo_store,
        "SELECT lastmodifieddate, count(*) FROM contacts WHERE NOT archived AND merged_into IS NULL "
        "GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
    )[0]
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "EQ", "value": iso(instant)}]}
        ],
        "limit": 1,
    }
    res = sdk(sandbox_server).crm.contacts.search_api.do_search(public_object_search_request=body)
    assert res.total == n >= demo_store.preset.bulk_import_contacts


def test_search_keyset_on_hs_object_id_reads_a_crowded_instant_past_the_cap(sandbox_server, demo_store):
    # The way past the result cap: filter hs_object_id GT the largest id read, sorted by hs_object_id.
    cfg = sandbox_server.config.hubspot
    cfg.search_result_cap = 500  # below the bulk import's 2,000 records at one instant
    cfg.search_per_second = 1_000
    api = sdk(sandbox_server).crm.contacts.search_api
    instant = rows(
        demo_store,
        "SELECT lastmodifieddate FROM contacts WHERE NOT archived AND merged_into IS NULL "
        "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )[0][0]
    truth = [
        r[0]
        for r in rows(
            demo_store,
            "SELECT id FROM contacts WHERE NOT archived AND merged_into IS NULL AND lastmodifieddate = ? "
            "ORDER BY id",
            [instant],
        )
    ]
    assert len(truth) == demo_store.preset.bulk_import_contacts > 3 * cfg.search_result_cap

    def body(after_id: int | None, offset: int, limit: int, direction: str = "ASCENDING") -> dict:
        filters = [{"propertyName": "lastmodifieddate", "operator": "EQ", "value": iso(instant)}]
        if after_id is not None:
            filters.append({"propertyName": "hs_object_id", "operator": "GT", "value": str(after_id)})
        return {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": "hs_object_id", "direction": direction}],
            "properties": ["lastmodifieddate"],
            "limit": limit,
            "after": str(offset),
        }

    got: list[int] = []
    totals: list[int] = []
    after_id: int | None = None
    while True:
        offset = 0
        while offset < cfg.search_result_cap:
            res = api.do_search(
                public_object_search_request=body(after_id, offset, min(200, cfg.search_result_cap - offset))
            )
            if offset == 0:
                totals.append(res.total)
            ids = [int(r.id) for r in res.results]
            assert ids == sorted(ids) and all(after_id is None or i > after_id for i in ids)
            assert all(r.properties["hs_object_id"] == r.id for r in res.results)
            got += ids
            if res.paging is None:
                break
            offset = int(res.paging.next.after)
        if totals[-1] <= cfg.search_result_cap:
            break
        after_id = got[-1]
    assert got == truth  # every record of the instant once, in id order
    # Each query's total counts only the ids past the filter: 2,000, 1,500, 1,000 then 500.
    assert totals == [len(truth) - k * cfg.search_result_cap for k in range(len(totals))]

    # DESCENDING turns the order over; GT is strict.
    res = api.do_search(public_object_search_request=body(truth[10], 0, 5, "DESCENDING"))
    assert res.total == len(truth) - 11
    assert [int(r.id) for r in res.results] == truth[::-1][:5]


def test_batch_read_resolves_merged_ids_and_reports_missing(sandbox_server, demo_store):
    loser, survivor = rows(
        demo_store, "SELECT id, merged_into FROM contacts WHERE merged_into IS NOT NULL LIMIT 1"
    )[0]
    live = rows(
        demo_store,
        "SELECT id, lifecyclestage FROM contacts WHERE NOT archived AND merged_into IS NULL LIMIT 2",
    )
    api = sdk(sandbox_server).crm.contacts.batch_api
    inputs = [{"id": str(loser)}] + [{"id": str(r[0])} for r in live]
    res = api.read(
        batch_read_input_simple_public_object_id={
            "inputs": inputs,
            "properties": ["lifecyclestage"],
            "propertiesWithHistory": [],
        }
    )
    assert res.status == "COMPLETE"
    got = {o.id: o.properties for o in res.results}
    assert str(survivor) in got and str(loser) not in got
    for cid, stage in live:
        assert got[str(cid)]["lifecyclestage"] == stage
    partial = api.read(
        batch_read_input_simple_public_object_id={
            "inputs": [{"id": "1"}, {"id": str(live[0][0])}],
            "properties": [],
            "propertiesWithHistory": [],
        }
    )
    assert [o.id for o in partial.results] == [str(live[0][0])]
    assert partial.errors[0].category == "OBJECT_NOT_FOUND" and partial.errors[0].context["ids"] == ["1"]


def test_properties_include_discovered_stage_dates(sandbox_server, demo_store):
    result = sdk(sandbox_server).crm.properties.core_api.get_all("contacts")
    names = {p.name: p for p in result.results}
    for stage in demo_store.lifecycle_stages:
        prop = names[f"hs_v2_date_entered_{stage}"]
        assert prop.type == "datetime"
    stage_options = [o.value for o in names["lifecyclestage"].options]
    assert stage_options == list(demo_store.lifecycle_stages)
    assert names["num_conversion_events"].type == "number"
    deal_props = {p.name for p in sdk(sandbox_server).crm.properties.core_api.get_all("deals").results}
    assert {"dealstage", "pipeline", "amount", "closedate", "hs_is_closed_won"} <= deal_props


def test_pipelines_for_deals_and_contacts(sandbox_server, demo_store):
    api = sdk(sandbox_server).crm.pipelines.pipelines_api
    deals = api.get_all("deals").results
    assert [p.id for p in deals] == ["default"]
    stages = {s.id: s for s in deals[0].stages}
    used = {r[0] for r in rows(demo_store, "SELECT DISTINCT dealstage FROM deals")}
    assert used <= set(stages)
    assert stages["closedwon"].metadata == {"isClosed": "true", "probability": "1.0"}
    assert stages["appointmentscheduled"].metadata["isClosed"] == "false"
    contacts = api.get_all("contacts").results
    assert [s.id for s in contacts[0].stages] == list(demo_store.lifecycle_stages)


def test_v4_association_batch_read(sandbox_server, demo_store):
    deal_id, contact_id = rows(
        demo_store,
        "SELECT d.id, COALESCE(c.merged_into, d.contact_id) FROM deals d JOIN contacts c ON c.id = d.contact_id LIMIT 1",
    )[0]
    api = sdk(sandbox_server).crm.associations.v4.batch_api
    res = api.get_page(
        "deals",
        "contacts",
        batch_input_public_fetch_associations_batch_request={"inputs": [{"id": str(deal_id)}]},
    )
    assert res.results[0]._from.id == str(deal_id)
    assert [t.to_object_id for t in res.results[0].to] == [str(contact_id)]


def test_general_rate_limit_429_shape_headers_and_retry_after_alternating(sandbox_server):
    cfg = sandbox_server.config.hubspot
    cfg.general_max = 3
    api = sdk(sandbox_server).crm.contacts.basic_api
    data, status, headers = api.get_page_with_http_info(limit=1)
    assert status == 200
    for name in RATE_HEADERS:
        assert name in headers
    assert headers["X-HubSpot-RateLimit-Max"] == "3"
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert headers["X-HubSpot-RateLimit-Remaining"] == "2"
    api.get_page(limit=1)
    api.get_page(limit=1)
    errors = []
    for _ in range(2):
        with pytest.raises(ContactsApiException) as err:
            api.get_page(limit=1)
        errors.append(err.value)
    first, second = errors
    assert first.status == second.status == 429
    body = json.loads(first.body)
    assert body["status"] == "error"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["correlationId"]
    assert "Retry-After" in first.headers and int(first.headers["Retry-After"]) >= 1
    assert "Retry-After" not in second.headers
    assert first.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    counters = sandbox_server.counters()
    assert counters["hubspot.bucket.general.429"] == 2
    assert counters["hubspot.bucket.general.served"] == 3


def test_search_bucket_and_daily_cap(sandbox_server):
    cfg = sandbox_server.config.hubspot
    cfg.search_per_second = 2
    search = sdk(sandbox_server).crm.contacts.search_api
    body = {"filterGroups": [], "limit": 1}
    _, _, headers = search.do_search_with_http_info(public_object_search_request=body)
    # HubSpot's search answers carry no rate-limit headers, and their 429 names no policy.
    assert not [h for h in headers if h.lower().startswith("x-hubspot-ratelimit")]
    search.do_search(public_object_search_request=body)
    with pytest.raises(ContactsApiException) as err:
        search.do_search(public_object_search_request=body)
    limited = json.loads(err.value.body)
    assert err.value.status == 429 and "policyName" not in limited
    assert (
        limited["errorType"] == "RATE_LIMIT" and limited["message"] == "You have reached your secondly limit."
    )
    assert not [h for h in err.value.headers if h.lower().startswith("x-hubspot-ratelimit")]
    assert sandbox_server.counters()["hubspot.bucket.search.429"] == 1

    cfg.daily_limit = 3  # two searches already count against the day
    api = sdk(sandbox_server).crm.contacts.basic_api
    _, _, headers = api.get_page_with_http_info(limit=1)
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    with pytest.raises(ContactsApiException) as daily:
        api.get_page(limit=1)
    body = json.loads(daily.value.body)
    assert daily.value.status == 429
    assert body["policyName"] == "DAILY" and body["message"] == "You have reached your daily limit."


def test_expired_token_and_missing_scope(sandbox_server):
    cfg = sandbox_server.config.hubspot
    cfg.expired_tokens.add("old-token")
    cfg.token_scopes["contacts-only"] = {"crm.objects.contacts.read"}
    with pytest.raises(ContactsApiException) as expired:
        sdk(sandbox_server, "old-token").crm.contacts.basic_api.get_page(limit=1)
    assert expired.value.status == 401
    body = json.loads(expired.value.body)
    assert body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["message"].startswith("The OAuth token used to make this call expired")

    scoped = sdk(sandbox_server, "contacts-only")
    assert scoped.crm.contacts.basic_api.get_page(limit=1).results
    with pytest.raises(DealsApiException) as forbidden:
        scoped.crm.deals.basic_api.get_page(limit=1)
    assert forbidden.value.status == 403
    body = json.loads(forbidden.value.body)
    assert body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.deals.read"]


def test_overlong_url_is_414(sandbox_server):
    names = [f"custom_property_with_a_long_name_{i:04d}" for i in range(400)]
    with pytest.raises(ContactsApiException) as err:
        sdk(sandbox_server).crm.contacts.basic_api.get_page(limit=1, properties=names)
    assert err.value.status == 414
