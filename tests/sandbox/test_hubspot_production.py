"""Production behaviours of the fake HubSpot API (issue #12), through the official SDK.

Search index lag, merges of deals and companies, lifecycle variants, object aliases, v4 association reads
for every pair, top-level search filters, opaque list cursors, rate-limit headers, the older 403 shape.
Each test that changes the store builds its own (``touch``/``create_contacts`` mutate it).
"""

from __future__ import annotations

import datetime as dt
import json

import hubspot
import pytest
from hubspot.crm.associations.v4.exceptions import ApiException as AssocApiException
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from urllib3.util.retry import Retry

from connectors.sandbox.server import SandboxConfig, SandboxServer
from connectors.sandbox.store import build_store

END_DATE = "2026-11-22"


def sdk(server, token: str = "sandbox-token") -> hubspot.HubSpot:
    return hubspot.HubSpot(
        access_token=token, host=server.base_url, retry=Retry(total=0, respect_retry_after_header=False)
    )


def rows(store, sql: str, params=None):
    return store.cursor().execute(sql, params or []).fetchall()


@pytest.fixture
def own_store():
    return build_store("demo", seed=7, end_date=END_DATE)


@pytest.fixture
def own_server(own_store):
    with SandboxServer(own_store, SandboxConfig(seed=7), apis=("hubspot",)) as server:
        server.config.hubspot.general_max = 10_000
        server.config.hubspot.search_per_second = 1_000
        yield server


def _search_ids(server, object_type: str, prop: str, since_ms: int) -> dict[str, str]:
    api = getattr(sdk(server).crm, object_type).search_api
    body = {
        "filterGroups": [{"filters": [{"propertyName": prop, "operator": "GTE", "value": str(since_ms)}]}],
        "properties": [prop],
        "limit": 200,
    }
    out: dict[str, str] = {}
    while True:
        page = api.do_search(public_object_search_request=body)
        out.update({r.id: r.properties[prop] for r in page.results})
        if page.paging is None:
            return out
        body["after"] = page.paging.next.after


