"""HubSpot connector against the sandbox: full, incremental, split, archived/merged, metadata."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pyarrow as pa

from connectors.hubspot import DEAL_SCHEMA, OBJECT_SCHEMA, PIPELINES_SCHEMA, PROPERTIES_SCHEMA
from connectors.sandbox.store import build_store

END_DATE = dt.date(2026, 11, 22)


def _iso(ts) -> str | None:
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def test_full_load_contacts_equals_store_with_properties_and_merges(hs, shared_hs_store):
    store = shared_hs_store
    with hs.serve(store) as server:
        client = hs.make_client(server)
        batches = list(client.extract("contacts"))
        counters = server.counters()
    assert all(b.schema.equals(OBJECT_SCHEMA) for b in batches)
    rows = [r for b in batches for r in b.to_pylist()]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    live = {r["id"] for r in rows if r["merged_into"] is None}
    assert live == hs.live_ids(store)
    assert all(
        r["portal_id"] == "sandbox" and r["archived"] is False for r in rows if r["merged_into"] is None
    )

    merged_truth = dict(
        store.cursor()
        .execute("SELECT id::VARCHAR, merged_into::VARCHAR FROM contacts WHERE merged_into IS NOT NULL")
        .fetchall()
    )
    merged_rows = {r["id"]: r["merged_into"] for r in rows if r["merged_into"] is not None}
    assert merged_truth and merged_rows == merged_truth
    assert all(r["archived"] for r in rows if r["merged_into"] is not None)

    stages = list(store.lifecycle_stages)
    sample = (
        store.cursor()
        .execute(
            "SELECT id::VARCHAR, lifecyclestage, hs_analytics_source, first_conversion_event_name, country, "
            "hs_v2_date_entered_lead, createdate, lastmodifieddate FROM contacts "
            "WHERE NOT archived AND merged_into IS NULL ORDER BY id LIMIT 300"
        )
        .fetchall()
    )
    by_id = {r["id"]: r for r in rows}
    for cid, stage, source, first_form, country, lead_at, created, modified in sample:
        row = by_id[cid]
        props = json.loads(row["properties"])
        assert props["lifecyclestage"] == stage
        assert props["hs_analytics_source"] == source
        assert props["first_conversion_event_name"] == first_form
        assert props["country"] == country
        assert props["hs_v2_date_entered_lead"] == _iso(lead_at)
        assert {f"hs_v2_date_entered_{s}" for s in stages} <= set(props)
        assert "email" not in props and "phone" not in props  # personal data are not extracted
        assert row["created_at"].replace(tzinfo=None) == created.replace(
            microsecond=created.microsecond // 1000 * 1000
        )
        assert row["updated_at"].replace(tzinfo=None) == modified.replace(
            microsecond=modified.microsecond // 1000 * 1000
        )

    entry = [e for e in client.request_log if e["request"] == "contacts"][-1]
    assert entry["mode"] == "full" and entry["source"] == "hubspot" and entry["source_id"] == "sandbox"
    assert entry["rows"] == len(rows) and entry["pages"] == -(-len(live) // 100)
    assert entry["requests"] == entry["pages"] and entry["http_429"] == 0 and entry["error"] is None
    # The client's own count of requests is every request the server saw: no hidden retry layer.
    assert sum(e["requests"] for e in client.request_log) == counters["hubspot.requests"]


def test_incremental_after_touch_returns_exactly_the_changed_contacts(hs, hs_store):
    store = hs_store
    cursor = store.end_instant_utc.replace(tzinfo=dt.UTC)
    with hs.serve(store) as server:
        client = hs.make_client(server)
        full = {r["id"]: r for r in hs.collect(client.extract("contacts")) if r["merged_into"] is None}
        touched = {str(i) for i in store.touch_contacts(fraction=0.01)}
        assert len(touched) > 50
        changed = hs.collect(client.extract("contacts", since=cursor))
    ids = [r["id"] for r in changed if r["merged_into"] is None]
    assert len(ids) == len(set(ids))
    # The touched contacts, plus those last modified in the overlap window re-read before the cursor.
    read_from = (cursor - dt.timedelta(seconds=client.settings.incremental_overlap_seconds)).replace(
        tzinfo=None
    )
    expected = {
        str(r[0])
        for r in store.cursor()
        .execute(
            "SELECT id FROM contacts WHERE NOT archived AND merged_into IS NULL AND lastmodifieddate >= ?",
            [read_from],
        )
        .fetchall()
    }
    assert touched <= expected and set(ids) == expected
    # Survivors among them bring rows for the ids merged into them.
    assert all(r["merged_into"] in expected for r in changed if r["merged_into"] is not None)
    changed = [r for r in changed if r["merged_into"] is None]
    entry = client.request_log[-1]
    assert entry["mode"] == "incremental" and entry["splits"] == 0 and entry["rows"] >= len(touched)
    # Merged by id, the two loads hold exactly the store's live contacts with their new values.
    merged = {**full, **{r["id"]: r for r in changed}}
    assert set(merged) == hs.live_ids(store)
    truth = dict(
        store.cursor()
        .execute(
            "SELECT id::VARCHAR, lifecyclestage FROM contacts WHERE id IN (SELECT unnest(?))",
            [sorted(int(t) for t in touched)],
        )
        .fetchall()
    )
    for cid in touched:
        assert json.loads(merged[cid]["properties"])["lifecyclestage"] == truth[cid]


def _bulk_import_store():
    """20 days of contacts and a bulk import stamping 10,500 of them with one millisecond."""
    return build_store(
        "demo", seed=7, end_date=END_DATE, days=20, lead_rate=0.45, bulk_import_contacts=10_500
    )


def _crowded_instant(store) -> tuple[dt.datetime, list[int]]:
    """The bulk import's instant (naive UTC) and its live contact ids, ascending."""
    instant, n = (
        store.cursor()
        .execute(
            "SELECT lastmodifieddate, count(*) FROM contacts WHERE NOT archived AND merged_into IS NULL "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
        )
        .fetchall()[0]
    )
    ids = [
        r[0]
        for r in store.cursor()
        .execute(
            "SELECT id FROM contacts WHERE NOT archived AND merged_into IS NULL AND lastmodifieddate = ? "
            "ORDER BY id",
            [instant],
        )
        .fetchall()
    ]
    assert n == len(ids) == 10_500
    return instant, ids


