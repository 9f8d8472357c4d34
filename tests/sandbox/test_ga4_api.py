"""The fake GA4 Data API, driven through the official SDK only (BetaAnalyticsDataClient over REST).

Every figure is checked against SQL on the store; every limit against the real status and body.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import GetMetadataRequest, MetricType, RunReportRequest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials

from connectors.sandbox.ga4_api import Ga4PropertySettings, Ga4QuotaLimits
from connectors.sandbox.server import FaultPlan, SandboxConfig, SandboxServer

PROPERTY = "123456789"


def _client(server) -> BetaAnalyticsDataClient:
    return BetaAnalyticsDataClient(
        transport="rest", client_options={"api_endpoint": server.base_url}, credentials=AnonymousCredentials()
    )


def _report(client, property_id=PROPERTY, **fields) -> object:
    fields.setdefault("date_ranges", [{"start_date": "2026-10-01", "end_date": "2026-10-31"}])
    return client.run_report(request=RunReportRequest(property=f"properties/{property_id}", **fields))


def _rows(response) -> list[tuple[list[str], list[str]]]:
    return [
        ([d.value for d in r.dimension_values], [m.value for m in r.metric_values]) for r in response.rows
    ]


def _dims(*names):
    return [{"name": n} for n in names]


def _error_body(exc: gexc.GoogleAPICallError) -> dict:
    return exc.response.json()["error"]


@pytest.fixture
def client(sandbox_server):
    return _client(sandbox_server)


@pytest.fixture
def main_settings(sandbox_server) -> Ga4PropertySettings:
    return sandbox_server.config.ga4.properties[PROPERTY]


# -- metadata -------------------------------------------------------------------------------------


def test_metadata_lists_standard_and_custom_fields(client):
    meta = client.get_metadata(request=GetMetadataRequest(name=f"properties/{PROPERTY}/metadata"))
    assert meta.name == f"properties/{PROPERTY}/metadata"
    dims = {d.api_name: d for d in meta.dimensions}
    mets = {m.api_name: m for m in meta.metrics}
    for name in (
        "date",
        "eventName",
        "sessionDefaultChannelGroup",
        "deviceCategory",
        "country",
        "newVsReturning",
    ):
        assert name in dims
    assert dims["customEvent:form_name"].custom_definition is True
    assert dims["date"].custom_definition is False
    assert mets["sessions"].type_ == MetricType.TYPE_INTEGER
    assert mets["purchaseRevenue"].type_ == MetricType.TYPE_CURRENCY


def test_metadata_of_an_unknown_property_is_permission_denied(client):
    with pytest.raises(gexc.Forbidden) as info:
        client.get_metadata(request=GetMetadataRequest(name="properties/555/metadata"))
    assert _error_body(info.value)["status"] == "PERMISSION_DENIED"


# -- figures equal the store ----------------------------------------------------------------------


def test_sessions_per_day_equal_the_store(client, demo_store):
    response = _report(
        client, dimensions=_dims("date"), metrics=[{"name": "sessions"}, {"name": "totalUsers"}]
    )
    got = {d[0]: (int(m[0]), int(m[1])) for d, m in _rows(response)}
    want = (
        demo_store.cursor()
        .execute(
            "SELECT strftime(date, '%Y%m%d'), count(*), count(DISTINCT user_id) FROM sessions "
            "WHERE date BETWEEN '2026-10-01' AND '2026-10-31' GROUP BY 1"
        )
        .fetchall()
    )
    assert got == {d: (s, u) for d, s, u in want}
    assert response.row_count == 31
    assert [h.name for h in response.dimension_headers] == ["date"]
    assert response.metric_headers[0].type_ == MetricType.TYPE_INTEGER
    assert response.metadata.time_zone == demo_store.time_zone == "America/New_York"
    assert response.metadata.currency_code == "USD"


def test_revenue_is_a_decimal_string_equal_to_the_store(client, demo_store):
    response = _report(
        client, dimensions=_dims("sessionDefaultChannelGroup"), metrics=[{"name": "purchaseRevenue"}]
    )
    got = {d[0]: m[0] for d, m in _rows(response)}
    want = dict(
        demo_store.cursor()
        .execute(
            "SELECT channel, sum(purchase_revenue) FROM sessions WHERE date BETWEEN '2026-10-01' AND '2026-10-31' "
            "GROUP BY 1"
        )
        .fetchall()
    )
    assert set(got) == set(want)
    for channel, value in want.items():
        assert float(got[channel]) == pytest.approx(float(value), abs=0.005)
        assert "e" not in got[channel]
    assert response.metric_headers[0].type_ == MetricType.TYPE_CURRENCY


def test_relative_dates_count_from_the_store_end(client, demo_store):
    end = demo_store.end_date
    response = _report(
        client,
        dimensions=_dims("date"),
        metrics=[{"name": "sessions"}],
        date_ranges=[{"start_date": "6daysAgo", "end_date": "yesterday"}],
    )
    got = sorted(d[0] for d, _ in _rows(response))
    assert got == [(end - dt.timedelta(days=i)).strftime("%Y%m%d") for i in range(5, -1, -1)]
    today = _report(
        client,
        dimensions=_dims("date"),
        metrics=[{"name": "sessions"}],
        date_ranges=[{"start_date": "today", "end_date": "today"}],
    )
    assert today.row_count == 0 and len(today.rows) == 0


def test_event_filter_and_custom_dimension(client, demo_store):
    response = _report(
        client,
        dimensions=_dims("eventName", "customEvent:form_name"),
        metrics=[{"name": "eventCount"}],
        dimension_filter={"filter": {"field_name": "eventName", "string_filter": {"value": "generate_lead"}}},
    )
    got = {tuple(d): int(m[0]) for d, m in _rows(response)}
    want = (
        demo_store.cursor()
        .execute(
            "SELECT lead_form, sum(generate_lead) FROM sessions WHERE date BETWEEN '2026-10-01' AND '2026-10-31' "
            "AND generate_lead > 0 GROUP BY 1"
        )
        .fetchall()
    )
    assert got == {("generate_lead", form): int(n) for form, n in want}


def test_in_list_and_boolean_filter_groups(client, demo_store):
    def events(filter_expr):
        r = _report(
            client,
            dimensions=_dims("eventName"),
            metrics=[{"name": "eventCount"}],
            dimension_filter=filter_expr,
        )
        return {d[0]: int(m[0]) for d, m in _rows(r)}

    in_list = {"filter": {"field_name": "eventName", "in_list_filter": {"values": ["purchase", "sign_up"]}}}
    assert set(events(in_list)) == {"purchase", "sign_up"}
    everything = events(None)
    negated = events({"not_expression": in_list})
    assert set(negated) == set(everything) - {"purchase", "sign_up"}
    both = events(
        {
            "and_group": {
                "expressions": [
                    in_list,
                    {"filter": {"field_name": "deviceCategory", "string_filter": {"value": "mobile"}}},
                ]
            }
        }
    )
    mobile_purchases = (
        demo_store.cursor()
        .execute(
            "SELECT sum(purchase) FROM sessions WHERE date BETWEEN '2026-10-01' AND '2026-10-31' AND device_category = 'mobile'"
        )
        .fetchall()[0][0]
    )
    assert both["purchase"] == mobile_purchases
    either = events(
        {
            "or_group": {
                "expressions": [
                    {"filter": {"field_name": "eventName", "string_filter": {"value": "share"}}},
                    {
                        "filter": {
                            "field_name": "eventName",
                            "string_filter": {"match_type": "BEGINS_WITH", "value": "add_to"},
                        }
                    },
                ]
            }
        }
    )
    assert set(either) == {"share", "add_to_cart", "add_to_wishlist"}
    assert either["share"] == everything["share"]


def test_multiple_date_ranges_add_the_date_range_dimension(client):
    response = _report(
        client,
        dimensions=_dims("deviceCategory"),
        metrics=[{"name": "sessions"}],
        date_ranges=[
            {"start_date": "2026-10-01", "end_date": "2026-10-07", "name": "week1"},
            {"start_date": "2026-10-08", "end_date": "2026-10-14"},
        ],
    )
    assert [h.name for h in response.dimension_headers] == ["deviceCategory", "dateRange"]
    assert {d[1] for d, _ in _rows(response)} == {"week1", "date_range_1"}


# -- paging ---------------------------------------------------------------------------------------


def test_offset_limit_pages_add_up_to_the_full_report(client):
    fields = {
        "dimensions": _dims("date", "sessionDefaultChannelGroup", "deviceCategory"),
        "metrics": [{"name": "sessions"}],
    }
    full = _report(client, **fields)
    pages, offset = [], 0
    while True:
        page = _report(client, offset=offset, limit=100, **fields)
        assert page.row_count == full.row_count
        pages.extend(_rows(page))
        offset += 100
        if offset >= page.row_count:
            break
    assert pages == _rows(full)
    assert len(pages) == full.row_count > 100


def test_default_limit_is_10000_and_the_page_cap_250000(client):
    fields = {
        "dimensions": _dims(
            "date", "eventName", "landingPage", "sessionDefaultChannelGroup", "deviceCategory", "country"
        ),
        "metrics": [{"name": "eventCount"}],
        "date_ranges": [{"start_date": "2026-08-25", "end_date": "2026-11-20"}],
    }
    default = _report(client, **fields)
    assert len(default.rows) == 10_000 < default.row_count
    capped = _report(client, limit=300_000, **fields)
    assert default.row_count > 250_000
    assert len(capped.rows) == 250_000
    tail = _report(client, offset=250_000, limit=250_000, **fields)
    assert len(tail.rows) == capped.row_count - 250_000


def test_negative_limit_is_invalid(client):
    with pytest.raises(gexc.BadRequest) as info:
        _report(client, dimensions=_dims("date"), metrics=[{"name": "sessions"}], limit=-1)
    assert _error_body(info.value)["status"] == "INVALID_ARGUMENT"


def test_keep_empty_rows(client):
    fields = {
        "dimensions": _dims("date", "sessionDefaultChannelGroup", "deviceCategory", "country"),
        "metrics": [{"name": "ecommercePurchases"}],
    }
    dropped = _report(client, **fields)
    kept = _report(client, keep_empty_rows=True, **fields)
    assert kept.row_count > dropped.row_count
    assert all(int(m[0]) > 0 for _, m in _rows(dropped))
    assert any(int(m[0]) == 0 for _, m in _rows(kept))


def test_metric_aggregations_and_order_by(client, demo_store):
    response = _report(
        client,
        dimensions=_dims("sessionDefaultChannelGroup"),
        metrics=[{"name": "sessions"}, {"name": "totalUsers"}],
        metric_aggregations=["TOTAL", "MAXIMUM", "MINIMUM"],
        order_bys=[{"metric": {"metric_name": "sessions"}, "desc": True}],
    )
    sessions = [int(m[0]) for _, m in _rows(response)]
    assert sessions == sorted(sessions, reverse=True)
    total_sessions, total_users = (
        demo_store.cursor()
        .execute(
            "SELECT count(*), count(DISTINCT user_id) FROM sessions WHERE date BETWEEN '2026-10-01' AND '2026-10-31'"
        )
        .fetchall()[0]
    )
    assert response.totals[0].dimension_values[0].value == "RESERVED_TOTAL"
    assert int(response.totals[0].metric_values[0].value) == total_sessions == sum(sessions)
    # Users are deduplicated in the total, as GA4 does: not the sum of the rows.
    assert int(response.totals[0].metric_values[1].value) == total_users
    assert int(response.maximums[0].metric_values[0].value) == max(sessions)
    assert int(response.minimums[0].metric_values[0].value) == min(sessions)


def test_property_quota_is_returned_and_consumed(client):
    first = _report(
        client, dimensions=_dims("date"), metrics=[{"name": "sessions"}], return_property_quota=True
    )
    second = _report(
        client, dimensions=_dims("date"), metrics=[{"name": "sessions"}], return_property_quota=True
    )
    q1, q2 = first.property_quota, second.property_quota
    assert q1.tokens_per_day.consumed + q1.tokens_per_day.remaining == 200_000
    assert q1.tokens_per_hour.consumed + q1.tokens_per_hour.remaining == 40_000
    assert q1.tokens_per_project_per_hour.consumed + q1.tokens_per_project_per_hour.remaining == 14_000
    assert q1.concurrent_requests.remaining == 10
    assert q1.server_errors_per_project_per_hour.remaining == 10
    assert q2.tokens_per_day.consumed > q1.tokens_per_day.consumed >= 1
    assert "property_quota" not in _report(client, dimensions=_dims("date"), metrics=[{"name": "sessions"}])


def test_token_cost_grows_with_rows_and_days(client):
    def cost(**fields):
        before = _report(
            client, dimensions=_dims("date"), metrics=[{"name": "sessions"}], return_property_quota=True
        ).property_quota.tokens_per_day.consumed
        _report(client, **fields)
        after = _report(
            client, dimensions=_dims("date"), metrics=[{"name": "sessions"}], return_property_quota=True
        ).property_quota.tokens_per_day.consumed
        return after - before - _single_cost

    _single_cost = 2  # the 31-day, 31-row probe costs 1 + 30 // 30 tokens
    small = cost(
        dimensions=_dims("date"),
        metrics=[{"name": "sessions"}],
        date_ranges=[{"start_date": "2026-10-01", "end_date": "2026-10-01"}],
    )
    long = cost(
        dimensions=_dims("date"),
        metrics=[{"name": "sessions"}],
        date_ranges=[{"start_date": "2026-08-25", "end_date": "2026-11-20"}],
    )
    wide = cost(
        dimensions=_dims("date", "landingPage", "country", "deviceCategory"),
        metrics=[{"name": "sessions"}],
        limit=100_000,
    )
    assert small == 1
    assert long > small
    assert wide > small


# -- limits and errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"dimensions": _dims(*["date"] * 10), "metrics": [{"name": "sessions"}]}, "limited to 9 dimensions"),
        ({"dimensions": _dims("date"), "metrics": [{"name": "sessions"}] * 11}, "limited to 10 metrics"),
        (
            {"dimensions": _dims("pageColour"), "metrics": [{"name": "sessions"}]},
            "pageColour is not a valid dimension",
        ),
        (
            {"dimensions": _dims("date"), "metrics": [{"name": "bounceRatio"}]},
            "bounceRatio is not a valid metric",
        ),
        (
            {
                "dimensions": _dims("date"),
                "metrics": [{"name": "sessions"}],
                "date_ranges": [{"start_date": "last week", "end_date": "today"}],
            },
            "Invalid startDate",
        ),
        (
            {
                "dimensions": _dims("date"),
                "metrics": [{"name": "sessions"}],
                "dimension_filter": {"filter": {"field_name": "nope", "string_filter": {"value": "x"}}},
            },
            "nope is not a valid",
        ),
    ],
)
def test_invalid_requests_get_googles_error_body(client, fields, fragment):
    with pytest.raises(gexc.BadRequest) as info:
        _report(client, **fields)
    assert info.value.code == 400
    body = _error_body(info.value)
    assert body["code"] == 400 and body["status"] == "INVALID_ARGUMENT"
    assert fragment in body["message"]


def test_unknown_property_is_permission_denied(client):
    with pytest.raises(gexc.Forbidden) as info:
        _report(client, property_id="424242", dimensions=_dims("date"), metrics=[{"name": "sessions"}])
    assert info.value.code == 403
    assert _error_body(info.value)["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    ("limits", "fragment"),
    [
        ({"tokens_per_hour": 3}, "tokens per hour"),
        ({"tokens_per_day": 3}, "tokens per day"),
        ({"tokens_per_project_per_hour": 3}, "tokens per project per hour"),
    ],
)
def test_token_quotas_answer_429_resource_exhausted(client, main_settings, limits, fragment):
    main_settings.quota = Ga4QuotaLimits(**limits)
    fields = {"dimensions": _dims("date"), "metrics": [{"name": "sessions"}]}
    _report(client, **fields)  # 2 tokens
    _report(client, **fields)  # 4 tokens: past the allowance, but a request in progress is served
    with pytest.raises(gexc.TooManyRequests) as info:
        _report(client, **fields)
    assert info.value.code == 429
    body = _error_body(info.value)
    assert body["status"] == "RESOURCE_EXHAUSTED" and fragment in body["message"]


def test_hourly_quota_refreshes_when_the_window_ends(client, main_settings):
    main_settings.quota = Ga4QuotaLimits(tokens_per_hour=2, hour_seconds=0.5)
    fields = {"dimensions": _dims("date"), "metrics": [{"name": "sessions"}]}
    _report(client, **fields)
    with pytest.raises(gexc.TooManyRequests):
        _report(client, **fields)
    time.sleep(0.6)
    assert _report(client, **fields).row_count == 31


def test_concurrent_request_limit(client, main_settings):
    main_settings.quota = Ga4QuotaLimits(concurrent_requests=0)
    with pytest.raises(gexc.TooManyRequests) as info:
        _report(client, dimensions=_dims("date"), metrics=[{"name": "sessions"}])
    assert "concurrent requests" in _error_body(info.value)["message"]


def test_server_errors_per_hour_count_against_the_property(sandbox_server, client, main_settings):
    main_settings.quota = Ga4QuotaLimits(server_errors_per_project_per_hour=2)
    sandbox_server.set_faults(FaultPlan(api="ga4", sequence=["503", "500"]))
    fields = {"dimensions": _dims("date"), "metrics": [{"name": "sessions"}], "return_property_quota": True}
    with pytest.raises(gexc.ServiceUnavailable):
        _report(client, **fields)
    with pytest.raises(gexc.InternalServerError):
        _report(client, **fields)
    with pytest.raises(gexc.TooManyRequests) as info:
        _report(client, **fields)
    assert "server errors" in _error_body(info.value)["message"]


# -- property settings: thresholding, (other), sampling ----------------------------------------


def test_thresholding_withholds_small_user_counts(client, main_settings):
    fields = {"dimensions": _dims("date", "country", "deviceCategory"), "metrics": [{"name": "totalUsers"}]}
    open_report = _report(client, **fields)
    assert not open_report.metadata.subject_to_thresholding
    main_settings.thresholding = True
    main_settings.threshold_users = 10
    thresholded = _report(client, **fields)
    assert thresholded.metadata.subject_to_thresholding
    assert 0 < thresholded.row_count < open_report.row_count
    assert min(int(m[0]) for _, m in _rows(thresholded)) >= 10
    no_users = _report(
        client, dimensions=_dims("date", "country", "deviceCategory"), metrics=[{"name": "sessions"}]
    )
    assert not no_users.metadata.subject_to_thresholding


def test_rows_past_the_cardinality_cap_fold_into_other(client, main_settings):
    fields = {"dimensions": _dims("date", "landingPage"), "metrics": [{"name": "sessions"}]}
    full = _report(client, **fields)
    main_settings.other_row_cap = 50
    folded = _report(client, **fields)
    assert folded.metadata.data_loss_from_other_row and not full.metadata.data_loss_from_other_row
    assert folded.row_count == 50
    others = [r for r in _rows(folded) if r[0] == ["(other)", "(other)"]]
    assert len(others) == 1
    assert sum(int(m[0]) for _, m in _rows(folded)) == sum(int(m[0]) for _, m in _rows(full))


def test_sampling_over_long_ranges(client, main_settings, demo_store):
    main_settings.sampling_over_days = 30
    main_settings.sampling_rate = 0.2
    long = _report(
        client,
        dimensions=_dims("deviceCategory"),
        metrics=[{"name": "sessions"}],
        date_ranges=[{"start_date": "2026-09-01", "end_date": "2026-10-31"}],
    )
    assert len(long.metadata.sampling_metadatas) == 1
    sm = long.metadata.sampling_metadatas[0]
    assert 0 < sm.samples_read_count < sm.sampling_space_size
    truth = dict(
        demo_store.cursor()
        .execute(
            "SELECT device_category, count(*) FROM sessions WHERE date BETWEEN '2026-09-01' AND '2026-10-31' GROUP BY 1"
        )
        .fetchall()
    )
    for (device,), (value,) in _rows(long):
        assert int(value) == pytest.approx(truth[device], rel=0.1)
        assert int(value) != truth[device]
    short = _report(
        client,
        dimensions=_dims("deviceCategory"),
        metrics=[{"name": "sessions"}],
        date_ranges=[{"start_date": "2026-10-01", "end_date": "2026-10-30"}],
    )
    assert len(short.metadata.sampling_metadatas) == 0


# -- revisions, extra properties, determinism ---------------------------------------------------


def test_recent_days_are_revised_upward_until_complete(client, demo_store):
    end = demo_store.end_date.isoformat()
    truth = (
        demo_store.cursor()
        .execute("SELECT count(*) FROM sessions WHERE date = ?", [demo_store.end_date])
        .fetchall()[0][0]
    )
    seen = []
    for _ in range(5):
        r = _report(
            client,
            dimensions=_dims("date"),
            metrics=[{"name": "sessions"}],
            date_ranges=[{"start_date": end, "end_date": end}],
        )
        seen.append(int(r.rows[0].metric_values[0].value))
    assert seen[0] < seen[1] < seen[2] < seen[3] == seen[4] == truth
    older = _report(
        client,
        dimensions=_dims("date"),
        metrics=[{"name": "sessions"}],
        date_ranges=[{"start_date": "5daysAgo", "end_date": "3daysAgo"}],
    )
    older_truth = (
        demo_store.cursor()
        .execute(
            "SELECT count(*) FROM sessions WHERE date BETWEEN ? AND ?",
            [demo_store.end_date - dt.timedelta(days=4), demo_store.end_date - dt.timedelta(days=2)],
        )
        .fetchall()[0][0]
    )
    assert sum(int(m[0]) for _, m in _rows(older)) == older_truth


def test_extra_property_serves_a_documented_share(client):
    fields = {"dimensions": _dims("date"), "metrics": [{"name": "sessions"}]}
    main = sum(int(m[0]) for _, m in _rows(_report(client, **fields)))
    extra = sum(int(m[0]) for _, m in _rows(_report(client, property_id="987654321", **fields)))
    assert extra == pytest.approx(0.4 * main, rel=0.05)


def test_same_seed_gives_the_same_response_bytes(demo_store):
    def run() -> list[bytes]:
        with SandboxServer(demo_store, SandboxConfig(seed=7)) as server:
            c = _client(server)
            out = []
            for _ in range(2):  # the second sees the revised recent days
                r = _report(
                    c,
                    dimensions=_dims("date", "eventName"),
                    metrics=[{"name": "eventCount"}],
                    date_ranges=[{"start_date": "10daysAgo", "end_date": "yesterday"}],
                    return_property_quota=True,
                    metric_aggregations=["TOTAL"],
                )
                out.append(type(r).serialize(r))
            return out

    first, second = run(), run()
    assert first == second
    assert first[0] != first[1]
