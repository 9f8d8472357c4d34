"""Other tools' requests, sent with a plain HTTP client (http.client), as Airbyte's and dlt's HubSpot
sources send them (issue #12, "Other tools cannot use our sandbox"). Each answer is checked against the
status and shape HubSpot documents (developers.hubspot.com API reference: CRM v3 objects, search,
properties, the legacy properties API, schemas, v4 associations batch read)."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

TOKEN = "plain-http-token"


def call(server, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(raw) if raw else None
    finally:
        conn.close()


@pytest.fixture
def server(sandbox_server):
    sandbox_server.config.hubspot.general_max = 10_000
    sandbox_server.config.hubspot.search_per_second = 1_000
    return sandbox_server


def test_schemas_of_a_portal_without_custom_objects(server):
    status, _, body = call(server, "GET", "/crm/v3/schemas")
    assert status == 200 and body == {"results": []}


@pytest.mark.parametrize("object_type", ["contacts", "companies", "deals"])
def test_legacy_properties_v2_is_a_json_array(server, object_type):
    status, _, body = call(server, "GET", f"/properties/v2/{object_type}/properties")
    assert status == 200 and isinstance(body, list) and body
    for prop in body:
        assert {"name", "label", "description", "groupName", "type", "fieldType", "options"} <= set(prop)
        assert isinstance(prop["createdAt"], int) and isinstance(prop["options"], list)
    names = {p["name"] for p in body}
    assert "hs_object_id" in names
    if object_type == "contacts":
        assert "hs_v2_date_entered_customer" in names


@pytest.mark.parametrize("alias", ["contact", "0-1"])
def test_singular_names_and_type_ids_in_object_paths(server, alias):
    status, _, plural = call(server, "GET", "/crm/v3/objects/contacts?limit=3")
    status_alias, _, body = call(server, "GET", f"/crm/v3/objects/{alias}?limit=3")
    assert status == status_alias == 200
    assert [r["id"] for r in body["results"]] == [r["id"] for r in plural["results"]]
    status, _, one = call(server, "GET", f"/crm/v3/objects/{alias}/{plural['results'][0]['id']}")
    assert status == 200 and one["id"] == plural["results"][0]["id"]
    for type_id, plural_name in (("0-2", "companies"), ("0-3", "deals")):
        a = call(server, "GET", f"/crm/v3/objects/{type_id}?limit=2")[2]
        b = call(server, "GET", f"/crm/v3/objects/{plural_name}?limit=2")[2]
        assert [r["id"] for r in a["results"]] == [r["id"] for r in b["results"]]


@pytest.mark.parametrize(
    "from_type,to_type",
    [
        (a, b)
        for a in ("contacts", "companies", "deals")
        for b in ("contacts", "companies", "deals")
        if a != b
    ],
)
def test_v4_association_batch_read_for_every_pair(server, demo_store, from_type, to_type):
    ids = [
        r[0]
        for r in demo_store.cursor()
        .execute(f"SELECT id FROM {from_type} WHERE NOT archived ORDER BY id LIMIT 1000")
        .fetchall()
    ]
    status, _, body = call(
        server,
        "POST",
        f"/crm/v4/associations/{from_type}/{to_type}/batch/read",
        {"inputs": [{"id": str(i)} for i in ids]},
    )
    assert status == 200 and body["status"] == "COMPLETE" and body["results"]
    assert {"startedAt", "completedAt"} <= set(body)
    for result in body["results"]:
        assert set(result) == {"from", "to"} and result["from"]["id"] in {str(i) for i in ids}
        for target in result["to"]:
            assert isinstance(target["toObjectId"], int)
            kind = target["associationTypes"][0]
            assert kind["category"] == "HUBSPOT_DEFINED" and isinstance(kind["typeId"], int)
    status, _, error = call(
        server,
        "POST",
        f"/crm/v4/associations/{from_type}/{to_type}/batch/read",
        {"inputs": [{"id": str(i)} for i in range(1001)]},
    )
    assert status == 400 and error["status"] == "error" and error["category"] == "VALIDATION_ERROR"


def test_search_with_top_level_filters(server, demo_store):
    expected = (
        demo_store.cursor()
        .execute(
            "SELECT count(*) FROM contacts WHERE lifecyclestage = 'opportunity' AND NOT archived AND merged_into IS NULL"
        )
        .fetchall()[0][0]
    )
    status, headers, body = call(
        server,
        "POST",
        "/crm/v3/objects/contacts/search",
        {
            "filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "opportunity"}],
            "limit": 100,
        },
    )
    assert status == 200 and body["total"] == expected
    assert all(r["properties"]["hs_object_id"] == r["id"] for r in body["results"])
    # Search answers carry no rate-limit headers.
    assert not [h for h in headers if h.startswith("x-hubspot-ratelimit")]


def _list_all(server, path: str) -> list[dict]:
    out: list[dict] = []
    status, _, body = call(server, "GET", path)
    while True:
        assert status == 200
        out.extend(body["results"])
        nxt = (body.get("paging") or {}).get("next")
        if not nxt:
            return out
        assert nxt["link"].startswith(server.base_url) and not nxt["after"].isdigit()  # opaque cursor
        status, _, body = call(server, "GET", nxt["link"][len(server.base_url) :])


def test_companies_listed_with_their_contacts(server, demo_store):
    companies = _list_all(server, "/crm/v3/objects/companies?limit=100&associations=contacts")
    by_id = {
        c["id"]: {a["id"] for a in (c.get("associations") or {}).get("contacts", {}).get("results", [])}
        for c in companies
    }
    truth = (
        demo_store.cursor()
        .execute(
            "SELECT coalesce(co.merged_into, co.id)::VARCHAR, coalesce(c.merged_into, c.id)::VARCHAR "
            "FROM contacts c JOIN companies co ON co.id = c.associatedcompanyid WHERE NOT co.archived"
        )
        .fetchall()
    )
    assert truth
    for company, contact in truth:
        assert contact in by_id[company]
    for company in companies:
        for assoc in (company.get("associations") or {}).get("contacts", {}).get("results", []):
            assert assoc["type"] == "company_to_contact"


def test_contacts_listed_with_deals_moved_from_merged_contacts(server, demo_store):
    contacts = _list_all(server, "/crm/v3/objects/contacts?limit=100&associations=deals")
    deals_of = {
        c["id"]: {a["id"] for a in (c.get("associations") or {}).get("deals", {}).get("results", [])}
        for c in contacts
    }
    moved = (
        demo_store.cursor()
        .execute(
            "SELECT c.merged_into::VARCHAR, d.id::VARCHAR FROM contacts c JOIN deals d ON d.contact_id = c.id "
            "WHERE c.merged_into IS NOT NULL AND d.merged_into IS NULL AND NOT d.archived"
        )
        .fetchall()
    )
    assert moved
    for survivor, deal in moved:
        assert deal in deals_of[survivor]


def test_unknown_routes_get_hubspots_404_and_are_counted(server):
    before = server.counters().get("hubspot.unknown_routes", 0)
    status, _, body = call(server, "GET", "/crm/v3/owners/")
    assert status == 404
    assert body["status"] == "error" and body["category"] == "OBJECT_NOT_FOUND"
    assert body["message"] and body["correlationId"]
    status, _, body = call(server, "GET", "/crm/v3/objects/widgets")
    assert status == 400 and body["message"] == "Unable to infer object type from: widgets"
    counters = server.counters()
    assert counters["hubspot.unknown_routes"] == before + 2
    assert counters["unknown_route.GET /crm/v3/owners/"] == 1
