"""Fetching reports: types, paging, streaming, two properties, lookback, completeness splitting, log."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import pyarrow as pa
import pytest

from connectors.ga4 import (
    DateWindow,
    Ga4FetchError,
    ReportSpec,
    default_report_specs,
    plan_windows,
    replaced_dates,
)

from .conftest import EXTRA, MAIN, collect, make_client, sorted_rows

SPECS = {s.name: s for s in default_report_specs()}
WEB = SPECS["web_sessions"]


def _sessions_by_day(store, start, end) -> dict[dt.date, int]:
    rows = (
        store.cursor()
        .execute("SELECT date, count(*) FROM sessions WHERE date BETWEEN ? AND ? GROUP BY 1", [start, end])
        .fetchall()
    )
    return dict(rows)


def _table_sessions_by_day(table: pa.Table) -> dict[dt.date, int]:
    out: dict[dt.date, int] = {}
    for row in table.select(["date", "sessions"]).to_pylist():
        out[row["date"]] = out.get(row["date"], 0) + row["sessions"]
    return out


def test_types_and_names_come_from_the_headers(sandbox_server, settled_window, demo_store):
    client = make_client(sandbox_server)
    table = collect(client.fetch_report(MAIN, SPECS["ecommerce"], *settled_window))
    schema = table.schema
    assert schema.names == [
        "property_id",
        "date",
        "session_default_channel_group",
        "device_category",
        "country",
        "new_vs_returning",
        "ecommerce_purchases",
        "purchase_revenue",
        "total_purchasers",
        "subject_to_thresholding",
        "data_loss_from_other_row",
        "sampled",
    ]
    assert schema.field("date").type == pa.date32()
    assert schema.field("ecommerce_purchases").type == pa.int64()
    assert schema.field("purchase_revenue").type == pa.float64()
    assert schema.field("sampled").type == pa.bool_()
    revenue = (
        demo_store.cursor()
        .execute(
            "SELECT sum(purchase_revenue), sum(purchase) FROM sessions WHERE date BETWEEN ? AND ?",
            list(settled_window),
        )
        .fetchall()[0]
    )
    assert sum(table["purchase_revenue"].to_pylist()) == pytest.approx(float(revenue[0]), abs=0.01)
    assert sum(table["ecommerce_purchases"].to_pylist()) == revenue[1]
    assert set(table["property_id"].to_pylist()) == {MAIN}
    assert client.property_time_zone(MAIN) == "America/New_York"


def test_sessions_per_day_equal_the_store(sandbox_server, settled_window, demo_store):
    client = make_client(sandbox_server)
    table = collect(client.fetch_report(MAIN, WEB, *settled_window))
    assert _table_sessions_by_day(table) == _sessions_by_day(demo_store, *settled_window)


def test_paging_at_the_limit_streams_every_row_once(sandbox_server, settled_window):
    client = make_client(sandbox_server, page_size=500)
    batches = list(client.fetch_report(MAIN, WEB, *settled_window))
    one_page = collect(make_client(sandbox_server).fetch_report(MAIN, WEB, *settled_window))
    assert one_page.num_rows > 2000
    assert [b.num_rows for b in batches[:-1]] == [500] * (len(batches) - 1)
    assert len(batches) == math.ceil(one_page.num_rows / 500)
    assert sorted_rows(pa.Table.from_batches(batches)) == sorted_rows(one_page)
    entry = client.request_log[-1]
    assert entry["rows"] == one_page.num_rows
    assert entry["pages"] == entry["requests"] == len(batches)


def test_output_streams_page_by_page(sandbox_server, settled_window):
    client = make_client(sandbox_server, page_size=200, prefetch_pages=False)
    stream = client.fetch_report(MAIN, WEB, *settled_window)
    first = next(stream)
    assert first.num_rows == 200
    assert sandbox_server.counters()["route.ga4:runReport"] == 1  # one page asked for, one page held
    rest = list(stream)
    assert sandbox_server.counters()["route.ga4:runReport"] == 1 + len(rest)


def test_a_report_that_changes_while_paging_fails_loudly(sandbox_server, settled_window, main_property):
    client = make_client(sandbox_server, page_size=200, prefetch_pages=False)
    stream = client.fetch_report(MAIN, WEB, *settled_window)
    next(stream)
    main_property.other_row_cap = 1000  # the report now has fewer rows than the first page said
    with pytest.raises(Ga4FetchError, match=r"the report changed while paging \(rowCount"):
        list(stream)
    assert client.request_log[-1]["error"]


def test_two_properties_in_one_run(sandbox_server, settled_window):
    client = make_client(sandbox_server, property_ids=(MAIN, EXTRA))
    window = DateWindow(*settled_window)
    by_property: dict[str, int] = {}
    for property_id, spec, got_window, batch in client.fetch_reports([WEB], [window]):
        assert spec is WEB and got_window == window
        assert set(batch["property_id"].to_pylist()) == {property_id}
        by_property[property_id] = by_property.get(property_id, 0) + sum(batch["sessions"].to_pylist())
    assert set(by_property) == {MAIN, EXTRA}
    assert by_property[EXTRA] == pytest.approx(0.4 * by_property[MAIN], rel=0.05)
    assert {e["source_id"] for e in client.request_log if e["request"] == "web_sessions"} == {MAIN, EXTRA}
    assert client.failures == {}


def test_lookback_windows():
    day = dt.date(2026, 11, 20)
    windows = plan_windows(day, day, lookback_days=3)
    assert [(w.start, w.end, w.mode) for w in windows] == [
        (dt.date(2026, 11, 17), dt.date(2026, 11, 19), "lookback"),
        (day, day, "incremental"),
    ]
    assert replaced_dates(windows) == [dt.date(2026, 11, 17) + dt.timedelta(days=i) for i in range(4)]
    assert plan_windows(day, day, lookback_days=0) == [DateWindow(day, day, "incremental")]


def _load(con, table: pa.Table, dates: list[dt.date]) -> None:
    """What the raw loader does with a window: delete its (property, date) slices, insert, one transaction."""
    con.execute("BEGIN")
    con.execute("DELETE FROM web WHERE property_id = ? AND list_contains(?, date)", [MAIN, dates])
    con.register("incoming", table)
    con.execute("INSERT INTO web SELECT * FROM incoming")
    con.unregister("incoming")
    con.execute("COMMIT")


def test_lookback_refetch_replaces_revised_figures(sandbox_server, demo_store, tmp_path):
    client = make_client(sandbox_server, lookback_days=3)
    last = demo_store.end_date
    con = duckdb.connect(str(tmp_path / "raw.duckdb"))
    from connectors.ga4.convert import batch_schema

    con.register("empty", batch_schema(WEB).empty_table())
    con.execute("CREATE TABLE web AS SELECT * FROM empty")
    stored = []
    for partition_day in (last - dt.timedelta(days=1), last, last, last, last):  # daily runs, then reruns
        windows = plan_windows(partition_day, partition_day, lookback_days=client.settings.lookback_days)
        for window in windows:
            table = collect(client.fetch_report(MAIN, WEB, window.start, window.end, mode=window.mode))
            _load(con, table, window.dates())
        stored.append(
            dict(
                con.execute(
                    "SELECT date, sum(sessions) FROM web WHERE date >= ? GROUP BY 1",
                    [last - dt.timedelta(days=1)],
                ).fetchall()
            )
        )
    truth = _sessions_by_day(demo_store, last - dt.timedelta(days=1), last)
    yesterday = last - dt.timedelta(days=1)
    assert stored[0][yesterday] < stored[1][yesterday] < stored[2][yesterday] == truth[yesterday]
    assert stored[1][last] < stored[2][last] < stored[3][last] < stored[4][last] == truth[last]
    dupes = con.execute(
        "SELECT count(*) - count(DISTINCT (date, session_default_channel_group, device_category, country, new_vs_returning)) FROM web"
    ).fetchall()[0][0]
    assert dupes == 0
    assert {e["mode"] for e in client.request_log if e["request"] == "web_sessions"} == {
        "lookback",
        "incremental",
    }


def test_other_row_is_split_away_by_date_then_dimension(sandbox_server, settled_window, main_property):
    clean = collect(make_client(sandbox_server).fetch_report(MAIN, WEB, *settled_window))
    per_day = clean.num_rows / 14
    main_property.other_row_cap = int(per_day * 0.6)  # even one day is too many rows
    client = make_client(sandbox_server)
    split = collect(client.fetch_report(MAIN, WEB, *settled_window))
    assert sorted_rows(split) == sorted_rows(clean)
    assert not any(split["data_loss_from_other_row"].to_pylist())
    entry = client.request_log[-1]
    assert entry["splits"] > 14 and not entry["data_loss_from_other_row"]


def test_what_cannot_be_split_stays_flagged(sandbox_server, settled_window, main_property, demo_store):
    main_property.other_row_cap = 5
    client = make_client(sandbox_server)
    table = collect(client.fetch_report(MAIN, WEB, *settled_window))
    assert all(table["data_loss_from_other_row"].to_pylist())
    others = table.filter(pa.compute.equal(table["country"], "(other)"))
    assert others.num_rows > 0 and others["date"].null_count == 0  # one-day requests give "(other)" its day
    assert _table_sessions_by_day(table) == _sessions_by_day(demo_store, *settled_window)
    assert client.request_log[-1]["data_loss_from_other_row"] is True


PURCHASE_SEGMENTS = ("date", "sessionDefaultChannelGroup", "deviceCategory", "country", "newVsReturning")


@pytest.mark.parametrize(
    "spec",
    [
        # A channel with no purchase that day has rows only through its sessions.
        ReportSpec("purchases_first", PURCHASE_SEGMENTS, ("ecommercePurchases", "sessions")),
        # Its rows are all zero and come only because the spec keeps empty rows.
        ReportSpec("purchases_kept", PURCHASE_SEGMENTS, ("ecommercePurchases",), keep_empty_rows=True),
    ],
    ids=["first_metric_zero", "keep_empty_rows"],
)
def test_a_split_keeps_values_whose_first_metric_is_zero(
    sandbox_server, settled_window, main_property, demo_store, spec
):
    cur = demo_store.cursor()
    day, zero_channels = cur.execute(
        "SELECT date, list(channel ORDER BY channel) FROM ("
        "  SELECT date, channel FROM sessions WHERE date BETWEEN ? AND ?"
        "  GROUP BY ALL HAVING sum(purchase) = 0"
        ") GROUP BY date ORDER BY date LIMIT 1",
        list(settled_window),
    ).fetchall()[0]
    segment = "channel, device_category, country, new_vs_returning"
    truth = set(
        cur.execute(
            f"SELECT {segment}, sum(purchase), count(*) FROM sessions WHERE date = ? GROUP BY ALL",
            [day],
        ).fetchall()
    )
    channels, largest_channel = cur.execute(
        f"SELECT count(*), max(n) FROM (SELECT channel, count(DISTINCT ({segment})) AS n "
        "FROM sessions WHERE date = ? GROUP BY channel)",
        [day],
    ).fetchall()[0]
    assert largest_channel < len(truth)
    # The whole day folds into "(other)", each channel on its own does not: one split by channel.
    main_property.other_row_cap = largest_channel
    client = make_client(sandbox_server)
    table = collect(client.fetch_report(MAIN, spec, day, day))
    columns = ["session_default_channel_group", "device_category", "country", "new_vs_returning"]
    columns += ["ecommerce_purchases", "sessions"] if "sessions" in spec.metrics else ["ecommerce_purchases"]
    got = {tuple(row.values()) for row in table.select(columns).to_pylist()}
    expected = {row if "sessions" in spec.metrics else row[:-1] for row in truth}
    for channel in zero_channels:
        channel_rows = {row for row in expected if row[0] == channel}
        assert channel_rows and {row for row in got if row[0] == channel} == channel_rows, channel
    assert table.num_rows == len(expected) and got == expected
    assert not any(table["data_loss_from_other_row"].to_pylist())
    entry = client.request_log[-1]
    # The day, the one listing of channels, then one request per channel.
    assert entry["splits"] == 1
    assert entry["requests"] == 2 + channels == sandbox_server.counters()["route.ga4:runReport"]
    assert entry["data_loss_from_other_row"] is False


def test_sampled_ranges_are_split_until_unsampled(sandbox_server, settled_window, main_property, demo_store):
    main_property.sampling_over_days = 4
    client = make_client(sandbox_server)
    table = collect(client.fetch_report(MAIN, WEB, *settled_window))
    assert not any(table["sampled"].to_pylist())
    assert _table_sessions_by_day(table) == _sessions_by_day(demo_store, *settled_window)
    entry = client.request_log[-1]
    assert entry["splits"] >= 3 and entry["sampled"] is False


def test_splitting_can_be_turned_off_and_sampling_is_flagged(sandbox_server, settled_window, main_property):
    main_property.sampling_over_days = 4
    client = make_client(sandbox_server, split_incomplete=False)
    table = collect(client.fetch_report(MAIN, WEB, *settled_window))
    assert all(table["sampled"].to_pylist())
    assert client.request_log[-1]["sampled"] is True


def test_flags_and_quota_land_in_the_request_log(sandbox_server, settled_window, main_property):
    main_property.thresholding = True
    main_property.threshold_users = 3
    client = make_client(sandbox_server)
    table = collect(client.fetch_report(MAIN, WEB, *settled_window))
    assert all(table["subject_to_thresholding"].to_pylist())
    collect(client.fetch_report(MAIN, WEB, *settled_window))
    entry = client.request_log[-1]
    expected_keys = {
        "run_id",
        "source",
        "source_id",
        "request",
        "mode",
        "start_date",
        "end_date",
        "rows",
        "pages",
        "requests",
        "retries",
        "http_429",
        "splits",
        "subject_to_thresholding",
        "data_loss_from_other_row",
        "sampled",
        "quota_tokens_used",
        "quota_tokens_remaining_hour",
        "quota_tokens_remaining_day",
        "wait_seconds",
        "started_at",
        "finished_at",
        "error",
    }
    assert set(entry) == expected_keys
    assert entry["subject_to_thresholding"] is True
    assert entry["source"] == "ga4" and entry["source_id"] == MAIN and entry["request"] == "web_sessions"
    assert (entry["start_date"], entry["end_date"]) == settled_window
    assert entry["quota_tokens_used"] == 1  # 14 days, < 10,000 rows: one token, as the server counts
    assert entry["quota_tokens_remaining_hour"] == 40_000 - sandbox_server.counters()["ga4.tokens"]
    assert entry["quota_tokens_remaining_day"] == 200_000 - sandbox_server.counters()["ga4.tokens"]
    assert entry["error"] is None and entry["finished_at"] >= entry["started_at"]


def test_lead_forms_use_the_custom_dimension_and_filter(sandbox_server, settled_window, demo_store):
    client = make_client(sandbox_server)
    table = collect(client.fetch_report(MAIN, SPECS["lead_forms"], *settled_window))
    assert set(table["event_name"].to_pylist()) == {"generate_lead"}
    forms: dict[str, int] = {}
    for row in table.select(["custom_event_form_name", "event_count"]).to_pylist():
        forms[row["custom_event_form_name"]] = (
            forms.get(row["custom_event_form_name"], 0) + row["event_count"]
        )
    truth = dict(
        demo_store.cursor()
        .execute(
            "SELECT lead_form, sum(generate_lead) FROM sessions WHERE generate_lead > 0 AND date BETWEEN ? AND ? GROUP BY 1",
            list(settled_window),
        )
        .fetchall()
    )
    assert forms == truth


def test_an_extra_spec_from_configuration(sandbox_server, settled_window):
    client = make_client(sandbox_server)
    spec = ReportSpec(
        "device_forms",
        ("date", "deviceCategory", "customEvent:form_name"),
        ("eventCount", "sessions"),
        filters={"eventName": ("generate_lead",)},
    )
    table = collect(client.fetch_report(MAIN, spec, *settled_window))
    assert table.column_names[:4] == ["property_id", "date", "device_category", "custom_event_form_name"]
    assert table.schema.field("sessions").type == pa.int64()