def test_incremental_split_past_search_cap_with_10500_records_at_one_instant(hs):
    store = _bulk_import_store()
    _, at_instant = _crowded_instant(store)
    live = hs.live_ids(store)
    since = dt.datetime.combine(store.start_date - dt.timedelta(days=1), dt.time(), dt.UTC)
    with hs.serve(store) as server:
        client = hs.make_client(server)
        rows = hs.collect(client.extract("contacts", since=since))
        counters = server.counters()
    ids = [r["id"] for r in rows if r["merged_into"] is None]
    assert len(ids) == len(set(ids)), "duplicates"
    assert set(ids) == live, "gap"
    entry = client.request_log[-1]
    assert entry["splits"] >= 10  # halved from the whole window down to one millisecond
    assert counters.get("hubspot.status.400", 0) == 0  # never paged into the cap's 400
    # The instant was read by id keyset in search, not by listing every contact of the portal.
    assert counters.get("route.hubspot:list", 0) == 0
    assert entry["crowded_instants"] == 1
    assert entry["keyset_restarts"] == 1  # 10,000 ids, then the 500 past the largest of them
    # Pages of 200 for every record, plus per split one probe that found too many and one partial last
    # page, plus the keyset's second query: 153 here. The list scan this replaces cost 270 (176 lists).
    bound = (
        -(-len(at_instant) // 200) + 1 + -(-(len(live) - len(at_instant)) // 200) + 2 * entry["splits"] + 1
    )
    assert entry["requests"] <= bound
    assert entry["requests"] == counters["route.hubspot:search"]


def test_crowded_instant_read_while_its_records_are_modified(hs):
    # Records that leave the instant mid-read (modified, so stamped later) shift the offsets of the
    # query being paged: the read must restart behind them, not skip the records that moved up.
    store = _bulk_import_store()
    instant, at_instant = _crowded_instant(store)
    since = (instant - dt.timedelta(hours=1)).replace(tzinfo=dt.UTC)
    until = (instant + dt.timedelta(hours=1)).replace(tzinfo=dt.UTC)
    later = instant + dt.timedelta(hours=2)
    moved_unread = at_instant[6_000:6_100] + at_instant[10_200:10_300]
    moved_read: list[int] = []
    with hs.serve(store) as server:
        # No overlap window here: this test is about the crowded instant (test_incremental_overlap has it).
        client = hs.make_client(server, prefetch_pages=0, incremental_overlap_seconds=0)
        first: list[dict] = []
        for batch in client.extract("contacts", since=since, until=until):
            rows = batch.to_pylist()
            first.extend(rows)
            if not moved_read and any(r["updated_at"].replace(tzinfo=None) == instant for r in rows):
                # The first page of the instant is read (the 200 lowest ids): move half of it and
                # 200 records not read yet.
                read = sorted(int(r["id"]) for r in rows if r["merged_into"] is None)
                assert read == at_instant[:200]
                moved_read = read[::2]
                store.cursor().execute(
                    "UPDATE contacts SET lastmodifieddate = ? WHERE id IN (SELECT unnest(?))",
                    [later, moved_read + moved_unread],
                )
        entry = client.request_log[-1]
        second = hs.collect(client.extract("contacts", since=until))
        counters = server.counters()
    assert moved_read
    ids = [r["id"] for r in first if r["merged_into"] is None]
    assert len(ids) == len(set(ids)), "duplicates"
    in_window = {
        str(r[0])
        for r in store.cursor()
        .execute(
            "SELECT id FROM contacts WHERE NOT archived AND merged_into IS NULL "
            "AND lastmodifieddate >= ? AND lastmodifieddate < ?",
            [since.replace(tzinfo=None), until.replace(tzinfo=None)],
        )
        .fetchall()
    }
    assert len(in_window) > 10_000
    assert in_window <= set(ids), "gap: a record still in the window was skipped"
    # What was read before it moved stays read; what moved before it was read is the next run's.
    assert set(ids) - in_window == {str(i) for i in moved_read}
    assert {str(i) for i in moved_read + moved_unread} <= {r["id"] for r in second}
    assert counters.get("hubspot.status.400", 0) == 0
    # One restart behind the shifted offsets, one past the cap (10,100 records remained past it).
    assert entry["crowded_instants"] == 1 and entry["keyset_restarts"] == 2


def test_archived_pass_marks_deleted(hs, shared_hs_store):
    store = shared_hs_store
    with hs.serve(store) as server:
        rows = hs.collect(hs.make_client(server).extract_archived("contacts"))
    truth = {
        str(r[0])
        for r in store.cursor()
        .execute("SELECT id FROM contacts WHERE archived AND merged_into IS NULL")
        .fetchall()
    }
    assert truth and {r["id"] for r in rows} == truth
    assert all(r["archived"] and r["merged_into"] is None for r in rows)


def test_deals_full_and_incremental_carry_contact_associations(hs, shared_hs_store):
    store = shared_hs_store
    truth = dict(
        store.cursor()
        .execute(
            "SELECT d.id::VARCHAR, COALESCE(c.merged_into, d.contact_id)::VARCHAR FROM deals d "
            "JOIN contacts c ON c.id = d.contact_id WHERE NOT d.archived AND d.merged_into IS NULL"
        )
        .fetchall()
    )
    cutoff = (
        store.cursor().execute("SELECT quantile_disc(hs_lastmodifieddate, 0.8) FROM deals").fetchall()[0][0]
    )
    with hs.serve(store) as server:
        client = hs.make_client(server)
        full = list(client.extract("deals"))
        recent = hs.collect(client.extract("deals", since=cutoff.replace(tzinfo=dt.UTC)))
    assert all(b.schema.equals(DEAL_SCHEMA) for b in full)
    everything = [r for b in full for r in b.to_pylist()]
    rows = [r for r in everything if r["merged_into"] is None]
    assert {r["id"] for r in rows} == set(truth)
    # Merged-away duplicates come as rows of their own pointing at the survivor (hs_merged_object_ids).
    merged = {r["id"]: r["merged_into"] for r in everything if r["merged_into"] is not None}
    assert merged == {
        str(a): str(b)
        for a, b in store.cursor()
        .execute("SELECT id, merged_into FROM deals WHERE merged_into IS NOT NULL")
        .fetchall()
    }
    for r in rows:
        assert json.loads(r["contact_ids"]) == [truth[r["id"]]]
        props = json.loads(r["properties"])
        assert {"pipeline", "dealstage", "amount", "createdate", "closedate", "hs_is_closed_won"} <= set(
            props
        )
    expected_recent = {
        str(r[0])
        for r in store.cursor()
        .execute(
            "SELECT id FROM deals WHERE NOT archived AND merged_into IS NULL AND hs_lastmodifieddate >= ?",
            [
                cutoff - dt.timedelta(seconds=client.settings.incremental_overlap_seconds)
            ],  # the overlap window
        )
        .fetchall()
    }
    recent = [r for r in recent if r["merged_into"] is None]
    assert {r["id"] for r in recent} == expected_recent
    assert all(json.loads(r["contact_ids"]) == [truth[r["id"]]] for r in recent)


def test_companies_full_load(hs, shared_hs_store):
    with hs.serve(shared_hs_store) as server:
        rows = hs.collect(hs.make_client(server).extract("companies"))
    rows = [
        r for r in rows if r["merged_into"] is None
    ]  # merged-away duplicates: see test_incremental_overlap
    assert {r["id"] for r in rows} == hs.live_ids(shared_hs_store, "companies")
    assert all({"name", "domain", "country"} <= set(json.loads(r["properties"])) for r in rows)


def test_discovered_stage_properties_metadata_and_pipelines(hs, shared_hs_store):
    store = shared_hs_store
    with hs.serve(store) as server:
        client = hs.make_client(server)
        stage_props = client.stage_date_properties()
        props = client.properties("contacts")
        deal_pipes = client.pipelines("deals")
        contact_pipes = client.pipelines("contacts")
    assert stage_props == [f"hs_v2_date_entered_{s}" for s in store.lifecycle_stages]
    assert [
        p for p in client.object_properties("contacts") if p.startswith("hs_v2_date_entered_")
    ] == stage_props
    assert props.schema.equals(PROPERTIES_SCHEMA)
    table = pa.Table.from_batches([props]).to_pylist()
    types = {r["name"]: r["type"] for r in table}
    assert all(types[p] == "datetime" for p in stage_props)
    assert deal_pipes.schema.equals(PIPELINES_SCHEMA)
    deal_rows = deal_pipes.to_pylist()
    won = [r for r in deal_rows if r["stage_id"] == "closedwon"][0]
    assert won["is_closed"] is True and won["probability"] == 1.0 and won["pipeline_id"] == "default"
    assert [r["stage_id"] for r in contact_pipes.to_pylist()] == list(store.lifecycle_stages)
    modes = Counter(e["mode"] for e in client.request_log)
    assert modes["metadata"] == 3  # properties once (cached), two pipelines


def test_long_property_list_never_overflows_the_url(hs, shared_hs_store):
    store = shared_hs_store
    extras = tuple(f"custom_property_with_a_rather_long_internal_name_{i:04d}" for i in range(400)) + (
        "phone",
    )
    with hs.serve(store) as server:
        client = hs.make_client(server, extra_properties={"contacts": extras})
        rows = hs.collect(client.extract("contacts"))
        counters = server.counters()
    assert counters.get("hubspot.status.414", 0) == 0
    assert (
        counters["route.hubspot:batch_read"] == counters["route.hubspot:list"]
    )  # the overflow went in POST bodies
    live = [r for r in rows if r["merged_into"] is None]
    assert {r["id"] for r in live} == hs.live_ids(store)
    phones = dict(store.cursor().execute("SELECT id::VARCHAR, phone FROM contacts").fetchall())
    for r in live[:200]:
        props = json.loads(r["properties"])
        assert props["phone"] == phones[r["id"]]  # read through batch read
        assert "lifecyclestage" in props  # read through the list URL


def test_a_custom_lifecycle_stage_is_discovered_and_extracted(hs, hs_store):
    # Portals customise lifecycle stages (custom ones get numeric ids): the connector must find the
    # stage's date property through the properties API, not from a list of its own.
    store = hs_store
    cur = store.cursor()
    cur.execute("ALTER TABLE contacts ADD COLUMN hs_v2_date_entered_1234567 TIMESTAMP")
    cur.execute(
        "UPDATE contacts SET hs_v2_date_entered_1234567 = hs_v2_date_entered_lead + INTERVAL 1 DAY "
        "WHERE id % 7 = 0 AND hs_v2_date_entered_lead IS NOT NULL"
    )
    truth = dict(
        cur.execute(
            "SELECT id::VARCHAR, hs_v2_date_entered_1234567 FROM contacts "
            "WHERE NOT archived AND merged_into IS NULL AND hs_v2_date_entered_1234567 IS NOT NULL"
        ).fetchall()
    )
    with hs.serve(store) as server:
        client = hs.make_client(server)
        assert "hs_v2_date_entered_1234567" in client.stage_date_properties()
        rows = [r for r in hs.collect(client.extract("contacts")) if r["merged_into"] is None]
    assert truth
    got = {r["id"]: json.loads(r["properties"]).get("hs_v2_date_entered_1234567") for r in rows}
    for cid, ts in truth.items():
        assert got[cid] == _iso(ts)
    assert sum(v is not None for v in got.values()) == len(truth)