def test_search_lags_creates_and_edits(own_store, own_server):
    cfg = own_server.config.hubspot
    assert cfg.search_lag_seconds > 0  # on by default
    cfg.search_lag_seconds = 3_600  # an incident: nothing stamped in the last hour is indexed yet
    end_ms = int(own_store.end_instant_utc.replace(tzinfo=dt.UTC).timestamp() * 1000)
    created = own_store.create_contacts(5, at="now")
    touched = own_store.touch(
        "deals",
        ids=rows(own_store, "SELECT min(id) FROM deals WHERE merged_into IS NULL AND NOT archived")[0],
        at="now",
    )
    before = rows(
        own_store,
        "SELECT strftime(hs_lastmodifieddate, '%Y-%m-%dT%H:%M:%S.%gZ') FROM deals__prior WHERE id = ?",
        [touched[0]],
    )[0][0]

    # Not yet indexed: a create is missing from search, an edit shows its previous version...
    assert not set(map(str, created)) & set(_search_ids(own_server, "contacts", "createdate", end_ms))
    deal = sdk(own_server).crm.deals.search_api.do_search(
        public_object_search_request={
            "filterGroups": [
                {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": str(touched[0])}]}
            ],
            "properties": ["hs_lastmodifieddate"],
        }
    )
    assert deal.results[0].properties["hs_lastmodifieddate"] == before
    # ...while list and batch reads see the record as it is now (they do not go through the index).
    got = sdk(own_server).crm.contacts.batch_api.read(
        batch_read_input_simple_public_object_id={"inputs": [{"id": str(created[0])}], "properties": []}
    )
    assert [r.id for r in got.results] == [str(created[0])]

    cfg.search_lag_seconds = 0  # the index caught up
    assert set(map(str, created)) <= set(_search_ids(own_server, "contacts", "createdate", end_ms))
    deal = sdk(own_server).crm.deals.search_api.do_search(
        public_object_search_request={
            "filterGroups": [
                {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": str(touched[0])}]}
            ],
            "properties": ["hs_lastmodifieddate"],
        }
    )
    assert deal.results[0].properties["hs_lastmodifieddate"] != before

    # One record held back (per-record lag) while the others are indexed.
    cfg.search_lag_overrides[("contacts", created[0])] = 3_600
    found = set(_search_ids(own_server, "contacts", "createdate", end_ms))
    assert str(created[0]) not in found and {str(i) for i in created[1:]} <= found


def test_merged_deals_and_companies_move_associations(sandbox_server, demo_store):
    client = sdk(sandbox_server)
    loser, survivor, contact = rows(
        demo_store,
        "SELECT x.id, x.merged_into, x.contact_id FROM deals x WHERE x.merged_into IS NOT NULL ORDER BY x.id LIMIT 1",
    )[0]
    contact = rows(demo_store, "SELECT coalesce(merged_into, id) FROM contacts WHERE id = ?", [contact])[0][0]
    # List: merged-away deals are listed nowhere; the survivor names them.
    listed = {}
    after = None
    while True:
        page = client.crm.deals.basic_api.get_page(
            limit=100, after=after, properties=["hs_merged_object_ids"]
        )
        listed.update({r.id: r.properties for r in page.results})
        if page.paging is None:
            break
        after = page.paging.next.after
    assert str(loser) not in listed
    assert str(loser) in listed[str(survivor)]["hs_merged_object_ids"].split(";")
    # Batch read of the merged-away id answers with the survivor; v4 reads follow it too.
    read = client.crm.deals.batch_api.read(
        batch_read_input_simple_public_object_id={"inputs": [{"id": str(loser)}], "properties": []}
    )
    assert [r.id for r in read.results] == [str(survivor)]
    links = client.crm.associations.v4.batch_api.get_page(
        "deals",
        "contacts",
        batch_input_public_fetch_associations_batch_request={"inputs": [{"id": str(loser)}]},
    )
    assert [int(t.to_object_id) for t in links.results[0].to] == [contact]
    # The contact lists the survivor deal only.
    got = client.crm.contacts.basic_api.get_by_id(str(contact), associations=["deals"])
    deal_ids = [a.id for a in got.associations["deals"].results]
    assert str(survivor) in deal_ids and str(loser) not in deal_ids

    # Companies: a contact linked to a merged-away company is served with the survivor, in every read.
    contact_id, dup, kept = rows(
        demo_store,
        "SELECT c.id, x.id, x.merged_into FROM contacts c JOIN companies x ON x.id = c.associatedcompanyid "
        "WHERE x.merged_into IS NOT NULL AND c.merged_into IS NULL AND NOT c.archived ORDER BY c.id LIMIT 1",
    )[0]
    got = client.crm.contacts.basic_api.get_by_id(
        str(contact_id), properties=["associatedcompanyid"], associations=["companies"]
    )
    assert got.properties["associatedcompanyid"] == str(kept)
    assert [a.id for a in got.associations["companies"].results] == [str(kept)]
    v4 = client.crm.associations.v4.batch_api.get_page(
        "companies",
        "contacts",
        batch_input_public_fetch_associations_batch_request={"inputs": [{"id": str(dup)}, {"id": str(kept)}]},
    )
    by_from = {r._from.id: {int(t.to_object_id) for t in r.to} for r in v4.results}
    assert contact_id in by_from[str(kept)] and by_from[str(dup)] == by_from[str(kept)]
    # Companies listed with associations=contacts carry it too.
    seen = None
    after = None
    while seen is None:
        page = client.crm.companies.basic_api.get_page(limit=100, after=after, associations=["contacts"])
        for r in page.results:
            assert r.id != str(dup)
            if r.id == str(kept):
                seen = {a.id for a in r.associations["contacts"].results}
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen is not None and str(contact_id) in seen


def test_contacts_list_deals_moved_from_merged_contacts(sandbox_server, demo_store):
    loser, survivor, deal = rows(
        demo_store,
        "SELECT c.id, c.merged_into, d.id FROM contacts c JOIN deals d ON d.contact_id = c.id "
        "WHERE c.merged_into IS NOT NULL AND d.merged_into IS NULL AND NOT d.archived ORDER BY c.id LIMIT 1",
    )[0]
    api = sdk(sandbox_server).crm.contacts.basic_api
    after = None
    found = None
    lo = str(survivor)
    while found is None:
        page = api.get_page(limit=100, after=after, associations=["deals"])
        for r in page.results:
            if r.id == lo:
                found = [a.id for a in (r.associations or {}).get("deals").results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert found is not None and str(deal) in found


def test_object_aliases_schemas_and_v4_pairs(sandbox_server, demo_store):
    client = sdk(sandbox_server)
    plural = client.crm.contacts.basic_api.get_page(limit=5)
    for alias in ("contact", "0-1"):
        page = client.crm.objects.basic_api.get_page(object_type=alias, limit=5)
        assert [r.id for r in page.results] == [r.id for r in plural.results]
    for alias, object_type in (
        ("0-2", "companies"),
        ("company", "companies"),
        ("0-3", "deals"),
        ("deal", "deals"),
    ):
        page = client.crm.objects.basic_api.get_page(object_type=alias, limit=3)
        assert [r.id for r in page.results] == [
            r.id for r in getattr(client.crm, object_type).basic_api.get_page(limit=3).results
        ]
    assert client.crm.schemas.core_api.get_all().results == []

    pairs = [
        (a, b)
        for a in ("contacts", "companies", "deals")
        for b in ("contacts", "companies", "deals")
        if a != b
    ]
    for from_type, to_type in pairs:
        ids = [
            r[0]
            for r in rows(demo_store, f"SELECT id FROM {from_type} WHERE NOT archived ORDER BY id LIMIT 1000")
        ]
        body = {"inputs": [{"id": str(i)} for i in ids]}
        got = client.crm.associations.v4.batch_api.get_page(
            from_type, to_type, batch_input_public_fetch_associations_batch_request=body
        )
        assert got.status == "COMPLETE" and got.results, (from_type, to_type)
        for result in got.results:
            assert result.to and all(t.association_types[0].category == "HUBSPOT_DEFINED" for t in result.to)
    with pytest.raises(AssocApiException) as too_many:
        client.crm.associations.v4.batch_api.get_page(
            "contacts",
            "deals",
            batch_input_public_fetch_associations_batch_request={
                "inputs": [{"id": str(i)} for i in range(1001)]
            },
        )
    assert too_many.value.status == 400


def test_search_top_level_filters_are_applied(sandbox_server, demo_store):
    search = sdk(sandbox_server).crm.contacts.search_api
    expected = rows(
        demo_store,
        "SELECT count(*) FROM contacts WHERE lifecyclestage = 'customer' AND NOT archived AND merged_into IS NULL",
    )[0][0]
    got = search.do_search(
        public_object_search_request={
            "filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}],
            "limit": 1,
        }
    )
    assert got.total == expected and expected < 1000


def test_list_cursor_is_opaque_and_headers(sandbox_server):
    api = sdk(sandbox_server).crm.contacts.basic_api
    page, _, headers = api.get_page_with_http_info(limit=10)
    after = page.paging.next.after
    assert not after.isdigit()
    assert api.get_page(limit=10, after=after).results[0].id > page.results[-1].id
    with pytest.raises(ContactsApiException) as bad:
        api.get_page(limit=10, after=str(int(page.results[-1].id) + 1))  # a guessed numeric cursor
    assert bad.value.status == 400
    assert int(headers["X-HubSpot-RateLimit-Secondly"]) >= 1
    assert (
        0
        <= int(headers["X-HubSpot-RateLimit-Secondly-Remaining"])
        <= int(headers["X-HubSpot-RateLimit-Secondly"])
    )


def test_older_403_shape_names_required_scopes(sandbox_server):
    cfg = sandbox_server.config.hubspot
    cfg.scope_error_shape = "legacy"
    cfg.token_scopes["no-contacts"] = {"crm.objects.deals.read"}
    with pytest.raises(ContactsApiException) as forbidden:
        sdk(sandbox_server, "no-contacts").crm.contacts.basic_api.get_page(limit=1)
    body = json.loads(forbidden.value.body)
    assert forbidden.value.status == 403 and body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"] == {"requiredScopes": ["contacts"]}


def test_lifecycle_variants_served_with_portal_semantics(sandbox_server, demo_store):
    contact = rows(
        demo_store,
        "SELECT id FROM contacts WHERE lifecyclestage = 'salesqualifiedlead' AND hs_v2_date_entered_opportunity "
        "IS NOT NULL AND merged_into IS NULL AND NOT archived ORDER BY id LIMIT 1",
    )[0][0]
    props = ["lifecyclestage", "hs_v2_date_entered_salesqualifiedlead", "hs_v2_date_entered_opportunity"]
    got = sdk(sandbox_server).crm.contacts.basic_api.get_by_id(str(contact), properties=props).properties
    # Moved back from opportunity: the later stage keeps its date, the re-entered one is rewritten.
    assert got["lifecyclestage"] == "salesqualifiedlead"
    assert got["hs_v2_date_entered_opportunity"] < got["hs_v2_date_entered_salesqualifiedlead"]
