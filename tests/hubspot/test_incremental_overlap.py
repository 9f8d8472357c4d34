"""Incremental HubSpot reads under search-index lag (issue #12), through the SDK, the real loader and
the ingest asset's data cursor: edits made right before a run, one held back by the index, are all
loaded over two runs, once each."""

from __future__ import annotations

import datetime as dt
import json

import duckdb

from orchestration.defs.ingest import hubspot_data_cursor
from transforms import raw_load

PORTAL = "sandbox"


def _load(con, client, since):
    for object_type in ("contacts",):
        raw_load.upsert_hubspot_objects(
            con,
            object_type,
            PORTAL,
            client.extract(object_type, since=since),
            "full" if since is None else "incremental",
        )


def _updated(con, ids):
    rows = con.execute(
        "SELECT id, updated_at FROM raw.hubspot_contacts WHERE id IN (SELECT unnest(?))",
        [[str(i) for i in ids]],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def test_edits_inside_the_lag_window_are_not_lost_over_two_runs(hs_store, hs, tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    with hs.serve(hs_store) as server:
        cfg = server.config.hubspot
        assert cfg.search_lag_seconds > 0
        _load(con, hs.make_client(server), since=None)
        n_rows = con.execute("SELECT count(*) FROM raw.hubspot_contacts").fetchall()[0][0]

        # Right before run 1: A edited 20 s ago but held back by the index (an incident), B edited 10 s ago
        # and indexed. B's instant becomes the data cursor; A is older than it.
        now = dt.datetime.now(dt.UTC)
        live = sorted(int(i) for i in hs.live_ids(hs_store))
        a_ids = hs_store.touch(
            "contacts", ids=live[100:105], at=now - dt.timedelta(seconds=20), spread=dt.timedelta(seconds=1)
        )
        b_ids = hs_store.touch(
            "contacts", ids=live[200:205], at=now - dt.timedelta(seconds=10), spread=dt.timedelta(seconds=1)
        )
        cfg.search_lag_seconds = 3.0
        for i in a_ids:
            cfg.search_lag_overrides[("contacts", i)] = 3_600.0

        cursor0 = hubspot_data_cursor(con, "hubspot_contacts", PORTAL)
        run1 = hs.make_client(server)
        _load(con, run1, since=cursor0)
        got = _updated(con, a_ids + b_ids)
        assert all(got[str(i)] >= now - dt.timedelta(seconds=11) for i in b_ids)  # B read
        assert all(got[str(i)] < now - dt.timedelta(minutes=30) for i in a_ids)  # A not yet searchable
        cursor1 = hubspot_data_cursor(con, "hubspot_contacts", PORTAL)
        assert cursor1 > now - dt.timedelta(seconds=20)  # the cursor passed A's edit

        # The index catches up. Without the overlap window, a cursor past A's instant misses A for good:
        cfg.search_lag_overrides.clear()
        no_overlap = hs.make_client(server, incremental_overlap_seconds=0)
        seen = {r["id"] for b in no_overlap.extract("contacts", since=cursor1) for r in b.to_pylist()}
        assert not seen & {str(i) for i in a_ids}

        # Run 2 re-reads the default overlap (a few minutes) before the cursor: A arrives.
        run2 = hs.make_client(server)
        _load(con, run2, since=cursor1)
        got = _updated(con, a_ids + b_ids)
        assert all(got[str(i)] >= now - dt.timedelta(seconds=21) for i in a_ids + b_ids)
        # Nothing duplicated: one row per id, the same number of rows as after the full load.
        assert (
            con.execute("SELECT count(*) - count(DISTINCT id) FROM raw.hubspot_contacts").fetchall()[0][0]
            == 0
        )
        assert con.execute("SELECT count(*) FROM raw.hubspot_contacts").fetchall()[0][0] == n_rows
        entry = [e for e in run2.request_log if e["mode"] == "incremental"][-1]
        assert entry["overlap_seconds"] == 300.0 and entry["overlap_rows"] >= len(b_ids)
        assert dt.datetime.fromisoformat(
            entry["start_date"].replace("Z", "+00:00")
        ) == cursor1 - dt.timedelta(minutes=5)
        # The properties of the last read are stored (not a stale version).
        props = json.loads(
            con.execute(
                "SELECT properties FROM raw.hubspot_contacts WHERE id = ?", [str(a_ids[0])]
            ).fetchall()[0][0]
        )
        assert props["lastmodifieddate"] == got[str(a_ids[0])].strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{got[str(a_ids[0])].microsecond // 1000:03d}Z"
        )


def test_creates_lagging_in_the_index_arrive_on_the_next_run(hs_store, hs, tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    with hs.serve(hs_store) as server:
        cfg = server.config.hubspot
        _load(con, hs.make_client(server), since=None)
        cfg.search_lag_seconds = 3_600.0  # nothing created in the last hour is searchable yet
        created = hs_store.create_contacts(4, at="now")
        _load(con, hs.make_client(server), since=hubspot_data_cursor(con, "hubspot_contacts", PORTAL))
        assert not _updated(con, created)
        cfg.search_lag_seconds = 0.0
        _load(con, hs.make_client(server), since=hubspot_data_cursor(con, "hubspot_contacts", PORTAL))
        assert set(_updated(con, created)) == {str(i) for i in created}


def test_merges_of_deals_and_companies_are_read(shared_hs_store, hs):
    store = shared_hs_store
    with hs.serve(store) as server:
        client = hs.make_client(server)
        for object_type in ("deals", "companies"):
            rows = hs.collect(client.extract(object_type))
            merged = {r["id"]: r["merged_into"] for r in rows if r["merged_into"]}
            truth = {
                str(a): str(b)
                for a, b in store.cursor()
                .execute(f"SELECT id, merged_into FROM {object_type} WHERE merged_into IS NOT NULL")
                .fetchall()
            }
            assert truth and merged == truth, object_type
            live = {r["id"] for r in rows if not r["merged_into"]}
            assert not live & set(truth)  # a merged-away record is never a live row


def test_the_ingest_asset_starts_at_the_data_cursor_when_it_is_older_than_the_partition():
    from orchestration.defs.ingest import hubspot_since

    day = dt.datetime(2026, 12, 1, 5, tzinfo=dt.UTC)
    cursor = dt.datetime(2026, 11, 30, 4, 59, 58, tzinfo=dt.UTC)  # the last run cut just before midnight
    assert hubspot_since(day, cursor, first_sync=False) == cursor  # the previous day's tail is read again
    assert hubspot_since(day, day + dt.timedelta(hours=3), first_sync=False) == day  # a rerun: the whole day
    assert hubspot_since(day, None, first_sync=False) == day
    assert hubspot_since(day, cursor, first_sync=True) is None  # first sync: everything
