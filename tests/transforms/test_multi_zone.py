"""Marts across zones: a warehouse loaded through the real connectors from the multi-account sandbox
(three GA4 properties in New York, Berlin and Tokyo time, two HubSpot portals) builds marts whose
per-property days equal each store's truth in its own local days, and whose web -> CRM rows put each
portal next to its own property, its instants cut in its own zone."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pandas as pd
import pytest

from connectors.ga4 import Ga4Client, Ga4Settings, default_report_specs
from connectors.hubspot import HubSpotClient, HubSpotSettings
from connectors.sandbox.accounts import PORTALS, PROPERTIES, MultiAccountSandbox
from transforms import raw_load
from transforms.build import BuildError, build_all
from transforms.catalog import default_catalog, default_channel_mapping

END = dt.date(2026, 3, 31)  # both spring-forward days (US 03-08, EU 03-29) inside the window
DAYS = 21
US, DE, JP = (p.property_id for p in PROPERTIES)
PAIRED = {str(p.portal_id): p.property_id for p in PORTALS}


def _ga4(base_url: str, property_id: str) -> Ga4Client:
    return Ga4Client(
        Ga4Settings(
            property_ids=[property_id],
            api_endpoint=base_url,
            backoff_base_s=0.01,
            backoff_max_s=0.05,
            timeout_s=30.0,
            run_id="multi-zone-test",
        )
    )


def _hubspot(base_url: str, token: str, portal_id: str) -> HubSpotClient:
    return HubSpotClient(
        HubSpotSettings(
            access_token=token,
            host=base_url,
            portal_id=portal_id,
            run_id="multi-zone-test",
            general_max_requests=5_000,
            general_interval_seconds=10.0,
            search_requests_per_second=200,
            backoff_base_seconds=0.01,
            backoff_max_seconds=0.05,
            limiter_margin_seconds=0.05,
        )
    )


@pytest.fixture(scope="module")
def multi():
    sandbox = MultiAccountSandbox(seed=7, days=DAYS, end_date=END, scale=0.2, revisions=False)
    for portal in PORTALS:
        config = sandbox.hubspot_config(portal.portal_id)
        config.general_max, config.search_per_second = 5_000, 200
    with sandbox:
        yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def raw_file(multi, tmp_path_factory):
    """A warehouse holding only raw data, loaded through the real connectors."""
    path = tmp_path_factory.mktemp("multi-zone") / "loaded.duckdb"
    con = duckdb.connect(str(path))
    try:
        for spec in PROPERTIES:
            client = _ga4(multi.base_url, spec.property_id)
            for report in default_report_specs():
                raw_load.load_ga4_partition(
                    con,
                    report.name,
                    spec.property_id,
                    multi.start_date,
                    multi.end_date,
                    client.fetch_report(spec.property_id, report, multi.start_date, multi.end_date),
                    "initial",
                )
            zone = client.property_time_zone(spec.property_id)
            assert zone == spec.time_zone
            raw_load.record_ga4_property(con, spec.property_id, time_zone=zone)
        for portal in PORTALS:
            label = str(portal.portal_id)
            client = _hubspot(multi.base_url, portal.token, label)
            for object_type in ("contacts", "deals"):
                raw_load.upsert_hubspot_objects(con, object_type, label, client.extract(object_type), "full")
                raw_load.upsert_hubspot_objects(
                    con, object_type, label, client.extract_archived(object_type), "full"
                )
                raw_load.replace_hubspot_metadata(
                    con, "properties", label, [client.properties(object_type)], object_type=object_type
                )
                raw_load.replace_hubspot_metadata(
                    con, "pipelines", label, [client.pipelines(object_type)], object_type=object_type
                )
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path


def _record_portals(con, base_url: str) -> None:
    """What the ingest records per portal: its zone and Hub ID from HubSpot's account-info (through the real
    connector), and the property the accounts configuration pairs it with."""
    for portal in PORTALS:
        details = _hubspot(base_url, portal.token, str(portal.portal_id)).account_details()
        raw_load.record_hubspot_portal(
            con,
            str(portal.portal_id),
            time_zone=details["timeZone"],
            property_id=portal.property_id,
            hub_id=str(details["portalId"]),
            currency_code=details["companyCurrency"],
        )


@pytest.fixture(scope="module")
def built(multi, raw_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("multi-zone-built") / "stepwise.duckdb"
    shutil.copyfile(raw_file, path)
    con = duckdb.connect(str(path))
    _record_portals(con, multi.base_url)
    build_all(con, default_catalog(), default_channel_mapping())
    yield con
    con.close()


def _frame(con, sql: str, params=None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


def _contacts_by_local_day(store, zone: str) -> dict[dt.date, int]:
    """Contacts HubSpot still returns (live or archived; merged-away ones are listed nowhere), per local
    creation date in ``zone``."""
    rows = (
        store.cursor()
        .execute(
            "SELECT timezone($tz, timezone('UTC', createdate))::DATE, count(*) FROM contacts "
            "WHERE merged_into IS NULL GROUP BY 1",
            {"tz": zone},
        )
        .fetchall()
    )
    return {d: int(n) for d, n in rows}


def test_sessions_per_property_equal_each_stores_truth_in_its_local_days(multi, built):
    for spec in PROPERTIES:
        truth = multi.truth(spec.property_id).sessions_by_day()
        expected = {
            pd.Timestamp(d).date(): int(n) for d, n in zip(truth["date"], truth["sessions"], strict=True)
        }
        for table in ("web_sessions_daily", "channel_funnel_daily"):
            served = dict(
                built.execute(
                    f"SELECT date, sum(sessions)::BIGINT FROM marts.{table} WHERE property_id = ? AND sessions > 0 "
                    "GROUP BY 1",
                    [spec.property_id],
                ).fetchall()
            )
            assert served == expected, (table, spec.property_id)


def test_web_to_crm_rows_pair_each_portal_with_its_property_in_its_zone(multi, built):
    pairs = built.execute(
        "SELECT DISTINCT property_id, portal_id FROM marts.channel_funnel_daily ORDER BY 1"
    ).fetchall()
    assert pairs == [(US, str(PORTALS[0].portal_id)), (DE, str(PORTALS[1].portal_id)), (JP, None)]
    for portal in PORTALS:
        store = multi.portal_store(portal.portal_id)
        expected = _contacts_by_local_day(store, portal.time_zone)
        served = dict(
            built.execute(
                "SELECT date, sum(contacts_created)::BIGINT FROM marts.channel_funnel_daily "
                "WHERE property_id = ? AND portal_id = ? AND contacts_created > 0 GROUP BY 1",
                [portal.property_id, str(portal.portal_id)],
            ).fetchall()
        )
        assert served == expected, portal.label
        # Sensitive to the zone: the same contacts cut in another property's zone fall on other days.
        other = PROPERTIES[2].time_zone
        assert _contacts_by_local_day(store, other) != expected
        # GA4 leads of the pair == its contacts created per local day, plus the merged-away ones.
        merged = dict(
            store.cursor()
            .execute(
                "SELECT timezone($tz, timezone('UTC', createdate))::DATE, count(*) FROM contacts "
                "WHERE merged_into IS NOT NULL GROUP BY 1",
                {"tz": portal.time_zone},
            )
            .fetchall()
        )
        leads = dict(
            built.execute(
                "SELECT date, sum(leads)::BIGINT FROM marts.channel_funnel_daily WHERE property_id = ? "
                "AND leads > 0 GROUP BY 1",
                [portal.property_id],
            ).fetchall()
        )
        assert leads == {d: served.get(d, 0) + merged.get(d, 0) for d in leads}
    # The web-only property has leads and no CRM figures.
    jp = built.execute(
        "SELECT sum(leads), sum(contacts_created), sum(customers) FROM marts.channel_funnel_daily "
        "WHERE property_id = ?",
        [JP],
    ).fetchall()[0]
    assert jp[0] > 0 and jp[1] == 0 and jp[2] == 0


def test_staging_cuts_each_portals_instants_in_its_zone(built):
    for portal in PORTALS:
        wrong = built.execute(
            "SELECT count(*) FILTER (created_date <> timezone(?, timezone('UTC', created_at_utc))::DATE), count(*) "
            "FROM staging.hubspot_contacts WHERE portal_id = ? AND created_at_utc IS NOT NULL",
            [portal.time_zone, str(portal.portal_id)],
        ).fetchall()[0]
        assert wrong[1] > 0 and wrong[0] == 0, portal.label
    label = built.execute("SELECT time_zone FROM staging.build_state").fetchall()[0][0]
    assert "2345001=America/New_York" in label and "2345002=Europe/Berlin" in label


def test_crm_funnel_cohorts_stay_with_their_portal_and_property(built):
    rows = built.execute(
        "SELECT source_system, property_id, portal_id, count(*) FROM marts.funnel_daily GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    ga4 = {(p, q) for s, p, q, _ in rows if s == "ga4"}
    crm = {(p, q) for s, p, q, _ in rows if s == "hubspot"}
    assert ga4 == {(US, None), (DE, None), (JP, None)}
    assert crm == {(PAIRED[q], q) for q in PAIRED}


def test_several_zones_without_a_recorded_portal_fail_with_the_fix(raw_file, tmp_path):
    path = tmp_path / "unrecorded.duckdb"
    shutil.copyfile(raw_file, path)
    con = duckdb.connect(str(path))
    try:
        with pytest.raises(BuildError, match="record_hubspot_portal"):
            build_all(con, default_catalog(), default_channel_mapping())
    finally:
        con.close()
