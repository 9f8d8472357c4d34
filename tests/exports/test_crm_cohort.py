"""Which creation cohorts the CRM funnel is reported over: a setting, a lag measured from the stage
history in the analyst file, or the 28-day default; and a bad setting stops the export early."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pytest

from orchestration.settings import load_settings
from reporting import ExportError, Period, run_export
from reporting.cohort_lag import CRM_LAG_ENV, crm_cohort_lag, crm_cohort_window

WEEK = Period(dt.date(2026, 11, 16), dt.date(2026, 11, 22))


def test_the_lag_setting_moves_the_window_and_the_finding(fixture_marts, tmp_path, browser):
    # The export asset passes the STEPWISE_CRM_COHORT_LAG_DAYS setting in (orchestration reads settings).
    lag = load_settings({CRM_LAG_ENV: "14"}).crm_cohort_lag_days
    result = run_export(fixture_marts, tmp_path, period_end=WEEK.end, sandbox=True, crm_cohort_lag_days=lag)
    page = browser.parse_dom(result.report_path.read_text(encoding="utf-8"))
    fig = page.find("figure", data_funnel="lead")
    # 28 creation days ending 14 days before Sunday 22 Nov.
    assert (fig.attrs["data-window-start"], fig.attrs["data-window-end"]) == ("2026-10-12", "2026-11-08")
    assert fig.attrs["data-lag-days"] == "14" and fig.attrs["data-matured"] == "true"
    assert f"set by {CRM_LAG_ENV}" in page.find("p", data_funnel_basis="lead").text
    crm = [f for f in result.headline["findings"] if "lead funnel" in f]
    assert len(crm) == 1 and "12 Oct – 8 Nov 2026" in crm[0] and "at least 14 days old" in crm[0]
    # Another setting, another window.
    argued = run_export(
        fixture_marts, tmp_path / "arg", period_end=WEEK.end, sandbox=True, crm_cohort_lag_days=21
    )
    assert any("5 Oct – 1 Nov 2026" in f and "at least 21 days old" in f for f in argued.headline["findings"])


@pytest.mark.parametrize("value", ["abc", "-3", "2.5"])
def test_a_bad_lag_setting_fails_before_anything_is_written(fixture_marts, tmp_path, value):
    with pytest.raises(ExportError, match=CRM_LAG_ENV) as err:
        run_export(
            fixture_marts, tmp_path / "out", period_end=WEEK.end, sandbox=True, crm_cohort_lag_days=value
        )
    assert "whole number" in str(err.value)
    assert not (tmp_path / "out").exists()


def with_stage_history(
    fixture_marts, path, lags: list[int], first_created: dt.date
) -> duckdb.DuckDBPyConnection:
    """A copy of the fixture with HubSpot staging: one contact per lag, each reaching the funnel's last
    step (customer) that many days after it was created; plus one contact created on `first_created`."""
    shutil.copyfile(fixture_marts, path)
    con = duckdb.connect(str(path))
    con.execute(
        "UPDATE marts.conversion_catalog SET signal_type = 'lifecycle_stage', signal = 'customer' "
        "WHERE conversion_name = 'customer'"
    )
    con.execute("CREATE SCHEMA staging")
    con.execute(
        "CREATE TABLE staging.hubspot_contact_facts (portal_id VARCHAR, contact_id VARCHAR, created_date DATE)"
    )
    con.execute(
        "CREATE TABLE staging.hubspot_contact_stage_events (portal_id VARCHAR, contact_id VARCHAR, stage VARCHAR, "
        "entered_date DATE)"
    )
    created = dt.date(2026, 10, 1)
    for i, lag in enumerate(lags):
        con.execute("INSERT INTO staging.hubspot_contact_facts VALUES ('p', ?, ?)", [str(i), created])
        con.execute(
            "INSERT INTO staging.hubspot_contact_stage_events VALUES ('p', ?, 'lead', ?), ('p', ?, 'customer', ?)",
            [str(i), created, str(i), created + dt.timedelta(days=lag)],
        )
    con.execute("INSERT INTO staging.hubspot_contact_facts VALUES ('p', 'first', ?)", [first_created])
    return con


def test_the_lag_is_measured_from_the_stage_history(fixture_marts, tmp_path):
    # 40 customers, 1 to 40 days after creation: 3 in 4 within 30 days -> 35 days (whole weeks).
    con = with_stage_history(fixture_marts, tmp_path / "a.duckdb", list(range(1, 41)), dt.date(2026, 8, 1))
    try:
        lag = crm_cohort_lag(con, WEEK, {"lead"})
        assert (lag.days, lag.source) == (35, "data")
        assert "3 in 4 of the 40 contacts who became Customer did so within 30 days" in lag.reason
        window = crm_cohort_window(con, WEEK, "lead", lag)
        # 21 Sep – 18 Oct, clipped to the first cohort in the fixture's funnel_daily (28 Sep).
        assert (window.start, window.end, window.matured) == (
            dt.date(2026, 9, 28),
            dt.date(2026, 10, 18),
            True,
        )
        # A setting wins over the measurement.
        assert crm_cohort_lag(con, WEEK, {"lead"}, setting=10).days == 10
        # Customers after the report week are not known to that week's report.
        early = Period(dt.date(2026, 10, 26), dt.date(2026, 11, 1))
        assert crm_cohort_lag(con, early, {"lead"}).reason.startswith(
            "3 in 4 of the 31 contacts"
        )  # lags 1..31 only
    finally:
        con.close()


def test_a_short_or_thin_history_falls_back_to_28_days(fixture_marts, tmp_path):
    # Too few converted contacts to measure a lag.
    con = with_stage_history(fixture_marts, tmp_path / "thin.duckdb", list(range(1, 11)), dt.date(2026, 8, 1))
    try:
        assert (crm_cohort_lag(con, WEEK, {"lead"}).days, crm_cohort_lag(con, WEEK, {"lead"}).source) == (
            28,
            "default",
        )
    finally:
        con.close()
    # Enough of them, but a history too short to have seen slower ones: the measured lag is biased low.
    con = with_stage_history(
        fixture_marts, tmp_path / "short.duckdb", list(range(1, 41)), dt.date(2026, 10, 1)
    )
    try:
        assert crm_cohort_lag(con, WEEK, {"lead"}).source == "default"
    finally:
        con.close()
