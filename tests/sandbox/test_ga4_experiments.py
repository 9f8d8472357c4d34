"""The planted experiments in the store, and the sandbox GA4 API serving them as the real integration would:
audience dimensions in getMetadata, checkCompatibility, the audience semantics of runReport."""

from __future__ import annotations

import pytest
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import (
    CheckCompatibilityRequest,
    Compatibility,
    GetMetadataRequest,
    RunReportRequest,
)
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials

from connectors.sandbox import store_hostile
from connectors.sandbox.store_experiments import EXPERIMENTS

PROPERTY = "properties/123456789"


@pytest.fixture
def sdk(sandbox_server) -> BetaAnalyticsDataClient:
    return BetaAnalyticsDataClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": sandbox_server.base_url},
    )


def _scalar(store, sql: str, params=()):
    return store.cursor().execute(sql, list(params)).fetchall()[0][0]


def test_planted_assignment_and_exposure(demo_store) -> None:
    shares = dict(
        demo_store.cursor()
        .execute(
            "SELECT experiment || '/' || variant, count(*) / sum(count(*)) OVER (PARTITION BY experiment) "
            "FROM experiment_exposures GROUP BY experiment, variant"
        )
        .fetchall()
    )
    assert shares["hero_video/control"] == pytest.approx(0.55, abs=0.01)
    assert shares["checkout_button/control"] == pytest.approx(0.5, abs=0.01)
    assert shares["free_shipping_banner/control"] == pytest.approx(0.5, abs=0.01)
    # one exposure per visitor and experiment, on a session that qualifies
    assert (
        _scalar(
            demo_store, "SELECT count(*) - count(DISTINCT (experiment, user_id)) FROM experiment_exposures"
        )
        == 0
    )
    bad = _scalar(
        demo_store,
        "SELECT count(*) FROM experiment_exposures e JOIN sessions s USING (session_id) WHERE "
        "(e.experiment = 'checkout_button' AND s.view_item = 0) OR (e.experiment = 'free_shipping_banner' AND "
        "s.add_to_cart = 0 AND s.date IS DISTINCT FROM ?) OR (e.experiment = 'hero_video' AND s.landing_page <> '/' AND s.landing_page <> ?) OR s.user_id <> e.user_id",
        # the hostile-values plant relabels a few landing pages after exposure was decided
        # and the planted broken add_to_cart tag (CONTRACTS §5.4) hides add_to_cart for one day
        [demo_store.truth.planted["anomaly_zero"][1], store_hostile.HTML_LANDING_PAGE],
    )
    assert bad == 0
    # hero_video starts on the store's day 30; the funnel order still holds in every session
    assert _scalar(
        demo_store, "SELECT min(date) FROM experiment_exposures WHERE experiment = 'hero_video'"
    ) >= (demo_store.start_date + __import__("datetime").timedelta(days=30))
    assert (
        _scalar(
            demo_store,
            "SELECT count(*) FROM sessions WHERE ((purchase > 0 AND begin_checkout = 0) OR "
            "(begin_checkout > 0 AND add_to_cart = 0) OR (add_to_cart > 0 AND view_item = 0)) "
            "AND date IS DISTINCT FROM ?",  # the planted broken add_to_cart tag day (CONTRACTS §5.4)
            [demo_store.truth.planted["anomaly_zero"][1]],
        )
        == 0
    )
    assert set(demo_store.truth.planted["experiments"]) == {e.name for e in EXPERIMENTS}


def test_metadata_lists_the_audience_dimensions(sdk) -> None:
    meta = sdk.get_metadata(request=GetMetadataRequest(name=f"{PROPERTY}/metadata"))
    dims = {d.api_name for d in meta.dimensions}
    assert {"audienceName", "audienceId", "eventName"} <= dims
    assert "totalUsers" in {m.api_name for m in meta.metrics}


def test_check_compatibility_audiences_go_with_user_metrics_only(sdk) -> None:
    ok = sdk.check_compatibility(
        request=CheckCompatibilityRequest(
            property=PROPERTY,
            dimensions=[{"name": "audienceName"}, {"name": "eventName"}],
            metrics=[{"name": "totalUsers"}],
        )
    )
    status = {c.metric_metadata.api_name: c.compatibility for c in ok.metric_compatibilities}
    assert status["totalUsers"] == Compatibility.COMPATIBLE
    assert (
        status["eventCount"] == Compatibility.INCOMPATIBLE
        and status["sessions"] == Compatibility.INCOMPATIBLE
    )
    dims = {c.dimension_metadata.api_name: c.compatibility for c in ok.dimension_compatibilities}
    assert dims["audienceName"] == Compatibility.COMPATIBLE
    refused = sdk.check_compatibility(
        request=CheckCompatibilityRequest(
            property=PROPERTY,
            dimensions=[{"name": "eventName"}],
            metrics=[{"name": "eventCount"}],
            compatibility_filter=Compatibility.INCOMPATIBLE,
        )
    )
    assert {c.dimension_metadata.api_name for c in refused.dimension_compatibilities} == {
        "audienceId",
        "audienceName",
    }
    with pytest.raises(gexc.BadRequest, match="Please remove eventCount to make the request compatible"):
        sdk.run_report(
            RunReportRequest(
                property=PROPERTY,
                dimensions=[{"name": "audienceName"}],
                metrics=[{"name": "eventCount"}],
                date_ranges=[{"start_date": "2026-10-01", "end_date": "2026-10-31"}],
            )
        )


def test_audience_users_are_the_members_active_in_the_range(sdk, demo_store) -> None:
    # October: settled days (the sandbox revises only the store's last two days)
    start, end = "2026-10-01", "2026-10-31"
    report = sdk.run_report(
        RunReportRequest(
            property=PROPERTY,
            dimensions=[{"name": "audienceName"}, {"name": "eventName"}],
            metrics=[{"name": "totalUsers"}],
            date_ranges=[{"start_date": start, "end_date": end}],
            dimension_filter={
                "filter": {
                    "field_name": "eventName",
                    "in_list_filter": {"values": ["purchase", "session_start"]},
                }
            },
        )
    )
    got = {
        (r.dimension_values[0].value, r.dimension_values[1].value): int(r.metric_values[0].value)
        for r in report.rows
    }
    truth = dict(
        ((a, ev), n)
        for a, ev, n in demo_store.cursor()
        .execute(
            """
            SELECT e.exp_variant_string, ev.event_name, count(DISTINCT ev.user_id)
            FROM experiment_exposures e JOIN events ev ON ev.user_id = e.user_id AND ev.date >= e.date
            WHERE ev.date BETWEEN ? AND ? AND ev.event_name IN ('purchase', 'session_start')
            GROUP BY ALL
            """,
            [start, end],
        )
        .fetchall()
    )
    assert got == truth and len(got) == 12
