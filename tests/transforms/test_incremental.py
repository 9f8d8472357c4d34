"""Rerunning a partition leaves every mart identical; an incremental build equals a full build."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from transforms import raw_load
from transforms.build import MART_TABLES, BuildError, build_all
from transforms.catalog import default_catalog, default_channel_mapping


def content_hashes(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """Per mart: row count and two order-independent aggregates of per-row hashes."""
    out = {}
    for table in MART_TABLES:
        columns = [r[0] for r in con.execute(f"DESCRIBE marts.{table}").fetchall()]
        row_hash = "hash(" + ", ".join(f'"{c}"' for c in columns) + ")"
        out[table] = tuple(
            con.execute(
                f"SELECT count(*), sum({row_hash}::HUGEINT), bit_xor({row_hash}) FROM marts.{table}"
            ).fetchall()[0]
        )
    return out


def staging_contacts_hash(con: duckdb.DuckDBPyConnection) -> tuple:
    """Row count and order-independent hash aggregates of staging.hubspot_contacts (every column)."""
    return tuple(
        con.execute(
            "SELECT count(*), sum(hash(s)::HUGEINT), bit_xor(hash(s)) FROM staging.hubspot_contacts AS s"
        ).fetchall()[0]
    )


@pytest.fixture
def copy_con(warehouse, tmp_path):
    con = duckdb.connect(str(warehouse.copy(tmp_path / "copy.duckdb")))
    yield con
    con.close()


def test_rerunning_a_partition_leaves_every_mart_identical(copy_con, warehouse, sandbox, tools):
    con = copy_con
    before = content_hashes(con)
    store = warehouse.store
    day = store.start_date + dt.timedelta(days=40)
    client = tools.ga4_client(sandbox.base_url, store.property_id)
    tools.ingest_ga4(con, client, store.property_id, day, day, partition_key=day.isoformat())
    # A HubSpot incremental pass over the last week re-delivers records already stored.
    hubspot = tools.hubspot_client(sandbox.base_url, 5_000, 200)
    since = dt.datetime.combine(store.end_date - dt.timedelta(days=7), dt.time(), tzinfo=dt.UTC)
    redelivered = {}
    for object_type in ("contacts", "deals"):
        redelivered[object_type] = raw_load.upsert_hubspot_objects(
            con, object_type, "sandbox", hubspot.extract(object_type, since=since), "incremental"
        )
        assert redelivered[object_type] > 0
    result = build_all(con, default_catalog(), default_channel_mapping(), dates=[day])
    assert result.mode == "incremental"
    # Contacts re-delivered unchanged are not re-staged; the contacts of re-delivered deals are.
    assert day in result.dates and 0 < result.contacts < redelivered["contacts"]
    assert content_hashes(con) == before
    # The raw slice was replaced, not appended to.
    assert (
        con.execute(
            "SELECT count(*) FROM raw.ga4_web_sessions WHERE date = ? AND _partition_key <> ?",
            [day, day.isoformat()],
        ).fetchall()[0][0]
        == 0
    )


def test_incremental_build_equals_full_build(copy_con, warehouse, sandbox, tools, tmp_path):
    """GA4 revises the last two days: fetch them again, build incrementally, compare with a full build."""
    con = copy_con
    store = warehouse.store
    before = con.execute(
        "SELECT sum(sessions) FROM marts.web_sessions_daily WHERE date > ?",
        [store.end_date - dt.timedelta(days=2)],
    ).fetchall()[0][0]
    client = tools.ga4_client(sandbox.base_url, store.property_id)
    last_days = [store.end_date - dt.timedelta(days=1), store.end_date]
    for day in last_days:
        tools.ingest_ga4(con, client, store.property_id, day, day, partition_key=day.isoformat())
    hubspot = tools.hubspot_client(sandbox.base_url, 5_000, 200)
    since = dt.datetime.combine(store.end_date - dt.timedelta(days=2), dt.time(), tzinfo=dt.UTC)
    raw_load.upsert_hubspot_objects(
        con, "contacts", "sandbox", hubspot.extract("contacts", since=since), "incremental"
    )
    result = build_all(con, default_catalog(), default_channel_mapping(), dates=last_days)
    assert result.mode == "incremental"
    after = con.execute(
        "SELECT sum(sessions) FROM marts.web_sessions_daily WHERE date > ?",
        [store.end_date - dt.timedelta(days=2)],
    ).fetchall()[0][0]
    assert after > before, "the revised days grew"
    incremental = content_hashes(con)

    full_path = tmp_path / "full.duckdb"
    con.execute("CHECKPOINT")
    con.close()
    import shutil

    shutil.copyfile(tmp_path / "copy.duckdb", full_path)
    full_con = duckdb.connect(str(full_path))
    try:
        assert build_all(full_con, default_catalog(), default_channel_mapping()).mode == "full"
        assert content_hashes(full_con) == incremental
    finally:
        full_con.close()


def test_changed_catalog_turns_an_incremental_request_into_a_full_build(copy_con, tmp_path):
    from transforms.catalog import DEFAULT_CATALOG_PATH, load_catalog

    changed = tmp_path / "catalog.yaml"
    text = DEFAULT_CATALOG_PATH.read_text()
    changed.write_text(text.replace("Completed a purchase;", "A completed purchase;", 1))
    result = build_all(
        copy_con, load_catalog(changed), default_channel_mapping(), dates=[dt.date(2026, 10, 1)]
    )
    assert result.mode == "full" and "changed" in result.reason
    assert (
        copy_con.execute(
            "SELECT description FROM marts.conversion_catalog WHERE conversion_name = 'purchase'"
        )
        .fetchall()[0][0]
        .startswith("A completed purchase")
    )


def test_crm_changes_build_incrementally_like_a_full_build(warehouse, tools, tmp_path):
    """A day of CRM activity (touched contacts, leads promoted to MQL) on a private copy of the store:
    the incremental HubSpot pass plus an incremental build equals a full build of the same raw data."""
    from connectors.sandbox.server import SandboxConfig, SandboxServer
    from connectors.sandbox.store import build_store

    store = warehouse.store
    private = build_store("demo", seed=store.seed, end_date=store.end_date)
    touched = private.touch_contacts(fraction=0.02)
    assert touched
    path = warehouse.copy(tmp_path / "crm.duckdb")
    con = duckdb.connect(str(path))
    try:
        mqls_before = con.execute("SELECT sum(mqls) FROM marts.channel_funnel_daily").fetchall()[0][0]
        cohort_mql_sql = (
            "SELECT sum(count) FROM marts.funnel_daily WHERE funnel_name = 'crm' AND step_index = 2"
        )
        cohort_mqls_before = con.execute(cohort_mql_sql).fetchall()[0][0]
        server = SandboxServer(private, SandboxConfig(seed=store.seed))
        server.config.hubspot.general_max, server.config.hubspot.search_per_second = 5_000, 200
        with server:
            hubspot = tools.hubspot_client(server.base_url, 5_000, 200)
            since = private.end_instant_utc.replace(tzinfo=dt.UTC) - dt.timedelta(minutes=1)
            loaded = raw_load.upsert_hubspot_objects(
                con, "contacts", "sandbox", hubspot.extract("contacts", since=since), "incremental"
            )
        assert loaded >= len(touched)
        result = build_all(con, default_catalog(), default_channel_mapping(), dates=[])
        # Only the touched contacts whose content changed (promoted leads) are re-staged; the others
        # (lastmodifieddate bumped) get their staged updated_at_utc refreshed in place.
        assert result.mode == "incremental" and 0 < result.contacts < len(touched)
        refreshed = {
            int(r[0])
            for r in con.execute(
                "SELECT contact_id FROM staging.hubspot_contacts WHERE updated_at_utc >= ?",
                [private.end_instant_utc],
            ).fetchall()
        }
        assert set(touched) <= refreshed, sorted(set(touched) - refreshed)[:5]
        assert con.execute("SELECT sum(mqls) FROM marts.channel_funnel_daily").fetchall()[0][0] > mqls_before
        # Promoted leads move up in their (old) creation cohorts of the CRM funnel.
        assert con.execute(cohort_mql_sql).fetchall()[0][0] > cohort_mqls_before
        incremental = content_hashes(con)
        staged = staging_contacts_hash(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    full_path = tmp_path / "crm-full.duckdb"
    import shutil

    shutil.copyfile(path, full_path)
    full_con = duckdb.connect(str(full_path))
    try:
        build_all(full_con, default_catalog(), default_channel_mapping())
        assert content_hashes(full_con) == incremental
        assert staging_contacts_hash(full_con) == staged
    finally:
        full_con.close()


def test_a_newly_discovered_stage_property_turns_an_incremental_request_into_a_full_build(copy_con):
    """Staging parses every discovered hs_v2_date_entered_* property: a new one re-parses every contact."""
    copy_con.execute(
        "INSERT INTO raw.hubspot_properties (portal_id, object_type, name, label, type, field_type, group_name) "
        "VALUES ('sandbox', 'contacts', 'hs_v2_date_entered_1234567', 'Date entered Partner', 'datetime', "
        "'date', 'contactinformation')"
    )
    result = build_all(copy_con, default_catalog(), default_channel_mapping(), dates=[dt.date(2026, 10, 1)])
    assert result.mode == "full" and "stage properties" in result.reason
    stages = copy_con.execute(
        "SELECT stage FROM staging.hubspot_lifecycle_stages WHERE stage = '1234567'"
    ).fetchall()
    assert stages == [("1234567",)]


def test_a_contact_id_that_is_not_a_number_fails_the_build_with_one_message_and_writes_nothing(copy_con):
    """Incremental scopes join on the integer of the HubSpot id; an id that is not a plain number (HubSpot
    never sends one) stops the build with a message naming it, and the warehouse stays as it was."""
    con = copy_con
    before = content_hashes(con)
    con.execute(
        "UPDATE raw.hubspot_contacts SET id = 'c-' || id WHERE id = (SELECT min(id) FROM raw.hubspot_contacts)"
    )
    with pytest.raises(BuildError, match=r"HubSpot contact id 'c-\d+' is not a plain number"):
        build_all(con, default_catalog(), default_channel_mapping())
    assert content_hashes(con) == before


def test_a_changed_build_rebuilds_the_ga4_dates_loaded_since_the_last_build(
    copy_con, warehouse, sandbox, tools
):
    """dates='changed' (what the scheduled pipeline asks for): the GA4 days re-loaded since the last build
    are found from the raw load times, rebuilt incrementally, and the marts equal a full build's."""
    con = copy_con
    before = content_hashes(con)
    store = warehouse.store
    first = store.start_date + dt.timedelta(days=20)
    client = tools.ga4_client(sandbox.base_url, store.property_id)
    for day in (first, first + dt.timedelta(days=1)):
        tools.ingest_ga4(con, client, store.property_id, day, day, partition_key=day.isoformat())
    result = build_all(con, default_catalog(), default_channel_mapping(), dates="changed")
    assert result.mode == "incremental", result.reason
    assert result.reason == "GA4 dates loaded since the last build: 2"
    assert {first, first + dt.timedelta(days=1)} <= set(result.dates)
    assert content_hashes(con) == before
    # Nothing loaded since: an incremental build of no GA4 date, still equal.
    again = build_all(con, default_catalog(), default_channel_mapping(), dates="changed")
    assert again.mode == "incremental" and again.reason == "GA4 dates loaded since the last build: 0"
    assert content_hashes(con) == before
    with pytest.raises(BuildError, match="dates must be None, 'changed' or a list of dates"):
        build_all(con, default_catalog(), default_channel_mapping(), dates="yesterday")
